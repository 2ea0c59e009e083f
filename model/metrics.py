"""Evaluation metrics on numpy arrays (no Keras): grading, referable DR, calibration, CIs.

Conventions: ``y`` int grades 0..4 [N]; ``probs`` float [N, 5] rows summing to 1; ``pred`` int [N].
Referable DR = grade >= ``REFERABLE_MIN_GRADE`` (contract/grades.py); its probability is
``probs[:, REFERABLE_MIN_GRADE:].sum(1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from contract.grades import NUM_GRADES, REFERABLE_MIN_GRADE

NUM_CLASSES = NUM_GRADES
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def confusion(y: IntArray, pred: IntArray, k: int = NUM_CLASSES) -> IntArray:
    """Counts [true, predicted]."""
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (np.asarray(y, np.int64), np.asarray(pred, np.int64)), 1)
    return matrix


def quadratic_weighted_kappa(y: IntArray, pred: IntArray, k: int = NUM_CLASSES) -> float:
    """Cohen's kappa with quadratic weights.

    Equals sklearn ``cohen_kappa_score(y, pred, weights="quadratic")``.
    """
    observed = confusion(y, pred, k).astype(np.float64)
    n = observed.sum()
    if n == 0:
        return float("nan")
    expected = np.outer(observed.sum(1), observed.sum(0)) / n
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return 1.0 if (weights * observed).sum() == 0 else 0.0
    return float(1.0 - (weights * observed).sum() / denominator)


def macro_ovr_auc(y: IntArray, probs: FloatArray) -> float:
    """MedMNIST's multi-class AUC: mean over classes of one-vs-rest ROC AUC of ``probs[:, i]``.

    Classes absent from ``y`` (AUC undefined) are skipped; MedMNIST's test splits have all five.
    """
    aucs = []
    for i in range(probs.shape[1]):
        positive = np.asarray(y) == i
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, probs[:, i]))
    return float(np.mean(aucs)) if aucs else float("nan")


def referable_probability(probs: FloatArray) -> FloatArray:
    """P(grade >= REFERABLE_MIN_GRADE)."""
    out: FloatArray = np.asarray(probs, np.float64)[:, REFERABLE_MIN_GRADE:].sum(1)
    return out


def binary_stats(truth: NDArray[np.bool_], flagged: NDArray[np.bool_]) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV (nan when undefined)."""
    tp = float(np.sum(truth & flagged))
    tn = float(np.sum(~truth & ~flagged))
    fp = float(np.sum(~truth & flagged))
    fn = float(np.sum(truth & ~flagged))

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def binary_auc(truth: NDArray[np.bool_], score: FloatArray) -> float:
    """ROC AUC, nan when only one class is present."""
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, score))


def expected_calibration_error(y: IntArray, probs: FloatArray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability_curve(y: IntArray, probs: FloatArray, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count (for the reliability plot)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        mask = which == b
        out["confidence"].append(float(confidence[mask].mean()) if mask.any() else float("nan"))
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else float("nan"))
        out["count"].append(float(mask.sum()))
    return out


def bootstrap_ci(
    statistic: Callable[[IntArray], float], n: int, n_boot: int, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% CI of ``statistic(indices)`` over ``n_boot`` resamples of range(n)."""
    if n_boot <= 0 or n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        value = statistic(rng.integers(0, n, n))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _with_ci(value: float, ci: tuple[float, float]) -> dict[str, float]:
    return {"value": value, "ci95_low": ci[0], "ci95_high": ci[1]}


def grading_metrics(
    y: IntArray,
    probs: FloatArray,
    pred: IntArray,
    referable_threshold: float = 0.5,
    n_boot: int = 1000,
    ece_bins: int = 15,
    seed: int = 0,
) -> dict[str, Any]:
    """Every reported number for one prediction set. ``pred`` is the served grade.

    ``accuracy`` and ``auc`` follow MedMNIST (argmax of ``probs``; mean one-vs-rest AUC);
    ``qwk``, ``grade_accuracy`` and ``macro_f1`` use ``pred``.
    """
    y = np.asarray(y, np.int64)
    probs = np.asarray(probs, np.float64)
    pred = np.asarray(pred, np.int64)
    argmax = probs.argmax(1)
    matrix = confusion(y, pred)
    support = matrix.sum(1)
    recall = np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)

    truth = y >= REFERABLE_MIN_GRADE
    ref_p = referable_probability(probs)
    flagged = ref_p >= referable_threshold
    fpr, tpr, _ = roc_curve(truth, ref_p) if truth.any() and not truth.all() else ([], [], [])

    n = len(y)

    def boot(fn: Callable[[IntArray], float], offset: int) -> tuple[float, float]:
        return bootstrap_ci(fn, n, n_boot, seed + offset)

    ref_stats = binary_stats(truth, flagged)
    referable: dict[str, Any] = {
        "threshold": referable_threshold,
        "prevalence": float(truth.mean()) if n else float("nan"),
        "auroc": _with_ci(
            binary_auc(truth, ref_p), boot(lambda i: binary_auc(truth[i], ref_p[i]), 1)
        ),
    }

    def stat(name: str) -> Callable[[IntArray], float]:
        return lambda i: binary_stats(truth[i], flagged[i])[name]

    for offset, (name, value) in enumerate(ref_stats.items(), start=2):
        referable[name] = _with_ci(value, boot(stat(name), offset))
    referable["roc"] = {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}

    return {
        "n": n,
        "qwk": _with_ci(
            quadratic_weighted_kappa(y, pred),
            boot(lambda i: quadratic_weighted_kappa(y[i], pred[i]), 10),
        ),
        "accuracy": _with_ci(
            float((argmax == y).mean()), boot(lambda i: float((argmax[i] == y[i]).mean()), 11)
        ),
        "grade_accuracy": float((pred == y).mean()),
        "auc": _with_ci(macro_ovr_auc(y, probs), boot(lambda i: macro_ovr_auc(y[i], probs[i]), 12)),
        "macro_f1": float(
            f1_score(y, pred, labels=list(range(NUM_CLASSES)), average="macro", zero_division=0)
        ),
        "per_grade_recall": [float(v) for v in recall],
        "confusion_matrix": matrix.tolist(),
        "ece": expected_calibration_error(y, probs, ece_bins),
        "reliability": reliability_curve(y, probs, ece_bins),
        "referable": referable,
    }
