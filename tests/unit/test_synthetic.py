"""Tests for synthetic: the synthetic fundus generator and the file encoders."""

from __future__ import annotations

import hashlib
import io
import itertools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom.errors import InvalidDicomError

from synthetic import (
    DICOM_SOP_CLASSES,
    NON_FUNDUS_KINDS,
    encode_dicom,
    encode_jpeg,
    encode_png,
    encode_tiff,
    main,
    synthesize_fundus,
    synthesize_non_fundus,
)

W, H = 512, 384
REPO_ROOT = Path(__file__).resolve().parents[2]


def _gray(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _laplacian_var(img: NDArray[np.uint8]) -> float:
    """Laplacian variance inside the (eroded) fundus field, as a blur check would measure it."""
    field = (img.max(axis=2) > 10).astype(np.uint8)
    inner = cv2.erode(field, np.ones((9, 9), np.uint8)).astype(bool)
    lap = cv2.Laplacian(_gray(img).astype(np.float64), cv2.CV_64F)
    return float(lap[inner].var())


def _diff(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int16]:
    return a.astype(np.int16) - b.astype(np.int16)


@pytest.fixture(scope="module")
def grades_by_seed() -> dict[int, list[NDArray[np.uint8]]]:
    """Grades 0..4 for a few seeds (same seed -> same background)."""
    return {
        seed: [synthesize_fundus(g, width=W, height=H, seed=seed) for g in range(5)]
        for seed in (0, 1)
    }


@pytest.fixture(scope="module")
def sample() -> NDArray[np.uint8]:
    return synthesize_fundus(2, width=96, height=72, seed=5)


# --- synthesize_fundus: shape, determinism ---------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(28, 28), (64, 48), (300, 500), (768, 576)])
def test_shape_and_dtype(width: int, height: int) -> None:
    img = synthesize_fundus(1, width=width, height=height, seed=1)
    assert img.shape == (height, width, 3)
    assert img.dtype == np.uint8
    assert img.flags["C_CONTIGUOUS"]


def test_default_size() -> None:
    assert synthesize_fundus(0).shape == (576, 768, 3)


@pytest.mark.parametrize("grade", range(5))
def test_deterministic_by_seed(grade: int) -> None:
    kwargs = {"width": 200, "height": 150, "seed": 11, "laterality": "L", "blur_sigma": 0.7}
    a = synthesize_fundus(grade, **kwargs)  # type: ignore[arg-type]
    b = synthesize_fundus(grade, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a, b)


def test_different_seeds_differ() -> None:
    a = synthesize_fundus(2, width=W, height=H, seed=0)
    b = synthesize_fundus(2, width=W, height=H, seed=1)
    assert np.abs(_diff(a, b)).mean() > 3.0


# --- synthesize_fundus: what a quality gate sees ---------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(28, 28), (W, H), (300, 400)])
def test_black_corners_and_bright_centre(width: int, height: int) -> None:
    img = synthesize_fundus(3, width=width, height=height, seed=2)
    k = max(2, min(width, height) // 20)
    for corner in (img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:]):
        assert corner.max() <= 3
    cy, cx = height // 2, width // 2
    centre = img[cy - k : cy + k, cx - k : cx + k]
    assert centre[..., 0].mean() > 100  # orange-red retina
    assert centre[..., 0].mean() > centre[..., 1].mean() > centre[..., 2].mean()


def test_field_size_and_vignetting() -> None:
    img = synthesize_fundus(0, width=768, height=576, seed=4)
    field = img.max(axis=2) > 10  # the preprocessing crop threshold
    expected = np.pi * (0.46 * 576) ** 2 / (768 * 576)
    assert abs(field.mean() - expected) < 0.01
    ys, xs = np.nonzero(field)
    assert abs((xs.max() - xs.min() + 1) - 0.92 * 576) <= 4
    assert abs((ys.max() - ys.min() + 1) - 0.92 * 576) <= 4
    # Radial vignetting: the rim is darker than the middle.
    yy, xx = np.mgrid[:576, :768]
    r = np.hypot(xx - 383.5, yy - 287.5) / (0.46 * 576)
    red = img[..., 0].astype(float)
    assert red[(r > 0.85) & (r < 0.97)].mean() < 0.8 * red[(r > 0.2) & (r < 0.4)].mean()
    # Rim still well above the crop threshold so the whole disc is detected.
    assert img[(r > 0.9) & (r < 0.97)].max(axis=1).min() > 20


def test_gradable_measurements() -> None:
    img = synthesize_fundus(2, width=768, height=576, seed=3)
    field = img.max(axis=2) > 10
    gray = _gray(img)
    assert 60 < gray[field].mean() < 160
    assert (img[field].max(axis=1) >= 250).mean() < 0.02
    assert _laplacian_var(img) > 100.0


def test_blur_sigma_lowers_laplacian_variance() -> None:
    sharp = synthesize_fundus(2, width=768, height=576, seed=3)
    blurred = synthesize_fundus(2, width=768, height=576, seed=3, blur_sigma=3.0)
    assert _laplacian_var(blurred) < 0.1 * _laplacian_var(sharp)
    assert blurred[:10, :10].max() <= 3


def test_brightness_scales_image() -> None:
    base = synthesize_fundus(2, width=W, height=H, seed=3)
    dark = synthesize_fundus(2, width=W, height=H, seed=3, brightness=0.15)
    bright = synthesize_fundus(2, width=W, height=H, seed=3, brightness=3.0)
    field = base.max(axis=2) > 10
    ratio = _gray(dark)[field].mean() / _gray(base)[field].mean()
    assert 0.13 < ratio < 0.17
    assert _gray(dark)[field].mean() < 20
    assert (bright[field].max(axis=1) >= 250).mean() > 0.8
    assert bright[:10, :10].max() <= 3


def test_large_image_keeps_texture() -> None:
    img = synthesize_fundus(1, width=3000, height=2000, seed=1)
    assert img.shape == (2000, 3000, 3)
    assert img.dtype == np.uint8
    assert img[:50, :50].max() <= 3
    patch = img[950:1050, 1450:1550].astype(float)
    # Fine noise added after the upscale: neighbouring pixels are not identical.
    assert np.abs(np.diff(patch[..., 0], axis=1)).mean() > 0.5


# --- laterality -------------------------------------------------------------------------------


def _brightest_x(img: NDArray[np.uint8]) -> int:
    blurred = cv2.GaussianBlur(_gray(img).astype(np.float32), (0, 0), img.shape[1] / 40.0)
    _, x = np.unravel_index(int(np.argmax(blurred)), blurred.shape)
    return int(x)


@pytest.mark.parametrize(("width", "height"), [(64, 48), (W, H), (300, 400)])
def test_laterality_moves_optic_disc(width: int, height: int) -> None:
    right = synthesize_fundus(0, width=width, height=height, seed=6, laterality="R")
    left = synthesize_fundus(0, width=width, height=height, seed=6, laterality="L")
    assert _brightest_x(right) > width * 0.6
    assert _brightest_x(left) < width * 0.4


def test_left_eye_is_mirror_of_right() -> None:
    right = synthesize_fundus(3, width=W, height=H, seed=6, laterality="R")
    left = synthesize_fundus(3, width=W, height=H, seed=6, laterality="L")
    assert np.abs(_diff(left, right[:, ::-1])).mean() < 3.0  # only the sensor noise differs


# --- lesions ----------------------------------------------------------------------------------


def test_same_seed_same_background(grades_by_seed: dict[int, list[NDArray[np.uint8]]]) -> None:
    g0, g1 = grades_by_seed[0][0], grades_by_seed[0][1]
    changed = np.abs(_diff(g1, g0)).max(axis=2) > 0
    assert 0 < changed.mean() < 0.01  # grade 1 = grade 0 plus a few microaneurysms


def test_lesion_pixels_increase_with_grade(
    grades_by_seed: dict[int, list[NDArray[np.uint8]]],
) -> None:
    for imgs in grades_by_seed.values():
        counts = [int((np.abs(_diff(img, imgs[0])).max(axis=2) > 12).sum()) for img in imgs]
        assert counts[0] == 0
        assert all(a < b for a, b in itertools.pairwise(counts)), counts


def _dark_red_blobs(
    img: NDArray[np.uint8], ref: NDArray[np.uint8]
) -> tuple[int, NDArray[np.int32]]:
    """Connected regions where ``img`` is clearly darker in green than the grade-0 ``ref``."""
    d = _diff(ref, img)
    dark = ((d[..., 1] > 15) & (d[..., 0] >= 0)).astype(np.uint8)
    n, labels = cv2.connectedComponents(dark)
    return n - 1, np.asarray(labels, dtype=np.int32)


def test_dark_red_blob_count_increases_with_grade(
    grades_by_seed: dict[int, list[NDArray[np.uint8]]],
) -> None:
    for imgs in grades_by_seed.values():
        blobs = [_dark_red_blobs(img, imgs[0])[0] for img in imgs]
        assert blobs[0] == 0
        assert 1 <= blobs[1] <= 12  # a few microaneurysms
        assert blobs[1] < blobs[2] < blobs[3] < blobs[4], blobs


def test_microaneurysms_are_tiny(grades_by_seed: dict[int, list[NDArray[np.uint8]]]) -> None:
    imgs = grades_by_seed[1]
    n, labels = _dark_red_blobs(imgs[1], imgs[0])
    sizes = np.bincount(labels.ravel())[1:]
    assert n >= 1
    assert sizes.max() < 0.0005 * W * H


def test_grade3_haemorrhages_in_all_quadrants(
    grades_by_seed: dict[int, list[NDArray[np.uint8]]],
) -> None:
    for imgs in grades_by_seed.values():
        d = _diff(imgs[0], imgs[3])
        ys, xs = np.nonzero(d[..., 1] > 25)
        quadrants = set(zip((ys < H / 2).tolist(), (xs < W / 2).tolist(), strict=True))
        assert len(quadrants) == 4


def test_exudates_and_cotton_wool_by_grade(
    grades_by_seed: dict[int, list[NDArray[np.uint8]]],
) -> None:
    for imgs in grades_by_seed.values():
        d = [_diff(img, imgs[0]) for img in imgs]
        yellow = [int((x[..., 1] > 40).sum()) for x in d]  # green rises: exudates / cotton wool
        pale = [int((x[..., 2] > 90).sum()) for x in d]  # blue rises a lot: cotton-wool spots
        assert yellow[1] == 0
        assert yellow[2] > 50
        assert pale[2] == 0
        assert min(pale[3], pale[4]) > 50


def test_grade4_adds_changes_near_optic_disc(
    grades_by_seed: dict[int, list[NDArray[np.uint8]]],
) -> None:
    for imgs in grades_by_seed.values():
        x = _brightest_x(imgs[0])
        band = slice(max(0, x - W // 8), x + W // 8)
        d34 = np.abs(_diff(imgs[4], imgs[3]))[:, band].max(axis=2) > 12
        assert d34.sum() > 100  # neovascularisation on/near the disc


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("grade", [-1, 5, 2.0, True, "2"])
def test_bad_grade(grade: object) -> None:
    with pytest.raises(ValueError, match="grade"):
        synthesize_fundus(grade, width=32, height=32)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"laterality": "X"},
        {"width": 4},
        {"height": 100000},
        {"blur_sigma": -1.0},
        {"brightness": -0.5},
        {"brightness": float("nan")},
    ],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        synthesize_fundus(1, **kwargs)  # type: ignore[arg-type]


# --- synthesize_non_fundus --------------------------------------------------------------------


@pytest.mark.parametrize("kind", NON_FUNDUS_KINDS)
def test_non_fundus_shape_and_determinism(kind: str) -> None:
    a = synthesize_non_fundus(kind, width=160, height=120, seed=3)
    b = synthesize_non_fundus(kind, width=160, height=120, seed=3)
    assert a.shape == (120, 160, 3)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_non_fundus_kinds_look_right() -> None:
    doc = synthesize_non_fundus("document")
    assert doc.shape == (480, 640, 3)
    assert (doc.max(axis=2) > 10).mean() == 1.0
    assert doc.mean() > 200
    assert (_gray(doc) < 80).mean() > 0.005  # text
    noise = synthesize_non_fundus("noise")
    assert noise.std() > 60
    assert abs(float(noise.mean()) - 127.5) < 3
    black = synthesize_non_fundus("black")
    assert black.max() <= 3
    grad = synthesize_non_fundus("gradient")
    assert grad.min() > 10
    assert _laplacian_var(grad) < 5.0
    assert np.abs(grad[0, 0].astype(int) - grad[-1, -1].astype(int)).max() > 20
    over = synthesize_non_fundus("overexposed")
    field = over.max(axis=2) > 10
    assert 0.4 < field.mean() < 0.6
    assert over[:10, :10].max() <= 3
    assert _gray(over)[field].mean() > 240


def test_non_fundus_unknown_kind() -> None:
    with pytest.raises(ValueError, match="cat"):
        synthesize_non_fundus("cat")


# --- encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_jpeg_round_trip(sample: NDArray[np.uint8], subsampling: str) -> None:
    data = encode_jpeg(sample, subsampling=subsampling)
    assert data[:2] == b"\xff\xd8"
    assert b"\xff\xc0" in data  # SOF0: baseline
    assert b"\xff\xc2" not in data  # no SOF2: not progressive
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        assert im.mode == "RGB"
        decoded = np.asarray(im)
    assert decoded.shape == sample.shape
    assert np.abs(_diff(decoded, sample)).mean() < 4.0


def test_jpeg_quality_and_validation(sample: NDArray[np.uint8]) -> None:
    assert len(encode_jpeg(sample, quality=30)) < len(encode_jpeg(sample, quality=95))
    assert encode_jpeg(sample) == encode_jpeg(sample)
    with pytest.raises(ValueError, match="subsampling"):
        encode_jpeg(sample, subsampling="4:1:1")
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(sample, quality=0)
    with pytest.raises(ValueError, match="RGB"):
        encode_jpeg(sample[..., 0])


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("grayscale", [False, True])
def test_png_round_trip(sample: NDArray[np.uint8], bit_depth: int, grayscale: bool) -> None:
    data = encode_png(sample, bit_depth=bit_depth, grayscale=grayscale)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    expected: NDArray[np.generic] = _gray(sample) if grayscale else sample
    if not grayscale:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if bit_depth == 16:
        assert decoded.dtype == np.uint16
        expected = expected.astype(np.uint16) * np.uint16(257)
    else:
        assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)


