"""End to end on the tiny config: train (2 folds) -> evaluate -> export -> reload and check.

The run is the session's tiny model (tests/conftest.py ``model_root``, built by
``python -m model.pipeline``, a few minutes on 2 CPU cores, shared with the gateway tests). It proves the contracts the gateway relies on:
signatures, dtypes and shapes, SavedModel == Keras fold ensemble within 1e-4 on real
preprocessed photos, warmup records parse as PredictionLog, model card, and resumable runs.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TINY = Path(__file__).resolve().parents[2] / "model" / "configs" / "tiny.yaml"


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(model_root, tmp_path):
    import tensorflow as tf

    import fundus
    from model.batches import predict_probs
    from model.card import validate_card
    from model.config import load_config
    from model.ensemble import load_fold_models
    from model.training import run_training
    from model.warmup import read_warmup
    from synthetic import encode_jpeg, synthesize_fundus
    from tests.support.tiny_model import tiny_run_dir

    run = tiny_run_dir(model_root)

    # The run directory holds everything a run must write.
    for name in (
        "config.yaml",
        "folds.csv",
        "oof.csv",
        "test_predictions.csv",
        "thresholds.json",
        "summary.json",
        "ungradable.csv",
        "data.json",
        "train.log",
        "eval/metrics.json",
        "eval/test_confusion.png",
        "eval/test_roc.png",
        "eval/oof_reliability.png",
        "fold_0/history.csv",
        "fold_1/best.weights.h5",
    ):
        assert (run / name).exists(), name
    with (run / "folds.csv").open() as f:
        rows = list(csv.DictReader(f))
    fold_of_patient: dict[str, set[str]] = {}
    for row in rows:
        fold_of_patient.setdefault(row["patient"], set()).add(row["fold"])
    assert all(len(v) == 1 for v in fold_of_patient.values())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert {
        "qwk",
        "accuracy",
        "auc",
        "macro_f1",
        "confusion_matrix",
        "per_grade_recall",
        "ece",
        "referable",
    } <= set(metrics["test"])
    assert {"sensitivity", "specificity", "ppv", "npv", "auroc"} <= set(
        metrics["test"]["referable"]
    )

    # Export layout and the exporter's own verification.
    path = model_root / "dr_grader" / "1"  # tiny_export checked saved_model.pb is there
    verification = json.loads((run / "export_verification.json").read_text())
    assert verification["path"] == str(path)
    assert verification["max_abs_diff_probabilities"] <= 1e-4
    assert set(verification["signatures"]) == {"serving_default", "explain", "model_card"}
    card = json.loads((path / "assets.extra" / "model_card.json").read_text())
    validate_card(card)
    config = load_config(run / "config.yaml")
    assert card["preprocess"] == config.preprocess_config.to_dict()
    assert card["metrics"]["test"]["n"] == 10
    assert len(card["data_fingerprint"]) == 64
    logs = read_warmup(path / "assets.extra" / "tf_serving_warmup_requests")
    image_logs = [
        log for log in logs if log.predict_log.request.model_spec.signature_name != "model_card"
    ]
    assert image_logs and all(
        log.predict_log.request.inputs["image"].dtype == tf.uint8.as_datatype_enum
        for log in image_logs
    )
    # every signature the gateway calls, at every batch size the TF Serving configs allow
    assert len(logs) == 3 * len(verification["warmup_batch_sizes"])

    # Independent check: new photos -> fundus bytes path -> SavedModel vs Keras fold ensemble.
    pp = fundus.PreprocessConfig.from_dict(card["preprocess"])
    photos = [synthesize_fundus(g, width=400, height=300, seed=100 + g) for g in range(5)]
    images = np.stack([fundus.load_and_preprocess(encode_jpeg(p), pp).image for p in photos])
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert inputs["image"].dtype == tf.uint8 and inputs["image"].shape.as_list() == [
        None,
        64,
        64,
        3,
    ]
    out = serve(image=tf.constant(images))
    assert out["probabilities"].dtype == tf.float32 and out["probabilities"].shape == (5, 5)
    assert out["grade"].dtype == tf.int64 and out["grade"].shape == (5,)
    assert out["referable_probability"].dtype == tf.float32 and out[
        "referable_probability"
    ].shape == (5,)
    models = load_fold_models(config, run, [0, 1])
    reference = predict_probs(models, images, np.arange(5), 5, config.eval.tta)
    assert np.abs(out["probabilities"].numpy() - reference).max() <= 1e-4
    explained = loaded.signatures["explain"](image=tf.constant(images))
    heat = explained["heatmap"].numpy()
    assert (
        heat.dtype == np.float32
        and heat.shape == (5, 2, 2)
        and heat.min() >= 0.0
        and heat.max() <= 1.0
    )
    assert np.abs(explained["probabilities"].numpy() - out["probabilities"].numpy()).max() <= 1e-4

    # Resume: the same run_dir skips finished folds (on a copy: the session's other tests read
    # the original run, and a resumed run rewrites its config.yaml and aggregates).
    copy = tmp_path / "resumed"
    shutil.copytree(run, copy)
    resumed = [f"run_dir={copy}", f"cache.root={run.parent / 'cache'}"]
    again = run_training(load_config(TINY, resumed), progress=False)
    assert json.loads((again / "summary.json").read_text())["folds_trained_now"] == []
