"""Cross-validation folds: stratified by grade and grouped by patient.

Both eyes of a patient always land in the same fold (``StratifiedGroupKFold``), so no patient is
ever in training and validation at once. ``folds.csv`` records the assignment of every run.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedGroupKFold

from model.sources import Record


def assign_folds(
    grades: Sequence[int] | NDArray[np.integer[Any]],
    groups: Sequence[str],
    n_splits: int,
    seed: int,
) -> NDArray[np.int64]:
    """Fold index (0..n_splits-1) for every item; grade-stratified, patient-grouped."""
    y = np.asarray(grades)
    if len(y) == 0:
        raise ValueError("no images to split into folds")
    n_groups = len(set(groups))
    if n_groups < n_splits:
        raise ValueError(f"{n_groups} patients cannot fill {n_splits} folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(y), -1, np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(y)), y, groups=list(groups))):
        folds[val] = k
    return folds


def write_folds(path: Path, records: Sequence[Record], folds: NDArray[np.int64]) -> None:
    """``folds.csv``: id, patient, grade, fold."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "patient", "grade", "fold"])
        for record, fold in zip(records, folds, strict=True):
            writer.writerow([record.id, record.patient, record.grade, int(fold)])


def read_folds(path: Path) -> dict[str, int]:
    """id -> fold from a ``folds.csv``."""
    with path.open(newline="") as f:
        return {row["id"]: int(row["fold"]) for row in csv.DictReader(f)}
