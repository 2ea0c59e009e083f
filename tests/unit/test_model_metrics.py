"""Metrics (vs scikit-learn and hand-made cases) and the OOF threshold decision rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from model.decision import apply_thresholds, expected_grade, optimise_thresholds, predict_grade
from model.metrics import (
    binary_stats,
    bootstrap_ci,
    expected_calibration_error,
    grading_metrics,
    macro_ovr_auc,
    quadratic_weighted_kappa,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=60))
def test_qwk_matches_sklearn(pairs):
    y = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    expected = cohen_kappa_score(y, p, weights="quadratic", labels=list(range(5)))
    ours = quadratic_weighted_kappa(y, p)
    if np.isnan(expected):
        return
    assert ours == pytest.approx(expected, abs=1e-9)


def test_qwk_perfect_and_reversed():
    y = np.array([0, 1, 2, 3, 4] * 3)
    assert quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    assert quadratic_weighted_kappa(y, 4 - y) < -0.9


def test_macro_auc_is_medmnist_mean_of_one_vs_rest():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + np.eye(5)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.mean([roc_auc_score(y == i, probs[:, i]) for i in range(5)])
    assert macro_ovr_auc(y, probs) == pytest.approx(expected)
    assert macro_ovr_auc(y, probs) == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro")
    )


def test_referable_stats_hand_made():
    truth = np.array([True, True, True, False, False, False, False, False])
    flagged = np.array([True, True, False, True, False, False, False, False])
    stats = binary_stats(truth, flagged)
    assert stats == pytest.approx(
        {"sensitivity": 2 / 3, "specificity": 4 / 5, "ppv": 2 / 3, "npv": 4 / 5}
    )


def test_grading_metrics_referable_from_grades():
    y = np.array([0, 1, 2, 3, 4, 0])
    probs = np.array(
        [
            [0.9, 0.1, 0, 0, 0],  # 0 -> not referable (correct)
            [0.2, 0.3, 0.5, 0, 0],  # 1 -> P(>=2) 0.5 -> referred (false positive)
            [0.1, 0.1, 0.8, 0, 0],  # 2 -> referred (true positive)
            [0.6, 0.1, 0.1, 0.2, 0],  # 3 -> P(>=2) 0.3 -> missed (false negative)
            [0, 0, 0, 0.1, 0.9],  # 4 -> referred
            [1, 0, 0, 0, 0],
        ]
    )
    m = grading_metrics(y, probs, probs.argmax(1), referable_threshold=0.5, n_boot=50)
    ref = m["referable"]
    assert ref["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert ref["specificity"]["value"] == pytest.approx(2 / 3)
    assert ref["ppv"]["value"] == pytest.approx(2 / 3)
    assert ref["npv"]["value"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"][3][0] == 1
    assert m["per_grade_recall"] == pytest.approx([1.0, 0.0, 1.0, 0.0, 1.0])
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    assert ref["auroc"]["ci95_low"] <= ref["auroc"]["ci95_high"]


def test_ece():
    probs = np.array([[0.8, 0.2, 0, 0, 0]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-9)
    y_wrong = np.array([1] * 10)
    assert expected_calibration_error(y_wrong, probs) == pytest.approx(0.8)


def test_bootstrap_ci_brackets_the_mean():
    values = np.random.default_rng(1).normal(3.0, 1.0, 400)
    low, high = bootstrap_ci(lambda i: float(values[i].mean()), len(values), 300, seed=0)
    assert low < values.mean() < high
    assert high - low < 0.4


def test_thresholds_rule():
    score = np.array([0.2, 0.6, 1.49, 1.51, 3.9])
    assert apply_thresholds(score, [0.5, 1.5, 2.5, 3.5]).tolist() == [0, 1, 1, 2, 4]
    probs = np.eye(5)[[0, 2, 4]]
    assert expected_grade(probs).tolist() == [0, 2, 4]
    assert predict_grade(probs, "thresholds").tolist() == [0, 2, 4]
    assert predict_grade(probs, "argmax").tolist() == [0, 2, 4]


def test_optimised_thresholds_do_not_lose_qwk():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    score = y * 0.6 + rng.normal(0, 0.5, 400)  # compressed, shifted scores
    default = quadratic_weighted_kappa(y, apply_thresholds(score, [0.5, 1.5, 2.5, 3.5]))
    t = optimise_thresholds(score, y)
    assert t == sorted(t)
    assert quadratic_weighted_kappa(y, apply_thresholds(score, t)) > default + 0.02
