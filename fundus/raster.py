"""Decoding of raster containers (JPEG, PNG, TIFF) to 8-bit RGB.

The JPEG fast path asks libjpeg-turbo for a DCT-scaled decode (1/2, 1/4 or 1/8 of the stored
size; OpenCV's ``IMREAD_REDUCED_*``, Pillow's ``draft`` for CMYK and other modes) when the
photograph is much larger than the model input, instead of a full decode followed by a resize:
a 4928x3264 fundus photo decoded at 1/4 scale is still larger than 512 px but costs a fraction
of the time and memory.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from fundus.config import DecodeLimits
from fundus.errors import CorruptImage, FundusError, ImageTooLarge, ImageTooSmall, UnsupportedFormat
from fundus.types import ImageFormat, ImageInfo, RGBImage

REDUCED_SCALES = (8, 4, 2)
SQUARE_PIXELS_FACTOR = 4
"""Preprocessing pads the image (its disc, or all of it when no disc is found) to a square of
its long side; that square may hold at most this many times ``max_pixels``. A fundus photograph
is 4:3 or 3:2 (its square is under 2.25 times its pixels); a 320x65535 file, within the pixel
limit, would otherwise pad to 4.3 G pixels (12.9 GB)."""


def check_dimensions(width: int, height: int, limits: DecodeLimits, frames: int = 1) -> None:
    """Refuse images whose declared size breaks the limits, before any pixel is decoded."""
    if width <= 0 or height <= 0:
        raise CorruptImage(f"declared image size {width}x{height} is invalid")
    if width * height * max(frames, 1) > limits.max_pixels:
        raise ImageTooLarge(
            f"image of {width}x{height} pixels exceeds the limit of {limits.max_pixels} pixels"
        )
    if max(width, height) ** 2 > SQUARE_PIXELS_FACTOR * limits.max_pixels:
        raise ImageTooLarge(
            f"image of {width}x{height} pixels is too elongated: padded to a square it would "
            f"exceed {SQUARE_PIXELS_FACTOR} x {limits.max_pixels} pixels"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmall(
            f"image of {width}x{height} pixels is smaller than {limits.min_side} px on a side"
        )


def choose_reduced_scale(width: int, height: int, target_size: int | None) -> int:
    """Largest DCT scale (8, 4, 2) that keeps the short side at least ``target_size``; else 1."""
    if target_size is None:
        return 1
    short_side = min(width, height)
    for scale in REDUCED_SCALES:
        if short_side // scale >= target_size:
            return scale
    return 1


def to_rgb8(array: np.ndarray, bits_stored: int | None = None) -> RGBImage:
    """Convert a decoded array (gray, gray+alpha, RGB, RGBA; 8 or 16 bit) to uint8 RGB.

    16-bit data is scaled by its stored bit depth (``bits_stored``, default 16), never by the
    image's own min/max, so brightness stays comparable between images. Alpha is dropped
    before the conversion; the conversion is OpenCV's ``convertScaleAbs`` (round to nearest,
    saturating above the stored maximum: the clip-scale-round of before without its four
    float32 copies of the whole image).
    """
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[:, :, : array.shape[2] - 1]  # drop alpha (a view)
    if array.dtype == np.uint8:
        scaled = array
    elif array.dtype == np.uint16:
        bits = bits_stored or 16
        scaled = np.asarray(
            cv2.convertScaleAbs(np.ascontiguousarray(array), alpha=255.0 / ((1 << bits) - 1)),
            dtype=np.uint8,
        )
    else:
        raise UnsupportedFormat(f"pixel data of type {array.dtype} is not supported")
    if scaled.ndim == 2:
        return np.ascontiguousarray(np.repeat(scaled[:, :, None], 3, axis=2))
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(scaled, 3, axis=2))
    if scaled.ndim == 3 and scaled.shape[2] == 3:
        return np.ascontiguousarray(scaled)
    raise UnsupportedFormat(f"pixel array of shape {array.shape} is not an image")


def _open_pillow(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Open lazily (header only) and check the declared size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for broken headers
        raise CorruptImage(f"cannot read the image header: {exc}") from exc
    check_dimensions(image.width, image.height, limits)
    return image


_REDUCED_FLAGS = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4}
_REDUCED_FLAGS[8] = cv2.IMREAD_REDUCED_GRAYSCALE_8
"""The DCT-scaling bit of OpenCV's ``IMREAD_REDUCED_*`` flags (16, 32, 64), per scale."""


def _decode_jpeg_opencv(data: bytes, scale: int) -> RGBImage | None:
    """libjpeg-turbo through OpenCV, straight to RGB at 1/``scale``: the same pixels as Pillow
    with ``draft`` (same library, same IDCT and upsampling; checked in the tests), but written
    once into the array, without Pillow's 4-byte pixels and their ``tobytes`` copy. None when
    libjpeg gives up (OpenCV 5 also refuses a truncated scan)."""
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION | _REDUCED_FLAGS[scale]
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    return None if decoded is None else np.asarray(decoded, dtype=np.uint8)


