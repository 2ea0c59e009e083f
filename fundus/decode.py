"""Bytes -> 8-bit RGB for every supported container, with limits enforced first."""

from __future__ import annotations

from fundus.budget import admit
from fundus.config import DecodeLimits
from fundus.dicom import decode_dicom
from fundus.errors import CorruptImage, FundusError, ImageTooLarge
from fundus.formats import detect_format
from fundus.raster import decode_jpeg, decode_png, decode_tiff
from fundus.types import ImageFormat, ImageInfo, RGBImage


def decode_image(
    data: bytes, limits: DecodeLimits | None = None, target_size: int | None = None
) -> tuple[RGBImage, ImageInfo]:
    """Decode ``data`` to uint8 RGB [H, W, 3].

    ``target_size`` is the side the caller will resize to; large JPEGs are then decoded at a
    reduced DCT scale whose short side is still at least ``target_size``. The declared decoded
    size (pixels x channels x bytes per sample) must fit ``limits.max_decoded_bytes``. Only
    ``FundusError`` subclasses escape: any other failure inside a third-party decoder becomes
    ``CorruptImage``.
    """
    limits = limits or DecodeLimits()
    admit(data, limits, target_size)  # empty, encoded size, format, declared decoded size
    image_format = detect_format(data)
    try:
        if image_format is ImageFormat.JPEG:
            return decode_jpeg(data, limits, target_size)
        if image_format is ImageFormat.PNG:
            return decode_png(data, limits)
        if image_format is ImageFormat.TIFF:
            return decode_tiff(data, limits)
        return decode_dicom(data, limits, target_size)
    except FundusError:
        raise
    except MemoryError as exc:
        raise ImageTooLarge("not enough memory to decode this image") from exc
    except Exception as exc:  # a decoder bug must still be a clean 4xx for the caller
        raise CorruptImage(
            f"{image_format.value} data cannot be decoded ({type(exc).__name__})"
        ) from exc
