"""Quality gate on real and synthetic photographs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fundus import REASONS, PreprocessConfig, load_and_preprocess, preprocess_image
from synthetic import encode_jpeg, synthesize_fundus, synthesize_non_fundus

CONFIG = PreprocessConfig()


@pytest.mark.parametrize("grade", range(5))
def test_synthetic_photos_are_gradable(grade: int) -> None:
    photo = synthesize_fundus(grade, width=1600, height=1200, seed=grade)
    quality = load_and_preprocess(encode_jpeg(photo), CONFIG).quality
    assert quality.gradable, quality
    assert quality.score >= 0.5
    assert quality.reasons == ()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"blur_sigma": 12.0}, "blurred"),
        ({"brightness": 0.12}, "too_dark"),
        ({"brightness": 3.5}, "overexposed"),
    ],
)
def test_degraded_photos_are_ungradable_with_the_right_reason(
    kwargs: dict[str, float], reason: str
) -> None:
    photo = synthesize_fundus(1, width=1600, height=1200, seed=5, **kwargs)  # type: ignore[arg-type]
    quality = preprocess_image(photo, CONFIG).quality
    assert not quality.gradable
    assert reason in quality.reasons
    assert quality.score < 0.5


@pytest.mark.parametrize("kind", ["document", "noise", "black", "gradient"])
def test_non_fundus_pictures_are_ungradable(kind: str) -> None:
    quality = preprocess_image(synthesize_non_fundus(kind, seed=2), CONFIG).quality
    assert not quality.gradable
    assert quality.reasons == ("no_fundus_disc",) or kind == "black"
    assert set(quality.reasons) <= set(REASONS)


def test_overexposed_kind_is_ungradable() -> None:
    quality = preprocess_image(synthesize_non_fundus("overexposed", seed=2), CONFIG).quality
    assert not quality.gradable


def test_thumbnail_is_low_resolution() -> None:
    quality = preprocess_image(synthesize_fundus(2, width=28, height=28, seed=1), CONFIG).quality
    assert "low_resolution" in quality.reasons


def test_score_and_verdict_agree() -> None:
    for seed in range(4):
        photo = synthesize_fundus(seed % 5, width=900, height=700, seed=seed, blur_sigma=seed * 2.0)
        quality = preprocess_image(photo, CONFIG).quality
        assert quality.gradable == (quality.score >= 0.5)


@pytest.mark.shared_data
def test_all_real_eyepacs_samples_are_gradable(eyepacs_files: list[Path]) -> None:
    assert len(eyepacs_files) == 6
    for path in eyepacs_files:
        quality = load_and_preprocess(path.read_bytes(), CONFIG).quality
        assert quality.gradable, (path.name, quality)


@pytest.mark.shared_data
def test_real_eyepacs_blurred_is_not_gradable(eyepacs_files: list[Path]) -> None:
    import cv2
    import numpy as np

    from fundus import decode_image

    image, _ = decode_image(eyepacs_files[0].read_bytes(), target_size=512)
    blurred = cv2.GaussianBlur(image, (0, 0), 6.0)
    quality = preprocess_image(np.ascontiguousarray(blurred), CONFIG).quality
    assert "blurred" in quality.reasons


@pytest.mark.shared_data
def test_phantom_op_dicom_is_ungradable(dicom_dir: Path) -> None:
    quality = load_and_preprocess((dicom_dir / "dcmjs_sample-op.dcm").read_bytes(), CONFIG).quality
    assert not quality.gradable
    assert quality.reasons == ("no_fundus_disc",)


@pytest.mark.shared_data
def test_real_op_dicom_fundus_is_gradable(dicom_dir: Path) -> None:
    result = load_and_preprocess(
        (dicom_dir / "op_fundus_eyepacs15right_grade2.dcm").read_bytes(), CONFIG
    )
    assert result.quality.gradable
    assert result.laterality == "R"


@pytest.mark.parametrize("size", [64, 224, 512])
def test_verdict_does_not_depend_on_the_model_input_size(size: int) -> None:
    data = encode_jpeg(synthesize_fundus(2, width=2400, height=1800, seed=8))
    reference = load_and_preprocess(data, CONFIG).quality
    quality = load_and_preprocess(data, PreprocessConfig(size=size)).quality
    assert quality.gradable == reference.gradable
    assert quality.score == pytest.approx(reference.score, abs=0.02)
