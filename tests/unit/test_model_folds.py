"""Folds are stratified by grade and grouped by patient (both eyes in one fold)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.folds import assign_folds, read_folds, write_folds
from model.sources import Record


def _eyes(n_patients: int, seed: int = 0) -> tuple[list[int], list[str]]:
    rng = np.random.default_rng(seed)
    grades, groups = [], []
    for p in range(n_patients):
        base = int(rng.integers(0, 5))
        for _ in range(2):  # both eyes, grades usually close
            grades.append(int(np.clip(base + rng.integers(-1, 2), 0, 4)))
            groups.append(f"p{p}")
    return grades, groups


def test_no_patient_in_two_folds_and_all_assigned():
    grades, groups = _eyes(200)
    folds = assign_folds(grades, groups, 5, seed=1)
    assert set(folds.tolist()) == {0, 1, 2, 3, 4}
    by_patient: dict[str, set[int]] = {}
    for g, f in zip(groups, folds, strict=True):
        by_patient.setdefault(g, set()).add(int(f))
    assert all(len(v) == 1 for v in by_patient.values())


def test_grades_are_stratified():
    grades, groups = _eyes(300, seed=3)
    folds = assign_folds(grades, groups, 5, seed=0)
    overall = np.bincount(grades, minlength=5) / len(grades)
    for k in range(5):
        share = np.bincount(np.asarray(grades)[folds == k], minlength=5) / np.sum(folds == k)
        assert np.abs(share - overall).max() < 0.06
    sizes = Counter(folds.tolist())
    assert max(sizes.values()) - min(sizes.values()) <= 0.1 * len(grades)


def test_deterministic_for_a_seed():
    grades, groups = _eyes(50)
    assert np.array_equal(assign_folds(grades, groups, 5, 7), assign_folds(grades, groups, 5, 7))


def test_too_few_patients():
    with pytest.raises(ValueError, match="patients"):
        assign_folds([0, 1, 2, 3], ["a", "a", "b", "b"], 5, 0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=12, max_size=80))
def test_grouping_property(items):
    grades = [g for g, _ in items]
    groups = [f"p{p}" for _, p in items]
    if len(set(groups)) < 3:
        return
    folds = assign_folds(grades, groups, 3, seed=0)
    seen: dict[str, int] = {}
    for g, f in zip(groups, folds, strict=True):
        assert seen.setdefault(g, int(f)) == int(f)


def test_folds_csv_round_trip(tmp_path):
    records = [Record(f"{i}_left", i % 5, str(i), "train", "") for i in range(10)]
    folds = np.arange(10) % 2
    write_folds(tmp_path / "folds.csv", records, folds)
    assert read_folds(tmp_path / "folds.csv") == {
        r.id: int(f) for r, f in zip(records, folds, strict=True)
    }
