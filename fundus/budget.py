"""What decoding an image will cost in memory, read from its header before any pixel is decoded.

Two figures per image:

* ``raster_bytes``: pixels x channels x bytes per sample (x frames) as stored: the size the
  file declares it decodes to. ``DecodeLimits.max_decoded_bytes`` bounds it, so a 400 kB PNG
  declaring 7000 x 7000 16-bit RGBA (392 MB) is refused (413) without being decoded; the pixel
  limit alone ignores channels and bit depth.
* ``working_bytes``: the estimated peak of decode plus preprocessing for this image, the figure
  the gateway's inference limiter reserves from its per-process memory budget. The factors
  below come from the decoders as used in fundus/raster.py and fundus/dicom.py, measured with
  OpenCV 5 / Pillow 13 (tests/unit/test_decode_budget.py checks each estimate against a real
  decode's peak RSS):
  - OpenCV's PNG decoder holds two copies of its 8-bit RGB output while decoding;
  - Pillow stores RGB as 4 bytes a pixel, and ``np.asarray`` of a Pillow image goes through
    ``tobytes`` (the chunks plus their join: twice the output); a mode conversion adds a copy;
  - libjpeg keeps every DCT coefficient (2 bytes a sample, full size even for a 1/8-scale
    decode) for progressive and other multi-scan JPEGs;
  - preprocessing pads the disc to a square of the image's long side (``crop_to_square``).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from fundus.config import DecodeLimits
from fundus.errors import CorruptImage, EmptyInput, FundusError, ImageTooLarge
from fundus.formats import detect_format
from fundus.raster import choose_reduced_scale, png_header
from fundus.types import ImageFormat

PREPROCESS_OVERHEAD_BYTES = 24 * 1024 * 1024
"""Analysis and model-size copies, masks, quality measures, the Ben Graham blur: 10 MB measured
here and 17 MB on the CI machine whatever the input (3000 x 3000 PNG), with a margin."""
PNG_DECODE_COPIES = 2
"""OpenCV 5 ``imdecode`` of a PNG peaks at twice its 8-bit RGB output (measured: 282 MiB for
7000 x 7000, 8 or 16 bit, with or without alpha)."""
PILLOW_PIXEL_BYTES = 4
"""Pillow keeps RGB, RGBA, CMYK, LA as 4 bytes a pixel."""
TIFF_PILLOW_BYTES = {
    # 16-bit gray: the image (2), tobytes (2 x 2), later 8-bit gray and RGB copies after it is
    # closed (1 + 3) -> 6 at the peak.
    **dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), 6),
    "RGB": PILLOW_PIXEL_BYTES + 2 * 3,  # the image, tobytes (2 x 3)
    "L": 1 + PILLOW_PIXEL_BYTES + 2 * 3,  # the image, convert("RGB"), tobytes
}
"""Bytes a pixel at the peak of decode_tiff, by the Pillow mode of the first page."""
TIFF_OTHER_PILLOW_BYTES = 2 * PILLOW_PIXEL_BYTES + 2 * 3
"""Any other mode (RGBA, CMYK, palette, ...): the image, convert("RGB"), tobytes."""
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (C4 is DHT, C8 reserved, CC DAC)."""
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class DecodeCost:
    """Header facts of one image and the memory decoding it takes (bytes)."""

    format: ImageFormat
    width: int
    height: int
    channels: int
    bytes_per_sample: int
    frames: int
    raster_bytes: int
    """Stored pixels x channels x bytes per sample x frames."""
    working_bytes: int
    """Estimated peak of decode + preprocessing."""
    buffer_bytes: int = 0
    """A decoder buffer the header sizes on its own (a TIFF tile), part of the raster bound."""


def decode_cost(data: bytes, target_size: int | None = None) -> DecodeCost:
    """Read the header of ``data`` and estimate its decode; raises ``FundusError`` for headers
    that cannot be read (the same errors decoding would raise)."""
    image_format = detect_format(data)
    try:
        if image_format is ImageFormat.PNG:
            return _png_cost(data)
        if image_format is ImageFormat.JPEG:
            return _jpeg_cost(data, target_size)
        if image_format is ImageFormat.TIFF:
            return _tiff_cost(data)
        from fundus.dicom import dicom_cost  # pydicom only when a DICOM arrives

        return dicom_cost(data, target_size)
    except FundusError:
        raise
    except Exception as exc:  # a header parser's bug must still be a clean 4xx
        raise CorruptImage(
            f"cannot read the {image_format.value} header ({type(exc).__name__})"
        ) from exc


