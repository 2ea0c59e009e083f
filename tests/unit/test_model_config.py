"""model.config: YAML + key=value overrides -> typed, validated config."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.config import Config, apply_overrides, load_config, parse_override, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "model" / "configs"


def test_parse_override_types():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("data.exclude_ungradable=false") == (
        ["data", "exclude_ungradable"],
        False,
    )
    assert parse_override("folds.only=[0, 2]") == (["folds", "only"], [0, 2])
    assert parse_override("model.weights=null") == (["model", "weights"], None)
    assert parse_override("data.npz_path=/x/y.npz") == (["data", "npz_path"], "/x/y.npz")


@pytest.mark.parametrize("bad", ["epochs", "=3", "train..epochs=3"])
def test_parse_override_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_override(bad)


def test_apply_overrides_creates_nested_and_leaves_input_alone():
    base = {"train": {"epochs": 5}}
    out = apply_overrides(base, ["train.epochs=7", "eval.tta=none"])
    assert out == {"train": {"epochs": 7}, "eval": {"tta": "none"}}
    assert base == {"train": {"epochs": 5}}


@pytest.mark.parametrize("name", ["tiny.yaml", "retinamnist.yaml", "b3_512_5fold.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert config.model.backbone == "EfficientNetB3"
    assert config.image_size == config.preprocess["size"]


def test_production_config_is_512_px_five_folds():
    config = load_config(CONFIGS / "b3_512_5fold.yaml")
    assert (config.image_size, config.folds.n_splits, config.model.weights) == (512, 5, None)


def test_overrides_win_and_are_typed():
    config = load_config(
        CONFIGS / "tiny.yaml", ["train.epochs=4", "train.lr=1", "preprocess.size=48"]
    )
    assert config.train.epochs == 4
    assert isinstance(config.train.lr, float)
    assert load_config(CONFIGS / "tiny.yaml", ["train.lr=1e-3"]).train.lr == 1e-3  # YAML 1.1 string
    assert config.image_size == 48


@pytest.mark.parametrize(
    "override",
    [
        "train.epoch=3",
        "nope=1",
        "train.epochs=three",
        "train.lr=fast",
        "loss.name=hinge",
        "eval.tta=rot90",
        "preprocess.size=3",
        "preprocess.colour=1",
    ],
)
def test_bad_values_are_refused(override):
    with pytest.raises((ValueError, TypeError)):
        load_config(CONFIGS / "tiny.yaml", [override])


def test_save_and_reload_round_trip(tmp_path):
    config = load_config(CONFIGS / "retinamnist.yaml", ["train.epochs=2"])
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again.to_dict() == config.to_dict()
    assert isinstance(again, Config)
