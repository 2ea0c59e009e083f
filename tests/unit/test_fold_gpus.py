"""Fold processes round-robined over the visible GPUs; train.distribution validated."""

from __future__ import annotations

import pytest

from model.config import load_config
from model.distribution import apply_distribution, fold_gpus, visible_gpus


def test_folds_round_robin_over_gpus() -> None:
    assert fold_gpus([0, 1, 2, 3, 4], ["0", "1"]) == {0: "0", 1: "1", 2: "0", 3: "1", 4: "0"}
    assert fold_gpus([3, 4], ["2", "5", "7"]) == {3: "2", 4: "5"}  # resumed: remaining folds
    assert fold_gpus([0, 1], []) == {0: None, 1: None}


def test_visible_gpus_from_environment() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_distribution_field_is_validated() -> None:
    config = load_config("model/configs/tiny.yaml", ["train.distribution=data_parallel"])
    assert config.train.distribution == "data_parallel"
    assert load_config("model/configs/tiny.yaml").train.distribution == "none"
    with pytest.raises(ValueError, match="data_parallel"):
        load_config("model/configs/tiny.yaml", ["train.distribution=model_parallel"])


def test_data_parallel_needs_jax() -> None:
    assert apply_distribution("none", 8) == 1
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        apply_distribution("data_parallel", 8)  # the test suite runs the TF backend
