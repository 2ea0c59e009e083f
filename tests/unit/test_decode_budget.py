"""Decoded-byte estimates from headers (fundus/budget.py), the decoded-size bound, and parity of
the float-free 16-bit conversion with the float32 one it replaced (issue 14, finding 2)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fundus.budget import admit, check_cost, decode_cost
from fundus.config import DecodeLimits
from fundus.decode import decode_image
from fundus.errors import CorruptImage, FundusError, ImageTooLarge
from fundus.types import ImageFormat
from harness.processes import REPO_ROOT
from reliability.hostile_images import TiffPage, png, tiff
from synthetic import encode_dicom, encode_jpeg, synthesize_fundus

MIB = 1024 * 1024


def float_reference(array: np.ndarray, bits: int = 16) -> np.ndarray:
    """The conversion of fundus/raster.py before the fix: clip, scale in float32, round."""
    max_value = float((1 << bits) - 1)
    clipped = np.clip(array.astype(np.float32), 0.0, max_value)
    return np.asarray(np.rint(clipped * (255.0 / max_value)), dtype=np.uint8)


def old_png_decode(data: bytes) -> np.ndarray:
    """decode_png before the fix: IMREAD_UNCHANGED, BGR(A) -> RGB, float scaling, drop alpha."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    if decoded.ndim == 3 and decoded.shape[2] >= 3:
        decoded = decoded[:, :, [2, 1, 0]]
    if decoded.dtype != np.uint8:
        decoded = float_reference(decoded)
    if decoded.ndim == 2:
        return np.repeat(decoded[:, :, None], 3, axis=2)
    if decoded.shape[2] in (1, 2):
        return np.repeat(decoded[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(decoded[:, :, :3])


def _pillow_png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _png_variants() -> dict[str, bytes]:
    """Every PNG colour type at 8 bit (and below) from a synthetic photograph."""
    rgb = Image.fromarray(synthesize_fundus(2, width=180, height=140, seed=5))
    rgba = rgb.copy()
    rgba.putalpha(
        Image.fromarray(np.linspace(0, 255, 180 * 140).astype(np.uint8).reshape(140, 180))
    )
    gray = rgb.convert("L")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return {
        "rgb": _pillow_png(rgb),
        "rgba": _pillow_png(rgba),
        "gray": _pillow_png(gray),
        "gray_alpha": _pillow_png(rgba.convert("LA")),
        "palette": _pillow_png(palette),
        "palette_trns": _pillow_png(palette, transparency=3),
        "gray_1bit": _pillow_png(gray.convert("1")),
    }


@pytest.mark.parametrize("kind", sorted(_png_variants()))
def test_8bit_png_decodes_exactly_as_before(kind: str) -> None:
    data = _png_variants()[kind]
    decoded, _ = decode_image(data)
    np.testing.assert_array_equal(decoded, old_png_decode(data))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_is_within_one_level_of_before(channels: int) -> None:
    rng = np.random.default_rng(channels)
    array = rng.integers(0, 65536, size=(64, 80, channels), dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", array if channels > 1 else array[:, :, 0])
    assert ok
    decoded, info = decode_image(encoded.tobytes())
    assert info.bits_stored == 16
    before = old_png_decode(encoded.tobytes())
    assert np.abs(decoded.astype(int) - before.astype(int)).max() <= 1  # high byte vs /257


@pytest.mark.parametrize("bits", [16, 12, 10, 9])
def test_16bit_conversion_equals_the_float_one(bits: int) -> None:
    from fundus.raster import to_rgb8

    rng = np.random.default_rng(bits)
    gray = rng.integers(0, 65536, size=(300, 301), dtype=np.uint16)  # also above 2^bits - 1
    every_value = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    for array in (gray, every_value, np.dstack([gray, gray[::-1], gray[:, ::-1]])):
        expected = float_reference(array, bits)
        if expected.ndim == 2:
            expected = np.repeat(expected[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(to_rgb8(array, bits_stored=bits), expected)


def test_16bit_gray_tiff_decodes_exactly_as_before() -> None:
    data = tiff(TiffPage(200, 150, channels=1, bits=16))
    before = np.asarray(Image.open(io.BytesIO(data))).astype(np.uint16)
    decoded, _ = decode_image(data)
    np.testing.assert_array_equal(decoded, np.repeat(float_reference(before)[:, :, None], 3, 2))


def test_png_raster_counts_channels_and_bit_depth() -> None:
    cost = decode_cost(png(7000, 7000, channels=4, bits=16))
    assert (cost.format, cost.channels, cost.bytes_per_sample) == (ImageFormat.PNG, 4, 2)
    assert cost.raster_bytes == 7000 * 7000 * 4 * 2
    assert decode_cost(png(300, 200, channels=1, bits=8)).raster_bytes == 300 * 200


def test_the_reviews_png_is_refused_from_its_header() -> None:
    data = png(7000, 7000, channels=4, bits=16)  # 49 M pixels: under the pixel limit
    assert len(data) < 500 * 1024
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="decodes to 392000000 bytes"):
        decode_image(data)
    assert time.perf_counter() - started < 0.5  # no decode happened (one takes seconds)


def test_8bit_rgb_photograph_at_the_pixel_limit_is_admitted() -> None:
    check_cost(decode_cost(png(7000, 7000, channels=3, bits=8)), DecodeLimits())


def test_tiff_estimates_strips_tiles_pages() -> None:
    deflate = decode_cost(tiff(TiffPage(7000, 7000, channels=1, bits=16)))
    assert deflate.raster_bytes == 7000 * 7000 * 2
    tiled = decode_cost(tiff(TiffPage(600, 400, 3, 16, tile=(256, 128)), TiffPage(20, 20)))
    assert (tiled.width, tiled.raster_bytes, tiled.buffer_bytes) == (
        600,
        600 * 400 * 6,
        256 * 128 * 6,
    )
    with pytest.raises(ImageTooLarge):
        decode_image(tiff(TiffPage(7000, 7000, channels=3, bits=16)))


def test_lzw_tiff_estimate() -> None:
    buffer = io.BytesIO()
    Image.fromarray(synthesize_fundus(1, width=320, height=240, seed=1)).save(
        buffer, format="TIFF", compression="tiff_lzw"
    )
    cost = decode_cost(buffer.getvalue())
    assert (cost.width, cost.height, cost.channels, cost.raster_bytes) == (
        320,
        240,
        3,
        320 * 240 * 3,
    )


def test_a_tiff_tile_larger_than_the_bound_is_refused() -> None:
    data = tiff(TiffPage(64, 64, channels=3, bits=8, tile=(64, 64)))
    # TileWidth/TileLength (322/323) rewritten to 16384 x 8192: libtiff would size its tile
    # buffer from them (402 MB) for a 64 x 64 image.
    patched = bytearray(data)
    for tag, value in ((322, 16384), (323, 8192)):
        at = patched.find(
            tag.to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
        )
        patched[at + 8 : at + 12] = value.to_bytes(4, "little")
    with pytest.raises(ImageTooLarge, match="tile"):
        decode_image(bytes(patched))


def test_a_tiff_strip_past_the_end_is_corrupt() -> None:
    patched = bytearray(tiff(TiffPage(64, 64, channels=3, bits=8, rows_per_strip=64)))
    entry = (279).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
    at = patched.find(entry)  # StripByteCounts of the one strip: declare 100 MB
    patched[at + 8 : at + 12] = (100_000_000).to_bytes(4, "little")
    with pytest.raises(CorruptImage, match="past the end"):
        decode_image(bytes(patched))


def test_jpeg_coefficients_counted_for_multi_scan_files_only() -> None:
    image = np.full((3000, 4000, 3), 90, np.uint8)
    ok, baseline = cv2.imencode(".jpg", image)
    ok2, progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and ok2
    baseline_cost = decode_cost(baseline.tobytes(), target_size=512)
    progressive_cost = decode_cost(progressive.tobytes(), target_size=512)
    assert baseline_cost.raster_bytes == progressive_cost.raster_bytes == 4000 * 3000 * 3
    # 4:2:0: luma 4000x3000 and two 2000x1500 chroma planes, 2 bytes a coefficient
    coefficients = 2 * (4000 * 3000 + 2 * 2000 * 1500)
    assert progressive_cost.working_bytes >= coefficients
    assert baseline_cost.working_bytes < coefficients  # decoded at 1/4 scale, no coefficients


def test_dicom_estimate() -> None:
    data = encode_dicom(synthesize_fundus(1, width=640, height=480, seed=3))
    cost = decode_cost(data)
    assert (cost.format, cost.width, cost.height, cost.channels) == (ImageFormat.DICOM, 640, 480, 3)
    assert cost.raster_bytes == 640 * 480 * 3 * cost.bytes_per_sample


PEAK_SCRIPT = """
import json, sys
from fundus.budget import decode_cost
from fundus.config import PreprocessConfig
from fundus.pipeline import load_and_preprocess

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
cost = decode_cost(data, 512)
open("/proc/self/clear_refs", "w").write("5")  # peak := current RSS
before = kib("VmRSS")
load_and_preprocess(data, PreprocessConfig())
print(json.dumps({"measured": (kib("VmHWM") - before) * 1024, "estimate": cost.working_bytes}))
"""


def _corpus_for_peaks() -> dict[str, bytes]:
    ok, progressive = cv2.imencode(
        ".jpg", np.full((3000, 4000, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    )
    assert ok
    return {
        "png_rgba16": png(3000, 3000, channels=4, bits=16),
        "png_gray8": png(4000, 3000, channels=1, bits=8),
        "tiff_rgb8": tiff(TiffPage(4000, 3000, channels=3, bits=8)),
        "tiff_gray16": tiff(TiffPage(4000, 3000, channels=1, bits=16)),
        "jpeg_progressive": progressive.tobytes(),
    }


@pytest.mark.parametrize("kind", sorted(_corpus_for_peaks()))
def test_estimate_covers_a_real_decode(kind: str, tmp_path: Path) -> None:
    """Decode + preprocess in a fresh process: its peak RSS growth stays under the estimate,
    and the estimate is not absurdly loose (at most 3x)."""
    path = tmp_path / kind
    path.write_bytes(_corpus_for_peaks()[kind])
    output = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    assert figures["measured"] <= figures["estimate"] <= 3 * figures["measured"], figures


def test_damaged_headers_raise_only_fundus_errors() -> None:
    """Bytes flipped in the first 700 (the headers) of each format: a FundusError or a cost,
    never another exception (the gateway would answer 500)."""
    image = synthesize_fundus(1, width=300, height=200, seed=1)
    rng = np.random.default_rng(0)
    for data in (encode_jpeg(image), _pillow_png(Image.fromarray(image)), tiff(TiffPage(300, 200))):
        for _ in range(1000):
            damaged = bytearray(data)
            for position in rng.integers(0, 700, size=rng.integers(1, 9)):
                damaged[position] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                damaged = damaged[: int(rng.integers(4, 800))]
            with contextlib.suppress(FundusError):
                decode_cost(bytes(damaged), 512)


def test_encoded_size_is_checked_before_the_format() -> None:
    """The order decode_image always had (the gateway checks before queueing, in the same order):
    random bytes over the byte limit are image_too_large, not unsupported_format."""
    with pytest.raises(ImageTooLarge, match="upload of 2048 bytes"):
        admit(bytes(range(256)) * 8, DecodeLimits(max_bytes=1024))
