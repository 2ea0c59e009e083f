"""QWKCheckpoint: which checkpoint a fold keeps, and pausing before a machine lease ends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from model.callbacks import QWKCheckpoint


def _fit(tmp_path: Path, epochs: int, **options: object) -> QWKCheckpoint:
    """Train a 5-class softmax on 8x8 images with the callback; return the callback."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 8, 8, 3), dtype=np.uint8)
    grades = np.arange(40, dtype=np.int64) % 5
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(5, "softmax")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    callback = QWKCheckpoint(
        model,
        images,
        np.arange(40, dtype=np.int64),
        grades,
        tmp_path / "best.weights.h5",
        tmp_path / "state.json",
        "argmax",
        patience=100,
        min_epochs=0,
        batch_size=20,
        **options,  # type: ignore[arg-type]
    )
    x = images.astype(np.float32)
    y = keras.utils.to_categorical(grades, 5)
    model.fit(x, y, batch_size=20, epochs=epochs, callbacks=[callback], verbose=0)
    return callback


def test_keep_last_saves_the_final_epoch(tmp_path: Path) -> None:
    callback = _fit(tmp_path, epochs=3, keep="last")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_done"] == 3
    assert state["kept_epoch"] == 2
    assert (tmp_path / "best.weights.h5").exists()
    assert not callback.paused


def test_keep_best_qwk_records_no_kept_epoch(tmp_path: Path) -> None:
    _fit(tmp_path, epochs=2)
    state = json.loads((tmp_path / "state.json").read_text())
    assert "kept_epoch" not in state
    assert state["best_epoch"] in (0, 1)


@pytest.mark.parametrize(("backup_every", "paused_after"), [(1, 1), (2, 2)])
def test_pause_waits_for_an_epoch_with_a_backup(
    tmp_path: Path, backup_every: int, paused_after: int
) -> None:
    callback = _fit(tmp_path, epochs=5, pause=(time.monotonic() - 1.0, backup_every), keep="last")
    state = json.loads((tmp_path / "state.json").read_text())
    assert callback.paused
    assert state["epochs_done"] == paused_after
    assert "kept_epoch" not in state  # a paused fold keeps nothing: it is not finished


def test_no_pause_before_the_time(tmp_path: Path) -> None:
    callback = _fit(tmp_path, epochs=2, pause=(time.monotonic() + 3600.0, 1))
    assert not callback.paused
    assert json.loads((tmp_path / "state.json").read_text())["epochs_done"] == 2
