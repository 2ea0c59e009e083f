"""Small files that would cost gigabytes: refused from their headers, before decoding."""

from __future__ import annotations

import struct
import zlib

import pytest

from fundus.config import DecodeLimits
from fundus.errors import CorruptImage, ImageTooLarge
from fundus.raster import check_dimensions, decode_png


def _chunk(kind: bytes, payload: bytes, declared: int | None = None) -> bytes:
    length = len(payload) if declared is None else declared
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", length) + kind + payload + struct.pack(">I", crc)


def _png(width: int, height: int, idat: bytes, declared: int | None = None) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat, declared)
        + _chunk(b"IEND", b"")
    )


def test_an_elongated_image_within_the_pixel_limit_is_refused() -> None:
    limits = DecodeLimits()
    width, height = 320, 65535  # 21 M pixels (< 50 M), but a 65535^2 square once padded
    assert width * height <= limits.max_pixels
    with pytest.raises(ImageTooLarge, match="elongated"):
        check_dimensions(width, height, limits)


@pytest.mark.parametrize(("width", "height"), [(4928, 3264), (3264, 4928), (2592, 1944)])
def test_fundus_photograph_shapes_pass(width: int, height: int) -> None:
    check_dimensions(width, height, DecodeLimits())


def test_a_png_chunk_declaring_more_than_the_file_is_corrupt() -> None:
    rows = zlib.compress(b"\x00" + b"\x80" * 3 * 600)  # one row's worth; the rest is missing
    data = _png(600, 600, rows, declared=0x7FFFFFF0)
    with pytest.raises(CorruptImage, match="past the end"):
        decode_png(data, DecodeLimits())


def test_a_well_formed_png_still_decodes() -> None:
    raw = b"".join(b"\x00" + bytes([10, 120, 200]) * 600 for _ in range(600))
    image, _ = decode_png(_png(600, 600, zlib.compress(raw)), DecodeLimits())
    assert image.shape == (600, 600, 3)
