"""DICOM photographs: transfer syntaxes, layouts, errors, laterality, no PHI out."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from fundus import (
    CorruptImage,
    DicomNoPixelData,
    DicomUnsupportedImage,
    DicomUnsupportedSopClass,
    DicomUnsupportedTransferSyntax,
    FundusError,
    ImageFormat,
    ImageTooSmall,
    PreprocessConfig,
    decode_image,
    load_and_preprocess,
)
from synthetic import encode_dicom, synthesize_fundus

PHOTO = synthesize_fundus(2, width=320, height=240, seed=21)
PHI = ("SYNTHETIC^PATIENT", "SYN0001", "19700101")


def _rewrite(data: bytes, **changes: object) -> bytes:
    """Parse, change elements (None deletes), write back."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        if keyword == "TransferSyntaxUID":
            ds.file_meta.TransferSyntaxUID = value
        elif value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


@pytest.mark.parametrize("transfer_syntax", ["explicit_le", "implicit_le"])
def test_native_colour_round_trip_is_exact(transfer_syntax: str) -> None:
    decoded, info = decode_image(encode_dicom(PHOTO, transfer_syntax=transfer_syntax))
    np.testing.assert_array_equal(decoded, PHOTO)
    assert info.format is ImageFormat.DICOM
    assert info.laterality == "R"
    assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.77.1.5.1"


def test_jpeg_baseline_ybr_full_422() -> None:
    decoded, info = decode_image(encode_dicom(PHOTO, transfer_syntax="jpeg_baseline"))
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    assert np.abs(decoded.astype(int) - PHOTO.astype(int)).mean() < 4.0


def test_without_preamble() -> None:
    decoded, _ = decode_image(encode_dicom(PHOTO, with_preamble=False))
    np.testing.assert_array_equal(decoded, PHOTO)


def test_monochrome_becomes_three_channels() -> None:
    decoded, _ = decode_image(encode_dicom(PHOTO, monochrome=True))
    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    assert np.abs(decoded[:, :, 0].astype(int) - gray.astype(int)).max() <= 1
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 1])


def test_monochrome1_is_inverted() -> None:
    data = _rewrite(encode_dicom(PHOTO, monochrome=True), PhotometricInterpretation="MONOCHROME1")
    decoded, _ = decode_image(data)
    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    assert np.abs((255 - decoded[:, :, 0]).astype(int) - gray.astype(int)).max() <= 1


def test_op_16_bit() -> None:
    decoded, info = decode_image(encode_dicom(PHOTO, sop_class="op16", bits=16))
    assert info.bits_stored == 16
    assert np.abs(decoded.astype(int) - PHOTO.astype(int)).max() <= 1


def test_secondary_capture_accepted_and_laterality_optional() -> None:
    _, info = decode_image(encode_dicom(PHOTO, sop_class="sc", laterality=None))
    assert info.laterality is None


def test_left_eye() -> None:
    _, info = decode_image(encode_dicom(PHOTO, laterality="L"))
    assert info.laterality == "L"


def test_laterality_falls_back_to_series_laterality() -> None:
    data = _rewrite(encode_dicom(PHOTO, laterality=None), Laterality="L")
    assert decode_image(data)[1].laterality == "L"


def test_multi_frame_is_a_clear_error() -> None:
    with pytest.raises(DicomUnsupportedImage, match="multi-frame"):
        decode_image(encode_dicom(PHOTO, number_of_frames=2))


def test_no_pixel_data() -> None:
    with pytest.raises(DicomNoPixelData) as caught:
        decode_image(_rewrite(encode_dicom(PHOTO), PixelData=None))
    assert caught.value.code == "dicom_no_pixel_data"


J2K_PIXELS = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])


def test_unsupported_transfer_syntax() -> None:
    data = _rewrite(
        encode_dicom(PHOTO), TransferSyntaxUID="1.2.840.10008.1.2.4.90", PixelData=J2K_PIXELS
    )
    with pytest.raises(DicomUnsupportedTransferSyntax) as caught:
        decode_image(data)
    assert "JPEG 2000" in caught.value.message


def test_other_sop_class_refused() -> None:
    data = _rewrite(encode_dicom(PHOTO), SOPClassUID="1.2.840.10008.5.1.4.1.1.2")
    with pytest.raises(DicomUnsupportedSopClass, match="CT Image Storage"):
        decode_image(data)


