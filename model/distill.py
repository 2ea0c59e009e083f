"""Knowledge distillation: a finished run's fold ensemble teaches one student network.

The teacher's soft targets follow its exported rule: the mean class probabilities of its fold
models over their test-time views (``model.batches.predict_probs``), computed once for every
cross-validation and test image and kept in the student's run directory (``teacher.npz``, so a
resumed run does not predict again). The student trains like one fold model of the teacher:
the same ``folds.csv``, validated on ``distill.holdout_fold`` and trained on the other folds,
with the same augmentation, mixup, class weights and loss, on the target
``weight * teacher + (1 - weight) * one-hot label``. With probability heads that is Hinton et
al.'s loss at temperature 1 (a temperature needs logits, which the ordinal head has not).

``distill.json`` names the teacher (run, export version, folds, test-time views, network passes
per photograph) and how often the student agrees with it (grade and referable decision, on the
held-out test split and on the holdout fold).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.batches import predict_probs
from model.config import Config
from model.data import PreparedData
from model.metrics import NUM_CLASSES
from model.network import tta_views

log = logging.getLogger(__name__)
TEACHER_FILE = "teacher.npz"
DISTILL_FILE = "distill.json"
REFERABLE_MIN_GRADE = 2


def passes_per_image(members: int, tta: str) -> int:
    """Network passes per photograph: ensemble members x test-time views."""
    return members * len(tta_views(np.zeros((1, 2, 2, 3)), tta))


@dataclass(frozen=True)
class Teacher:
    """The teaching ensemble and its probabilities for every cached image."""

    run_dir: Path
    folds: list[int]
    tta: str
    probs: NDArray[np.float32]
    """[images, 5]: the teacher's probabilities (rows outside CV and test stay zero)."""

    @property
    def passes_per_image(self) -> int:
        """Network passes the teacher spends per photograph."""
        return passes_per_image(len(self.folds), self.tta)


def prepare_teacher(config: Config, data: PreparedData, run_dir: Path) -> Teacher:
    """Check the teacher saw the same data, copy its folds, predict (or reload) its targets."""
    from model.ensemble import load_fold_models, load_run_config, selected_folds

    assert config.distill.teacher_run is not None
    teacher_dir = Path(config.distill.teacher_run)
    summary_path = teacher_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"teacher run {teacher_dir} has no summary.json (not trained)")
    summary = json.loads(summary_path.read_text())
    if not summary.get("complete"):
        raise ValueError(f"teacher run {teacher_dir} is not complete")
    if summary.get("fingerprint") != data.fingerprint:
        raise ValueError(
            f"teacher run {teacher_dir} was trained on other data or preprocessing "
            "(data fingerprints differ): distil over the same CV data"
        )
    if not (run_dir / "folds.csv").exists():
        shutil.copyfile(teacher_dir / "folds.csv", run_dir / "folds.csv")
    teacher_config = load_run_config(teacher_dir)
    folds = selected_folds(teacher_config, teacher_dir)
    tta = teacher_config.eval.tta
    rows = np.concatenate([data.cv_rows, data.test_rows]).astype(np.int64)
    cache = run_dir / TEACHER_FILE
    if cache.exists():
        with np.load(cache) as saved:
            if not np.array_equal(saved["rows"], rows):
                raise ValueError(f"{cache} was made for other images; delete it")
            probs = np.asarray(saved["probs"], np.float32)
    else:
        models = load_fold_models(teacher_config, teacher_dir, folds)
        probs = predict_probs(models, data.images, rows, teacher_config.eval.batch_size, tta)
        del models
        np.savez(cache, rows=rows, probs=probs, folds=np.asarray(folds))
        log.info(
            "teacher %s: %d folds x %s predicted %d images", teacher_dir, len(folds), tta, len(rows)
        )
    full = np.zeros((len(data.images), NUM_CLASSES), np.float32)
    full[rows] = probs
    return Teacher(teacher_dir, folds, tta, full)


def soft_targets(
    teacher: NDArray[np.float32], grades: NDArray[np.int64], weight: float
) -> NDArray[np.float32]:
    """``weight * teacher + (1 - weight) * one-hot(grades)`` (rows sum to 1)."""
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(grades, np.int64)]
    mixed: NDArray[np.float32] = (weight * teacher + (1.0 - weight) * one_hot).astype(np.float32)
    return mixed


def agreement(student: NDArray[Any], teacher: NDArray[Any]) -> dict[str, float | int]:
    """How often the student's argmax grade and referable decision equal the teacher's."""
    s_grade, t_grade = np.argmax(student, 1), np.argmax(teacher, 1)
    s_ref = student[:, REFERABLE_MIN_GRADE:].sum(1) >= 0.5
    t_ref = teacher[:, REFERABLE_MIN_GRADE:].sum(1) >= 0.5
    return {
        "n": len(student),
        "grade": round(float(np.mean(s_grade == t_grade)), 4) if len(student) else 0.0,
        "referable": round(float(np.mean(s_ref == t_ref)), 4) if len(student) else 0.0,
        "mean_abs_prob_diff": round(float(np.mean(np.abs(student - teacher))), 4)
        if len(student)
        else 0.0,
    }


def write_report(config: Config, teacher: Teacher, run_dir: Path, fold_dir: Path) -> dict[str, Any]:
    """``distill.json``: the teacher and the student's agreement with it."""
    with np.load(fold_dir / "predictions.npz") as p:
        holdout = agreement(p["oof"], teacher.probs[p["val_rows"]])
        test = agreement(p["test"], teacher.probs[p["test_rows"]])
    report: dict[str, Any] = {
        "teacher_run": str(teacher.run_dir),
        "teacher_version": config.distill.teacher_version,
        "teacher_folds": teacher.folds,
        "teacher_tta": teacher.tta,
        "teacher_passes_per_image": teacher.passes_per_image,
        "weight": config.distill.weight,
        "holdout_fold": config.distill.holdout_fold,
        "agreement": {"test": test, "holdout": holdout},
    }
    (run_dir / DISTILL_FILE).write_text(json.dumps(report, indent=2))
    log.info("student agreement with the teacher: %s", report["agreement"])
    return report
