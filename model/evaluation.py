"""Evaluate a finished run on its out-of-fold and held-out test predictions.

Writes ``<run>/eval/metrics.json`` and PNG plots (confusion, ROC, reliability) per split.
By default it reads the predictions saved by training (``oof.csv``, ``test_predictions.csv``);
``recompute=True`` rebuilds them from the fold checkpoints with the current Keras backend
(e.g. to confirm a run trained under JAX on a GPU with the TF backend that exports it).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.batches import predict_probs
from model.config import Config
from model.data import prepare_data
from model.decision import expected_grade, optimise_thresholds, predict_grade
from model.ensemble import load_fold_models, load_run_config
from model.folds import read_folds
from model.metrics import NUM_CLASSES, grading_metrics, quadratic_weighted_kappa
from model.plots import plot_all

log = logging.getLogger(__name__)


def read_probs_csv(path: Path) -> tuple[list[str], NDArray[np.int64], NDArray[np.float64]]:
    """ids, grades, probabilities [N, 5] from oof.csv / test_predictions.csv."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["id"] for r in rows]
    grades = np.array([int(r["grade"]) for r in rows], np.int64)
    probs = np.array(
        [[float(r[f"p{g}"]) for g in range(NUM_CLASSES)] for r in rows], np.float64
    ).reshape(-1, NUM_CLASSES)
    return ids, grades, probs


def recompute_predictions(
    config: Config, run_dir: Path
) -> dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]:
    """OOF (each fold's model on its own validation rows) and test (fold-mean) predictions."""
    data = prepare_data(config, None, progress=False)
    fold_of = read_folds(run_dir / "folds.csv")
    ids = data.ids(data.cv_rows)
    folds = np.array([fold_of[i] for i in ids], np.int64)
    n_splits = config.folds.n_splits
    models = load_fold_models(config, run_dir, list(range(n_splits)))
    e = config.eval
    oof = np.zeros((len(ids), NUM_CLASSES), np.float64)
    for k, model in enumerate(models):
        mask = folds == k
        oof[mask] = predict_probs([model], data.images, data.cv_rows[mask], e.batch_size, e.tta)
    test = predict_probs(models, data.images, data.test_rows, e.batch_size, e.tta).astype(
        np.float64
    )
    return {
        "oof": (data.grades(data.cv_rows), oof),
        "test": (data.grades(data.test_rows), test),
    }


def evaluate_run(
    run_dir: Path,
    recompute: bool = False,
    out_dir: Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Metrics for OOF and test predictions of a run; writes metrics.json + plots."""
    config = load_run_config(run_dir, overrides)
    out_dir = out_dir or run_dir / ("eval_recomputed" if recompute else "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    if recompute:
        predictions = recompute_predictions(config, run_dir)
    else:
        predictions = {}
        for split, name in (("oof", "oof.csv"), ("test", "test_predictions.csv")):
            _, grades, probs = read_probs_csv(run_dir / name)
            predictions[split] = (grades, probs)
    oof_y, oof_p = predictions["oof"]
    saved = (
        json.loads((run_dir / "thresholds.json").read_text())
        if (run_dir / "thresholds.json").exists()
        else {}
    )
    thresholds = saved.get("thresholds") or optimise_thresholds(expected_grade(oof_p), oof_y)
    e = config.eval
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "predictions": "recomputed" if recompute else "saved by training",
        "tta": e.tta,
        "folds": config.folds.n_splits,
        "decision": {"rule": e.decision, "thresholds": thresholds},
        "image_size": config.image_size,
        "backbone": config.model.backbone,
        "loss": config.loss.name,
    }
    for split, (y, probs) in predictions.items():
        if len(y) == 0:
            continue
        pred = predict_grade(probs, e.decision, thresholds)
        metrics = grading_metrics(
            y, probs, pred, e.referable_threshold, e.bootstrap, e.ece_bins, config.seed
        )
        metrics["qwk_argmax"] = quadratic_weighted_kappa(y, predict_grade(probs, "argmax"))
        metrics["qwk_thresholds"] = quadratic_weighted_kappa(
            y, predict_grade(probs, "thresholds", thresholds)
        )
        result[split] = metrics
        plot_all(metrics, split, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    log.info("metrics written to %s", out_dir / "metrics.json")
    return result


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers a report table needs, for one split."""
    ref = metrics["referable"]
    return {
        "acc": metrics["accuracy"]["value"],
        "auc": metrics["auc"]["value"],
        "qwk": metrics["qwk"]["value"],
        "macro_f1": metrics["macro_f1"],
        "referable_sensitivity": ref["sensitivity"]["value"],
        "referable_specificity": ref["specificity"]["value"],
        "referable_auroc": ref["auroc"]["value"],
        "ece": metrics["ece"],
    }
