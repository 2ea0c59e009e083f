"""DICOM Part 10 photographs (Ophthalmic Photography, Secondary Capture) to 8-bit RGB.

Only pixels, laterality and a few technical UIDs leave this module; patient attributes stay
inside the parsed dataset, and error messages never quote element values (they could be PHI).
JPEG Baseline frames in YBR_FULL(_422)/MONOCHROME2 go through the same reduced-scale JPEG
decoder as plain JPEG uploads; everything else is decoded by pydicom (JPEG Lossless through
pylibjpeg).
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from fundus.budget import PILLOW_PIXEL_BYTES, DecodeCost, preprocess_bytes
from fundus.config import DecodeLimits
from fundus.errors import (
    CorruptImage,
    DicomNoPixelData,
    DicomUnsupportedImage,
    DicomUnsupportedSopClass,
    DicomUnsupportedTransferSyntax,
    FundusError,
)
from fundus.raster import check_dimensions, choose_reduced_scale, decode_jpeg, to_rgb8
from fundus.types import ImageFormat, ImageInfo, Laterality, RGBImage

# pydicom warns about odd element values and quotes them; they can be patient data. Values are
# therefore not validated on reading (we check what we use ourselves) and its logger is quiet.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
logging.getLogger("pydicom").setLevel(logging.ERROR)

GRADABLE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
}
"""SOP classes that hold a single colour or monochrome photograph the model can grade."""

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SUPPORTED_TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian (retired)",
    JPEG_BASELINE: "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, First-Order Prediction (Process 14 SV1)",
}
_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"}
_FAST_JPEG_PHOTOMETRIC = {"YBR_FULL", "YBR_FULL_422", "MONOCHROME2"}


def read_dataset(data: bytes) -> Dataset:
    """Parse a DICOM stream (with or without the 128-byte preamble)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise CorruptImage(f"DICOM data cannot be parsed ({type(exc).__name__})") from exc


def dicom_cost(data: bytes, target_size: int | None) -> DecodeCost:
    """Header-only decode cost (see fundus/budget.py): the dataset up to its pixel data.

    pydicom holds the dataset's copy of the pixel bytes, the decoded array, and for
    MONOCHROME1 or non-16-bit arrays one more; then the 8-bit gray and RGB copies. A JPEG
    Baseline frame goes through the JPEG decoder at reduced scale, but may hold every DCT
    coefficient (2 bytes a sample) like any multi-scan JPEG.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception as exc:
        raise CorruptImage(f"DICOM data cannot be parsed ({type(exc).__name__})") from exc
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    channels = _int(ds, "SamplesPerPixel", 1)
    sample = 2 if _int(ds, "BitsAllocated", 8) > 8 else 1
    frames = max(1, _int(ds, "NumberOfFrames", 1))
    raster = rows * columns * channels * sample * frames
    pixels = rows * columns
    if _transfer_syntax(ds) == JPEG_BASELINE:
        scale = choose_reduced_scale(columns, rows, target_size)
        out_w, out_h = -(-columns // scale), -(-rows // scale)
        decoder = len(data) + 2 * raster + out_w * out_h * (2 * PILLOW_PIXEL_BYTES + 6)
        working = max(decoder, preprocess_bytes(out_w, out_h))
    else:
        working = max(len(data) + 3 * raster + 4 * pixels, preprocess_bytes(columns, rows))
    return DecodeCost(ImageFormat.DICOM, columns, rows, channels, sample, frames, raster, working)


def laterality_of(ds: Dataset) -> Laterality | None:
    """ImageLaterality (0020,0062), else Laterality (0020,0060); 'L'/'R' only."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value == "L":
            return "L"
        if value == "R":
            return "R"
    return None


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if uid:
        return uid
    # A bare dataset without file meta: only native (uncompressed) pixel data is decodable.
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = ds.is_implicit_VR, ds.is_little_endian
    if implicit and little:
        return "1.2.840.10008.1.2"
    if little:
        return "1.2.840.10008.1.2.1"
    return "1.2.840.10008.1.2.2"


def _int(ds: Dataset, keyword: str, default: int) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError) as exc:
        raise CorruptImage(f"DICOM attribute {keyword} is not an integer") from exc


