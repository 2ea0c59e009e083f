"""Raster decoding (JPEG fast path, PNG 8/16 bit, TIFF) and limits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fundus import (
    CorruptImage,
    DecodeLimits,
    ImageFormat,
    ImageTooLarge,
    ImageTooSmall,
    decode_image,
)
from fundus.raster import choose_reduced_scale, to_rgb8
from synthetic import encode_jpeg, encode_png, encode_tiff, synthesize_fundus


@pytest.fixture(scope="module")
def large_photo() -> np.ndarray:
    return synthesize_fundus(2, width=3000, height=2250, seed=11)


@pytest.mark.parametrize(
    ("width", "height", "target", "expected"),
    [
        (4928, 3264, 512, 4),
        (2592, 1944, 512, 2),
        (4096, 4096, 512, 8),
        (1000, 800, 512, 1),
        (4928, 3264, None, 1),
        (600, 600, 64, 8),
    ],
)
def test_choose_reduced_scale(width: int, height: int, target: int | None, expected: int) -> None:
    assert choose_reduced_scale(width, height, target) == expected


def test_jpeg_fast_path_decodes_at_reduced_scale(large_photo: np.ndarray) -> None:
    data = encode_jpeg(large_photo, quality=95)
    reduced, info = decode_image(data, target_size=512)
    assert info.format is ImageFormat.JPEG
    assert (info.source_width, info.source_height) == (3000, 2250)
    assert info.reduced_scale == 4
    assert reduced.shape == (563, 750, 3)
    assert reduced.dtype == np.uint8
    full, full_info = decode_image(data)
    assert full_info.reduced_scale == 1
    assert full.shape == (2250, 3000, 3)
    # Both paths agree once brought to the same size.
    shrunk = cv2.resize(full, (750, 563), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - reduced.astype(int)).mean() < 3.0


def test_png_8bit_round_trip_is_exact() -> None:
    image = synthesize_fundus(1, width=200, height=150, seed=2)
    decoded, info = decode_image(encode_png(image))
    assert info.format is ImageFormat.PNG
    assert info.bits_stored == 8
    np.testing.assert_array_equal(decoded, image)


def test_png_16bit_scaled_to_8bit() -> None:
    image = synthesize_fundus(1, width=200, height=150, seed=2)
    decoded, info = decode_image(encode_png(image, bit_depth=16))
    assert info.bits_stored == 16
    assert np.abs(decoded.astype(int) - image.astype(int)).max() <= 1


def test_png_grayscale_becomes_three_equal_channels() -> None:
    image = synthesize_fundus(0, width=120, height=100, seed=3)
    decoded, _ = decode_image(encode_png(image, grayscale=True))
    assert decoded.shape == (100, 120, 3)
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 2])


def test_png_with_alpha_drops_alpha() -> None:
    rgba = np.dstack([np.full((40, 50, 3), 90, np.uint8), np.full((40, 50), 7, np.uint8)])
    ok, encoded = cv2.imencode(".png", rgba)
    assert ok
    decoded, _ = decode_image(encoded.tobytes())
    assert decoded.shape == (40, 50, 3)
    assert (decoded == 90).all()


def test_tiff_decodes() -> None:
    image = synthesize_fundus(3, width=160, height=120, seed=4)
    decoded, info = decode_image(encode_tiff(image))
    assert info.format is ImageFormat.TIFF
    np.testing.assert_array_equal(decoded, image)


def test_to_rgb8_scales_by_stored_bits() -> None:
    twelve_bit = np.array([[0, 2048, 4095]], dtype=np.uint16)
    assert to_rgb8(twelve_bit, bits_stored=12)[0, :, 0].tolist() == [0, 128, 255]


def test_byte_limit() -> None:
    data = encode_png(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, DecodeLimits(max_bytes=len(data) - 1))
    assert caught.value.code == "image_too_large"


def test_png_decompression_bomb_refused_before_decoding() -> None:
    # 6000x6000 black compresses to a few tens of kB but would decode to 108 MB.
    bomb = encode_png(np.zeros((6000, 6000, 3), np.uint8))
    assert len(bomb) < 500_000
    with pytest.raises(ImageTooLarge):
        decode_image(bomb, DecodeLimits(max_pixels=20_000_000))


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    index = data.index(b"\xff\xc0")  # SOF0: FFC0, length(2), precision(1), height(2), width(2)
    return (
        data[: index + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[index + 9 :]
    )


def test_jpeg_header_claiming_huge_size_is_refused() -> None:
    tiny = encode_jpeg(np.full((16, 16, 3), 100, np.uint8))
    with pytest.raises(ImageTooLarge):
        decode_image(_patch_jpeg_size(tiny, 65000, 65000))


def test_png_header_claiming_huge_size_is_refused() -> None:
    tiny = bytearray(encode_png(np.zeros((16, 16, 3), np.uint8)))
    tiny[16:24] = (100_000).to_bytes(4, "big") + (100_000).to_bytes(4, "big")
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(tiny))


def test_too_small_image() -> None:
    with pytest.raises(ImageTooSmall) as caught:
        decode_image(encode_png(np.zeros((8, 8, 3), np.uint8)))
    assert caught.value.code == "image_too_small"


@pytest.mark.parametrize("encoder", [encode_jpeg, encode_png, encode_tiff])
def test_truncated_files_are_corrupt_not_silently_grey(encoder) -> None:
    data = encoder(synthesize_fundus(2, width=400, height=300, seed=5))
    with pytest.raises(CorruptImage) as caught:
        decode_image(data[: len(data) * 2 // 3])
    assert caught.value.code == "corrupt_image"
