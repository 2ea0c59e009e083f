"""Valid inputs to break: synthetic photographs and DICOM files, and decompression bombs."""

from __future__ import annotations

import copy
import io
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from reliability.malformed.mutators import jpeg_with_size, png_chunk, tiff_with_tag, write_dicom
from reliability.malformed.wire import PHOTO_SIZE
from synthetic import (
    encode_dicom,
    encode_jpeg,
    encode_png,
    encode_tiff,
    synthesize_fundus,
    synthesize_non_fundus,
)

DICOM_KINDS = ("dicom", "dicom_implicit", "dicom_jpeg", "dicom_op16", "dicom_sc")


UID_PLACEHOLDER = "2.25." + "9" * 59
"""SOP Instance UID of the DICOM materials: 64 characters, replaced byte for byte per request."""


@dataclass(frozen=True)
class Materials:
    """Valid files made by synthetic, the DICOM datasets behind them, and bombs."""

    images: dict[str, bytes]
    datasets: dict[str, Dataset]
    bombs: dict[str, bytes]

    def dicom(self, kind: str, instance_uid: str) -> bytes:
        """A valid DICOM file of ``kind`` with its own SOP Instance UID (STOW-RS deduplicates
        by that UID, so every request needs a fresh one to be graded at all)."""
        if len(instance_uid) != len(UID_PLACEHOLDER):
            raise ValueError("the UID must have the placeholder's length")
        return self.images[kind].replace(UID_PLACEHOLDER.encode(), instance_uid.encode())


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
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
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
