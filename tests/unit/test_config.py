"""PreprocessConfig serialisation and validation."""

from __future__ import annotations

import pytest

from fundus import PreprocessConfig


def test_json_round_trip() -> None:
    config = PreprocessConfig(size=300, crop_threshold=7, ben_graham=True)
    assert PreprocessConfig.from_json(config.to_json()) == config


def test_fingerprint_tracks_every_field() -> None:
    base = PreprocessConfig()
    assert base.fingerprint() == PreprocessConfig().fingerprint()
    assert base.fingerprint() != PreprocessConfig(size=256).fingerprint()
    assert base.fingerprint() != PreprocessConfig(ben_graham=True).fingerprint()


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown PreprocessConfig keys"):
        PreprocessConfig.from_dict({"size": 512, "sise": 256})


def test_json_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="object"):
        PreprocessConfig.from_json("[512]")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 4},
        {"size": 5000},
        {"crop_threshold": -1},
        {"crop_threshold": 255},
        {"ben_graham_sigma_fraction": 0.0},
    ],
)
def test_invalid_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PreprocessConfig(**kwargs)  # type: ignore[arg-type]
