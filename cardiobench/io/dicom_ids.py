"""Patient and study identifiers from DICOM tags, and the salted pseudonyms that replace them.

:func:`dicom_identifiers` reads ``PatientID`` (0010,0020) and ``StudyInstanceUID`` (0020,000D)
from the header (``stop_before_pixels``), straight from the element bytes: pydicom's value
validation would otherwise warn about a malformed value *with the value in the message*, and its
warnings reach logs. The :class:`DicomIdentifiers` record prints as ``<redacted>`` so logging it
by mistake leaks nothing; its values are for :func:`pseudonymize` only.

:func:`pseudonymize` is HMAC-SHA-256 keyed with a per-cohort secret (the "salt") over the
identifier's kind and value, truncated to a short hex token: the same patient gets the same token
in every file of the cohort and every run with the same salt; another salt gives unrelated tokens.

**What this does and does not de-identify.** Outputs carry the token instead of the PatientID /
StudyInstanceUID. The DICOM files themselves are not touched (they stay with the user), and
nothing else from the tags is read. The token is only as secret as the salt: patient IDs are
short and guessable (an 8-digit MRN has 10**8 values, hashed in seconds), so anyone holding the
salt can confirm or enumerate IDs. Keep the salt out of anything shared (do not commit it in a
cohort YAML that leaves the hospital), and use a new salt for a cohort whose tokens must not be
linkable to another's. Pixel data can carry burned-in names and IDs; the region mask
(:mod:`cardiobench.io.us_region`) removes annotations outside the sector from what an encoder
sees, but the files and any frames exported from them are not de-identified.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Token prefix per identifier kind (readers can tell a patient token from a study token).
TOKEN_PREFIX: dict[str, str] = {"patient": "pt_", "study": "st_"}
#: Hex digits kept from the HMAC: 64 bits, collision chance ~ n**2 / 2**65 (1e-8 at 20,000 IDs).
TOKEN_HEX = 16

_PATIENT_ID, _STUDY_UID = 0x00100020, 0x0020000D


@dataclass(frozen=True, repr=False)
class DicomIdentifiers:
    """``PatientID`` and ``StudyInstanceUID`` of one file, in clear (``None`` when absent or empty).

    Never log, print or store these values; ``repr``/``str`` are redacted on purpose.
    """

    patient_id: str | None
    study_uid: str | None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'<redacted>' if v is not None else None}"
                          for k, v in (("patient_id", self.patient_id),
                                       ("study_uid", self.study_uid)))
        return f"DicomIdentifiers({shown})"

    __str__ = __repr__

    def pseudonyms(self, salt: str | bytes) -> tuple[str | None, str | None]:
        """``(patient token, study token)`` under ``salt`` (``None`` where the tag is absent)."""
        return (None if self.patient_id is None else pseudonymize(self.patient_id, salt,
                                                                  kind="patient"),
                None if self.study_uid is None else pseudonymize(self.study_uid, salt,
                                                                 kind="study"))


def _raw_text(ds: "Dataset", tag: int) -> str | None:
    """An element's text from its stored bytes (no pydicom value validation), stripped."""
    from pydicom.charset import convert_encodings, decode_bytes

    if tag not in ds:
        return None
    elem = ds.get_item(tag)
    value = getattr(elem, "value", None)
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        charset = ds.get_item(0x00080005)  # SpecificCharacterSet: a code, never an identifier
        codes = ds.SpecificCharacterSet if charset is not None else None
        try:
            text = decode_bytes(bytes(value), convert_encodings(codes), set())
        except Exception:
            text = bytes(value).decode("latin-1")
    else:
        text = str(value)
    text = text.strip(" \0")
    return text or None


def identifiers_from_dataset(ds: "Dataset") -> DicomIdentifiers:
    """The identifiers of an already read header (see :func:`dicom_identifiers`)."""
    return DicomIdentifiers(patient_id=_raw_text(ds, _PATIENT_ID),
                            study_uid=_raw_text(ds, _STUDY_UID))


def dicom_identifiers(path: str | Path) -> DicomIdentifiers:
    """``PatientID`` and ``StudyInstanceUID`` of the DICOM at ``path`` (header only).

    Raises :class:`~cardiobench.io.MediaError` (naming the path, never a tag value) when the file
    is not a readable DICOM.
    """
    from .dicom import _header_guard, read_dicom_header

    path = Path(path)
    ds = read_dicom_header(path)
    try:
        return identifiers_from_dataset(ds)
    except Exception as exc:  # a damaged SpecificCharacterSet, an unparseable element
        raise _header_guard(path, exc) from None


def pseudonymize(value: str, salt: str | bytes, *, kind: str = "patient") -> str:
    """A short stable token for an identifier: ``<prefix>`` + 16 hex digits of HMAC-SHA-256.

    ``HMAC(key=salt, msg=kind + "\\0" + value)`` with ``value`` stripped of DICOM padding
    (spaces, NUL); ``kind`` is ``"patient"`` or ``"study"`` (token prefix ``pt_``/``st_``), so a
    study UID equal to a patient ID does not collide with it. The salt must be non-empty: an
    unsalted hash of a guessable ID is no pseudonym (see the module docstring).
    """
    if kind not in TOKEN_PREFIX:
        raise ValueError(f"pseudonymize: kind must be one of {sorted(TOKEN_PREFIX)}, got {kind!r}")
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if not key:
        raise ValueError("pseudonymize needs a non-empty salt (a per-cohort secret)")
    text = str(value).strip(" \0")
    if not text:
        raise ValueError(f"pseudonymize: empty {kind} identifier")
    digest = hmac.new(key, f"{kind}\0{text}".encode("utf-8"), hashlib.sha256).hexdigest()
    return TOKEN_PREFIX[kind] + digest[:TOKEN_HEX]
