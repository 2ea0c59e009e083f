"""Canvas arithmetic shared by the drawing modules: sizes, fixed-point points, masks, blends."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

_MAX_WORK = 1024
"""Longest side of the working canvas; larger outputs are resized up from it."""
_MIN_WORK = 256
"""Shortest side of the working canvas when that fits; smaller outputs are resized down."""
_MIN_SIDE = 8
_MAX_SIDE = 16384
DISC_FRACTION = 0.92
"""Diameter of the circular retinal field as a fraction of min(width, height)."""
SHIFT = 4
SUB = float(1 << SHIFT)
"""Fixed-point sub-pixel precision for OpenCV drawing calls."""


def pt(x: float, y: float) -> tuple[int, int]:
    """Fixed-point point for OpenCV drawing with ``shift=SHIFT``."""
    return (round(x * SUB), round(y * SUB))


def fixed(v: float) -> int:
    """Fixed-point scalar (radius, axis) for OpenCV drawing with ``shift=SHIFT``."""
    return max(1, round(v * SUB))


def smooth_noise(rng: np.random.Generator, width: int, height: int, cells: float) -> F32:
    """Zero-mean, unit-ish std smooth noise: a random grid of ~``cells`` cells across, upsampled."""
    gw = max(2, round(cells * width / max(width, height)))
    gh = max(2, round(cells * height / max(width, height)))
    grid = rng.standard_normal((gh + 2, gw + 2)).astype(np.float32)
    up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(up, dtype=np.float32)


def gauss(xs: F32, ys: F32, x0: float, y0: float, sigma: float) -> F32:
    """Isotropic Gaussian bump (peak 1) on the grid given by 1-D coordinates ``xs``, ``ys``."""
    k = np.float32(-0.5 / (sigma * sigma))
    gx = np.exp((xs - np.float32(x0)) ** 2 * k)
    gy = np.exp((ys - np.float32(y0)) ** 2 * k)
    return np.asarray(gy[:, None] * gx[None, :], dtype=np.float32)


def _roi(alpha: F32) -> tuple[slice, slice] | None:
    """Bounding box of the non-zero part of ``alpha`` (None when all zero)."""
    nz = alpha > 0
    rows = np.flatnonzero(nz.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(nz.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def darken(img: F32, alpha: F32, factor: Sequence[float]) -> None:
    """In place on planar [3, H, W]: scale channel c towards ``factor[c]`` where alpha > 0."""
    roi = _roi(alpha)
    if roi is None:
        return
    a = alpha[roi]
    for c, f in enumerate(factor):
        if f != 1.0:
            img[c][roi] *= np.float32(1.0) - a * np.float32(1.0 - f)


def paint(img: F32, alpha: F32, colour: Sequence[float], illum: F32 | None) -> None:
    """In place on planar [3, H, W]: blend towards ``colour`` (times ``illum``) where alpha > 0."""
    roi = _roi(alpha)
    if roi is None:
        return
    a = alpha[roi]
    for c, value in enumerate(colour):
        plane = img[c][roi]
        target = np.float32(value) if illum is None else illum[roi] * np.float32(value)
        plane += a * (target - plane)


def u8_to_alpha(mask: NDArray[np.uint8]) -> F32:
    return np.asarray(mask, dtype=np.float32) * np.float32(1.0 / 255.0)


def check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"{name} must be an int, got {v!r}")
        if not _MIN_SIDE <= v <= _MAX_SIDE:
            raise ValueError(f"{name} must be in {_MIN_SIDE}..{_MAX_SIDE}, got {v}")


def working_size(width: int, height: int) -> tuple[int, int]:
    """Working canvas size: long side <= 1024, short side >= 256 where that fits."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side > _MAX_WORK:
        s = _MAX_WORK / long_side
    elif short_side < _MIN_WORK:
        s = min(_MIN_WORK / short_side, _MAX_WORK / long_side)
    else:
        s = 1.0
    return max(_MIN_SIDE, round(width * s)), max(_MIN_SIDE, round(height * s))


def field_alpha(width: int, height: int) -> F32:
    """Anti-aliased circular field mask (1 inside the retina, 0 outside) at a given size."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = DISC_FRACTION * min(width, height) / 2.0
    xs = (np.arange(width, dtype=np.float32) - np.float32(cx)) ** 2
    ys = (np.arange(height, dtype=np.float32) - np.float32(cy)) ** 2
    dist = np.sqrt(ys[:, None] + xs[None, :])
    soft = max(0.75, 0.004 * radius)
    alpha = np.clip((np.float32(radius) - dist) / np.float32(soft) + np.float32(0.5), 0.0, 1.0)
    return np.asarray(alpha, dtype=np.float32)
