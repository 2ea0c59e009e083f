"""Bad input against the running gateway: thousands of malformed requests, no server error.

    python -m bench.malformed --requests 10000 [--concurrency 8] [--model-root export] [--seed 0]

Starts the TF Serving stand-in (tests/support/tfserving_server.py, serving the SavedModel under
``--model-root``) and the gateway in tfserving mode with the PACS intake on and a 1 MiB upload
limit, then sends ``--requests`` requests built by ``MalformedRequests`` (seeded, deterministic:
request ``i`` of seed ``s`` is always the same bytes) and prints a table family x status x code.

What a correct answer is (``judge``):
- ``/v1/*`` and every other route: 2xx, or a 4xx whose JSON body is
  ``{"error": {"code", "message"}}`` with a code of ``gateway.errors.ERRORS`` whose table status
  is the HTTP status (a 405 also names the allowed methods in ``Allow``, RFC 9110).
- ``POST /dicomweb/studies`` (STOW-RS): a request-level 4xx as above (empty body, broken
  multipart/related, wrong media type, size, auth), or a STOW-RS response
  (``application/dicom+json``; 200 all stored, 202 some, 409 none) in which every item of the
  Failed SOP Sequence carries a Failure Reason (0008,1197) and the gateway's error code in the
  private attribute (0009,xx01), that code being a 4xx code of ``ERRORS``. A 503 STOW answer, or
  a failed item coded ``internal_error``/``backend_*``, is a server error.
A mutated image can still decode (a flipped bit in the entropy-coded data, a Content-Type that
lies about a valid image): such 200s are counted per family as gradable or ungradable.
Must be 0: 5xx, 4xx without a valid code, connection errors and timeouts.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import random
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID

from bench.gateway_stack import Stack, memory_kib, running_stack
from fundus.synthetic import (
    encode_dicom,
    encode_jpeg,
    encode_png,
    encode_tiff,
    synthesize_fundus,
    synthesize_non_fundus,
)
from gateway.auth import hash_key
from gateway.errors import ERRORS
from gateway.main import body_limit
from gateway.pacs.stow import DICOM_JSON_MEDIA_TYPE, PRIVATE_CREATOR

UPLOAD_LIMIT = 1024 * 1024
"""DRG_MAX_UPLOAD_BYTES of the gateway under test: small, so oversized bodies stay cheap."""
BODY_LIMIT = body_limit(UPLOAD_LIMIT)
"""The gateway's request body limit for that upload limit."""
PHOTO_SIZE = (320, 240)
PATIENT_MARKERS = ("SYNTHETIC^PATIENT", "SYN0001", "19700101")
"""Patient attributes of the synthetic DICOM files; they must never reach the gateway's log."""

# ---------------------------------------------------------------------------------------------
# Requests and keys
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MalformedRequest:
    """One request: what it tests (family, variant) and what goes on the wire."""

    family: str
    variant: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    chunked: bool = False
    """Send the body with Transfer-Encoding: chunked (no Content-Length)."""

    @property
    def route(self) -> str:
        """The route without its query string."""
        return self.path.split("?", 1)[0]


@dataclass(frozen=True)
class Keys:
    """API keys of the gateway under test: one per scope."""

    grade: str = "malformed-grade-key"
    pacs: str = "malformed-pacs-key"
    both: str = "malformed-both-key"

    def write(self, path: Path) -> Path:
        """The key file (DRG_API_KEYS_FILE) for these keys."""
        path.write_text(
            f"grader {hash_key(self.grade)} grade\n"
            f"pacs {hash_key(self.pacs)} pacs\n"
            f"both {hash_key(self.both)} grade,pacs\n"
        )
        return path


KEYS = Keys()
"""The keys of the gateway that ``serving_stack`` starts."""


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------------------------------------
# Valid inputs to break
# ---------------------------------------------------------------------------------------------

DICOM_KINDS = ("dicom", "dicom_implicit", "dicom_jpeg", "dicom_op16", "dicom_sc")


UID_PLACEHOLDER = "2.25." + "9" * 59
"""SOP Instance UID of the DICOM materials: 64 characters, replaced byte for byte per request."""


@dataclass(frozen=True)
class Materials:
    """Valid files made by fundus.synthetic, the DICOM datasets behind them, and bombs."""

    images: dict[str, bytes]
    datasets: dict[str, Dataset]
    bombs: dict[str, bytes]

    def dicom(self, kind: str, instance_uid: str) -> bytes:
        """A valid DICOM file of ``kind`` with its own SOP Instance UID (STOW-RS deduplicates
        by that UID, so every request needs a fresh one to be graded at all)."""
        if len(instance_uid) != len(UID_PLACEHOLDER):
            raise ValueError("the UID must have the placeholder's length")
        return self.images[kind].replace(UID_PLACEHOLDER.encode(), instance_uid.encode())


def write_dicom(dataset: Dataset) -> bytes:
    """Part 10 bytes of ``dataset`` as it is (invalid values included)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=False)
    return buffer.getvalue()


@cache
def materials() -> Materials:
    """Built once per process (two seconds or so)."""
    width, height = PHOTO_SIZE
    photo = synthesize_fundus(2, width=width, height=height, seed=11)
    other = synthesize_fundus(0, width=width, height=height, seed=12, laterality="L")
    images = {
        "jpeg": encode_jpeg(photo),
        "jpeg444": encode_jpeg(other, subsampling="4:4:4", quality=80),
        "jpeg_ungradable": encode_jpeg(synthesize_non_fundus("document", width=320, height=240)),
        "png": encode_png(photo),
        "png16": encode_png(other, bit_depth=16),
        "png_gray": encode_png(photo, grayscale=True),
        "tiff": encode_tiff(photo),
        "dicom": encode_dicom(photo, seed=1),
        "dicom_implicit": encode_dicom(
            photo, transfer_syntax="implicit_le", with_preamble=False, seed=2
        ),
        "dicom_jpeg": encode_dicom(other, transfer_syntax="jpeg_baseline", seed=3),
        "dicom_op16": encode_dicom(photo, sop_class="op16", bits=16, seed=4),
        "dicom_sc": encode_dicom(other, sop_class="sc", laterality=None, seed=5),
    }
    datasets: dict[str, Dataset] = {
        kind: dcmread(io.BytesIO(images[kind]), force=True) for kind in DICOM_KINDS
    }
    for kind, dataset in datasets.items():
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = UID(UID_PLACEHOLDER)
        data = write_dicom(dataset)
        images[kind] = data[132:] if kind == "dicom_implicit" else data
    return Materials(images, datasets, _bombs(images, datasets))


def _png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _zeros_deflated(row_bytes: int, rows: int) -> bytes:
    """zlib stream of ``rows`` PNG rows (filter byte + zeros), built row by row."""
    compressor = zlib.compressobj(9)
    row = bytes(row_bytes + 1)
    parts = [compressor.compress(row) for _ in range(rows)]
    parts.append(compressor.flush())
    return b"".join(parts)


def _bombs(images: dict[str, bytes], datasets: dict[str, Dataset]) -> dict[str, bytes]:
    """Small files that declare (and, for the PNGs, really hold) far too many pixels, or few
    enough pixels in a shape that costs far more once padded to a square."""
    huge_dicom = copy.deepcopy(datasets["dicom"])
    huge_dicom.Rows = huge_dicom.Columns = 65535
    many_frames = copy.deepcopy(datasets["dicom"])
    many_frames.NumberOfFrames = 100000
    return {
        # 30000 x 30000 pixels really encoded: 900 M pixels in ~110 kB.
        "png_30k_1bit": _png(30000, 30000, 1, 0, _zeros_deflated(3750, 30000)),
        "png_8k_gray": _png(8000, 8000, 8, 0, _zeros_deflated(8000, 8000)),
        "png_ihdr_2g": _png(2**31 - 1, 2**31 - 1, 8, 2, zlib.compress(bytes(1024))),
        "jpeg_sof_65500": jpeg_with_size(images["jpeg"], 65500, 65500),
        "jpeg_sof_10k": jpeg_with_size(images["jpeg"], 10000, 10000),
        "tiff_100k": tiff_with_tag(images["tiff"], 256, 100000, also=(257, 100000)),
        # Within the pixel limit but elongated: preprocessing pads to a square of the long side.
        "tiff_320x65535_elongated": tiff_with_tag(images["tiff"], 257, 65535),
        "png_48x1m_elongated": _png(48, 1_000_000, 1, 0, _zeros_deflated(6, 1_000_000)),
        "dicom_65535": write_dicom(huge_dicom),
        "dicom_100k_frames": write_dicom(many_frames),
    }


# ---------------------------------------------------------------------------------------------
# Format-aware edits
# ---------------------------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset, length) of the marker segments up to and including SOS."""
    segments: list[tuple[int, int, int]] = []
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append((marker, position, length))
        if marker == 0xDA:
            break
        position += 2 + length
    return segments


