"""Raster file encoders: baseline JPEG, 8/16-bit PNG and uncompressed TIFF."""

from __future__ import annotations

import io

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fundus.types import RGBImage


def check_rgb(image: RGBImage) -> NDArray[np.uint8]:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB [H, W, 3], got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def gray(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


_SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


def encode_jpeg(image: RGBImage, *, quality: int = 92, subsampling: str = "4:2:0") -> bytes:
    """Baseline (non-progressive) JPEG via Pillow; subsampling "4:4:4", "4:2:2" or "4:2:0"."""
    rgb = check_rgb(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if subsampling not in _SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {_SUBSAMPLING}, got {subsampling!r}")
    return jpeg_bytes(Image.fromarray(rgb, "RGB"), quality, subsampling)


def jpeg_bytes(img: Image.Image, quality: int, subsampling: str) -> bytes:
    buf = io.BytesIO()
    img.save(
        buf, "JPEG", quality=quality, subsampling=subsampling, progressive=False, optimize=False
    )
    return buf.getvalue()


def encode_png(image: RGBImage, *, bit_depth: int = 8, grayscale: bool = False) -> bytes:
    """PNG via OpenCV: 8 or 16 bit (16-bit samples are value * 257), RGB or grayscale."""
    rgb = check_rgb(image)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    arr: NDArray[np.uint8] | NDArray[np.uint16]
    pix = gray(rgb) if grayscale else np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8)
    arr = pix.astype(np.uint16) * np.uint16(257) if bit_depth == 16 else pix
    ok, encoded = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("cv2.imencode failed to encode PNG")
    return bytes(encoded.tobytes())


def encode_tiff(image: RGBImage) -> bytes:
    """Uncompressed 8-bit RGB TIFF via Pillow."""
    rgb = check_rgb(image)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "TIFF")
    return buf.getvalue()
