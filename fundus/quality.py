"""Quality gate: is this photograph a fundus image the model can grade?

Measurements are taken on the cropped, squared disc resized to a fixed analysis size (512 px),
so thresholds do not depend on the model's input size. Each check yields a sub-score in [0, 1]
that is exactly 0.5 at its threshold; the overall score is the weakest sub-score, so
``gradable`` is equivalent to ``score >= 0.5``.

Thresholds (calibrated on the six EyePACS samples in ../shared, synthetic fundus images,
the dcmjs phantom and non-fundus pictures; see tests/unit/test_quality.py):
- no_fundus_disc: no bright component covering >= 10 % of the frame, or the component fills the
  corners of its bounding box (>= 50 %: a full-frame picture, not a round disc).
- too_dark: mean luma inside the disc < 22 (0..255).
- overexposed: > 20 % of disc pixels have a channel >= 250, or mean luma > 200.
- blurred: sharpness < 0.40, where sharpness = 1 - (mean gradient of the green channel after
  an extra Gaussian blur, sigma 2 px) / (mean gradient before), inside the disc at 512 px
  (a re-blur measure after Crete et al. 2007: a sharp image loses much detail when blurred
  again, a blurred one little). Measured: EyePACS samples 0.53-0.74; the same blurred with
  sigma 1.5 px at 512 px 0.21-0.33; sigma 3 px <= 0.12. Brightness and contrast cancel out.
- low_resolution: disc diameter in the source < 224 px (an upsampled thumbnail).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fundus.preprocess import DiscGeometry
from fundus.types import QualityReport, RGBImage

ANALYSIS_SIZE = 512

NO_FUNDUS_DISC = "no_fundus_disc"
TOO_DARK = "too_dark"
OVEREXPOSED = "overexposed"
BLURRED = "blurred"
LOW_RESOLUTION = "low_resolution"
REASONS = (NO_FUNDUS_DISC, TOO_DARK, OVEREXPOSED, BLURRED, LOW_RESOLUTION)
"""Every reason the gate can give (stable, machine-readable)."""


@dataclass(frozen=True)
class QualityThresholds:
    """Decision thresholds; see the module docstring for how they were chosen."""

    min_area_fraction: float = 0.10
    max_corner_fill: float = 0.50
    min_mean_luma: float = 22.0
    max_mean_luma: float = 200.0
    max_saturated_fraction: float = 0.20
    min_sharpness: float = 0.40
    min_disc_diameter: int = 224


def _ramp_above(value: float, threshold: float, spread: float) -> float:
    """Sub-score for 'value must be >= threshold': 0.5 at the threshold, 1 at threshold+spread."""
    return float(np.clip(0.5 + 0.5 * (value - threshold) / spread, 0.0, 1.0))


def _ramp_below(value: float, threshold: float, spread: float) -> float:
    """Sub-score for 'value must be <= threshold'."""
    return _ramp_above(-value, -threshold, spread)


_RIM_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15))
_NO_DISC = {"mean_luma": 0.0, "saturated_fraction": 0.0, "sharpness": 0.0}


def measure(analysis: RGBImage, crop_threshold: int) -> dict[str, float]:
    """Brightness, exposure and sharpness of the disc in the square analysis image (512 px).

    One channel split serves the disc mask, the saturation count and the sharpness (green);
    masks stay 0/255 uint8 (``cv2.threshold``), so no boolean or float copy of the image is made
    except the one the re-blur needs.
    """
    red, green, blue = cv2.split(analysis)
    brightest = cv2.max(cv2.max(red, green), blue)
    disc = cv2.threshold(brightest, crop_threshold, 255, cv2.THRESH_BINARY)[1]  # > threshold
    # Stay clear of the disc rim: its edge would dominate the sharpness measure.
    inner = cv2.erode(disc, _RIM_KERNEL)
    inner_count = int(cv2.countNonZero(inner))
    if inner_count < 100:
        return dict(_NO_DISC)
    luma = cv2.cvtColor(analysis, cv2.COLOR_RGB2GRAY)
    saturated = cv2.bitwise_and(cv2.threshold(brightest, 249, 255, cv2.THRESH_BINARY)[1], inner)
    return {
        "mean_luma": _masked_mean(luma, inner, inner_count),
        "saturated_fraction": int(cv2.countNonZero(saturated)) / inner_count,
        "sharpness": reblur_sharpness(green, inner),
    }


def _masked_mean(values: np.ndarray, mask: np.ndarray, count: int) -> float:
    """Mean of ``values`` where ``mask`` is non-zero: a masked copy and a plain sum, several
    times faster than ``cv2.mean(values, mask=mask)`` (its masked loop is not vectorised)."""
    return float(cv2.sumElems(cv2.bitwise_and(values, values, mask=mask))[0]) / max(count, 1)


def _mean_gradient(channel: np.ndarray, inner_x: np.ndarray, inner_y: np.ndarray) -> float:
    """Mean absolute horizontal + vertical difference inside the masks (OpenCV, no copies)."""
    dx = cv2.absdiff(channel[:, 1:], channel[:, :-1])
    dy = cv2.absdiff(channel[1:, :], channel[:-1, :])
    count_x, count_y = int(cv2.countNonZero(inner_x)), int(cv2.countNonZero(inner_y))
    return _masked_mean(dx, inner_x, count_x) + _masked_mean(dy, inner_y, count_y)


def reblur_sharpness(channel: np.ndarray, region: np.ndarray) -> float:
    """Share of gradient energy lost when the image is blurred again (0 = already blurred).

    ``channel`` is uint8 (or float32); ``region`` a uint8 mask (non-zero = inside) of its size.
    The gradient before the blur is taken on the channel itself: uint8 differences are the
    same integers as float32 ones, so only the blurred copy is float.
    """
    inner_x, inner_y = region[:, 1:], region[1:, :]  # ROI views: cv2 takes strided masks
    before = _mean_gradient(channel, inner_x, inner_y)
    if before <= 1e-6:
        return 0.0
    reblurred = cv2.GaussianBlur(np.asarray(channel, dtype=np.float32), (0, 0), 2.0)
    after = _mean_gradient(reblurred, inner_x, inner_y)
    return float(np.clip(1.0 - after / before, 0.0, 1.0))


def assess_quality(
    analysis: RGBImage,
    geometry: DiscGeometry,
    crop_threshold: int,
    source_scale: float = 1.0,
    thresholds: QualityThresholds | None = None,
) -> QualityReport:
    """Gradable verdict, 0..1 score and reasons for a cropped square fundus image.

    ``analysis`` is the cropped square resized to ``ANALYSIS_SIZE``; ``geometry`` describes
    the disc in the decoded image; ``source_scale`` converts decoded pixels to source pixels
    (the JPEG fast path decodes at 1/2..1/8 scale).
    """
    t = thresholds or QualityThresholds()
    diameter = geometry.diameter * source_scale
    if analysis.shape[:2] != (ANALYSIS_SIZE, ANALYSIS_SIZE):
        raise ValueError(f"analysis image must be {ANALYSIS_SIZE} px square")
    values = measure(analysis, crop_threshold)
    values.update(
        area_fraction=geometry.area_fraction,
        corner_fill=geometry.corner_fill,
        fill_ratio=geometry.fill_ratio,
        disc_diameter=float(diameter),
    )
    disc_score = (
        0.0
        if not geometry.found
        else min(
            _ramp_above(geometry.area_fraction, t.min_area_fraction, 0.2),
            _ramp_below(geometry.corner_fill, t.max_corner_fill, 0.3),
        )
    )
    scores = {
        NO_FUNDUS_DISC: disc_score,
        TOO_DARK: _ramp_above(values["mean_luma"], t.min_mean_luma, 30.0),
        OVEREXPOSED: min(
            _ramp_below(values["saturated_fraction"], t.max_saturated_fraction, 0.2),
            _ramp_below(values["mean_luma"], t.max_mean_luma, 40.0),
        ),
        BLURRED: _ramp_above(values["sharpness"], t.min_sharpness, 0.2),
        LOW_RESOLUTION: _ramp_above(diameter, t.min_disc_diameter, 300.0),
    }
    if disc_score < 0.5:
        # Without a disc the other measurements describe the wrong thing: report only that.
        reasons: tuple[str, ...] = (NO_FUNDUS_DISC,)
    else:
        reasons = tuple(reason for reason in REASONS if scores[reason] < 0.5)
    score = round(min(scores.values()), 4)
    return QualityReport(gradable=not reasons, score=score, reasons=reasons, measurements=values)
