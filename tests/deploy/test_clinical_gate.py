"""deploy/clinical_gate.py: the candidate's referable sensitivity/specificity no worse than
stable's, from the model cards and from a re-run of both SavedModels on a labelled reference set
(toy SavedModels, real TensorFlow), and its call from deploy/validate_model.py."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import clinical_gate
from deploy.clinical_gate import Limits, Referable, compare, compare_cards, referable_of
from tests.deploy.conftest import REPO_ROOT, run


def card(sensitivity: float | None, specificity: float | None, split: str = "test") -> dict:
    if sensitivity is None:
        return {"metrics": None}
    return {
        "metrics": {
            split: {"referable_sensitivity": sensitivity, "referable_specificity": specificity}
        }
    }


def test_referable_counts_grade_two_and_above():
    result = referable_of([0, 1, 2, 3, 4, 0], [False, True, True, False, True, False])
    assert result == Referable(2 / 3, 2 / 3, positives=3, negatives=3)
    assert math.isnan(referable_of([0, 1], [False, False]).sensitivity)


def test_compare_refuses_any_drop_by_default_and_allows_a_stated_one():
    stable = Referable(0.90, 0.80)
    assert compare(Referable(0.90, 0.80), stable, Limits(), "x") == []
    assert compare(Referable(0.95, 0.85), stable, Limits(), "x") == []
    problems = compare(Referable(0.89, 0.80), stable, Limits(), "re-run")
    assert problems == ["clinical gate (re-run): referable sensitivity 0.890 < stable 0.900"]
    assert compare(Referable(0.89, 0.79), stable, Limits(max_drop=0.02), "x") == []
    assert len(compare(Referable(0.80, 0.70), stable, Limits(max_drop=0.02), "x")) == 2


def test_compare_cards():
    limits = Limits()
    assert compare_cards(card(0.9, 0.8), card(0.9, 0.8), limits) == []
    assert "specificity 0.700" in compare_cards(card(0.9, 0.7), card(0.9, 0.8), limits)[0]
    assert "no referable metrics" in compare_cards(card(None, None), card(0.9, 0.8), limits)[0]
    assert compare_cards(card(0.9, 0.8), card(None, None), limits) == []  # stable not evaluated
    assert "candidate has oof" in compare_cards(card(0.9, 0.8, "oof"), card(0.9, 0.8), limits)[0]


def test_labels_csv(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,grade\na.jpg,0\nb.jpg,3\n")
    assert clinical_gate.load_labels(path) == {"a.jpg": 0, "b.jpg": 3}
    path.write_text("a.jpg,7\n")
    with pytest.raises(ValueError, match=r"not 0\.\.4"):
        clinical_gate.load_labels(path)


# --- with SavedModels ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 referable and 20 non-referable synthetic photographs with their grades."""
    from synthetic import encode_jpeg, synthesize_fundus

    root = tmp_path_factory.mktemp("reference")
    rows = ["file,grade"]
    for index in range(40):
        grade = (0, 1, 2, 3, 4, 0, 1, 2)[index % 8] if index < 32 else (0, 2)[index % 2]
        name = f"ref{index:02d}.jpg"
        image = synthesize_fundus(grade, width=256, height=256, seed=500 + index)
        (root / name).write_bytes(encode_jpeg(image))
        rows.append(f"{name},{grade}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    labels = clinical_gate.load_labels(root / "labels.csv")
    assert sum(g >= 2 for g in labels.values()) == 20
    return root


def variant(source: Path, root: Path, **changes: Any) -> Path:
    """A copy of a version directory with model card fields changed."""
    target = root / "dr_grader" / source.name
    shutil.copytree(source, target)
    path = target / "assets.extra" / "model_card.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return target


def gate_cli(candidate: Path, stable: Path | None, reference: Path) -> Any:
    args = [sys.executable, "-m", "deploy.clinical_gate", str(candidate)]
    args += ["--stable", str(stable)] if stable else []
    args += [
        "--reference-images",
        str(reference),
        "--reference-labels",
        str(reference / "labels.csv"),
    ]
    return run(args, cwd=REPO_ROOT)


METRICS = {"test": {"referable_sensitivity": 0.85, "referable_specificity": 0.80, "n": 500}}


@pytest.mark.slow  # four TF loads of toy models in subprocesses (~40 s)
def test_gate_passes_an_equal_candidate_and_refuses_worse_ones(
    toy_model_factory, reference_set, tmp_path
):
    toy = toy_model_factory("none")
    stable = variant(toy, tmp_path / "stable", metrics=METRICS)
    same = variant(toy, tmp_path / "same", metrics=METRICS)
    result = gate_cli(same, stable, reference_set)
    assert result.returncode == 0, result.stderr
    assert "clinical gate: passed" in result.stdout
    # Worse on its own held-out test data (the card): refused.
    worse_card = variant(
        toy, tmp_path / "card", metrics={"test": {**METRICS["test"], "referable_sensitivity": 0.80}}
    )
    result = gate_cli(worse_card, stable, reference_set)
    assert (
        result.returncode == 1 and "model card test): referable sensitivity 0.800" in result.stderr
    )
    # Same card figures, but on the reference set it refers nobody (threshold above its outputs).
    never = variant(toy, tmp_path / "never", metrics=METRICS, referable_threshold=0.99,
                    referable={"min_grade": 2, "probability_threshold": 0.99})  # fmt: skip
    result = gate_cli(never, stable, reference_set)
    assert result.returncode == 1
    assert "re-run on 40 reference images): referable sensitivity 0.000" in result.stderr
    # A candidate without evaluation is refused even on a first release.
    unevaluated = variant(toy, tmp_path / "unevaluated", metrics=None)
    assert "no referable metrics" in gate_cli(unevaluated, None, reference_set).stderr


def test_too_small_a_reference_set_is_no_evidence(toy_model_factory, tmp_path):
    toy = toy_model_factory("none")
    (tmp_path / "labels.csv").write_text("a.jpg,0\n")
    (tmp_path / "a.jpg").write_bytes(b"")
    problems = clinical_gate.gate_problems(toy, toy, tmp_path, tmp_path / "labels.csv")
    assert problems and "need 20 and 20" in problems[0]


@pytest.mark.slow  # validate_model twice on the toy model (~20 s)
def test_validate_model_runs_the_gate_with_reference_labels(toy_model_factory, reference_set):
    toy = toy_model_factory("none")
    script = str(REPO_ROOT / "deploy" / "validate_model.py")
    plain = run([sys.executable, script, str(toy), "--reference-images", str(reference_set)])
    assert plain.returncode == 0, plain.stderr
    gated = run(
        [sys.executable, script, str(toy), "--reference-images", str(reference_set),
         "--reference-labels", str(reference_set / "labels.csv"), "--gate-against", str(toy)]
    )  # fmt: skip
    # The toy card records no evaluation: the gate (and only it) refuses the release.
    assert gated.returncode == 1
    assert "FAILED: clinical gate (model card): the candidate card has no referable metrics" in (
        gated.stderr
    )
