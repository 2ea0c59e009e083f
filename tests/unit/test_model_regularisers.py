"""Mixup in the training batches and the weight moving average (EMA) of the optimiser."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from model.batches import TrainBatches
from model.callbacks import QWKCheckpoint
from model.config import load_config
from model.network import make_optimizer

GRADE_WEIGHTS = np.array([0.5, 1.0, 1.5, 2.0, 2.5], np.float32)


def _batches(mixup: float, seed: int = 3) -> TrainBatches:
    """40 images whose every pixel is 50 * grade, so a blended pixel encodes the blend."""
    grades = np.arange(40, dtype=np.int64) % 5
    images = np.broadcast_to((grades * 50).astype(np.uint8)[:, None, None, None], (40, 4, 4, 3))
    return TrainBatches(
        np.ascontiguousarray(images),
        np.arange(40, dtype=np.int64),
        grades,
        GRADE_WEIGHTS,
        batch_size=8,
        seed=seed,
        mixup=mixup,
    )


def test_without_mixup_labels_are_one_hot_and_weights_per_grade() -> None:
    x, y, w = _batches(0.0)[0]
    assert set(np.unique(y)) == {0.0, 1.0}
    grades = y.argmax(1)
    np.testing.assert_array_equal(x[:, 0, 0, 0], grades * 50)
    np.testing.assert_array_equal(w, GRADE_WEIGHTS[grades])


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_blends_images_labels_and_weights_alike(alpha: float) -> None:
    batches = _batches(alpha)
    blended = 0
    for index in range(len(batches)):
        x, y, w = batches[index]
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
        assert np.all(y.max(1) >= 0.5 - 1e-6)  # each image keeps the larger share
        # the pixel value is 50 x the label-weighted grade, the weight the label-weighted weight
        np.testing.assert_allclose(x[:, 0, 0, 0], 50 * (y @ np.arange(5)), rtol=1e-5)
        np.testing.assert_allclose(w, y @ GRADE_WEIGHTS, rtol=1e-5)
        assert np.all(x == x[:, :1, :1, :1])  # whole images are blended, not patches
        blended += int(np.sum(y.max(1) < 1 - 1e-6))
    assert blended > 0


def test_mixup_is_reproducible_per_epoch_and_changes_between_epochs() -> None:
    first, again = _batches(0.4), _batches(0.4)
    np.testing.assert_array_equal(first[2][1], again[2][1])
    before = first[2][1]
    first.on_epoch_end()
    assert not np.array_equal(before, first[2][1])


def test_a_fold_with_ema_keeps_the_moving_average(tmp_path: Path) -> None:
    """keep=last + EMA: the checkpoint the fold keeps holds the averaged weights, not the raw
    weights of the last step."""
    config = load_config(None, ["train.ema_momentum=0.9", "train.keep=last", "train.lr=0.05"])
    optimizer = make_optimizer(config, total_steps=20, steps_per_epoch=5)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(5, "softmax")]
    )
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(20, 2, 2, 3), dtype=np.uint8)
    grades = np.arange(20, dtype=np.int64) % 5
    checkpoint = QWKCheckpoint(
        model,
        images,
        np.arange(20, dtype=np.int64),
        grades,
        tmp_path / "best.weights.h5",
        tmp_path / "state.json",
        "argmax",
        patience=100,
        min_epochs=0,
        batch_size=10,
        keep="last",
    )
    raw: list[np.ndarray] = []
    last_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: raw.append(np.array(model.layers[-1].kernel.numpy()))
    )
    x = images.astype(np.float32) / 255.0
    y = keras.utils.to_categorical(grades, 5)
    model.fit(x, y, batch_size=4, epochs=4, callbacks=[checkpoint, last_epoch], verbose=0)
    average = optimizer._model_variables_moving_average[0].numpy()
    model.layers[-1].kernel.assign(np.zeros_like(average))
    model.load_weights(tmp_path / "best.weights.h5")
    kept = model.layers[-1].kernel.numpy()
    np.testing.assert_allclose(kept, average)
    assert not np.allclose(kept, raw[-1])  # not the raw weights of the last step


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.ema_momentum=0.99"],  # keep defaults to best_qwk: scored on raw weights
        ["train.ema_momentum=1.5", "train.keep=last"],
        ["augment.mixup=-0.1"],
    ],
)
def test_inconsistent_regulariser_settings_are_refused(overrides: list[str]) -> None:
    with pytest.raises(ValueError, match=r"ema_momentum|mixup"):
        load_config(None, overrides)