def test_png_bad_bit_depth(sample: NDArray[np.uint8]) -> None:
    with pytest.raises(ValueError, match="bit_depth"):
        encode_png(sample, bit_depth=12)


def test_tiff_round_trip(sample: NDArray[np.uint8]) -> None:
    data = encode_tiff(sample)
    assert data[:4] in (b"II*\x00", b"MM\x00*")
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), sample)


def _read_dicom(data: bytes, force: bool = False) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=force)


@pytest.mark.parametrize("transfer_syntax", ["explicit_le", "implicit_le", "jpeg_baseline"])
@pytest.mark.parametrize("monochrome", [False, True])
def test_dicom_round_trip(
    sample: NDArray[np.uint8], transfer_syntax: str, monochrome: bool
) -> None:
    data = encode_dicom(sample, transfer_syntax=transfer_syntax, monochrome=monochrome)
    assert data[128:132] == b"DICM"
    ds = _read_dicom(data)
    expected_ts = {
        "explicit_le": "1.2.840.10008.1.2.1",
        "implicit_le": "1.2.840.10008.1.2",
        "jpeg_baseline": "1.2.840.10008.1.2.4.50",
    }[transfer_syntax]
    assert ds.file_meta.TransferSyntaxUID == expected_ts
    assert ds.Modality == "OP"
    assert (ds.Rows, ds.Columns) == sample.shape[:2]
    assert ds.SamplesPerPixel == (1 if monochrome else 3)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (8, 8, 7)
    assert ds.PixelRepresentation == 0
    assert "NumberOfFrames" not in ds
    if monochrome:
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert "PlanarConfiguration" not in ds
        expected = _gray(sample)
    else:
        assert ds.PlanarConfiguration == 0
        assert ds.PhotometricInterpretation == (
            "YBR_FULL_422" if transfer_syntax == "jpeg_baseline" else "RGB"
        )
        expected = sample
    pixels = ds.pixel_array
    assert pixels.shape == expected.shape
    if transfer_syntax == "jpeg_baseline":
        assert np.abs(_diff(pixels, expected)).mean() < 4.0
    else:
        np.testing.assert_array_equal(pixels, expected)