def _sof(data: bytes) -> int:
    return next(offset for marker, offset, _ in jpeg_segments(data) if 0xC0 <= marker <= 0xC3)


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` with the frame header declaring ``width`` x ``height``."""
    offset = _sof(data)
    return data[: offset + 5] + struct.pack(">HH", height, width) + data[offset + 9 :]


def _set(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def jpeg_edit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One structural damage to a baseline JPEG."""
    sof = _sof(data)
    segments = jpeg_segments(data)
    choice = rng.randrange(9)
    if choice == 0:
        return "sof_zero_size", jpeg_with_size(data, 0, rng.choice((0, 240)))
    if choice == 1:
        return "sof_components", _set(data, sof + 9, bytes([rng.choice((0, 2, 5, 255))]))
    if choice == 2:
        return "sof_precision", _set(data, sof + 4, bytes([rng.choice((0, 12, 16, 255))]))
    if choice == 3:
        marker = rng.choice((0xC1, 0xC2, 0xC3, 0xC9, 0xCB, 0xF7))
        return f"frame_type_{marker:02x}", _set(data, sof + 1, bytes([marker]))
    if choice == 4:
        _, offset, _ = rng.choice(segments)
        length = rng.choice((0, 1, 2, 0xFFFF))
        return "segment_length", _set(data, offset + 2, struct.pack(">H", length))
    if choice == 5:
        tables = [s for s in segments if s[0] in (0xC4, 0xDB)] or segments
        _, offset, length = rng.choice(tables)
        noise = rng.randbytes(max(0, length - 2))
        return "table_noise", _set(data, offset + 4, noise)
    if choice == 6:
        scan = segments[-1][1] + 2 + segments[-1][2]
        position = rng.randrange(scan, len(data) - 2)
        inserted = bytes([0xFF, rng.choice((0xD0, 0xD3, 0xD7, 0xD9, 0xDA, 0xC4))])
        return "marker_in_scan", data[:position] + inserted + data[position:]
    if choice == 7:
        return "no_eoi", data[:-2]
    return "sos_only", data[:2] + data[segments[-1][1] :]


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, data length) of the chunks of a PNG."""
    chunks: list[tuple[bytes, int, int]] = []
    position = 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((data[position + 4 : position + 8], position, length))
        position += 12 + length
    return chunks


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png_edit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One structural damage to a PNG; CRCs are fixed where the decoder should look further."""
    chunks = png_chunks(data)
    ihdr_offset = chunks[0][1]
    idats = [c for c in chunks if c[0] == b"IDAT"]
    choice = rng.randrange(9)
    if choice == 0:
        _, offset, length = rng.choice(chunks)
        crc_at = offset + 8 + length
        return "bad_crc", _set(data, crc_at, bytes([data[crc_at] ^ 0xFF]))
    if choice == 1:
        field_name, at, values = rng.choice(
            (
                ("width", 0, (0, 1, 2**31)),
                ("height", 4, (0, 1, 2**31)),
                ("bit_depth", 8, (0, 3, 32)),
                ("color_type", 9, (1, 5, 7)),
                ("compression", 10, (1, 255)),
                ("filter", 11, (1, 9)),
                ("interlace", 12, (2, 7)),
            )
        )
        header = bytearray(data[ihdr_offset + 8 : ihdr_offset + 21])
        value = rng.choice(values)
        if at < 8:
            header[at : at + 4] = struct.pack(">I", value)
        else:
            header[at] = value
        rebuilt = _chunk(b"IHDR", bytes(header))
        return f"ihdr_{field_name}", data[:ihdr_offset] + rebuilt + data[ihdr_offset + 25 :]
    if choice == 2:
        _, offset, _ = rng.choice(idats)
        return "length_huge", _set(data, offset, struct.pack(">I", 0x7FFFFFFF))
    if choice == 3:
        return "no_iend", data[: chunks[-1][1]]
    if choice == 4:
        first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
        return "no_idat", data[:first] + data[last:]
    if choice == 5:
        first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
        noise = _chunk(b"IDAT", rng.randbytes(rng.choice((10, 1000, 20000))))
        return "idat_noise", data[:first] + noise + data[last:]
    if choice == 6:
        first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
        raw = bytearray(zlib.decompress(b"".join(data[o + 8 : o + 8 + n] for _, o, n in idats)))
        row_bytes = len(raw) // int.from_bytes(data[ihdr_offset + 12 : ihdr_offset + 16], "big")
        for row_start in range(0, len(raw), row_bytes * rng.randint(1, 8)):
            raw[row_start] = rng.choice((5, 9, 255))
        rebuilt = _chunk(b"IDAT", zlib.compress(bytes(raw)))
        return "bad_filter_bytes", data[:first] + rebuilt + data[last:]
    if choice == 7:
        inserted = _chunk(rng.choice((b"ABCD", b"IHDR", b"PLTE", b"IEND")), rng.randbytes(16))
        at = idats[0][1]
        return "extra_chunk", data[:at] + inserted + data[at:]
    first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
    stream = b"".join(data[o + 8 : o + 8 + n] for _, o, n in idats)
    cut = _chunk(b"IDAT", stream[: rng.randrange(2, len(stream))])
    return "idat_truncated_crc_ok", data[:first] + cut + data[last:]


def tiff_entries(data: bytes) -> dict[int, int]:
    """Tag -> offset of its 12-byte IFD entry (first IFD, little-endian TIFF)."""
    ifd = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[ifd : ifd + 2], "little")
    return {
        int.from_bytes(data[entry : entry + 2], "little"): entry
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12)
    }


def tiff_with_tag(data: bytes, tag: int, value: int, also: tuple[int, int] | None = None) -> bytes:
    """``data`` with the value field of ``tag`` (and of ``also``) set to ``value``."""
    entries = tiff_entries(data)
    edited = data
    for name, number in ((tag, value), also or (tag, value)):
        entry = entries[name]
        kind = int.from_bytes(data[entry + 2 : entry + 4], "little")
        packed = struct.pack("<HH", number & 0xFFFF, 0) if kind == 3 else struct.pack("<I", number)
        edited = _set(edited, entry + 8, packed)
    return edited


TIFF_EDITS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("width", 256, (0, 1, 65535)),
    ("height", 257, (0, 1, 65535)),
    ("bits_per_sample", 258, (3, 0xFFFFFF)),
    ("compression", 259, (5, 7, 8, 32773, 99)),
    ("photometric", 262, (3, 5, 9, 32844)),
    ("strip_offsets", 273, (0, 8, 0x7FFFFFFF)),
    ("samples_per_pixel", 277, (0, 1, 7)),
    ("rows_per_strip", 278, (0, 1)),
    ("strip_byte_counts", 279, (0, 10, 0x7FFFFFFF)),
    ("planar_configuration", 284, (2, 9)),
)


def tiff_edit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One damaged IFD field of an uncompressed TIFF, or a broken IFD pointer."""
    choice = rng.randrange(len(TIFF_EDITS) + 2)
    if choice == len(TIFF_EDITS):
        target = rng.choice((0, 4, len(data) + 100, 0xFFFFFFFF))
        return "ifd_offset", _set(data, 4, struct.pack("<I", target))
    if choice == len(TIFF_EDITS) + 1:
        ifd = int.from_bytes(data[4:8], "little")
        return "ifd_count", _set(data, ifd, struct.pack("<H", rng.choice((0, 1, 0xFFFF))))
    name, tag, values = TIFF_EDITS[choice]
    entries = tiff_entries(data)
    if tag not in entries:
        return f"{name}_absent", data
    value = rng.choice(values)
    return f"{name}={value}", tiff_with_tag(data, tag, value)


def _drop(dataset: Dataset, keyword: str) -> None:
    if keyword in dataset:
        delattr(dataset, keyword)


DICOM_EDITS: dict[str, Callable[[Dataset], None]] = {
    "rows_zero": lambda ds: setattr(ds, "Rows", 0),
    "columns_odd": lambda ds: setattr(ds, "Columns", 7),
    "bits_allocated_12": lambda ds: setattr(ds, "BitsAllocated", 12),
    "bits_allocated_1": lambda ds: setattr(ds, "BitsAllocated", 1),
    "bits_allocated_32": lambda ds: setattr(ds, "BitsAllocated", 32),
    "bits_stored_20": lambda ds: setattr(ds, "BitsStored", 20),
    "samples_4": lambda ds: setattr(ds, "SamplesPerPixel", 4),
    "photometric_palette": lambda ds: setattr(ds, "PhotometricInterpretation", "PALETTE COLOR"),
    "photometric_empty": lambda ds: setattr(ds, "PhotometricInterpretation", ""),
    "photometric_monochrome": lambda ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME2"),
    "photometric_ybr": lambda ds: setattr(ds, "PhotometricInterpretation", "YBR_FULL"),
    "signed_pixels": lambda ds: setattr(ds, "PixelRepresentation", 1),
    "frames_3": lambda ds: setattr(ds, "NumberOfFrames", 3),
    "frames_zero": lambda ds: setattr(ds, "NumberOfFrames", 0),
    "planar_configuration": lambda ds: setattr(ds, "PlanarConfiguration", 1),
    "ts_jpeg2000": lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.4.90"),
    "ts_big_endian": lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.2"),
    "ts_deflated": lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.1.99"),
    "ts_unknown": lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.3.4.5.6"),
    "ts_missing": lambda ds: _drop(ds.file_meta, "TransferSyntaxUID"),
    "no_pixel_data": lambda ds: _drop(ds, "PixelData"),
    "pixel_data_half": lambda ds: setattr(ds, "PixelData", ds.PixelData[: len(ds.PixelData) // 2]),
    "pixel_data_empty": lambda ds: setattr(ds, "PixelData", b""),
    "pixel_data_extra": lambda ds: setattr(ds, "PixelData", ds.PixelData + bytes(4096)),
    "sop_class_ct": lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"),
    "sop_class_sr": lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.88.33"),
    "sop_class_garbage": lambda ds: setattr(ds, "SOPClassUID", "not-a-uid"),
    "sop_class_missing": lambda ds: _drop(ds, "SOPClassUID"),
    "instance_uid_garbage": lambda ds: setattr(ds, "SOPInstanceUID", "1.2.abc..4"),
    "instance_uid_long": lambda ds: setattr(ds, "SOPInstanceUID", "1." + "2" * 90),
    "instance_uid_missing": lambda ds: _drop(ds, "SOPInstanceUID"),
    "study_uid_missing": lambda ds: _drop(ds, "StudyInstanceUID"),
    "series_uid_missing": lambda ds: _drop(ds, "SeriesInstanceUID"),
    "laterality_garbage": lambda ds: setattr(ds, "ImageLaterality", "X"),
    "charset_unknown": lambda ds: setattr(ds, "SpecificCharacterSet", "ISO_IR 999"),
    "patient_name_long": lambda ds: setattr(ds, "PatientName", "A^" * 200),
    "modality_missing": lambda ds: _drop(ds, "Modality"),
    "study_date_garbage": lambda ds: setattr(ds, "StudyDate", "2024-13-45"),
}
"""Attribute damage a PACS or a broken modality could produce; written as-is by pydicom."""


def dicom_edit(rng: random.Random, dataset: Dataset) -> tuple[str, bytes]:
    """One or two attribute edits on a copy of ``dataset``."""
    edited = copy.deepcopy(dataset)
    names = rng.sample(sorted(DICOM_EDITS), rng.choice((1, 1, 1, 2)))
    for name in names:
        DICOM_EDITS[name](edited)
    try:
        return "+".join(names), write_dicom(edited)
    except Exception as error:  # pydicom refused to write it: damage the bytes instead
        return f"{'+'.join(names)}_unwritable_{type(error).__name__}", b"DICM" + rng.randbytes(64)


# ---------------------------------------------------------------------------------------------
# Byte-level damage
# ---------------------------------------------------------------------------------------------


def truncate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Cut inside the header, anywhere, at half, or just before the end."""
    where = rng.choice(("header", "anywhere", "half", "tail"))
    if where == "header":
        cut = rng.randrange(1, min(len(data), 400))
    elif where == "anywhere":
        cut = rng.randrange(1, len(data))
    elif where == "half":
        cut = len(data) // 2
    else:
        cut = len(data) - rng.randint(1, 64)
    return f"cut_{where}", data[:cut]


def mutate(rng: random.Random, data: bytes, header_bytes: int = 1024) -> tuple[str, bytes]:
    """Flip bytes (in the header or anywhere), overwrite, insert, delete or repeat a span."""
    buffer = bytearray(data)
    kind = rng.choice(("flip_header", "flip_anywhere", "run", "insert", "delete", "repeat"))
    if kind.startswith("flip"):
        end = min(len(buffer), header_bytes) if kind == "flip_header" else len(buffer)
        for _ in range(rng.choice((1, 2, 4, 16, 64))):
            buffer[rng.randrange(end)] ^= rng.randint(1, 255)
        return kind, bytes(buffer)
    start = rng.randrange(len(buffer))
    span = rng.choice((1, 4, 64, 1024))
    if kind == "run":
        fill = rng.choice((b"\x00", b"\xff", None))
        run = fill * span if fill else rng.randbytes(span)
        buffer[start : start + span] = run[: len(buffer[start : start + span])]
    elif kind == "insert":
        buffer[start:start] = rng.randbytes(span)
    elif kind == "delete":
        del buffer[start : start + span]
    else:
        buffer[start:start] = buffer[start : start + span] * rng.randint(2, 16)
    return kind, bytes(buffer)


# ---------------------------------------------------------------------------------------------
# Multipart bodies (built by hand so they can be broken)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One part of a multipart body; ``name`` None gives no Content-Disposition."""

    name: str | None
    data: bytes
    filename: str | None = "upload.bin"
    content_type: str | None = "application/octet-stream"


def multipart(parts: list[Part], boundary: str, *, close: bool = True) -> bytes:
    """multipart/form-data or multipart/related body with CRLF line ends."""
    chunks: list[bytes] = []
    for part in parts:
        headers = []
        if part.name is not None:
            disposition = f'form-data; name="{part.name}"'
            if part.filename is not None:
                disposition += f'; filename="{part.filename}"'
            headers.append(f"Content-Disposition: {disposition}")
        if part.content_type is not None:
            headers.append(f"Content-Type: {part.content_type}")
        head = "".join(f"{h}\r\n" for h in headers)
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode("latin-1") + part.data + b"\r\n")
    if close:
        chunks.append(f"--{boundary}--\r\n".encode("latin-1"))
    return b"".join(chunks)


def form_type(boundary: str) -> str:
    """Content-Type of a multipart/form-data body."""
    return f"multipart/form-data; boundary={boundary}"


def stow_type(boundary: str) -> str:
    """Content-Type of a STOW-RS request."""
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------

GRADE, EXAMS, STOW = "/v1/grade", "/v1/exams", "/dicomweb/studies"
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tiff": "image/tiff",
    "dicom": "application/dicom",
}


@dataclass(frozen=True)
class Context:
    """What a family builder gets: the per-request random stream, materials and keys."""

    rng: random.Random
    materials: Materials
    keys: Keys

    def uid(self) -> str:
        """A fresh, valid DICOM UID as long as ``UID_PLACEHOLDER``."""
        return f"2.25.{self.rng.randrange(10**58, 10**59)}"

    def valid_jpeg(self) -> bytes:
        """A valid photograph for the other eye of an exam."""
        return self.materials.images[self.rng.choice(("jpeg", "jpeg444"))]


def send_image(
    ctx: Context, family: str, variant: str, data: bytes, media_type: str
) -> MalformedRequest:
    """A damaged file on one of the routes that take it: raw or multipart to /v1/grade, one eye
    of /v1/exams, and (DICOM) STOW-RS raw or multipart/related."""
    rng = ctx.rng
    boundary = f"b{rng.getrandbits(64):x}"
    grade_auth, pacs_auth = bearer(ctx.keys.grade), bearer(ctx.keys.pacs)
    roll = rng.random()
    if media_type == "application/dicom" and roll < 0.3:
        if roll < 0.15:
            headers = {**pacs_auth, "Content-Type": "application/dicom"}
            return MalformedRequest(family, variant, "POST", STOW, headers, data)
        body = multipart([Part(None, data, None, "application/dicom")], boundary)
        headers = {**pacs_auth, "Content-Type": stow_type(boundary)}
        return MalformedRequest(family, variant, "POST", STOW, headers, body)
    if roll < 0.5:
        declared = media_type if rng.random() < 0.8 else "application/octet-stream"
        headers = {**grade_auth, "Content-Type": declared}
        return MalformedRequest(family, variant, "POST", GRADE, headers, data)
    if roll < 0.8:
        body = multipart([Part("image", data, "eye", media_type)], boundary)
        headers = {**grade_auth, "Content-Type": form_type(boundary)}
        return MalformedRequest(family, variant, "POST", GRADE, headers, body)
    bad_eye = rng.choice(("left", "right"))
    good_eye = "right" if bad_eye == "left" else "left"
    parts = [Part(bad_eye, data, "bad", media_type), Part(good_eye, ctx.valid_jpeg(), "ok.jpg")]
    rng.shuffle(parts)
    headers = {**grade_auth, "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", EXAMS, headers, multipart(parts, boundary))


def _image_kind(ctx: Context, kinds: tuple[str, ...]) -> tuple[str, bytes]:
    kind = ctx.rng.choice(kinds)
    if kind in DICOM_KINDS:
        return kind, ctx.materials.dicom(kind, ctx.uid())
    return kind, ctx.materials.images[kind]


def _media(kind: str) -> str:
    return MEDIA_TYPES[next(prefix for prefix in MEDIA_TYPES if kind.startswith(prefix))]


def _truncated(kinds: tuple[str, ...]) -> Callable[[Context, str], MalformedRequest]:
    def build(ctx: Context, family: str) -> MalformedRequest:
        kind, data = _image_kind(ctx, kinds)
        variant, damaged = truncate(ctx.rng, data)
        return send_image(ctx, family, f"{kind}:{variant}", damaged, _media(kind))

    return build


def jpeg_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Structural JPEG damage or byte damage."""
    kind, data = _image_kind(ctx, ("jpeg", "jpeg444", "jpeg_ungradable"))
    edit = jpeg_edit if ctx.rng.random() < 0.5 else mutate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "image/jpeg")


def png_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Structural PNG damage or byte damage."""
    kind, data = _image_kind(ctx, ("png", "png16", "png_gray"))
    edit = png_edit if ctx.rng.random() < 0.6 else mutate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "image/png")


def tiff_damaged(ctx: Context, family: str) -> MalformedRequest:
    """IFD damage, byte damage or truncation of a TIFF."""
    data = ctx.materials.images["tiff"]
    roll = ctx.rng.random()
    edit = tiff_edit if roll < 0.5 else mutate if roll < 0.8 else truncate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, variant, damaged, "image/tiff")


def dicom_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Attribute damage (pydicom) or byte damage in the header or anywhere."""
    kind = ctx.rng.choice(DICOM_KINDS)
    if ctx.rng.random() < 0.6:
        dataset = copy.deepcopy(ctx.materials.datasets[kind])
        uid = UID(ctx.uid())
        dataset.SOPInstanceUID = uid
        dataset.file_meta.MediaStorageSOPInstanceUID = uid
        variant, damaged = dicom_edit(ctx.rng, dataset)
    else:
        variant, damaged = mutate(ctx.rng, ctx.materials.dicom(kind, ctx.uid()), 2048)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "application/dicom")


def header_splice(ctx: Context, family: str) -> MalformedRequest:
    """One format's signature or header on another format's body, and glued files."""
    images, rng = ctx.materials.images, ctx.rng
    jpeg, png, tiff = images["jpeg"], images["png"], images["tiff"]

    def dicom() -> bytes:
        return ctx.materials.dicom("dicom", ctx.uid())

    splices: dict[str, Callable[[], tuple[bytes, str]]] = {
        "png_signature_on_jpeg": lambda: (b"\x89PNG\r\n\x1a\n" + jpeg[8:], "image/png"),
        "jpeg_soi_on_png": lambda: (b"\xff\xd8\xff" + png[3:], "image/jpeg"),
        "tiff_header_on_jpeg": lambda: (b"II*\x00" + jpeg[4:], "image/tiff"),
        "tiff_big_endian_lie": lambda: (b"MM\x00*" + tiff[4:], "image/tiff"),
        "dicm_preamble_on_png": lambda: (bytes(128) + b"DICM" + png, "application/dicom"),
        "dicm_then_jpeg": lambda: (b"DICM" + jpeg, "application/dicom"),
        "bare_dicom_tag_on_jpeg": lambda: (
            b"\x08\x00\x05\x00CS\x0a\x00" + jpeg,
            "application/dicom",
        ),
        "dicom_meta_only": lambda: (dicom()[: rng.randrange(140, 400)], "application/dicom"),
        "jpeg_then_png": lambda: (jpeg + png, "image/jpeg"),
        "png_then_jpeg": lambda: (png + jpeg, "image/png"),
        "half_jpeg_half_png": lambda: (jpeg[: len(jpeg) // 2] + png[len(png) // 2 :], "image/jpeg"),
        "tiff_in_dicom_preamble": lambda: (tiff[:128] + dicom()[128:], "application/dicom"),
        "png_as_dicom_pixels": lambda: (_png_in_dicom(ctx), "application/dicom"),
    }
    variant = rng.choice(sorted(splices))
    data, media_type = splices[variant]()
    return send_image(ctx, family, variant, data, media_type)


def _png_in_dicom(ctx: Context) -> bytes:
    dataset = copy.deepcopy(ctx.materials.datasets["dicom"])
    dataset.SOPInstanceUID = UID(ctx.uid())
    dataset.PixelData = ctx.materials.images["png"]
    return write_dicom(dataset)


MAGIC_PREFIXES = {
    "none": b"",
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG\r\n\x1a\n",
    "tiff_le": b"II*\x00",
    "tiff_be": b"MM\x00*",
    "dicom": bytes(128) + b"DICM",
    "bare_dicom": b"\x02\x00\x00\x00UL\x04\x00",
}


def random_bytes(ctx: Context, family: str) -> MalformedRequest:
    """Random bytes, sometimes behind a real format signature so a decoder gets them."""
    prefix_name = ctx.rng.choice(sorted(MAGIC_PREFIXES))
    size = ctx.rng.choice((1, 2, 7, 31, 128, 1000, 4096, 65536, 300000))
    data = MAGIC_PREFIXES[prefix_name] + ctx.rng.randbytes(size)
    media_type = ctx.rng.choice((*MEDIA_TYPES.values(), "application/octet-stream"))
    return send_image(ctx, family, f"{prefix_name}:{size}", data, media_type)


def decompression_bomb(ctx: Context, family: str) -> MalformedRequest:
    """Files that declare (or, compressed, really hold) hundreds of millions of pixels."""
    bombs = ctx.materials.bombs
    variant = ctx.rng.choice(sorted(bombs))
    media_type = _media(variant.split("_", 1)[0])
    data = bombs[variant].replace(UID_PLACEHOLDER.encode(), ctx.uid().encode())
    return send_image(ctx, family, variant, data, media_type)


CONTENT_TYPE_LIES = (
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "video/mp4",
    "%%%",
    "image/",
    "image/gif",
    "image/jpeg; charset=utf-8",
    "IMAGE/PNG",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=nowhere",
    "multipart/mixed; boundary=b1",
    "multipart/related; boundary=b1",
    "application/dicom+json",
    ";;;",
    None,
)


def content_type(ctx: Context, family: str) -> MalformedRequest:
    """Valid or damaged images under a wrong, malformed or missing Content-Type."""
    rng = ctx.rng
    declared = rng.choice(CONTENT_TYPE_LIES)
    kind = rng.choice(("jpeg", "png", "tiff", "dicom"))
    data = ctx.materials.dicom(kind, ctx.uid()) if kind == "dicom" else ctx.materials.images[kind]
    route = rng.choice((GRADE, GRADE, EXAMS, STOW))
    key = ctx.keys.pacs if route == STOW else ctx.keys.grade
    headers = bearer(key) | ({"Content-Type": declared} if declared is not None else {})
    return MalformedRequest(family, f"{route}:{declared}:{kind}", "POST", route, headers, data)


def multipart_fields(ctx: Context, family: str) -> MalformedRequest:
    """Well-formed multipart bodies with the wrong fields."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    boundary = f"f{rng.getrandbits(48):x}"
    eyes = [Part("left", image, "l.jpg"), Part("right", image, "r.jpg")]
    cases: dict[str, tuple[str, list[Part]]] = {
        "grade_no_image": (GRADE, [Part("notes", b"hello", None, None)]),
        "grade_field_file": (GRADE, [Part("file", image)]),
        "grade_field_Image": (GRADE, [Part("Image", image)]),
        "grade_image_as_text": (GRADE, [Part("image", image, None, None)]),
        "grade_image_empty_file": (GRADE, [Part("image", b"")]),
        "grade_no_parts": (GRADE, []),
        "grade_20_fields": (GRADE, [Part(f"f{i}", b"x", None, None) for i in range(20)]),
        "grade_6_files": (GRADE, [Part("image", image) for _ in range(6)]),
        "grade_two_images": (GRADE, [Part("image", image), Part("image", b"junk")]),
        "grade_name_unicode": (GRADE, [Part("imäge", image)]),
        "grade_filename_traversal": (GRADE, [Part("image", image, "../../../etc/passwd")]),
        "grade_no_disposition": (GRADE, [Part(None, image)]),
        "exams_left_only": (EXAMS, eyes[:1]),
        "exams_right_only": (EXAMS, eyes[1:]),
        "exams_image_field": (EXAMS, [Part("image", image)]),
        "exams_left_as_text": (EXAMS, [Part("left", b"abc", None, None), eyes[1]]),
        "exams_eyes_empty": (EXAMS, [Part("left", b""), Part("right", b"")]),
        "exams_10_files": (EXAMS, [Part("left", image) for _ in range(10)]),
        "exams_upper_case": (EXAMS, [Part("LEFT", image), Part("RIGHT", image)]),
    }
    variant = rng.choice(sorted(cases))
    route, parts = cases[variant]
    headers = {**bearer(ctx.keys.grade), "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", route, headers, multipart(parts, boundary))


def multipart_broken(ctx: Context, family: str) -> MalformedRequest:
    """multipart/form-data whose framing is broken."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    boundary = f"m{rng.getrandbits(48):x}"
    good = multipart([Part("image", image, "eye.jpg", "image/jpeg")], boundary)
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="e"\r\n'
    bodies: dict[str, tuple[bytes, str]] = {
        "boundary_mismatch": (good, form_type(boundary + "x")),
        "boundary_missing_in_body": (image, form_type(boundary)),
        "no_close_delimiter": (good[: -len(f"--{boundary}--\r\n")], form_type(boundary)),
        "truncated_in_part": (
            good[: rng.randrange(len(head) + 4, len(good) - 20)],
            form_type(boundary),
        ),
        "truncated_in_headers": (good[: rng.randrange(4, len(head))], form_type(boundary)),
        "no_header_terminator": (head.encode() + image, form_type(boundary)),
        "lf_line_ends": (good.replace(b"\r\n", b"\n"), form_type(boundary)),
        "close_only": (f"--{boundary}--\r\n".encode(), form_type(boundary)),
        "garbage_preamble": (rng.randbytes(256) + good, form_type(boundary)),
        "boundary_quoted_odd": (good, f'multipart/form-data; boundary="{boundary}'),
        "boundary_200_chars": (
            multipart([Part("image", image)], "q" * 200),
            form_type("q" * 200),
        ),
        "disposition_broken": (
            good.replace(b'name="image"', b"name=", 1),
            form_type(boundary),
        ),
        "disposition_not_form_data": (
            good.replace(b"form-data;", b"attachment;", 1),
            form_type(boundary),
        ),
        "header_line_garbage": (
            good.replace(
                b"\r\n\r\n", b"\r\n" + rng.randbytes(40).replace(b"\r", b"") + b"\r\n\r\n", 1
            ),
            form_type(boundary),
        ),
        "nested_multipart": (
            multipart([Part("image", good, "inner", form_type(boundary))], boundary + "o"),
            form_type(boundary + "o"),
        ),
        "random_body": (rng.randbytes(rng.choice((10, 1000, 50000))), form_type(boundary)),
    }
    variant = rng.choice(sorted(bodies))
    body, declared = bodies[variant]
    route = rng.choice((GRADE, GRADE, EXAMS))
    if route == EXAMS:
        body = body.replace(b'name="image"', b'name="left"')
    headers = {**bearer(ctx.keys.grade), "Content-Type": declared}
    return MalformedRequest(family, f"{route}:{variant}", "POST", route, headers, body)


def oversized(ctx: Context, family: str) -> MalformedRequest:
    """Bodies over the body limit (declared or chunked), and images over the upload limit."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    over = BODY_LIMIT + rng.randint(1, 256 * 1024)
    filler = (image * (over // len(image) + 1))[:over]
    boundary = f"o{rng.getrandbits(48):x}"
    grade_auth = bearer(ctx.keys.grade)
    variant = rng.choice(
        (
            "raw_declared",
            "raw_chunked",
            "multipart_declared",
            "multipart_chunked",
            "stow_declared",
            "stow_chunked",
            "image_over_upload_limit",
            "exams_eyes_over_upload_limit",
        )
    )
    chunked = variant.endswith("chunked")
    if variant.startswith("raw"):
        headers = {**grade_auth, "Content-Type": "image/jpeg"}
        return MalformedRequest(family, variant, "POST", GRADE, headers, filler, chunked)
    if variant.startswith("multipart"):
        body = multipart([Part("image", filler, "big.jpg", "image/jpeg")], boundary)
        headers = {**grade_auth, "Content-Type": form_type(boundary)}
        return MalformedRequest(family, variant, "POST", GRADE, headers, body, chunked)
    if variant.startswith("stow"):
        body = multipart([Part(None, filler, None, "application/dicom")], boundary)
        headers = {**bearer(ctx.keys.pacs), "Content-Type": stow_type(boundary)}
        return MalformedRequest(family, variant, "POST", STOW, headers, body, chunked)
    # Under the body limit, over DRG_MAX_UPLOAD_BYTES per image: fundus refuses it.
    padded = image + bytes(UPLOAD_LIMIT + rng.randint(1, 4096) - len(image))
    if variant == "image_over_upload_limit":
        headers = {**grade_auth, "Content-Type": "image/jpeg"}
        return MalformedRequest(family, variant, "POST", GRADE, headers, padded)
    body = multipart([Part("left", padded), Part("right", padded)], boundary)
    headers = {**grade_auth, "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", EXAMS, headers, body)


BAD_QUERIES = (
    "explain=maybe",
    "explain=",
    "explain=2",
    "explain=true&explain=maybe",
    "explain=%00",
    "version=-1",
    "version=0",
    "version=abc",
    "version=1.5",
    "version=1e3",
    "version=",
    "version=%FF%FE",
    "version=99999999999999999999999999",
    "version=1&label=stable",
    "label=has%20space",
    "label=" + "x" * 40,
    "label=",
    "label=%E2%9C%93",
    "laterality=X",
    "laterality=left",
    "laterality=",
    "laterality=L&laterality=Q",
)
GOOD_QUERIES = ("explain=true", "laterality=L", "version=1", "label=stable", "unknown=1")
"""Valid or ignored parameters: a 200 expected (sent so the bad ones are not alone)."""


def query_params(ctx: Context, family: str) -> MalformedRequest:
    """Bad query parameters on a valid request."""
    rng = ctx.rng
    query = rng.choice(BAD_QUERIES) if rng.random() < 0.85 else rng.choice(GOOD_QUERIES)
    boundary = f"q{rng.getrandbits(48):x}"
    if rng.random() < 0.7:
        headers = {**bearer(ctx.keys.grade), "Content-Type": "image/jpeg"}
        return MalformedRequest(
            family, f"grade:{query}", "POST", f"{GRADE}?{query}", headers, ctx.valid_jpeg()
        )
    parts = [Part("left", ctx.valid_jpeg()), Part("right", ctx.valid_jpeg())]
    headers = {**bearer(ctx.keys.grade), "Content-Type": form_type(boundary)}
    body = multipart(parts, boundary)
    return MalformedRequest(family, f"exams:{query}", "POST", f"{EXAMS}?{query}", headers, body)


def _dicom_with(ctx: Context, sop_class: str, keep_pixels: bool) -> bytes:
    dataset = copy.deepcopy(ctx.materials.datasets["dicom"])
    dataset.SOPInstanceUID = UID(ctx.uid())
    dataset.SOPClassUID = sop_class
    if not keep_pixels:
        del dataset.PixelData
    return write_dicom(dataset)


def stow_request(ctx: Context, family: str) -> MalformedRequest:
    """STOW-RS requests that are broken as a whole or hold unusable instances."""
    rng = ctx.rng
    images = ctx.materials.images
    boundary = f"s{rng.getrandbits(48):x}"
    valid = ctx.materials.dicom(rng.choice(DICOM_KINDS), ctx.uid())
    dicom_part = Part(None, valid, None, "application/dicom")
    stow = stow_type(boundary)

    def related(parts: list[Part], declared: str = stow) -> tuple[bytes, str]:
        return multipart(parts, boundary), declared

    def corrupt() -> bytes:
        return truncate(rng, ctx.materials.dicom("dicom", ctx.uid()))[1]

    json_type = f'multipart/related; type="application/json"; boundary={boundary}'
    unterminated = f"--{boundary}\r\nContent-Type: application/dicom\r\n".encode() + valid
    cases: dict[str, Callable[[], tuple[bytes, str]]] = {
        "related_type_json": lambda: related([dicom_part], json_type),
        "related_no_boundary": lambda: (valid, 'multipart/related; type="application/dicom"'),
        "related_no_delimiter": lambda: (valid, stow),
        "related_no_close": lambda: (multipart([dicom_part], boundary, close=False), stow),
        "related_part_jpeg": lambda: related([Part(None, images["jpeg"], None, "image/jpeg")]),
        "related_no_parts": lambda: (f"--{boundary}--\r\n".encode(), stow),
        "related_no_header_end": lambda: (unterminated, stow),
        "related_boundary_mismatch": lambda: related([dicom_part], stow_type(boundary + "z")),
        "related_mixed_instances": lambda: related(
            [
                dicom_part,
                Part(None, corrupt(), None, "application/dicom"),
                Part(None, images["jpeg"], None, "application/dicom"),
            ]
        ),
        "related_twenty_corrupt": lambda: related(
            [Part(None, corrupt(), None, None) for _ in range(20)]
        ),
        "related_same_instance_twice": lambda: related([dicom_part, dicom_part]),
        "raw_jpeg": lambda: (images["jpeg"], "application/dicom"),
        "raw_png_no_type": lambda: (images["png"], ""),
        "raw_text": lambda: (b"not a dicom file\n" * rng.randint(1, 100), "text/plain"),
        "raw_sr_no_pixel_data": lambda: (
            _dicom_with(ctx, "1.2.840.10008.5.1.4.1.1.88.33", keep_pixels=False),
            "application/dicom",
        ),
        "raw_ct_image": lambda: (
            _dicom_with(ctx, "1.2.840.10008.5.1.4.1.1.2", keep_pixels=True),
            "application/dicom",
        ),
    }
    variant = rng.choice(sorted(cases))
    body, declared = cases[variant]()
    headers = bearer(ctx.keys.pacs) | ({"Content-Type": declared} if declared else {})
    return MalformedRequest(family, variant, "POST", STOW, headers, body)


def auth(ctx: Context, family: str) -> MalformedRequest:
    """Missing, unknown, malformed and wrong-scope API keys."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    route = rng.choice((GRADE, EXAMS, STOW))
    wrong_scope = ctx.keys.grade if route == STOW else ctx.keys.pacs
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "unknown_key": bearer("not-a-key"),
        "token_scheme": {"Authorization": f"Token {ctx.keys.grade}"},
        "basic_scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "bearer_only": {"Authorization": "Bearer"},
        "x_api_key_unknown": {"X-API-Key": "nope"},
        "latin1_key": {"Authorization": "Bearer cl\xe9-\xff"},
        "long_key": bearer("k" * 4000),
        "wrong_scope": bearer(wrong_scope),
        "key_with_spaces": {"Authorization": f"Bearer  {ctx.keys.grade} x"},
    }
    variant = rng.choice(sorted(cases))
    headers = cases[variant] | {"Content-Type": "image/jpeg"}
    return MalformedRequest(family, f"{route}:{variant}", "POST", route, headers, image)


def routing(ctx: Context, family: str) -> MalformedRequest:
    """Wrong methods, unknown paths and bad path parameters."""
    cases = (
        ("GET", GRADE),
        ("PUT", GRADE),
        ("PATCH", EXAMS),
        ("DELETE", STOW),
        ("GET", EXAMS),
        ("POST", "/v1/grades"),
        ("POST", "/v2/grade"),
        ("POST", "/v1/grade/extra"),
        ("POST", "/livez"),
        ("DELETE", "/metrics"),
        ("GET", "/v1/results/not-a-uid"),
        ("GET", "/v1/results/1.2.3.4"),
        ("GET", "/v1/results/" + "1" * 80),
        ("GET", "/v1/results/1..2"),
        ("GET", "/%ff%fe"),
        ("GET", "/v1/" + "a" * 2000),
    )
    method, path = ctx.rng.choice(cases)
    headers = bearer(ctx.keys.both) | {"Content-Type": "image/jpeg"}
    body = ctx.valid_jpeg() if method in ("POST", "PUT", "PATCH") else b""
    return MalformedRequest(family, f"{method} {path[:40]}", method, path, headers, body)


def empty_body(ctx: Context, family: str) -> MalformedRequest:
    """No bytes where an image was expected."""
    rng = ctx.rng
    boundary = f"e{rng.getrandbits(48):x}"
    grade_auth, pacs_auth = bearer(ctx.keys.grade), bearer(ctx.keys.pacs)
    cases: dict[str, tuple[str, dict[str, str], bytes]] = {
        "grade_raw_jpeg": (GRADE, grade_auth | {"Content-Type": "image/jpeg"}, b""),
        "grade_raw_no_type": (GRADE, grade_auth, b""),
        "grade_form_no_body": (GRADE, grade_auth | {"Content-Type": form_type(boundary)}, b""),
        "exams_no_body": (EXAMS, grade_auth | {"Content-Type": form_type(boundary)}, b""),
        "stow_raw": (STOW, pacs_auth | {"Content-Type": "application/dicom"}, b""),
        "stow_related_no_body": (STOW, pacs_auth | {"Content-Type": stow_type(boundary)}, b""),
        "stow_related_empty_part": (
            STOW,
            pacs_auth | {"Content-Type": stow_type(boundary)},
            multipart([Part(None, b"", None, "application/dicom")], boundary),
        ),
    }
    variant = rng.choice(sorted(cases))
    route, headers, body = cases[variant]
    return MalformedRequest(family, variant, "POST", route, headers, body)


Builder = Callable[[Context, str], MalformedRequest]
FAMILIES: dict[str, tuple[int, Builder]] = {
    "jpeg_truncated": (3, _truncated(("jpeg", "jpeg444", "jpeg_ungradable"))),
    "jpeg_mutated": (4, jpeg_mutated),
    "png_truncated": (3, _truncated(("png", "png16", "png_gray"))),
    "png_mutated": (4, png_mutated),
    "tiff_damaged": (2, tiff_damaged),
    "dicom_truncated": (3, _truncated(DICOM_KINDS)),
    "dicom_mutated": (5, dicom_mutated),
    "header_splice": (2, header_splice),
    "random_bytes": (3, random_bytes),
    "decompression_bomb": (2, decompression_bomb),
    "content_type": (2, content_type),
    "multipart_fields": (2, multipart_fields),
    "multipart_broken": (2, multipart_broken),
    "oversized": (1, oversized),
    "query_params": (2, query_params),
    "stow": (2, stow_request),
    "auth": (1, auth),
    "routing": (1, routing),
    "empty_body": (1, empty_body),
}
"""Family -> (weight, builder). Request i belongs to SCHEDULE[i % len(SCHEDULE)]."""
SCHEDULE: tuple[str, ...] = tuple(
    name
    for round_ in range(max(w for w, _ in FAMILIES.values()))
    for name, (w, _) in FAMILIES.items()
    if round_ < w
)
"""Every family appears in any len(SCHEDULE) consecutive requests, in proportion to its weight."""


class MalformedRequests:
    """Request ``index`` of ``seed``: always the same bytes, independent of any other index."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.keys = KEYS
        self.materials = materials()

    def __call__(self, index: int) -> MalformedRequest:
        family = SCHEDULE[index % len(SCHEDULE)]
        rng = random.Random(f"malformed/{self.seed}/{index}")
        return FAMILIES[family][1](Context(rng, self.materials, self.keys), family)


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

Kind = Literal["accepted", "refused", "server_error", "codeless", "transport_error"]


@dataclass(frozen=True)
class Verdict:
    """What one answer was: ``code`` is the error code(s), what was accepted, or the failure."""

    kind: Kind
    status: int | None
    code: str


def _error_code(response: httpx.Response) -> str | None:
    """The table code of a ``{"error": {"code", "message"}}`` body whose status fits; else None."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(code, str) or not isinstance(message, str) or not message:
        return None
    if code not in ERRORS or ERRORS[code].status != response.status_code:
        return None
    return code


def _stow_failures(document: object) -> list[str | None]:
    """The gateway error code of every Failed SOP Sequence item (None when one lacks it)."""
    if not isinstance(document, dict):
        return [None]
    items = document.get("00081198", {}).get("Value", [])
    codes: list[str | None] = []
    for item in items:
        creator = next(
            (
                tag[6:8]
                for tag, element in item.items()
                if tag.startswith("00090")
                and tag[4:6] == "00"
                and element.get("Value") == [PRIVATE_CREATOR]
            ),
            None,
        )
        reason = item.get("00081197", {}).get("Value")
        code = item.get(f"0009{creator}01", {}).get("Value", [None])[0] if creator else None
        codes.append(code if reason and isinstance(code, str) else None)
    return codes


def _judge_stow(response: httpx.Response) -> Verdict:
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        return Verdict("codeless", status, "stow_not_json")
    failures = _stow_failures(document)
    stored = len(document.get("00081199", {}).get("Value", [])) if isinstance(document, dict) else 0
    codes = "+".join(sorted({code for code in failures if code}))
    if status >= 500 or any(code in ERRORS and ERRORS[code].status >= 500 for code in failures):
        return Verdict("server_error", status, codes or "no_code")
    if any(code is None or code not in ERRORS for code in failures):
        return Verdict("codeless", status, "stow_failure_without_code")
    if status == 200 and stored and not failures:
        return Verdict("accepted", status, "stored")
    if status == 202 and stored and failures:
        return Verdict("accepted", status, f"partly:{codes}")
    if status == 409 and failures and not stored:
        return Verdict("refused", status, codes)
    return Verdict("codeless", status, f"stow_status_{status}_inconsistent")


def judge(request: MalformedRequest, response: httpx.Response) -> Verdict:
    """Classify one answer against the rules in this module's docstring."""
    status = response.status_code
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if request.route == STOW and media_type == DICOM_JSON_MEDIA_TYPE:
        return _judge_stow(response)
    if status >= 500:
        try:
            served_code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            served_code = "no_code"
        return Verdict("server_error", status, served_code)
    if 200 <= status < 300:
        return Verdict("accepted", status, _accepted_label(response))
    code = _error_code(response) if 400 <= status < 500 else None
    if code is None:
        return Verdict("codeless", status, "no_code")
    if status == 405 and "allow" not in response.headers:
        return Verdict("codeless", status, "405_without_allow_header")
    return Verdict("refused", status, code)


def _accepted_label(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not_json"
    if not isinstance(body, dict):
        return "other"
    if "patient" in body:
        return "exam"
    gradable = body.get("quality", {}).get("gradable")
    return "gradable" if gradable is True else "ungradable" if gradable is False else "other"


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One request's index, family, variant and verdict."""

    index: int
    family: str
    variant: str
    verdict: Verdict


@dataclass
class Report:
    """All results of a run and its timing."""

    results: list[Result] = field(default_factory=list)
    wall_s: float = 0.0
    concurrency: int = 1

    def count(self, kind: Kind) -> int:
        """Requests whose verdict is ``kind``."""
        return sum(r.verdict.kind == kind for r in self.results)

    @property
    def families(self) -> Counter[str]:
        """Requests per family."""
        return Counter(r.family for r in self.results)

    @property
    def failures(self) -> list[Result]:
        """Every answer that breaks the rules."""
        return [r for r in self.results if r.verdict.kind not in ("accepted", "refused")]

    @property
    def ok(self) -> bool:
        """No 5xx, no codeless 4xx, no transport error, and every family exercised."""
        return not self.failures and set(self.families) == set(FAMILIES)

    def table(self) -> str:
        """family x status x code counts, then totals."""
        rows = Counter(
            (r.family, r.verdict.kind, str(r.verdict.status or "-"), r.verdict.code)
            for r in self.results
        )
        lines = [f"{'family':<20} {'status':>6} {'verdict':<15} {'code':<42} {'count':>6}"]
        for (family, kind, status, code), n in sorted(rows.items()):
            lines.append(f"{family:<20} {status:>6} {kind:<15} {code[:42]:<42} {n:>6}")
        lines.append("")
        lines.append(f"{'family':<20} {'requests':>8} {'2xx':>6} {'4xx+code':>9} {'other':>6}")
        for family in FAMILIES:
            own = [r for r in self.results if r.family == family]
            accepted = sum(r.verdict.kind == "accepted" for r in own)
            refused = sum(r.verdict.kind == "refused" for r in own)
            other = len(own) - accepted - refused
            lines.append(f"{family:<20} {len(own):>8} {accepted:>6} {refused:>9} {other:>6}")
        total = len(self.results)
        rate = total / self.wall_s if self.wall_s else 0.0
        lines += [
            "",
            f"requests {total}, concurrency {self.concurrency}, wall {self.wall_s:.1f} s, "
            f"{rate:.1f} requests/s",
            f"families exercised: {len(self.families)}/{len(FAMILIES)}",
            f"2xx (damaged input that still decoded, or a lie the gateway may ignore): "
            f"{self.count('accepted')}",
            f"4xx with a valid error code: {self.count('refused')}",
            f"5xx (must be 0): {self.count('server_error')}",
            f"4xx/other without a valid code (must be 0): {self.count('codeless')}",
            f"connection errors/timeouts (must be 0): {self.count('transport_error')}",
        ]
        return "\n".join(lines)

    def accepted_table(self, limit: int = 40) -> str:
        """The most frequent variants answered 2xx: what still decoded, or what was ignored."""
        rows = Counter(
            (r.family, r.variant, r.verdict.code)
            for r in self.results
            if r.verdict.kind == "accepted"
        )
        lines = [f"{'family':<20} {'variant':<52} {'answer':<16} {'count':>5}"]
        for (family, variant, code), n in rows.most_common(limit):
            lines.append(f"{family:<20} {variant[:52]:<52} {code[:16]:<16} {n:>5}")
        if len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more variants")
        return "\n".join(lines)


def send(http: httpx.Client, request: MalformedRequest) -> Verdict:
    """One request; transport failures become a verdict, not an exception."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    body = request.body
    content: bytes | Iterator[bytes] = body
    if request.chunked:
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    try:
        response = http.request(request.method, request.path, headers=headers, content=content)
    except httpx.TransportError as error:
        return Verdict("transport_error", None, f"{type(error).__name__}: {error}"[:120])
    return judge(request, response)


def run(
    base_url: str,
    requests: Callable[[int], MalformedRequest],
    count: int,
    concurrency: int = 8,
    timeout_s: float = 60.0,
    first: int = 0,
) -> Report:
    """Send requests ``first .. first + count - 1`` with ``concurrency`` clients."""

    def one(index: int) -> Result:
        request = requests(index)
        return Result(index, request.family, request.variant, send(http, request))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with (
        httpx.Client(base_url=base_url, timeout=timeout_s, limits=limits) as http,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        started = time.perf_counter()
        results = list(pool.map(one, range(first, first + count)))
        wall_s = time.perf_counter() - started
    return Report(results, wall_s, concurrency)


# ---------------------------------------------------------------------------------------------
# The gateway under test
# ---------------------------------------------------------------------------------------------


def gateway_fields(workdir: Path) -> dict[str, str]:
    """Settings of the gateway under test: PACS intake on (no delivery), 1 MiB uploads."""
    return {
        "max_upload_bytes": str(UPLOAD_LIMIT),
        "pacs_enabled": "true",
        "pacs_outbox_path": str(workdir / "outbox.sqlite3"),
        "backend_timeout_s": "15",
        "request_timeout_s": "30",
    }


@contextmanager
def serving_stack(
    model_root: Path, workdir: Path, lean_protos: Path | None = None
) -> Iterator[Stack]:
    """Start the TF Serving stand-in and the gateway (lean, ``KEYS``) in ``workdir``; stop both
    after."""
    with running_stack(
        model_root,
        workdir,
        server_args=("--labels", "stable=1"),
        lean_protos=lean_protos,
        keys_file=KEYS.write(workdir / "keys.txt"),
        **gateway_fields(workdir),
    ) as stack:
        yield stack


MAX_PEAK_RSS_MB = 1024
"""Ceiling on the gateway's peak resident memory over the run. It idles near 150 MB and the
largest legal upload here is 1 MiB; a decoder that believes a size field (a PNG chunk declaring
2 GB costs 2 GB in OpenCV 5) shows up as a peak far above this."""


@dataclass(frozen=True)
class Health:
    """The gateway after the run (-1: no answer)."""

    running: bool
    livez: int
    readyz: int
    valid_grade: int
    internal_errors_logged: int
    patient_markers_logged: int
    peak_rss_mb: int

    @property
    def ok(self) -> bool:
        """Alive, ready, grading, a clean log and bounded memory."""
        return (
            self.running
            and (self.livez, self.readyz, self.valid_grade) == (200, 200, 200)
            and self.internal_errors_logged == 0
            and self.patient_markers_logged == 0
            and 0 < self.peak_rss_mb <= MAX_PEAK_RSS_MB
        )

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"after the run: process running={self.running}, /livez {self.livez}, "
            f"/readyz {self.readyz}, valid image {self.valid_grade}, "
            f"internal_error log lines {self.internal_errors_logged}, "
            f"patient attributes in the log {self.patient_markers_logged}, "
            f"peak RSS {self.peak_rss_mb} MB (limit {MAX_PEAK_RSS_MB})"
        )


def _status(call: Callable[[], httpx.Response]) -> int:
    try:
        return call().status_code
    except httpx.TransportError:
        return -1


def peak_rss_mb(pid: int) -> int:
    """VmHWM of a live process in MB (-1 when it is gone)."""
    try:
        return memory_kib(pid, ("VmHWM",))["VmHWM"] // 1024
    except OSError:
        return -1


def health(stack: Stack) -> Health:
    """Probe the gateway, read its peak memory and its log."""
    url = stack.gateway.url
    headers = {**bearer(KEYS.grade), "Content-Type": "image/jpeg"}
    image = materials().images["jpeg"]
    log = stack.gateway.logs()
    internal = 0
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        internal += entry.get("error_code") == "internal_error"
    process = stack.gateway.process
    running = process is not None and process.poll() is None
    return Health(
        running=running,
        livez=_status(lambda: httpx.get(url + "/livez", timeout=10)),
        readyz=_status(lambda: httpx.get(url + "/readyz", timeout=10)),
        valid_grade=_status(
            lambda: httpx.post(url + GRADE, content=image, headers=headers, timeout=30)
        ),
        internal_errors_logged=internal,
        patient_markers_logged=sum(log.count(marker) for marker in PATIENT_MARKERS),
        peak_rss_mb=peak_rss_mb(process.pid) if process is not None and running else -1,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print the table; exit 1 when any rule is broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-failures", type=int, default=20, help="failures listed in full")
    parser.add_argument("--show-accepted", type=int, default=40, help="2xx variants listed")
    args = parser.parse_args(argv)

    generator = MalformedRequests(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-malformed-"))
    with serving_stack(args.model_root, workdir) as stack:
        report = run(stack.gateway.url, generator, args.requests, args.concurrency)
        after = health(stack)
    print(report.table())
    print(f"\n2xx by variant (the {args.show_accepted} most frequent):")
    print(report.accepted_table(args.show_accepted))
    for result in report.failures[: args.show_failures]:
        print(f"FAILURE #{result.index} {result.family} {result.variant}: {result.verdict}")
    print(after.describe())
    print(f"gateway log: {workdir / 'gateway.log'}")
    ok = report.ok and after.ok
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
