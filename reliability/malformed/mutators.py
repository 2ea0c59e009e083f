"""Format mutators: format-aware edits of JPEG, PNG, TIFF and DICOM files, and byte-level damage
(truncation, random mutation)."""

from __future__ import annotations

import copy
import io
import random
import struct
import zlib
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite


def write_dicom(dataset: Dataset) -> bytes:
    """Part 10 bytes of ``dataset`` as it is (invalid values included)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=False)
    return buffer.getvalue()


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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
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
        rebuilt = png_chunk(b"IHDR", bytes(header))
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
        noise = png_chunk(b"IDAT", rng.randbytes(rng.choice((10, 1000, 20000))))
        return "idat_noise", data[:first] + noise + data[last:]
    if choice == 6:
        first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
        raw = bytearray(zlib.decompress(b"".join(data[o + 8 : o + 8 + n] for _, o, n in idats)))
        row_bytes = len(raw) // int.from_bytes(data[ihdr_offset + 12 : ihdr_offset + 16], "big")
        for row_start in range(0, len(raw), row_bytes * rng.randint(1, 8)):
            raw[row_start] = rng.choice((5, 9, 255))
        rebuilt = png_chunk(b"IDAT", zlib.compress(bytes(raw)))
        return "bad_filter_bytes", data[:first] + rebuilt + data[last:]
    if choice == 7:
        inserted = png_chunk(rng.choice((b"ABCD", b"IHDR", b"PLTE", b"IEND")), rng.randbytes(16))
        at = idats[0][1]
        return "extra_chunk", data[:at] + inserted + data[at:]
    first, last = idats[0][1], idats[-1][1] + 12 + idats[-1][2]
    stream = b"".join(data[o + 8 : o + 8 + n] for _, o, n in idats)
    cut = png_chunk(b"IDAT", stream[: rng.randrange(2, len(stream))])
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