def test_dicom_phi_and_identity_fields(sample: NDArray[np.uint8]) -> None:
    data = encode_dicom(
        sample, patient_name="DOE^JANE", patient_id="MRN-4242", patient_birth_date="19851231"
    )
    ds = _read_dicom(data)
    assert str(ds.PatientName) == "DOE^JANE"
    assert ds.PatientID == "MRN-4242"
    assert ds.PatientBirthDate == "19851231"
    for needle in (b"DOE^JANE", b"MRN-4242", b"19851231"):
        assert needle in data
    defaults = _read_dicom(encode_dicom(sample))
    assert str(defaults.PatientName) == "SYNTHETIC^PATIENT"
    assert defaults.PatientID == "SYN0001"
    assert defaults.PatientBirthDate == "19700101"
    for attr in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert str(getattr(defaults, attr))
    assert defaults.SOPInstanceUID == defaults.file_meta.MediaStorageSOPInstanceUID


@pytest.mark.parametrize("sop_class", sorted(DICOM_SOP_CLASSES))
def test_dicom_sop_classes(sample: NDArray[np.uint8], sop_class: str) -> None:
    ds = _read_dicom(encode_dicom(sample, sop_class=sop_class))
    assert ds.SOPClassUID == DICOM_SOP_CLASSES[sop_class]
    assert ds.file_meta.MediaStorageSOPClassUID == DICOM_SOP_CLASSES[sop_class]
    assert DICOM_SOP_CLASSES == {
        "op8": "1.2.840.10008.5.1.4.1.1.77.1.5.1",
        "op16": "1.2.840.10008.5.1.4.1.1.77.1.5.2",
        "sc": "1.2.840.10008.5.1.4.1.1.7",
    }


