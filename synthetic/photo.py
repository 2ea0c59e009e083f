"""``synthesize_fundus``: background and lesions at working size, resized, noise, field."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from fundus.types import Laterality, RGBImage
from synthetic.background import background
from synthetic.canvas import F32, check_size, field_alpha, working_size
from synthetic.lesions import add_lesions


def synthesize_fundus(
    grade: int,
    *,
    width: int = 768,
    height: int = 576,
    seed: int = 0,
    laterality: Laterality = "R",
    blur_sigma: float = 0.0,
    brightness: float = 1.0,
) -> RGBImage:
    """Synthetic colour fundus photograph, uint8 RGB [height, width, 3].

    grade: international DR scale 0..4 (ValueError otherwise); lesions are nested across grades.
    laterality: "R" puts the optic disc right of the fovea, "L" mirrors the image.
    blur_sigma: Gaussian blur sigma in output pixels (0 = none), applied after noise.
    brightness: final multiplier before clipping (0.15 -> too dark, 3.0 -> over-exposed).
    """
    if isinstance(grade, bool) or not isinstance(grade, (int, np.integer)) or not 0 <= grade <= 4:
        raise ValueError(f"grade must be an int in 0..4, got {grade!r}")
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
    check_size(width, height)
    if not math.isfinite(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be >= 0, got {blur_sigma}")
    if not math.isfinite(brightness) or brightness < 0:
        raise ValueError(f"brightness must be >= 0, got {brightness}")

    bg_rng, lesion_rng, noise_rng = np.random.default_rng(seed).spawn(3)
    ww, wh = working_size(width, height)
    bg = background(bg_rng, ww, wh)
    work = add_lesions(lesion_rng, bg, int(grade))
    if laterality == "L":
        work = work[:, :, ::-1]

    noise = noise_rng.standard_normal((height, width), dtype=np.float32)
    noise *= np.float32(1.6)
    field = field_alpha(width, height)
    resize = (ww, wh) != (width, height)
    interp = cv2.INTER_LINEAR if width * height > ww * wh else cv2.INTER_AREA
    planes: list[NDArray[np.uint8]] = []
    for c in range(3):
        src: F32 = np.ascontiguousarray(work[c])
        plane: F32 = src
        if resize:
            plane = np.asarray(cv2.resize(src, (width, height), interpolation=interp), np.float32)
        plane += noise
        plane *= field
        if blur_sigma > 0:
            plane = np.asarray(cv2.GaussianBlur(plane, (0, 0), float(blur_sigma)), np.float32)
        if brightness != 1.0:
            plane *= np.float32(brightness)
        np.clip(plane, 0.0, 255.0, out=plane)
        plane += np.float32(0.5)
        planes.append(plane.astype(np.uint8))
    return np.asarray(cv2.merge(planes), dtype=np.uint8)
