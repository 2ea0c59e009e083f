"""Geometry of preprocessing: find the fundus disc, crop, pad square, resize, Ben Graham.

Training, export, the gateway and the tests all call these functions, so the served model
sees exactly the pixels the trained one saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from fundus.config import PreprocessConfig
from fundus.types import RGBImage

_MASK_WORK_SIDE = 256
_MIN_COMPONENT_FRACTION = 0.01


@dataclass(frozen=True)
class DiscGeometry:
    """Where the fundus disc is in the decoded image.

    bbox: (x0, y0, x1, y1) in image pixels, exclusive end. area_fraction: disc area / image
    area. fill_ratio: disc area / bbox area (a full circle is pi/4 = 0.785). corner_fill: share
    of the bbox's four corner patches covered by the disc (near 0 for a circular disc, near 1
    for a full-frame picture). found: a plausible component exists at all.
    """

    bbox: tuple[int, int, int, int]
    area_fraction: float
    fill_ratio: float
    corner_fill: float
    found: bool

    @property
    def diameter(self) -> int:
        """Larger bbox side: the disc diameter in source pixels (clipped discs keep their width)."""
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, y1 - y0)


def _as_rgb(array: np.ndarray) -> RGBImage:
    """OpenCV returns loosely typed arrays; pin them to uint8 for the type checker."""
    return np.asarray(array, dtype=np.uint8)


def foreground_mask(image: RGBImage, threshold: int) -> NDArray[np.bool_]:
    """Pixels brighter than the black border: max channel above ``threshold``."""
    return np.asarray(max_channel(image) > threshold)


def max_channel(image: RGBImage) -> NDArray[np.uint8]:
    """Per-pixel maximum over R, G, B (OpenCV is ~10x faster than ndarray.max(axis=2))."""
    red, green, blue = cv2.split(image)
    return np.asarray(cv2.max(cv2.max(red, green), blue))


def locate_disc(image: RGBImage, threshold: int) -> DiscGeometry:
    """Find the fundus disc as the largest bright connected component (on a small copy)."""
    height, width = image.shape[:2]
    factor = min(1.0, _MASK_WORK_SIDE / max(height, width))
    small = image
    if factor < 1.0:
        new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = _as_rgb(cv2.resize(image, new_size, interpolation=cv2.INTER_AREA))
    mask = cv2.morphologyEx(
        foreground_mask(small, threshold).astype(np.uint8),
        cv2.MORPH_OPEN,
        np.ones((3, 3), np.uint8),
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    full = (0, 0, width, height)
    if count <= 1:
        return DiscGeometry(full, 0.0, 0.0, 1.0, found=False)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[largest])
    small_h, small_w = mask.shape
    if area < _MIN_COMPONENT_FRACTION * small_h * small_w:
        return DiscGeometry(full, area / (small_h * small_w), 0.0, 1.0, found=False)
    component = labels[y : y + h, x : x + w] == largest
    patch_h, patch_w = max(1, h // 8), max(1, w // 8)
    corners = [
        component[:patch_h, :patch_w],
        component[:patch_h, -patch_w:],
        component[-patch_h:, :patch_w],
        component[-patch_h:, -patch_w:],
    ]
    corner_fill = float(np.mean([c.mean() for c in corners]))
    scale_x, scale_y = width / small_w, height / small_h
    bbox = (
        max(0, int(np.floor(x * scale_x))),
        max(0, int(np.floor(y * scale_y))),
        min(width, int(np.ceil((x + w) * scale_x))),
        min(height, int(np.ceil((y + h) * scale_y))),
    )
    return DiscGeometry(
        bbox=bbox,
        area_fraction=area / (small_h * small_w),
        fill_ratio=area / (w * h),
        corner_fill=corner_fill,
        found=True,
    )


def crop_to_square(image: RGBImage, bbox: tuple[int, int, int, int]) -> RGBImage:
    """Crop to ``bbox`` and pad with black to a centred square (a clipped disc stays round)."""
    x0, y0, x1, y1 = bbox
    crop = image[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return _as_rgb(
        cv2.copyMakeBorder(
            crop, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    )


def resize_square(square: RGBImage, size: int) -> RGBImage:
    """Resize a square image to ``size``: area averaging down, bicubic up."""
    side = square.shape[0]
    if side == size:
        return square
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return _as_rgb(cv2.resize(square, (size, size), interpolation=interpolation))


def ben_graham(image: RGBImage, config: PreprocessConfig) -> RGBImage:
    """Local-average subtraction: 4*(I - Gaussian(I)) + 128, optionally masked to the disc."""
    sigma = config.size * config.ben_graham_sigma_fraction
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    out = _as_rgb(cv2.addWeighted(image, 4.0, blurred, -4.0, 128.0))
    if config.circle_mask:
        disc = foreground_mask(image, config.crop_threshold).astype(np.uint8)
        erode = max(1, config.size // 50)
        inner = cv2.erode(disc, np.ones((erode, erode), np.uint8))
        out[inner == 0] = 128
    return out