def test_dicom_laterality(sample: NDArray[np.uint8]) -> None:
    assert _read_dicom(encode_dicom(sample, laterality="L")).ImageLaterality == "L"
    assert _read_dicom(encode_dicom(sample, laterality="R")).ImageLaterality == "R"
    assert "ImageLaterality" not in _read_dicom(encode_dicom(sample, laterality=None))


@pytest.mark.parametrize("monochrome", [False, True])
def test_dicom_16_bit(sample: NDArray[np.uint8], monochrome: bool) -> None:
    ds = _read_dicom(encode_dicom(sample, bits=16, sop_class="op16", monochrome=monochrome))
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 16, 15)
    expected = (_gray(sample) if monochrome else sample).astype(np.uint16) * np.uint16(257)
    assert ds.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(ds.pixel_array, expected)


@pytest.mark.parametrize("transfer_syntax", ["explicit_le", "jpeg_baseline"])
def test_dicom_multiframe(sample: NDArray[np.uint8], transfer_syntax: str) -> None:
    ds = _read_dicom(encode_dicom(sample, number_of_frames=3, transfer_syntax=transfer_syntax))
    assert ds.NumberOfFrames == 3
    frames = ds.pixel_array
    assert frames.shape == (3, *sample.shape)
    np.testing.assert_array_equal(frames[0], frames[2])
    assert np.abs(_diff(frames[1], sample)).mean() < 4.0