def admit(data: bytes, limits: DecodeLimits, target_size: int | None = None) -> DecodeCost:
    """Every check that needs no decoding, in the order ``decode_image`` always applied them:
    empty input, encoded size, format, then the declared decoded size. Returns the cost."""
    if not data:
        raise EmptyInput("the upload is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"upload of {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    cost = decode_cost(data, target_size)
    check_cost(cost, limits)
    return cost


def check_cost(cost: DecodeCost, limits: DecodeLimits) -> None:
    """Refuse an image whose declared decoded size breaks ``limits.max_decoded_bytes``."""
    declared = max(cost.raster_bytes, cost.buffer_bytes)
    if declared <= limits.max_decoded_bytes:
        return
    what = (
        f"{cost.width}x{cost.height} pixels x {cost.channels} channels x "
        f"{8 * cost.bytes_per_sample} bit" + (f" x {cost.frames} frames" if cost.frames > 1 else "")
    )
    if cost.buffer_bytes > cost.raster_bytes:
        what = "its TIFF tile or strip buffer"
    raise ImageTooLarge(
        f"the image decodes to {declared} bytes ({what}), above the limit of "
        f"{limits.max_decoded_bytes} bytes"
    )


def preprocess_bytes(width: int, height: int) -> int:
    """Preprocessing peak on a decoded ``width`` x ``height`` RGB image: the image itself, its
    square padding (worst case: the disc spans the image), and small copies."""
    return 3 * width * height + 3 * max(width, height) ** 2 + PREPROCESS_OVERHEAD_BYTES


def _png_cost(data: bytes) -> DecodeCost:
    width, height, bit_depth = png_header(data)
    color_type = data[25]
    if color_type not in _PNG_CHANNELS:
        raise CorruptImage(f"PNG colour type {color_type} is invalid")
    channels = _PNG_CHANNELS[color_type]
    if color_type == 3 and b"tRNS" in data[: data.find(b"IDAT")]:
        channels = 4  # a palette with transparency expands to RGBA
    sample = 2 if bit_depth == 16 else 1
    pixels = width * height
    decoder = PNG_DECODE_COPIES * 3 * pixels
    return DecodeCost(
        ImageFormat.PNG,
        width,
        height,
        channels,
        sample,
        1,
        pixels * channels * sample,
        max(decoder, preprocess_bytes(width, height)),
    )


def jpeg_frame_header(data: bytes) -> tuple[int, int, int, int, list[tuple[int, int]], int]:
    """(precision, width, height, SOF marker, [(h, v) sampling per component], SOF offset)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise CorruptImage("JPEG marker expected")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _SOF_MARKERS:
            segment = data[position + 4 : position + 2 + length]
            if len(segment) < 6:
                raise CorruptImage("JPEG frame header is truncated")
            count = segment[5]
            if count == 0 or len(segment) < 6 + 3 * count:
                raise CorruptImage("JPEG frame header is truncated")
            components = [
                (segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 0x0F) for i in range(count)
            ]
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            return segment[0], width, height, marker, components, position
        if marker == 0xDA:
            break
        position += 2 + length
    raise CorruptImage("JPEG without a frame header (SOF) before its scan")


def _jpeg_cost(data: bytes, target_size: int | None) -> DecodeCost:
    precision, width, height, marker, components, sof_at = jpeg_frame_header(data)
    sample = 2 if precision > 8 else 1
    scale = choose_reduced_scale(width, height, target_size)
    out_w, out_h = -(-width // scale), -(-height // scale)
    # libjpeg keeps all coefficients for files with several scans (progressive, or
    # non-interleaved baseline): 64 int16 per 8x8 block of each component.
    coefficients = 0
    if _multi_scan(data, marker, len(components), sof_at):
        h_max = max(h for h, _ in components) or 1
        v_max = max(v for _, v in components) or 1
        for h, v in components:
            blocks_x = math.ceil(math.ceil(width * h / h_max) / 8)
            blocks_y = math.ceil(math.ceil(height * v / v_max) / 8)
            coefficients += blocks_x * blocks_y * 64 * 2
    out_pixels = out_w * out_h
    # Pillow's image (4 B/px), a conversion copy, np.asarray's tobytes (2 x 3 B/px).
    decoder = coefficients + out_pixels * (2 * PILLOW_PIXEL_BYTES + 6)
    channels = len(components)
    return DecodeCost(
        ImageFormat.JPEG,
        width,
        height,
        channels,
        sample,
        1,
        width * height * channels * sample,
        max(decoder, preprocess_bytes(out_w, out_h)),
    )


_PROGRESSIVE_SOF = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
_SEQUENTIAL_SOF = frozenset((0xC0, 0xC1, 0xC9))


def _multi_scan(data: bytes, sof_marker: int, components: int, sof_at: int) -> bool:
    """Whether libjpeg decodes this JPEG through a full coefficient buffer.

    libjpeg's own rule (jdinput.c ``initial_setup``): progressive, or a first scan holding
    fewer components than the frame. For sequential frames the first SOS header answers
    without reading the entropy-coded data; any other frame (lossless, hierarchical) or a
    file without a readable SOS falls back to counting SOS markers after the frame header
    (entropy-coded data never holds FF DA), which scans the whole file.
    """
    if sof_marker in _PROGRESSIVE_SOF:
        return True
    if sof_marker in _SEQUENTIAL_SOF:
        position = sof_at
        while position + 5 <= len(data) and data[position] == 0xFF:
            marker = data[position + 1]
            if marker == 0xFF:  # fill byte
                position += 1
                continue
            if marker == 0xDA:
                return data[position + 4] < components
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return data.count(b"\xff\xda", sof_at) > 1


def _tiff_cost(data: bytes) -> DecodeCost:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            tags = image.tag_v2  # type: ignore[attr-defined]
    except Exception as exc:  # Pillow raises many types for broken headers
        raise CorruptImage(f"cannot read the TIFF header: {exc}") from exc
    width, height = image.size
    bits = tags.get(258, (8,))
    bits_list = list(bits) if isinstance(bits, tuple | list) else [bits]
    channels = int(tags.get(277, len(bits_list)) or 1)
    sample = max(1, math.ceil(max(int(b) for b in bits_list) / 8))
    if 322 in tags and 323 in tags:
        piece_w, piece_h = int(tags[322]), int(tags[323])
        offsets, counts = tags.get(324, ()), tags.get(325, ())
    else:
        piece_w, piece_h = width, min(height, int(tags.get(278, height) or height))
        offsets, counts = tags.get(273, ()), tags.get(279, ())
    _check_pieces(data, offsets, counts)
    piece = piece_w * piece_h * channels * sample
    pixels = width * height
    # Pillow's image (TIFF_PILLOW_BYTES), np.asarray's tobytes (twice its output), then the
    # 8-bit RGB copy; libtiff's decoded and raw piece buffers.
    decoder = pixels * TIFF_PILLOW_BYTES.get(image.mode, TIFF_OTHER_PILLOW_BYTES) + 2 * piece
    return DecodeCost(
        ImageFormat.TIFF,
        width,
        height,
        channels,
        sample,
        1,  # only the first page is decoded (decode_tiff); the others are never read
        pixels * channels * sample,
        max(decoder, preprocess_bytes(width, height)),
        piece,
    )


def _check_pieces(data: bytes, offsets: Any, counts: Any) -> None:
    """Every strip or tile lies inside the file: libtiff sizes its read buffer from the
    declared byte count."""
    offset_list = list(offsets) if isinstance(offsets, tuple | list) else [offsets]
    count_list = list(counts) if isinstance(counts, tuple | list) else [counts]
    for offset, count in zip(offset_list, count_list, strict=False):
        if int(offset) + int(count) > len(data):
            raise CorruptImage("a TIFF strip or tile runs past the end of the file")
