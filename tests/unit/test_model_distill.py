"""Distillation helpers: targets, agreement, network passes, the config's checks, batches
carrying soft targets and a teacher trained on other data refused."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from model.batches import TrainBatches
from model.config import load_config
from model.distill import agreement, passes_per_image, prepare_teacher, soft_targets


def test_targets_mix_the_teacher_and_the_label() -> None:
    teacher = np.array([[0.1, 0.6, 0.2, 0.1, 0.0]], np.float32)
    mixed = soft_targets(teacher, np.array([3]), 0.7)
    assert np.allclose(mixed, [[0.07, 0.42, 0.14, 0.37, 0.0]])
    assert np.allclose(mixed.sum(1), 1.0)
    assert np.allclose(soft_targets(teacher, np.array([3]), 0.0), [[0, 0, 0, 1, 0]])


def test_agreement_counts_grades_and_referable_decisions() -> None:
    student = np.array([[0.6, 0.3, 0.1, 0, 0], [0.1, 0.1, 0.5, 0.3, 0]], np.float32)
    teacher = np.array([[0.2, 0.5, 0.3, 0, 0], [0.1, 0.1, 0.2, 0.6, 0]], np.float32)
    found = agreement(student, teacher)
    assert found["n"] == 2
    assert found["grade"] == 0.0  # argmax 0 vs 1, 2 vs 3
    assert found["referable"] == 1.0  # both non-referable, then both referable


def test_passes_per_image() -> None:
    assert passes_per_image(5, "flip4") == 20
    assert passes_per_image(1, "hflip") == 2
    assert passes_per_image(1, "none") == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.weight=1.5"], "distill.weight"),
        (["distill.holdout_fold=2"], "holdout_fold"),
        (["folds.only=[1]"], "folds.only"),
    ],
)
def test_inconsistent_distillation_settings_are_refused(overrides: list[str], message: str) -> None:
    base = ["distill.teacher_run=runs/teacher", "folds.n_splits=2"]
    with pytest.raises(ValueError, match=message):
        load_config(None, [*base, *overrides])


def test_batches_carry_the_soft_targets_of_their_rows() -> None:
    images = np.zeros((6, 4, 4, 3), np.uint8)
    rows = np.array([1, 3, 5])
    targets = np.eye(5, dtype=np.float32)[[4, 2, 0]] * 0.5 + 0.1
    batches = TrainBatches(
        images, rows, np.array([0, 1, 2]), np.ones(5, np.float32), 3, seed=0, targets=targets
    )
    _, y, _ = batches[0]
    assert sorted(map(tuple, y.round(3))) == sorted(map(tuple, targets.round(3)))
    with pytest.raises(ValueError, match="targets"):
        TrainBatches(images, rows, np.zeros(3, np.int64), np.ones(5), 3, 0, targets=targets[:2])


def test_a_teacher_trained_on_other_data_is_refused(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "summary.json").write_text(json.dumps({"complete": True, "fingerprint": "abc"}))
    config = load_config(None, [f"distill.teacher_run={teacher}"])
    data: Any = SimpleNamespace(fingerprint="def")
    with pytest.raises(ValueError, match="fingerprints differ"):
        prepare_teacher(config, data, tmp_path / "student")
    (teacher / "summary.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(ValueError, match="not complete"):
        prepare_teacher(config, data, tmp_path / "student")