def _validate(ds: Dataset, limits: DecodeLimits) -> tuple[str, str, int]:
    """Check SOP class, pixel data, layout and size; return (transfer syntax, photometric, bits)."""
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class and sop_class not in GRADABLE_SOP_CLASSES:
        name = UID(sop_class).name if UID(sop_class).is_valid else "unknown"
        raise DicomUnsupportedSopClass(
            f"SOP class {sop_class} ({name}) is not a fundus photograph; accepted: "
            + ", ".join(sorted(GRADABLE_SOP_CLASSES.values()))
        )
    if "PixelData" not in ds:
        raise DicomNoPixelData("the DICOM object has no Pixel Data (7FE0,0010)")
    transfer_syntax = _transfer_syntax(ds)
    if transfer_syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        name = UID(transfer_syntax).name if UID(transfer_syntax).is_valid else "unknown"
        raise DicomUnsupportedTransferSyntax(
            f"transfer syntax {transfer_syntax} ({name}) is not supported; use one of: "
            + ", ".join(SUPPORTED_TRANSFER_SYNTAXES.values())
        )
    frames = _int(ds, "NumberOfFrames", 1)
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    check_dimensions(columns, rows, limits, frames=frames)
    if frames != 1:
        raise DicomUnsupportedImage(
            f"multi-frame object with {frames} frames: send each photograph as its own instance"
        )
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in _PHOTOMETRIC:
        raise DicomUnsupportedImage(
            f"photometric interpretation {photometric or '(missing)'} is not supported; "
            "accepted: " + ", ".join(sorted(_PHOTOMETRIC))
        )
    samples = _int(ds, "SamplesPerPixel", 1)
    expected_samples = 1 if photometric.startswith("MONOCHROME") else 3
    if samples != expected_samples:
        raise DicomUnsupportedImage(f"{samples} samples per pixel do not fit {photometric}")
    bits_allocated = _int(ds, "BitsAllocated", 8)
    if bits_allocated not in (8, 16):
        raise DicomUnsupportedImage(f"{bits_allocated} bits allocated: only 8 and 16 are graded")
    if _int(ds, "PixelRepresentation", 0) != 0:
        raise DicomUnsupportedImage("signed pixel data is not a photograph")
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise CorruptImage(f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    return transfer_syntax, photometric, bits_stored


def _decode_pixels(ds: Dataset, photometric: str, bits_stored: int) -> RGBImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = ds.pixel_array  # pydicom converts YBR to RGB
    except FundusError:
        raise
    except Exception as exc:
        raise CorruptImage(f"DICOM pixel data cannot be decoded ({type(exc).__name__})") from exc
    array = np.asarray(array)
    if photometric == "MONOCHROME1":
        array = ((1 << bits_stored) - 1) - np.clip(array, 0, (1 << bits_stored) - 1)
    expected_ndim = 2 if photometric.startswith("MONOCHROME") else 3
    if array.ndim != expected_ndim:
        raise CorruptImage(f"decoded pixel array has shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.uint16)  # no copy when already uint16
        return to_rgb8(array, bits_stored=bits_stored)
    return to_rgb8(array)


def decode_dicom(
    data: bytes, limits: DecodeLimits, target_size: int | None
) -> tuple[RGBImage, ImageInfo]:
    """Decode a single-frame DICOM photograph to RGB plus technical info (no patient data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode_dicom(data, limits, target_size)


def _decode_dicom(
    data: bytes, limits: DecodeLimits, target_size: int | None
) -> tuple[RGBImage, ImageInfo]:
    ds = read_dataset(data)
    transfer_syntax, photometric, bits_stored = _validate(ds, limits)
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    scale = 1
    if transfer_syntax == JPEG_BASELINE and photometric in _FAST_JPEG_PHOTOMETRIC:
        try:
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        except Exception as exc:
            raise CorruptImage(f"encapsulated pixel data is broken ({type(exc).__name__})") from exc
        rgb, jpeg_info = decode_jpeg(frame, limits, target_size)
        if (jpeg_info.source_width, jpeg_info.source_height) != (columns, rows):
            raise CorruptImage("JPEG frame size does not match Rows/Columns")
        scale = jpeg_info.reduced_scale
    else:
        rgb = _decode_pixels(ds, photometric, bits_stored)
        if rgb.shape[:2] != (rows, columns):
            raise CorruptImage("decoded pixel array does not match Rows/Columns")
    info = ImageInfo(
        format=ImageFormat.DICOM,
        source_width=columns,
        source_height=rows,
        decoded_width=rgb.shape[1],
        decoded_height=rgb.shape[0],
        reduced_scale=scale,
        bits_stored=bits_stored,
        laterality=laterality_of(ds),
        sop_class_uid=str(ds.get("SOPClassUID", "") or "") or None,
        transfer_syntax_uid=transfer_syntax,
    )
    return rgb, info