def test_dicom_deterministic_uids(sample: NDArray[np.uint8]) -> None:
    a = encode_dicom(sample, seed=7)
    assert a == encode_dicom(sample, seed=7)
    da, db = _read_dicom(a), _read_dicom(encode_dicom(sample, seed=8))
    for attr in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert getattr(da, attr) != getattr(db, attr)
    assert len({da.SOPInstanceUID, da.StudyInstanceUID, da.SeriesInstanceUID}) == 3


def test_dicom_without_preamble(sample: NDArray[np.uint8]) -> None:
    full = encode_dicom(sample)
    raw = encode_dicom(sample, with_preamble=False)
    assert raw == full[132:]
    assert raw[:4] == b"\x02\x00\x00\x00"  # (0002,0000) File Meta Information Group Length
    with pytest.raises(InvalidDicomError):
        _read_dicom(raw)
    ds = _read_dicom(raw, force=True)
    assert str(ds.PatientName) == "SYNTHETIC^PATIENT"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(ds.pixel_array, sample)


def test_dicom_odd_length_pixel_data_is_padded() -> None:
    img = synthesize_fundus(0, width=29, height=29, seed=1)
    ds = _read_dicom(encode_dicom(img, monochrome=True))
    assert len(ds.PixelData) % 2 == 0
    np.testing.assert_array_equal(ds.pixel_array, _gray(img))


