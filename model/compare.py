"""Teacher ensemble vs distilled student vs one fold model, on the held-out test split.

    python -m model.compare --teacher runs/<teacher> --student runs/<student> \\
        [--student-tta none,flip4] [--out runs/<student>/comparison.json]

Rows: the teacher's fold ensemble (its saved test predictions: every fold, its TTA); the
teacher's fold ``distill.holdout_fold`` alone (the like-for-like single network: trained on the
same folds as the student); the student at each ``--student-tta`` (predicted here from its
checkpoint; a student served without TTA costs one pass). Columns: MedMNIST ACC and AUC, QWK,
referable sensitivity / specificity, ECE, the network passes per photograph, and agreement with
the teacher (argmax grade, referable decision) on the same images. 95 % CIs (bootstrap) are in
the JSON, and for every row its gap to the ensemble on ACC and AUC with a paired bootstrap CI
(the same resampled images for both models), which is what a "within 1 point" goal needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.batches import predict_probs
from model.data import prepare_data
from model.decision import predict_grade
from model.distill import agreement, passes_per_image
from model.ensemble import load_fold_models, load_run_config
from model.evaluation import read_probs_csv
from model.metrics import bootstrap_ci, grading_metrics, macro_ovr_auc
from model.training import fold_dir, setup_logging

COLUMNS = ("ACC", "AUC", "QWK", "ref sens", "ref spec", "ECE", "passes", "= teacher grade", "= ref")


def paired_gap(
    grades: NDArray[np.int64], probs: NDArray[Any], teacher: NDArray[Any], n_boot: int = 1000
) -> dict[str, dict[str, float]]:
    """ACC and AUC of ``probs`` minus the teacher's, each with a paired 95 % bootstrap CI."""
    hit, teacher_hit = probs.argmax(1) == grades, teacher.argmax(1) == grades

    def acc_gap(i: NDArray[np.int64]) -> float:
        return float(hit[i].mean() - teacher_hit[i].mean())

    def auc_gap(i: NDArray[np.int64]) -> float:
        return macro_ovr_auc(grades[i], probs[i]) - macro_ovr_auc(grades[i], teacher[i])

    every = np.arange(len(grades))
    gaps = {}
    for name, fn in (("acc", acc_gap), ("auc", auc_gap)):
        low, high = bootstrap_ci(fn, len(grades), n_boot)
        gaps[name] = {"value": fn(every), "ci95_low": low, "ci95_high": high}
    return gaps


def _row(
    name: str, grades: NDArray[np.int64], probs: NDArray[Any], passes: int, teacher: NDArray[Any]
) -> dict[str, Any]:
    """The metrics of one prediction set (argmax rule, referable at P(grade >= 2) >= 0.5)."""
    metrics = grading_metrics(grades, probs, predict_grade(probs, "argmax"), n_boot=1000)
    ref = metrics["referable"]
    return {
        "name": name,
        "passes_per_image": passes,
        "acc": metrics["accuracy"],
        "auc": metrics["auc"],
        "qwk": metrics["qwk"],
        "referable_sensitivity": ref["sensitivity"],
        "referable_specificity": ref["specificity"],
        "ece": metrics["ece"],
        "agreement_with_teacher": agreement(probs, teacher),
        "gap_to_teacher": paired_gap(grades, probs, teacher),
    }


def compare(teacher_dir: Path, student_dir: Path, student_ttas: list[str]) -> dict[str, Any]:
    """Every row of the comparison, the teacher ensemble first."""
    teacher_config = load_run_config(teacher_dir)
    student_config = load_run_config(student_dir)
    ids, grades, ensemble = read_probs_csv(teacher_dir / "test_predictions.csv")
    tta = teacher_config.eval.tta
    folds = teacher_config.folds.n_splits
    holdout = student_config.distill.holdout_fold
    with np.load(fold_dir(teacher_dir, holdout) / "predictions.npz") as saved:
        single, test_rows = saved["test"], saved["test_rows"]
    rows = [
        _row(
            f"teacher: {folds}-fold ensemble, {tta}",
            grades,
            ensemble,
            passes_per_image(folds, tta),
            ensemble,
        ),
        _row(
            f"teacher fold {holdout} alone, {tta}",
            grades,
            single,
            passes_per_image(1, tta),
            ensemble,
        ),
    ]
    data = prepare_data(student_config, None, progress=False)
    if not np.array_equal(data.test_rows, test_rows) or data.ids(data.test_rows) != ids:
        raise SystemExit("the student's test split differs from the teacher's")
    (student,) = load_fold_models(student_config, student_dir, [holdout])
    backbone = student_config.model.backbone
    for view in student_ttas:
        probs = predict_probs([student], data.images, data.test_rows, 200, view)
        rows.append(
            _row(f"student {backbone}, {view}", grades, probs, passes_per_image(1, view), ensemble)
        )
    return {
        "teacher": str(teacher_dir),
        "student": str(student_dir),
        "n_test": len(grades),
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    """A markdown table of the rows (point estimates)."""
    print(f"| model | {' | '.join(COLUMNS)} |")
    print("| --- " * (len(COLUMNS) + 1) + "|")
    for row in result["rows"]:
        values = [
            row[key]["value"]
            for key in ("acc", "auc", "qwk", "referable_sensitivity", "referable_specificity")
        ]
        agree = row["agreement_with_teacher"]
        cells = [f"{v:.3f}" for v in values] + [f"{row['ece']:.3f}", str(row["passes_per_image"])]
        cells += [f"{agree['grade']:.3f}", f"{agree['referable']:.3f}"]
        print(f"| {row['name']} | {' | '.join(cells)} |")
    print()
    print("| model | ACC - ensemble [95 % CI] | AUC - ensemble [95 % CI] |")
    print("| --- | --- | --- |")
    for row in result["rows"][1:]:
        gaps = [
            f"{g['value']:+.3f} [{g['ci95_low']:+.3f}, {g['ci95_high']:+.3f}]"
            for g in (row["gap_to_teacher"]["acc"], row["gap_to_teacher"]["auc"])
        ]
        print(f"| {row['name']} | {' | '.join(gaps)} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.compare", description=__doc__)
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--student", required=True, type=Path)
    parser.add_argument("--student-tta", default="none,flip4", help="comma-separated TTA names")
    parser.add_argument("--out", type=Path, help="JSON output (default <student>/comparison.json)")
    args = parser.parse_args(argv)
    setup_logging()
    result = compare(args.teacher, args.student, args.student_tta.split(","))
    out = args.out or args.student / "comparison.json"
    out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
