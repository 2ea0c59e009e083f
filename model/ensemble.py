"""Load a finished run's fold models (any backend) for evaluation and export."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from model.config import Config, load_config
from model.network import build_model
from model.training import fold_dir, load_fold_weights


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> Config:
    """The run's resolved ``config.yaml`` (plus optional overrides, e.g. export.root=...)."""
    config = load_config(run_dir / "config.yaml", overrides)
    config.run_dir = str(run_dir)
    return config


def fold_summaries(
    run_dir: Path, n_splits: int, folds: list[int] | None = None
) -> list[dict[str, object]]:
    """Each fold's DONE summary (all folds, or ``folds``); raises if one is unfinished."""
    out = []
    for k in folds if folds is not None else range(n_splits):
        done = fold_dir(run_dir, k) / "DONE"
        if not done.exists():
            raise FileNotFoundError(f"fold {k} of {run_dir} is not finished (no {done})")
        out.append(json.loads(done.read_text()))
    return out


def selected_folds(config: Config, run_dir: Path) -> list[int]:
    """Every trained fold for an ensemble (all, or ``folds.only`` when the run trained a
    subset, e.g. the demo); otherwise the fold with the best OOF QWK."""
    candidates = sorted(config.folds.only or range(config.folds.n_splits))
    summaries = fold_summaries(run_dir, config.folds.n_splits, candidates)
    if config.export.ensemble:
        return candidates
    best = max(summaries, key=lambda s: float(s["oof_qwk_tta"]))  # type: ignore[arg-type]
    return [int(best["fold"])]  # type: ignore[call-overload]


def load_fold_models(config: Config, run_dir: Path, folds: list[int]) -> list[keras.Model]:
    """Build the core model once per fold and load its best weights (float32 policy)."""
    keras.mixed_precision.set_global_policy("float32")
    models = []
    for k in folds:
        model = build_model(config)
        load_fold_weights(model, fold_dir(run_dir, k))
        models.append(model)
    return models