def test_dicom_errors(sample: NDArray[np.uint8]) -> None:
    with pytest.raises(NotImplementedError):
        encode_dicom(sample, transfer_syntax="jpeg_lossless")
    with pytest.raises(ValueError, match="uncompressed"):
        encode_dicom(sample, transfer_syntax="jpeg_baseline", bits=16)
    with pytest.raises(ValueError, match="transfer_syntax"):
        encode_dicom(sample, transfer_syntax="rle")
    with pytest.raises(ValueError, match="sop_class"):
        encode_dicom(sample, sop_class="ct")
    with pytest.raises(ValueError, match="bits"):
        encode_dicom(sample, bits=12)
    with pytest.raises(ValueError, match="number_of_frames"):
        encode_dicom(sample, number_of_frames=0)
    with pytest.raises(ValueError, match="laterality"):
        encode_dicom(sample, laterality="B")  # type: ignore[arg-type]


# --- CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff", "dicom"])
def test_cli_main(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"x.{fmt}"
    rc = main(
        ["--grade", "2", "--size", "120x90", "--seed", "3", "--format", fmt, "--out", str(out)]
    )
    assert rc == 0
    data = out.read_bytes()
    if fmt == "dicom":
        assert _read_dicom(data).pixel_array.shape == (90, 120, 3)
    else:
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (120, 90)
    if fmt == "png":
        expected = synthesize_fundus(2, width=120, height=90, seed=3)
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), expected)


def test_cli_module_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    cmd = [
        sys.executable,
        "-m",
        "synthetic",
        "--grade",
        "1",
        "--size",
        "64x48",
        "--format",
        "jpeg",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:2] == b"\xff\xd8"


def test_cli_rejects_bad_size(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--size", "big", "--out", str(tmp_path / "x.jpg")])


# SHA-256 of arrays and files made by fundus/synthetic.py before it became the synthetic package
# (same pinned numpy/OpenCV/Pillow/pydicom): the move must not change a single byte. A library
# upgrade that changes them needs the new digests checked and pinned here.
_PINNED = {
    "fundus g2 320x240 s0 R": "4f91c1f07daeb6420ce072be1e95bd86712069700b60865dead178158ce261ef",
    "fundus g4 777x555 s3 L": "864d8fddb9f2172bbc93b70b88ad7e2476156d71fe1abd3d1ec2d50884e5a217",
    "non document": "bfe6bfe804593f7ebd0f51f7b89887f03f875c907fe6a38cd05183c94793eee9",
    "jpeg": "8dd1b793d4d8d6458da285222a2112a2f0813566c80c0a885cef62c01af54c1d",
    "png16g": "2b73458836b3408592b2b98b7a844b9db7ae376c6191d07d41ec03bad2fc18d2",
    "tiff": "125297d193967d72a19663d06e0b085adc9c5febc9d77fbdd6ea87c252ad8b8c",
    "dicom jpeg_baseline op8": "ef04ef6de582f748652d4a1224d8937ca126f4788b819c4d11ec05ca689b2f46",
    "dicom implicit_le sc": "6646daa1302655dafcf2a2e16c4a214973e02cdddc08e1102b56fac1f0d410fb",
    "dicom16 mono 2f nopre": "17322b84a6073bd446b0a86932d176ba295625ac833605ef2ffd389c720bb018",
}


def test_output_bytes_pinned_across_the_move() -> None:
    photo = synthesize_fundus(3, width=400, height=300, seed=1)
    made = {
        "fundus g2 320x240 s0 R": synthesize_fundus(2, width=320, height=240, seed=0).tobytes(),
        "fundus g4 777x555 s3 L": synthesize_fundus(
            4, width=777, height=555, seed=3, laterality="L"
        ).tobytes(),
        "non document": synthesize_non_fundus("document", width=300, height=200, seed=2).tobytes(),
        "jpeg": encode_jpeg(photo),
        "png16g": encode_png(photo, bit_depth=16, grayscale=True),
        "tiff": encode_tiff(photo),
        "dicom jpeg_baseline op8": encode_dicom(photo, transfer_syntax="jpeg_baseline", seed=4),
        "dicom implicit_le sc": encode_dicom(
            photo, transfer_syntax="implicit_le", sop_class="sc", seed=4
        ),
        "dicom16 mono 2f nopre": encode_dicom(
            photo,
            bits=16,
            monochrome=True,
            number_of_frames=2,
            with_preamble=False,
            laterality=None,
        ),
    }
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in made.items()}
    assert digests == _PINNED
