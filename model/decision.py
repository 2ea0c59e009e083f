"""From class probabilities to the served grade.

Two rules (``eval.decision``):
- ``argmax``: grade = argmax_k p_k.
- ``thresholds``: score = expected grade sum_k k * p_k (for the ordinal head this equals the sum of
  the cumulative probabilities P(y > k)); grade = number of thresholds t_1 < .. < t_4 below the
  score. The thresholds maximise QWK on out-of-fold predictions and are saved in the run
  (``thresholds.json``) and in the model card; the SavedModel computes the same rule in-graph.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from model.metrics import NUM_CLASSES, quadratic_weighted_kappa

DEFAULT_THRESHOLDS = (0.5, 1.5, 2.5, 3.5)


def expected_grade(probs: NDArray[np.floating]) -> NDArray[np.float64]:
    """sum_k k * p_k."""
    return np.asarray(probs, np.float64) @ np.arange(NUM_CLASSES, dtype=np.float64)


def apply_thresholds(
    score: NDArray[np.floating], thresholds: tuple[float, ...] | list[float]
) -> NDArray[np.int64]:
    """Number of thresholds strictly below each score."""
    t = np.asarray(thresholds, np.float64)
    out: NDArray[np.int64] = (
        (np.asarray(score, np.float64)[:, None] > t[None, :]).sum(1).astype(np.int64)
    )
    return out


def optimise_thresholds(
    score: NDArray[np.floating], y: NDArray[np.integer], passes: int = 3, grid: int = 101
) -> list[float]:
    """Coordinate ascent on QWK; each threshold searched on a grid between its neighbours."""
    score = np.asarray(score, np.float64)
    labels: NDArray[np.int64] = np.asarray(y, np.int64)
    t = list(DEFAULT_THRESHOLDS)
    best = quadratic_weighted_kappa(labels, apply_thresholds(score, t))
    for _ in range(passes):
        improved = False
        for k in range(len(t)):
            low = t[k - 1] if k > 0 else 0.0
            high = t[k + 1] if k + 1 < len(t) else float(NUM_CLASSES - 1)
            for candidate in np.linspace(low, high, grid)[1:-1]:
                trial = [*t[:k], float(candidate), *t[k + 1 :]]
                value = quadratic_weighted_kappa(labels, apply_thresholds(score, trial))
                if value > best + 1e-12:
                    best, t, improved = value, trial, True
        if not improved:
            break
    return [round(v, 6) for v in t]


def predict_grade(
    probs: NDArray[np.floating], rule: str, thresholds: list[float] | None = None
) -> NDArray[np.int64]:
    """Served grade under ``rule`` ('argmax' or 'thresholds')."""
    if rule == "argmax":
        out: NDArray[np.int64] = np.asarray(probs).argmax(1).astype(np.int64)
        return out
    if rule == "thresholds":
        return apply_thresholds(expected_grade(probs), thresholds or list(DEFAULT_THRESHOLDS))
    raise ValueError(f"unknown decision rule {rule!r}")
