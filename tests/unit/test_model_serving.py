"""The SavedModel graph on a small stand-in network (same layer names as the real one):
TTA + fold mean + in-graph decision rule + Grad-CAM, warmup records and the model card."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from model.batches import predict_probs
from model.card import build_card, validate_card
from model.config import load_config
from model.decision import predict_grade
from model.network import OrdinalHead
from model.serving import save_serving_model
from model.tfserving_batching import (
    BATCHING_CONFIGS,
    default_warmup_batch_sizes,
    load_batching_parameters,
    parse_batching_parameters,
    servable_signatures,
    signature_problems,
    warmup_batch_sizes,
)
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
    # Batchable (TF Serving runs with --enable_batching): one copy of the card per input row.
    cards = loaded.signatures["model_card"](unused=tf.zeros([3], tf.int32))["model_card"]
    assert cards.shape == (3,)
    assert [json.loads(c.decode()) for c in cards.numpy()] == [{"name": "x"}] * 3
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    defs = servable_signatures(proto.meta_graphs[0].signature_def)
    assert set(defs) == {"serving_default", "explain", "model_card"}
    assert [p for name in defs for p in signature_problems(name, defs[name])] == []
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


def test_warmup_covers_every_signature_and_batch_size(tmp_path):
    signatures = ["serving_default", "explain", "model_card"]
    n = write_warmup(tmp_path / "w", "dr_grader", SIZE, [1, 2, 4, 8], signatures)
    logs = read_warmup(tmp_path / "w")
    assert n == len(logs) == 12
    seen = set()
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "dr_grader"
        key = "unused" if request.model_spec.signature_name == "model_card" else "image"
        array = tf.make_ndarray(request.inputs[key])  # the compact form expands to the shape
        seen.add((request.model_spec.signature_name, array.shape))
        assert log.ByteSize() < 200  # a few bytes per record, whatever the batch size
    assert seen == {
        (name, (b, SIZE, SIZE, 3) if name != "model_card" else (b,))
        for name in signatures
        for b in (1, 2, 4, 8)
    }


def test_warmup_batch_sizes_follow_the_tfserving_batching_configs():
    """One place: the k8s batching configs; sizes above a max_batch_size would fail the load."""
    cpu = parse_batching_parameters(
        "max_batch_size { value: 8 }\nallowed_batch_sizes: 1\n"
        "allowed_batch_sizes: 2\nallowed_batch_sizes: 4\n"
        "allowed_batch_sizes: 8\n"
    )
    gpu = parse_batching_parameters(
        "max_batch_size { value: 32 }\nallowed_batch_sizes: 2\n"
        "allowed_batch_sizes: 16\nallowed_batch_sizes: 32\n"
    )
    assert warmup_batch_sizes([cpu, gpu]) == [1, 2, 4, 8]
    assert warmup_batch_sizes([gpu]) == [2, 16, 32]
    configs = [load_batching_parameters(path) for path in BATCHING_CONFIGS]
    sizes = default_warmup_batch_sizes()
    assert set(configs[0].allowed_batch_sizes) <= set(sizes)  # the base (CPU) profile: all
    assert max(sizes) <= min(c.max_batch_size for c in configs)
    with pytest.raises(ValueError):
        write_warmup(Path("/nonexistent"), "m", SIZE, list(range(1, 400)), ["a", "b", "c"])


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
