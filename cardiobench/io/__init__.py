"""Media I/O: decode only the frames needed from AVI/MP4, NIfTI, DICOM and still images; write them.

Readers return ``uint8 (T, H, W, 3)`` RGB and raise :class:`MediaError` for every file they
cannot read. Writers (used by the phantom generator) commit files atomically.
"""

from .common import MediaInfo
from .dicom import DICOM_SUFFIXES, DicomInfo, dicom_info
from .errors import MediaError
from .image import IMAGE_SUFFIXES
from .nifti import NIFTI_SUFFIXES
from .reader import SUPPORTED_SUFFIXES, media_kind, probe, read_frames
from .video import VIDEO_SUFFIXES
from .writers import DEFAULT_CODEC, write_image, write_nifti, write_video

__all__ = [
    "DEFAULT_CODEC",
    "DICOM_SUFFIXES",
    "DicomInfo",
    "IMAGE_SUFFIXES",
    "MediaError",
    "MediaInfo",
    "NIFTI_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "VIDEO_SUFFIXES",
    "dicom_info",
    "media_kind",
    "probe",
    "read_frames",
    "write_image",
    "write_nifti",
    "write_video",
]