def decode_jpeg(
    data: bytes, limits: DecodeLimits, target_size: int | None
) -> tuple[RGBImage, ImageInfo]:
    """Decode a JPEG to RGB, at reduced DCT scale when it is much larger than ``target_size``.

    8-bit YCbCr/RGB/gray JPEGs (Pillow modes RGB and L) decode through OpenCV; any other
    (CMYK, YCCK, ...) through Pillow, whose conversion to RGB they always had.
    """
    image = _open_pillow(data, limits)
    width, height = image.size
    scale = choose_reduced_scale(width, height, target_size)
    try:
        if image.mode in ("RGB", "L"):
            array = _decode_jpeg_opencv(data, scale)
            if array is None:
                raise CorruptImage("JPEG data cannot be decoded")
        else:
            array = _decode_jpeg_pillow(image, width, height, scale)
    except FundusError:
        raise
    except Exception as exc:
        raise CorruptImage(f"JPEG data cannot be decoded: {exc}") from exc
    finally:
        image.close()
    actual_scale = max(1, round(width / array.shape[1]))
    info = ImageInfo(
        format=ImageFormat.JPEG,
        source_width=width,
        source_height=height,
        decoded_width=array.shape[1],
        decoded_height=array.shape[0],
        reduced_scale=actual_scale,
    )
    return np.ascontiguousarray(array), info


def _decode_jpeg_pillow(image: Image.Image, width: int, height: int, scale: int) -> RGBImage:
    """Pillow's DCT-scaled decode (``draft``) and conversion to RGB."""
    if scale > 1:
        image.draft("RGB", (width // scale, height // scale))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no extra copy
    array = np.asarray(rgb, dtype=np.uint8)
    rgb.close()
    return array


def png_header(data: bytes) -> tuple[int, int, int]:
    """Width, height and bit depth from the IHDR chunk (always the first chunk)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise CorruptImage("PNG without a valid IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return width, height, data[24]


def _check_png_chunks(data: bytes) -> None:
    """Every chunk must end inside the data. OpenCV allocates a chunk's declared length before
    reading it: a 100 kB file whose IDAT declares 2 GB would cost 2 GB of memory per decode."""
    position = 8
    while position + 8 <= len(data):
        end = position + 12 + int.from_bytes(data[position : position + 4], "big")
        if end > len(data):
            raise CorruptImage("a PNG chunk runs past the end of the file")
        if data[position + 4 : position + 8] == b"IEND":
            return
        position = end


def decode_png(data: bytes, limits: DecodeLimits) -> tuple[RGBImage, ImageInfo]:
    """Decode an 8- or 16-bit PNG (gray, RGB, palette, with or without alpha) to RGB."""
    width, height, bit_depth = png_header(data)
    check_dimensions(width, height, limits)
    _check_png_chunks(data)
    # Straight to 8-bit RGB inside libpng, row by row: 16-bit samples keep their high byte and
    # alpha is stripped, so no 16-bit or 4-channel copy of the image ever exists. Orientation is
    # ignored, as it always was (IMREAD_UNCHANGED ignored it).
    decoded = cv2.imdecode(
        np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if decoded is None:
        raise CorruptImage("PNG data cannot be decoded")
    rgb = np.ascontiguousarray(decoded, dtype=np.uint8)
    info = ImageInfo(
        format=ImageFormat.PNG,
        source_width=width,
        source_height=height,
        decoded_width=rgb.shape[1],
        decoded_height=rgb.shape[0],
        bits_stored=16 if bit_depth == 16 else 8,
    )
    return rgb, info


def decode_tiff(data: bytes, limits: DecodeLimits) -> tuple[RGBImage, ImageInfo]:
    """Decode the first page of a TIFF (8/16-bit gray or RGB) to RGB."""
    image = _open_pillow(data, limits)
    try:
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            array = np.asarray(image, dtype=np.uint16)
            bits = 16
        else:
            rgb_image = image if image.mode == "RGB" else image.convert("RGB")
            array = np.asarray(rgb_image, dtype=np.uint8)
            rgb_image.close()
            bits = 8
        image.close()  # Pillow's copy of the pixels goes before the conversion below
    except Exception as exc:
        raise CorruptImage(f"TIFF data cannot be decoded: {exc}") from exc
    rgb = to_rgb8(array)
    info = ImageInfo(
        format=ImageFormat.TIFF,
        source_width=image.width,
        source_height=image.height,
        decoded_width=rgb.shape[1],
        decoded_height=rgb.shape[0],
        bits_stored=bits,
    )
    return rgb, info
