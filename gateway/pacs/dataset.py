"""One received STOW-RS part: parsed with a bounded amount of work, and its content digest.

Parsing is bounded because pydicom's cost grows with the number of data elements, not bytes: 80
MB of zeros parse as ten million empty elements (about 20 s of CPU) before anything fails. A
DICOM photograph holds hundreds of elements; a part needing more reads than ``MAX_READS`` is
refused as corrupt after a few milliseconds. The digest identifies what the gateway's result
is built from, so that a resend can be told apart from different data under the same UID.
Blocking; callers run it in a worker thread. Messages never quote element values (PHI).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from fundus.dicom import laterality_of
from gateway.errors import ApiError
from gateway.pacs import sr

MAX_READS = 50_000
"""File reads pydicom may make for one part (two or three per data element, sequence items
included): about 20,000 elements where the photographs at hand need 141-230 reads; 0.15 s of
CPU at most."""

MAX_COPIED_SEQUENCE_BYTES = 64 * 1024
"""Sequences copied into the SR (issuer, other patient IDs) are parsed when copied, outside the
read budget: bound their encoded size instead."""

PIXEL_ATTRIBUTES = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "NumberOfFrames",
)
"""How the Pixel Data bytes are laid out: part of the content."""

IDENTITY_ATTRIBUTES = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "InstanceNumber",
    "ImageLaterality",
    "Laterality",
)
"""UIDs, numbering and laterality the SR and the grading use."""


class _BudgetExceeded(Exception):
    """Raised from inside pydicom's reads: too many elements."""


class _CountingReader(io.BytesIO):
    """A BytesIO that stops the parse after ``limit`` reads."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.reads = 0
        self._limit = limit

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        if self.reads > self._limit:
            raise _BudgetExceeded
        return super().read(size)


def read_instance(data: bytes, max_reads: int = MAX_READS) -> Dataset:
    """Parse one part with at most ``max_reads`` reads; ``corrupt_image`` otherwise."""
    reader = _CountingReader(data, max_reads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(reader, force=True)
    except _BudgetExceeded:
        raise ApiError(
            "corrupt_image",
            f"the DICOM data needs more than {max_reads} reads to parse (implausibly many "
            "data elements); not a photograph",
        ) from None
    except Exception as exc:  # pydicom raises many types; the message may quote values
        raise ApiError(
            "corrupt_image", f"DICOM data cannot be parsed ({type(exc).__name__})"
        ) from None
    for keyword in sr.COPIED_SEQUENCES:
        tag = Tag(keyword)
        if tag in ds:
            raw = ds.get_item(tag)
            length = getattr(raw, "length", 0) or 0
            if length != 0xFFFFFFFF and length > MAX_COPIED_SEQUENCE_BYTES:
                raise ApiError("invalid_image", f"{keyword} is implausibly large")
    return ds


def content_digest(ds: Dataset) -> str:
    """SHA-256 (hex) of what the result is built from: the pixels, their layout and every
    attribute the SR copies or the grading reads.

    Independent of how a PACS re-encodes the same instance (file meta, transfer syntax between
    native encodings, VR explicitness, character set, attribute order, private tags and other
    attributes the gateway ignores), so an honest resend is recognised; a change of pixels,
    patient, study or laterality gives another digest.
    """
    digest = hashlib.sha256()
    keywords = (*IDENTITY_ATTRIBUTES, *sr.COPIED_ATTRIBUTES, *PIXEL_ATTRIBUTES)
    picked = Dataset()
    for keyword in keywords:
        if keyword in ds:
            picked[keyword] = ds[keyword]
    document = picked.to_json_dict(bulk_data_threshold=2**31, suppress_invalid_tags=True)
    document["laterality"] = laterality_of(ds)
    digest.update(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"\x00pixels\x00")
    pixels = ds.get("PixelData")
    if pixels is not None:
        digest.update(bytes(pixels))
    return digest.hexdigest()