def test_rows_columns_mismatch_is_corrupt() -> None:
    with pytest.raises(CorruptImage):
        decode_image(_rewrite(encode_dicom(PHOTO), Rows=241))


def test_info_and_errors_carry_no_patient_data() -> None:
    _, info = decode_image(encode_dicom(PHOTO))
    text = repr(dataclasses.asdict(info))
    assert not any(value in text for value in PHI)
    bad = _rewrite(
        encode_dicom(PHOTO), TransferSyntaxUID="1.2.840.10008.1.2.4.90", PixelData=J2K_PIXELS
    )
    with pytest.raises(FundusError) as caught:
        decode_image(bad)
    assert not any(value in str(caught.value) for value in PHI)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SC_rgb.dcm", None),
        ("SC_rgb_expb.dcm", None),
        ("SC_rgb_jpeg_dcmtk.dcm", None),
        ("SC_rgb_jpeg_gdcm.dcm", None),
        ("SC_rgb_dcmtk_+eb+cr.dcm", None),
        ("SC_ybr_full_uncompressed.dcm", None),
        ("SC_ybr_full_422_uncompressed.dcm", None),
        ("SC_rgb_16bit.dcm", None),
        ("SC_rgb_2frame.dcm", DicomUnsupportedImage),
        ("SC_rgb_small_odd.dcm", ImageTooSmall),
        ("US1_J2KR.dcm", DicomUnsupportedSopClass),
        ("MR_small.dcm", DicomUnsupportedSopClass),
        ("rtplan.dcm", DicomUnsupportedSopClass),
    ],
)
def test_pydicom_reference_files(name: str, expected: type[FundusError] | None) -> None:
    """pydicom's own test files: colour SC in every layout decode to the same picture."""
    data = Path(get_testdata_file(name)).read_bytes()
    if expected is not None:
        with pytest.raises(expected):
            decode_image(data)
        return
    decoded, _ = decode_image(data)
    reference = pydicom.dcmread(get_testdata_file("SC_rgb.dcm")).pixel_array
    assert decoded.shape == (100, 100, 3)
    # All SC_rgb* variants hold the same colour bars; lossy JPEG stays close.
    assert np.abs(decoded.astype(int) - reference.astype(int)).mean() < 3.0


@pytest.mark.shared_data
def test_real_op_jpeg_baseline_fast_path_matches_pydicom(dicom_dir: Path) -> None:
    data = (dicom_dir / "op_fundus_eyepacs15right_grade2.dcm").read_bytes()
    fast, info = decode_image(data, target_size=512)
    assert info.reduced_scale == 4
    assert info.laterality == "R"
    full = pydicom.dcmread(io.BytesIO(data)).pixel_array
    shrunk = cv2.resize(full, (fast.shape[1], fast.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - fast.astype(int)).mean() < 2.0


@pytest.mark.shared_data
def test_real_op_dicom_equals_the_same_photo_as_jpeg(
    dicom_dir: Path, eyepacs_files: list[Path]
) -> None:
    config = PreprocessConfig()
    from_dicom = load_and_preprocess(
        (dicom_dir / "op_fundus_eyepacs15right_grade2.dcm").read_bytes(), config
    )
    jpeg = next(path for path in eyepacs_files if path.name == "15_right.jpeg")
    from_jpeg = load_and_preprocess(jpeg.read_bytes(), config)
    assert np.abs(from_dicom.image.astype(int) - from_jpeg.image.astype(int)).mean() < 3.0
    assert from_dicom.laterality == "R"


@pytest.mark.shared_data
def test_real_jpeg_lossless_monochrome(dicom_dir: Path) -> None:
    decoded, info = decode_image((dicom_dir / "dcmjs_sample-op.dcm").read_bytes())
    assert decoded.shape == (1536, 1536, 3)
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2.4.70"
    assert info.laterality == "R"
    assert decoded.std() > 10  # a real picture, not a blank frame


@pytest.mark.shared_data
def test_real_tiny_retinamnist_dicom(dicom_dir: Path) -> None:
    decoded, info = decode_image(
        (dicom_dir / "op_fundus_retinamnist_test0_grade2.dcm").read_bytes()
    )
    assert decoded.shape == (28, 28, 3)
    assert info.laterality == "R"
