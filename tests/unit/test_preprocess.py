"""Disc location, crop/pad/resize and Ben Graham."""

from __future__ import annotations

import numpy as np
import pytest

from fundus import PreprocessConfig, preprocess_image
from fundus.preprocess import ben_graham, crop_to_square, locate_disc, resize_square
from synthetic import synthesize_fundus


def _disc(width: int, height: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    image = np.zeros((height, width, 3), np.uint8)
    image[inside] = (160, 80, 40)
    return image


def test_locate_disc_finds_an_off_centre_disc() -> None:
    geometry = locate_disc(_disc(800, 600, centre=(300, 280), radius=200), threshold=10)
    x0, y0, x1, y1 = geometry.bbox
    assert geometry.found
    assert abs(x0 - 100) <= 4 and abs(x1 - 501) <= 4
    assert abs(y0 - 80) <= 4 and abs(y1 - 481) <= 4
    assert geometry.fill_ratio == pytest.approx(np.pi / 4, abs=0.03)
    assert geometry.corner_fill < 0.05


def test_locate_disc_clipped_top_and_bottom() -> None:
    geometry = locate_disc(_disc(900, 600, centre=(450, 300), radius=360), threshold=10)
    x0, y0, x1, y1 = geometry.bbox
    assert (y0, y1) == (0, 600)
    assert abs((x1 - x0) - 721) <= 6
    assert geometry.diameter == x1 - x0


def test_black_image_has_no_disc() -> None:
    geometry = locate_disc(np.zeros((100, 100, 3), np.uint8), threshold=10)
    assert not geometry.found
    assert geometry.bbox == (0, 0, 100, 100)


def test_speckles_are_not_a_disc() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    image[::37, ::41] = 255
    assert not locate_disc(image, threshold=10).found


def test_crop_to_square_pads_centred() -> None:
    image = np.full((50, 80, 3), 200, np.uint8)
    square = crop_to_square(image, (10, 5, 70, 45))
    assert square.shape == (60, 60, 3)
    assert (square[:10] == 0).all() and (square[-10:] == 0).all()
    assert (square[10:50] == 200).all()


def test_resize_square_both_directions() -> None:
    square = np.full((100, 100, 3), 50, np.uint8)
    assert resize_square(square, 40).shape == (40, 40, 3)
    assert resize_square(square, 300).shape == (300, 300, 3)
    assert resize_square(square, 100) is square


def test_preprocess_output_contract() -> None:
    photo = synthesize_fundus(2, width=1024, height=768, seed=3)
    result = preprocess_image(photo, PreprocessConfig(size=384))
    assert result.image.shape == (384, 384, 3)
    assert result.image.dtype == np.uint8
    # Cropped to the disc: along the middle row the disc spans the whole square.
    bright = np.flatnonzero(result.image[192].max(axis=1) > 30)
    assert bright[0] <= 3
    assert bright[-1] >= 380


def test_preprocess_upsamples_thumbnails() -> None:
    thumbnail = synthesize_fundus(0, width=28, height=28, seed=1)
    assert preprocess_image(thumbnail, PreprocessConfig(size=224)).image.shape == (224, 224, 3)


def test_preprocess_rejects_wrong_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((10, 10), np.uint8), PreprocessConfig())
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((10, 10, 3), np.float32), PreprocessConfig())  # type: ignore[arg-type]


def test_ben_graham_centres_on_128_and_masks_outside_the_disc() -> None:
    config = PreprocessConfig(size=256, ben_graham=True)
    square = resize_square(
        crop_to_square(_disc(300, 300, (150, 150), 140), (10, 10, 291, 291)), 256
    )
    out = ben_graham(square, config)
    assert out[0, 0].tolist() == [128, 128, 128]
    assert abs(float(out[128, 128].mean()) - 128) < 3  # flat disc interior -> ~128


def test_ben_graham_without_mask_keeps_the_rim() -> None:
    config = PreprocessConfig(size=128, ben_graham=True, circle_mask=False)
    square = resize_square(_disc(128, 128, (64, 64), 60), 128)
    out = ben_graham(square, config)
    assert out[0, 0].tolist() != [128, 128, 128] or out[64, 3].tolist() != [128, 128, 128]


def test_preprocess_is_deterministic() -> None:
    photo = synthesize_fundus(4, width=800, height=600, seed=9)
    config = PreprocessConfig(size=256, ben_graham=True)
    np.testing.assert_array_equal(
        preprocess_image(photo, config).image, preprocess_image(photo, config).image
    )
