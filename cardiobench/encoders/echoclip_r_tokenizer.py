"""EchoCLIP-R's template tokenizer, reimplemented from its published description.

EchoCLIP-R encodes a report as a sequence of *template phrases* (one id each) followed by the
*variables* (numbers, severity words) that filled each phrase's ``<#>`` slots. Ids, as the official
``template_tokenize`` assigns them:

- phrase ids come from a ``tokenizers`` WordPiece tokenizer (``blank_wordpiece.tokenizer``: only
  ``[UNK] [CLS] [SEP] [PAD] [MASK]``) extended with every line of ``template_vocab.txt`` as an
  added token, so phrases are matched verbatim and anything else becomes ``[UNK]`` (dropped);
- variable ids come from a second copy of the blank tokenizer extended with ``0..100``, ``‡``, the
  severity words, ``.0..9`` and ``00..09``; a phrase's variables are joined with ``‡`` and offset
  by the template vocabulary size;
- ``BOS`` / ``EOS`` are the next two ids (907 / 908 with the real files); the sequence is padded
  with 0 or truncated to 77 with the last kept token forced to EOS, the largest id, which
  open_clip's argmax text pooling selects.

Both files are under echo_CLIP's academic licence, so cardiobench never ships them: the user
downloads them from https://github.com/echonet/echo_CLIP and points us at their folder.

Reports are cleaned by :func:`clean_report`, cardiobench's own implementation of the rules of
echo_CLIP's ``utils.clean_text`` (the cleaning EchoCLIP-R's training reports went through), so
the ids are the official ones for any prompt. **No code from the user's folder is ever run**: a
``utils.py`` found beside the vocabulary is only hashed, and a warning names it when its SHA-256
differs from the official file's (:data:`OFFICIAL_UTILS_SHA256`, echo_CLIP commit 722cca5, the
only version of that file) -- a changed cleaning there is not ours to follow.
:attr:`TemplateTokenizer.identity` names the cleaner (the text cache keys on it). A prompt that
matches no template phrase tokenises to ``[BOS, EOS]`` (one shared embedding for all such
prompts); a warning names it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from cardiobench.weights import WeightsNotFound

log = logging.getLogger(__name__)

VOCAB_FILE = "template_vocab.txt"
WORDPIECE_FILE = "blank_wordpiece.tokenizer"
ENV_DIR = "CARDIOBENCH_ECHOCLIP_R_DIR"
REPO_URL = "https://github.com/echonet/echo_CLIP"
PLACEHOLDER = "<#>"
SEPARATOR = "\u2021"  # '‡' separates the variables of one phrase
SEVERITIES = ("MILD", "MODERATE", "SEVERE", "MILD/MODERATE", "MODERATE/SEVERE")

_NUMBER = r"(?:\d+\.?\d*)"
_VARIABLE = re.compile(r"(\d+\.?\d*)|((?<![A-Za-z])(?:MODERATE/SEVERE|MILD/MODERATE|MILD|MODERATE|"
                       r"SEVERE|VERY SEVERE))")
OFFICIAL_UTILS = "utils.py"
#: SHA-256 of echo_CLIP's ``utils.py`` (10174 bytes, commit 722cca5 "initial commit"; unchanged
#: since), whose ``clean_text`` :func:`clean_report` implements
OFFICIAL_UTILS_SHA256 = "19f1e93c38bcfbaf9bea1128191bbf88dea5b17813d8961c8965278016fc9045"
#: identity of the cleaning rules below (bump when they change: the text cache keys on it)
CLEANER = "echo_clip-clean_text-v1"

# The cleaning rules of echo_CLIP's clean_text, in its order. Each is (pattern, replacement).
_FIRST_PASS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r) for p, r in (
        (r"\^|CRLF|\u2021", ""),                 # carets, literal CRLF markers, '‡'
        (r"(?<=\D)\.|\.(?=\D)", ". "),           # a period not inside a number ends a sentence
        (r"[\[\]]", ""),                         # square brackets
        (r"(?<=\b)WAS(?=\b)", "IS"),
        (r"(?<=\b)WERE(?=\b)", "ARE"),
        (r"(?<=\b)AND/OR(?=\b)", "AND"),
        (r"NORMALLY", "NORMAL"),                 # adverbs to adjectives, anywhere in a word
        (r"MILDLY", "MILD"),
        (r"MODERATELY", "MODERATE"),
        (r"SEVERELY", "SEVERE"),
        (r"PULMONARY ARTERY", "PA"),
        (r"\d{2}/\d{2}/\d{4}", ""),               # dates
        (r"\d{2}\.\d{2}\.\d{4}", ""),
        (r"[A-Z](\d+\.\d*\b)", ""),               # ICD codes such as I50.9
        (r"\s+(MMHG|MM|CM|%)", r"\1"),           # units attached to their number
        (r"\s\.", "."),
        (r"\s+", " "),
        (r"\s\+\s", "+"),
        (r"\+CVPMMHG", "MMHG"),
    ))
#: report phrases after which the official cleaning adds a period when none follows
#: (``<#>`` is a number)
PERIOD_PHRASES: tuple[str, ...] = (
    "THE PEAK TRANSAORTIC GRADIENT IS <#>MMHG", "THE MEAN TRANSAORTIC GRADIENT IS <#>MMHG",
    "LV EJECTION FRACTION IS <#>%", "ESTIMATED PA PRESSURE IS <#>MMHG",
    "RESTING SEGMENTAL WALL MOTION ANALYSIS", "THE IVC DIAMETER IS <#>MM",
    "EST RV/RA PRESSURE GRADIENT IS <#>MMHG", "ESTIMATED PEAK RVSP IS <#>MMHG",
    "HEART FAILURE, UNSPECIFIED", "CHEST PAIN, UNSPECIFIED", "SINUS OF VALSALVA: <#>CM",
    "THE PEAK TRANSMITRAL GRADIENT IS <#>MMHG", "THE MEAN TRANSMITRAL GRADIENT IS <#>MMHG",
    "ASCENDING AORTA <#>CM", "ESTIMATED PA SYSTOLIC PRESSURE IS <#>MMHG",
    "ICD_CODE SHORTNESS BREATH", "ICD_CODE ABNORMAL ELECTROCARDIOGRAM ECG EKG",
    "SHORTNESS BREATH", "ABNORMAL ELECTROCARDIOGRAM ECG EKG",
    "THE LEFT ATRIAL APPENDAGE IS NORMAL IN APPEARANCE WITH NO EVIDENCE OF THROMBUS",
)
_ADD_PERIOD = re.compile("(" + "|".join(
    "(?:" + _NUMBER.join(re.escape(part) for part in phrase.split(PLACEHOLDER)) + r")(?!\.)"
    for phrase in PERIOD_PHRASES) + ")")
_PERIODS = re.compile(r"\.+")


def clean_report(text: str) -> str:
    """A report normalised as echo_CLIP's ``clean_text`` does (cardiobench's implementation).

    Upper case, backticks to apostrophes, markup removed, sentence periods spaced, past tense
    and adverbs to the template's words, dates and ICD codes dropped, units attached to their
    number, one space, a trailing space, a period after the known phrases that lack one, runs of
    periods collapsed. A text of at most one character is returned unchanged, as there.
    """
    if len(text) <= 1:
        return text
    text = text.upper().strip().replace("`", "'")
    for pattern, repl in _FIRST_PASS:
        text = pattern.sub(repl, text)
    text = text.strip() + " "
    return _PERIODS.sub(".", _ADD_PERIOD.sub(r"\1.", text))


def check_user_utils(folder: Path) -> str | None:
    """SHA-256 of a ``utils.py`` in ``folder`` (never imported or run), or None when there is
    none; warns when it differs from the official file's."""
    path = folder / OFFICIAL_UTILS
    if not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != OFFICIAL_UTILS_SHA256:
        log.warning("EchoCLIP-R: %s differs from echo_CLIP's utils.py (SHA-256 %s…, official "
                    "%s…); it is not run: reports are cleaned by cardiobench's implementation of "
                    "the official clean_text, whatever that file holds", path, digest[:12],
                    OFFICIAL_UTILS_SHA256[:12])
    return digest


