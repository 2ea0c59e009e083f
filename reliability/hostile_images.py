"""Small files that decode to hundreds of megabytes: PNG and TIFF written row by row, so that
making them costs kilobytes of memory, not the size they decode to.

Each image is a bright disc on black (a fundus-like picture: the gateway crops to it), stored
losslessly, so they compress to a few hundred kilobytes. Used by ``reliability.decode_memory`` and
tests/reliability/test_decode_memory.py; the unit tests use them for the byte estimates.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
"""Channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)."""


def disc_rows(
    width: int, height: int, channels: int, bits: int, value: int = 0x90
) -> Iterator[bytes]:
    """Rows of a centred disc (diameter 90 % of the short side), big-endian for 16 bit."""
    sample = bytes([value, 0x12]) if bits == 16 else bytes([value])
    pixel = sample * channels
    cx, cy, radius = width // 2, height // 2, min(width, height) * 0.45
    row_bytes = width * channels * len(sample)
    for y in range(height):
        row = bytearray(row_bytes)
        dy = y - cy
        if abs(dy) < radius:
            dx = int((radius * radius - dy * dy) ** 0.5)
            start = (cx - dx) * len(pixel)
            row[start : start + 2 * dx * len(pixel)] = pixel * (2 * dx)
        yield bytes(row)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png(width: int, height: int, channels: int = 4, bits: int = 16) -> bytes:
    """A PNG (filter 0, zlib level 9) of ``disc_rows``."""
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(b"\x00" + row) for row in disc_rows(width, height, channels, bits)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bits, PNG_COLOR_TYPES[channels], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class TiffPage:
    """One page of ``tiff``: size, samples, bits, and how it is cut (strips or tiles)."""

    width: int
    height: int
    channels: int = 3
    bits: int = 8
    rows_per_strip: int = 64
    tile: tuple[int, int] | None = None
    """(tile width, tile length): tiled instead of stripped."""


def _tiff_pieces(page: TiffPage) -> Iterator[bytes]:
    """Deflate-compressed strips or tiles of ``disc_rows`` (little-endian samples), made one
    band of rows at a time."""
    rows = disc_rows(page.width, page.height, page.channels, page.bits)
    band_height = page.rows_per_strip if page.tile is None else page.tile[1]
    pixel = page.channels * page.bits // 8
    for _ in range(0, page.height, band_height):
        band = []
        for row in itertools.islice(rows, band_height):
            band.append(bytes(_swap16(row)) if page.bits == 16 else row)
        if page.tile is None:
            yield zlib.compress(b"".join(band), 9)
            continue
        tile_w, tile_h = page.tile
        band += [bytes(page.width * pixel)] * (tile_h - len(band))
        for x in range(0, page.width, tile_w):
            tile = b"".join(
                row[x * pixel : (x + tile_w) * pixel].ljust(tile_w * pixel, b"\x00") for row in band
            )
            yield zlib.compress(tile, 9)


def _swap16(row: bytes) -> bytearray:
    swapped = bytearray(len(row))
    swapped[0::2], swapped[1::2] = row[1::2], row[0::2]
    return swapped


def tiff(*pages: TiffPage) -> bytes:
    """A little-endian TIFF with deflate (Compression 8) pages, one IFD per page."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    previous_link = 4  # where the offset of the next IFD is written
    for page in pages:
        pieces = list(_tiff_pieces(page))
        offsets = []
        for piece in pieces:
            offsets.append(len(out))
            out += piece + (b"\x00" if len(piece) % 2 else b"")
        counts = [len(piece) for piece in pieces]
        extra = {}
        if page.tile is None:
            layout = {273: (4, offsets), 278: (4, [page.rows_per_strip]), 279: (4, counts)}
        else:
            layout = {
                322: (4, [page.tile[0]]),
                323: (4, [page.tile[1]]),
                324: (4, offsets),
                325: (4, counts),
            }
        if page.channels in (2, 4):
            extra[338] = (3, [2])  # ExtraSamples: unassociated alpha
        entries = {
            256: (4, [page.width]),
            257: (4, [page.height]),
            258: (3, [page.bits] * page.channels),
            259: (3, [8]),
            262: (3, [2 if page.channels >= 3 else 1]),
            277: (3, [page.channels]),
            284: (3, [1]),
            **layout,
            **extra,
        }
        struct.pack_into("<I", out, previous_link, len(out))
        ifd_at = len(out)
        out += bytes(2 + 12 * len(entries) + 4)
        struct.pack_into("<H", out, ifd_at, len(entries))
        for index, (tag, (kind, values)) in enumerate(sorted(entries.items())):
            fmt = "<H" if kind == 3 else "<I"
            payload = b"".join(struct.pack(fmt, v) for v in values)
            if len(payload) <= 4:
                field = payload + bytes(4 - len(payload))
            else:
                field = struct.pack("<I", len(out))
                out += payload
            struct.pack_into("<HHI", out, ifd_at + 2 + 12 * index, tag, kind, len(values))
            out[ifd_at + 2 + 12 * index + 8 : ifd_at + 2 + 12 * index + 12] = field
        previous_link = ifd_at + 2 + 12 * len(entries)
    return bytes(out)
