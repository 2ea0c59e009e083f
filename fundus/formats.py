"""Container format detection by magic bytes.

File names and Content-Type headers are hints from the outside world and are never trusted:
only the leading bytes decide how an upload is decoded.
"""

from __future__ import annotations

from fundus.errors import EmptyInput, UnsupportedFormat
from fundus.types import ImageFormat

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_DICOM_PREAMBLE_LEN = 128
_DICM = b"DICM"


def _looks_like_bare_dicom(data: bytes) -> bool:
    """A DICOM stream without preamble: starts with a little-endian tag of group 0002 or 0008.

    Explicit VR streams then carry a two-letter upper-case VR; implicit VR streams a 4-byte
    length. Either way the first element of a dataset has a tiny element number.
    """
    if len(data) < 8:
        return False
    group = int.from_bytes(data[0:2], "little")
    element = int.from_bytes(data[2:4], "little")
    if group not in (0x0002, 0x0008) or element > 0x0020:
        return False
    vr = data[4:6]
    if vr.isalpha() and vr.isupper():
        return True
    length = int.from_bytes(data[4:8], "little")
    return length < 1024


def detect_format(data: bytes) -> ImageFormat:
    """Return the container format of ``data`` or raise ``UnsupportedFormat``/``EmptyInput``."""
    if not data:
        raise EmptyInput("the upload is empty")
    # DICOM first: a preamble may itself hold a TIFF header (dual-format files).
    if data[_DICOM_PREAMBLE_LEN : _DICOM_PREAMBLE_LEN + 4] == _DICM or data.startswith(_DICM):
        return ImageFormat.DICOM
    if data.startswith(_JPEG_MAGIC):
        return ImageFormat.JPEG
    if data.startswith(_PNG_MAGIC):
        return ImageFormat.PNG
    if data[:4] in _TIFF_MAGICS:
        return ImageFormat.TIFF
    if _looks_like_bare_dicom(data):
        return ImageFormat.DICOM
    raise UnsupportedFormat("not a JPEG, PNG, TIFF or DICOM file (checked the leading bytes)")