def split_variables(text: str) -> tuple[list[str], str]:
    """Pull numbers and severity words out of ``text``; return them and the text with ``<#>``."""
    found = [a or b for a, b in _VARIABLE.findall(text)]
    return found, _VARIABLE.sub(PLACEHOLDER, text)


def default_dir() -> Path:
    """Where the user's copies are looked for: ``$CARDIOBENCH_ECHOCLIP_R_DIR`` or the cache."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cardiobench" / "echo_clip_r"


class TemplateTokenizer:
    """Callable ``list[str] -> LongTensor (N, context_length)`` with EchoCLIP-R's template ids."""

    def __init__(self, folder: str | Path | None = None, context_length: int = 77):
        folder = Path(folder).expanduser() if folder is not None else default_dir()
        missing = [f for f in (VOCAB_FILE, WORDPIECE_FILE) if not (folder / f).is_file()]
        if missing:
            raise WeightsNotFound(
                f"EchoCLIP-R's text tokenizer needs {' and '.join(missing)} in {folder}. They are "
                f"not on the Hugging Face Hub and cardiobench cannot ship them (academic licence): "
                f"download {VOCAB_FILE} and {WORDPIECE_FILE} from {REPO_URL} (repository root) and "
                f"put them in {folder}, or pass tokenizer_dir=FOLDER, or set ${ENV_DIR}. "
                "open_clip's CLIP BPE tokenizer is NOT a substitute (it gives wrong text embeddings).")
        from tokenizers import Tokenizer

        self.folder = folder
        self.context_length = int(context_length)
        with open(folder / VOCAB_FILE, encoding="utf-8") as f:
            phrases = [line.rstrip("\n") for line in f.readlines()]
        self._phrases = Tokenizer.from_file(str(folder / WORDPIECE_FILE))
        self._phrases.add_tokens(phrases)
        self._variables = Tokenizer.from_file(str(folder / WORDPIECE_FILE))
        self._variables.add_tokens(
            ["[UNK]"] + [str(i) for i in range(101)] + [SEPARATOR] + list(SEVERITIES)
            + [f".{i}" for i in range(10)] + [f"0{i}" for i in range(10)])
        self.template_vocab_size = self._phrases.get_vocab_size(with_added_tokens=True)
        self.variable_vocab_size = self._variables.get_vocab_size(with_added_tokens=True)
        self.bos_id = self.template_vocab_size + self.variable_vocab_size
        self.eos_id = self.bos_id + 1
        self._slots = {i: tok.count(PLACEHOLDER) for tok, i in self._phrases.get_vocab().items()}
        self._unk = self._phrases.token_to_id("[UNK]")
        self.clean = clean_report
        self.user_utils_sha256 = check_user_utils(folder)
        self._warned: set[str] = set()

    @property
    def identity(self) -> str:
        """Which tokenizer and cleaner ran: ``TemplateTokenizer[cleaner=<CLEANER>]`` (the text
        cache keys on it)."""
        return f"TemplateTokenizer[cleaner={CLEANER}]"

    def encode(self, report: str) -> list[int]:
        """One report → its id sequence, padded/truncated to ``context_length``."""
        values, text = split_variables(self.clean(report))
        enc = self._phrases.encode(text)
        # Variables inside unrecognised text are dropped with it; keep only those in phrases.
        keep: list[bool] = []
        for (start, end), tid in zip(enc.offsets, enc.ids):
            if tid == self._unk:
                keep.extend([False] * text[start:end].count(PLACEHOLDER))
            else:
                keep.extend([True] * self._slots[tid])
        queue = [v for v, k in zip(values, keep) if k]
        ids = [self.bos_id]
        for tid in enc.ids:
            if tid == self._unk:
                continue
            n = self._slots[tid]
            mine, queue = queue[:n], queue[n:]
            ids.append(tid)
            ids.extend(v + self.template_vocab_size
                       for v in self._variables.encode(SEPARATOR.join(mine)).ids)
        ids.append(self.eos_id)
        if len(ids) == 2 and report not in self._warned:
            # nothing matched a template phrase: every such prompt gets the same embedding
            self._warned.add(report)
            log.warning("EchoCLIP-R: prompt %r matches no template phrase and tokenises to "
                        "[BOS, EOS]; write it in EchoCLIP-R's template phrasing", report)
        if len(ids) > self.context_length:
            ids = ids[: self.context_length]
            ids[-1] = self.eos_id
        return ids + [0] * (self.context_length - len(ids))

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Tokenise a batch of reports (open_clip tokenizer calling convention)."""
        if isinstance(texts, str):
            texts = [texts]
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long)
