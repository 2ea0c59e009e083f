"""The fast preprocessing path gives the pixels and verdicts of the straightforward one.

Issue 18 item 4 made preprocessing cheaper without changing its output: JPEGs decode through
OpenCV (same libjpeg-turbo as Pillow's ``draft``), the quality measures use masked sums instead
of ``cv2.mean(mask=...)`` and uint8 gradients, and the JPEG cost estimate reads the first scan
header instead of scanning the file. Each test compares with the straightforward computation.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from fundus import CorruptImage, DecodeLimits, PreprocessConfig, decode_image, preprocess_image
from fundus.budget import _multi_scan, jpeg_frame_header
from fundus.quality import measure
from fundus.raster import _decode_jpeg_pillow, choose_reduced_scale, decode_jpeg
from synthetic import encode_jpeg, synthesize_fundus


def _pillow_jpeg(image: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def _pillow_decode(data: bytes, target_size: int | None) -> np.ndarray:
    """What decode_jpeg returned before: Pillow ``draft`` + ``convert('RGB')``."""
    image = Image.open(io.BytesIO(data))
    scale = choose_reduced_scale(image.width, image.height, target_size)
    return _decode_jpeg_pillow(image, image.width, image.height, scale)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return synthesize_fundus(3, width=2200, height=1650, seed=4)


@pytest.mark.parametrize("target_size", [None, 1024, 512, 256])
@pytest.mark.parametrize("kind", ["420", "444", "gray", "progressive"])
def test_opencv_jpeg_decode_matches_pillow_draft(
    photo: np.ndarray, kind: str, target_size: int | None
) -> None:
    if kind == "gray":
        data = _pillow_jpeg(np.ascontiguousarray(photo[:, :, 1]))
    elif kind == "444":
        data = _pillow_jpeg(photo, subsampling=0)
    else:
        data = _pillow_jpeg(photo, progressive=kind == "progressive")
    decoded, info = decode_jpeg(data, DecodeLimits(), target_size)
    expected = _pillow_decode(data, target_size)
    assert decoded.shape == expected.shape
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, expected)
    assert info.reduced_scale == choose_reduced_scale(2200, 1650, target_size)


def test_cmyk_jpeg_keeps_the_pillow_conversion(photo: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo).convert("CMYK").save(buffer, "JPEG", quality=90)
    decoded, _ = decode_jpeg(buffer.getvalue(), DecodeLimits(), 512)
    np.testing.assert_array_equal(decoded, _pillow_decode(buffer.getvalue(), 512))


def test_exif_orientation_is_ignored_as_before(photo: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": never applied by this pipeline
    data = _pillow_jpeg(photo, exif=exif.tobytes())
    decoded, info = decode_image(data, target_size=512)
    assert (info.decoded_width, info.decoded_height) == (1100, 825)
    np.testing.assert_array_equal(decoded, _pillow_decode(data, 512))


def test_damaged_jpeg_scan_is_corrupt(photo: np.ndarray) -> None:
    data = encode_jpeg(photo)
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2], target_size=512)


def _first_sos(data: bytes) -> int:
    return data.index(b"\xff\xda")


def test_multi_scan_follows_libjpeg(photo: np.ndarray) -> None:
    small = np.ascontiguousarray(photo[:400, :600])
    cases = {
        "baseline": (_pillow_jpeg(small), False),
        "progressive": (_pillow_jpeg(small, progressive=True), True),
        "gray": (_pillow_jpeg(np.ascontiguousarray(small[:, :, 0])), False),
    }
    first_scan_one_component = bytearray(cases["baseline"][0])
    first_scan_one_component[_first_sos(cases["baseline"][0]) + 4] = 1  # Ns 3 -> 1
    cases["non_interleaved"] = (bytes(first_scan_one_component), True)
    for name, (data, expected) in cases.items():
        _, _, _, marker, components, sof_at = jpeg_frame_header(data)
        assert _multi_scan(data, marker, len(components), sof_at) is expected, name
        if name != "non_interleaved":  # the old rule: a second SOS marker after the frame
            assert (data.count(b"\xff\xda", sof_at) > 1) is expected, name


def _reference_measure(analysis: np.ndarray, threshold: int) -> dict[str, float]:
    """The quality measures as first written: bool masks, cv2.mean(mask=...), float32."""
    brightest = analysis.max(axis=2)
    disc = (brightest > threshold).astype(np.uint8)
    inner = cv2.erode(disc, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    count = int(cv2.countNonZero(inner))
    if count < 100:
        return {"mean_luma": 0.0, "saturated_fraction": 0.0, "sharpness": 0.0}
    luma = cv2.cvtColor(analysis, cv2.COLOR_RGB2GRAY)
    saturated = int(((brightest >= 250) & (inner > 0)).sum())
    green = analysis[:, :, 1].astype(np.float32)
    mx, my = np.ascontiguousarray(inner[:, 1:]), np.ascontiguousarray(inner[1:, :])

    def gradient(channel: np.ndarray) -> float:
        dx = cv2.absdiff(channel[:, 1:], channel[:, :-1])
        dy = cv2.absdiff(channel[1:, :], channel[:-1, :])
        return float(cv2.mean(dx, mask=mx)[0] + cv2.mean(dy, mask=my)[0])

    before = gradient(green)
    after = gradient(cv2.GaussianBlur(green, (0, 0), 2.0))
    sharpness = 0.0 if before <= 1e-6 else float(np.clip(1.0 - after / before, 0.0, 1.0))
    return {
        "mean_luma": float(cv2.mean(luma, mask=inner)[0]),
        "saturated_fraction": saturated / count,
        "sharpness": sharpness,
    }


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"blur_sigma": 3.0}, {"brightness": 0.15}, {"brightness": 3.0}, {"blur_sigma": 12.0}],
)
def test_quality_measures_match_the_straightforward_computation(kwargs: dict[str, float]) -> None:
    photo = synthesize_fundus(2, width=1200, height=900, seed=7, **kwargs)  # type: ignore[arg-type]
    analysis = preprocess_image(photo, PreprocessConfig(size=512)).image
    fast, reference = measure(analysis, 10), _reference_measure(analysis, 10)
    assert fast.keys() == reference.keys()
    for key, value in reference.items():
        assert fast[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
