"""The SavedModel graph on a small stand-in network (same layer names as the real one):
TTA + fold mean + in-graph decision rule + Grad-CAM, warmup records and the model card."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.batches import predict_probs
from model.card import build_card, validate_card
from model.config import load_config
from model.decision import predict_grade
from model.network import OrdinalHead
from model.serving import save_serving_model
from model.warmup import read_warmup, write_warmup

SIZE = 16
CONFIGS = Path(__file__).resolve().parents[2] / "model" / "configs"


def _stand_in(seed: int, ordinal: bool) -> keras.Model:
    keras.utils.set_random_seed(seed)
    backbone = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(12, 3, strides=2, activation="relu"),
        ],
        name="backbone",
    )
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    head = (
        OrdinalHead(name="probabilities")
        if ordinal
        else keras.layers.Dense(5, activation="softmax", name="probabilities")
    )
    return keras.Model(inputs, head(x))


@pytest.mark.parametrize(
    ("ordinal", "rule", "tta"), [(False, "argmax", "hflip"), (True, "thresholds", "flip4")]
)
def test_signatures_match_keras(tmp_path, ordinal, rule, tta):
    models = [_stand_in(1, ordinal), _stand_in(2, ordinal)]
    thresholds = [0.7, 1.4, 2.1, 2.9]
    path = tmp_path / "sm"
    save_serving_model(models, SIZE, tta, rule, thresholds, str(path), '{"name": "x"}')
    loaded = tf.saved_model.load(str(path))
    assert {"serving_default", "explain", "model_card"} <= set(loaded.signatures)
    card = loaded.signatures["model_card"](unused=tf.constant(0, tf.int32))["model_card"]
    assert json.loads(card.numpy().decode()) == {"name": "x"}
    images = np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    out = {
        k: v.numpy()
        for k, v in loaded.signatures["serving_default"](image=tf.constant(images)).items()
    }
    ref = predict_probs(models, images, np.arange(6), 4, tta)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (6, 5)
    assert np.abs(out["probabilities"] - ref).max() <= 1e-5
    assert out["grade"].dtype == np.int64
    assert out["grade"].tolist() == predict_grade(out["probabilities"], rule, thresholds).tolist()
    assert np.allclose(out["referable_probability"], ref[:, 2:].sum(1), atol=1e-5)
    exp = {k: v.numpy() for k, v in loaded.signatures["explain"](image=tf.constant(images)).items()}
    assert np.abs(exp["probabilities"] - out["probabilities"]).max() <= 1e-5
    assert exp["grade"].tolist() == out["grade"].tolist()
    heat = exp["heatmap"]
    assert heat.dtype == np.float32 and heat.shape == (6, 3, 3)
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_warmup_round_trip(tmp_path):
    images = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    n = write_warmup(tmp_path / "w", images, "dr_grader", ["serving_default", "explain"])
    logs = read_warmup(tmp_path / "w")
    assert n == len(logs) == 4
    request = logs[0].predict_log.request
    assert request.model_spec.name == "dr_grader"
    assert [d.size for d in request.inputs["image"].tensor_shape.dim] == [1, SIZE, SIZE, 3]
    assert request.inputs["image"].dtype == tf.uint8.as_datatype_enum


def test_model_card_schema():
    config = load_config(CONFIGS / "tiny.yaml")
    card = build_card(
        config,
        3,
        [0, 1],
        [0.5, 1.5, 2.5, 3.5],
        [2, 2],
        None,
        "f" * 64,
        None,
        {"tensorflow": tf.__version__},
    )
    validate_card(card)
    json.dumps(card)  # serialisable
    assert card["preprocess"] == config.preprocess_config.to_dict()
    assert card["input"]["shape"] == [None, 64, 64, 3]
    card["input_size"] = 65
    with pytest.raises(ValueError):
        validate_card(card)
