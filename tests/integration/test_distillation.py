"""Distillation end to end on the tiny config: the session's tiny run (2 folds x hflip, the
teacher) teaches one smaller student (EfficientNet-B0), which is trained, evaluated, exported
and verified by the real ``model.pipeline`` command; its SavedModel answers like any export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.tiny_model import REPO_ROOT, TINY_CONFIG, tiny_run_dir


@pytest.mark.slow
def test_a_tiny_student_learns_the_tiny_ensemble_and_exports(
    model_root: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    from contract.model_card import ModelCard, check_export

    teacher_run = tiny_run_dir(model_root)
    teacher_card = json.loads(
        (model_root / "dr_grader" / "1" / "assets.extra" / "model_card.json").read_text()
    )
    student_run = tmp_path / "student"
    export_root = tmp_path / "export"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.pipeline",
            "--config",
            str(TINY_CONFIG),
            f"distill.teacher_run={teacher_run}",
            "distill.teacher_version=1",
            "distill.weight=0.7",
            "model.backbone=EfficientNetB0",
            f"run_dir={student_run}",
            f"cache.root={teacher_run.parent / 'cache'}",
            f"export.root={export_root}",
            "export.version=2",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # One network, validated on the teacher's holdout fold, on the teacher's folds.
    assert (student_run / "folds.csv").read_text() == (teacher_run / "folds.csv").read_text()
    assert (student_run / "fold_0" / "DONE").exists()
    assert not (student_run / "fold_1").exists()
    summary = json.loads((student_run / "summary.json").read_text())
    assert summary["complete"] and summary["folds_trained_now"] == [0]

    # The soft targets are the teacher's exported rule (its OOF on the holdout images).
    with np.load(student_run / "teacher.npz") as saved:
        assert list(saved["folds"]) == [0, 1]
        probs = saved["probs"]
        teacher_rows = list(saved["rows"])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-4)

    report = json.loads((student_run / "distill.json").read_text())
    assert report["teacher_passes_per_image"] == 4  # 2 folds x hflip
    test = report["agreement"]["test"]
    assert test["n"] == summary["data"]["test"] and 0.0 <= test["grade"] <= 1.0

    version = export_root / "dr_grader" / "2"
    card = json.loads((version / "assets.extra" / "model_card.json").read_text())
    check_export(card)
    assert ModelCard.model_validate(card).passes_per_image == 2  # 1 network x hflip
    assert (teacher_card["ensemble"]["members"], teacher_card["ensemble"]["tta"]) == (2, "hflip")
    assert card["backbone"] == "EfficientNetB0"
    assert card["teacher"]["version"] == 1 and card["teacher"]["passes_per_image"] == 4
    assert card["teacher"]["agreement"] == report["agreement"]
    assert card["ensemble"]["members"] == 1
    verification = json.loads((student_run / "export_verification.json").read_text())
    assert verification["path"] == str(version)

    # Same signatures as the teacher's export: TF Serving and the gateway serve it unchanged.
    student = tf.saved_model.load(str(version))
    teacher = tf.saved_model.load(str(model_root / "dr_grader" / "1"))
    assert sorted(student.signatures) == sorted(teacher.signatures)
    image = tf.zeros([1, 64, 64, 3], tf.uint8)
    outputs = student.signatures["serving_default"](image=image)
    assert set(outputs) == set(teacher.signatures["serving_default"](image=image))

    # The side-by-side report (model.compare): the teacher's rows come from its saved
    # predictions, the student's from its checkpoint at each TTA asked for.
    from model.compare import compare
    from model.distill import agreement

    result = compare(teacher_run, student_run, ["none", "hflip"])
    names = [row["name"] for row in result["rows"]]
    assert names == [
        "teacher: 2-fold ensemble, hflip",
        "teacher fold 0 alone, hflip",
        "student EfficientNetB0, none",
        "student EfficientNetB0, hflip",
    ]
    assert [row["passes_per_image"] for row in result["rows"]] == [4, 2, 1, 2]
    ensemble = result["rows"][0]["agreement_with_teacher"]
    assert (ensemble["grade"], ensemble["referable"], ensemble["mean_abs_prob_diff"]) == (1, 1, 0)
    # The hflip student's test probabilities are the ones training saved for its fold.
    with np.load(student_run / "fold_0" / "predictions.npz") as saved:
        at = [teacher_rows.index(row) for row in saved["test_rows"]]
        student_hflip = agreement(saved["test"], probs[at])
    measured = result["rows"][3]["agreement_with_teacher"]
    assert (measured["n"], measured["grade"], measured["referable"]) == (
        student_hflip["n"],
        student_hflip["grade"],
        student_hflip["referable"],
    )
    assert measured["mean_abs_prob_diff"] == pytest.approx(
        student_hflip["mean_abs_prob_diff"], abs=2e-4
    )
