"""Batches from the preprocessing cache (uint8 memmap) for Keras, on any backend.

Training batches are full (the remainder is dropped each epoch after a reshuffle) so the traced
or XLA-compiled train step sees one shape; prediction pads the last batch for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from model.network import NUM_CLASSES, tta_views


class TrainBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """(pixels float32 [B,S,S,3] in [0,255], one-hot [B,5], sample weight [B]) batches;
    with ``mixup`` > 0 the images, labels and weights are blended pairs (soft labels); with
    ``targets`` ([len(rows), 5], a distillation's soft targets) those replace the one-hots."""

    def __init__(
        self,
        images: NDArray[np.uint8],
        rows: NDArray[np.int64],
        grades: NDArray[np.int64],
        weights: NDArray[np.float32],
        batch_size: int,
        seed: int,
        steps: int | None = None,
        mixup: float = 0.0,
        targets: NDArray[np.float32] | None = None,
    ) -> None:
        super().__init__()
        if targets is not None and len(targets) != len(rows):
            raise ValueError(f"{len(targets)} targets for {len(rows)} rows")
        if len(rows) == 0:
            raise ValueError("no training images")
        self.images = images
        self.rows = np.asarray(rows, np.int64)
        self.grades = np.asarray(grades, np.int64)
        self.weights = np.asarray(weights, np.float32)
        self.batch_size = min(batch_size, len(rows))
        self.steps = steps
        self.mixup = mixup
        self.targets = None if targets is None else np.asarray(targets, np.float32)
        self.seed = seed
        self.epoch = 0
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.rows))

    def __len__(self) -> int:
        full = len(self.rows) // self.batch_size
        return min(full, self.steps) if self.steps else full

    def __getitem__(
        self, index: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        pick = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rows = self.rows[pick]
        order = np.argsort(rows)  # sorted reads are kinder to a memmap
        x = np.asarray(self.images[rows[order]], np.float32)
        grades = self.grades[pick][order]
        if self.targets is None:
            y = np.eye(NUM_CLASSES, dtype=np.float32)[grades]
        else:
            y = self.targets[pick][order]
        w = self.weights[grades]
        if self.mixup > 0:
            x, y, w = self._mix(x, y, w, index)
        return x, y, w

    def _mix(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.float32],
        w: NDArray[np.float32],
        index: int,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """Blend each image with a random partner of the batch (seeded by epoch and index)."""
        rng = np.random.default_rng((self.seed, self.epoch, index))
        partner = rng.permutation(len(x))
        lam = rng.beta(self.mixup, self.mixup, len(x)).astype(np.float32)
        lam = np.maximum(lam, 1.0 - lam)  # the image keeps the larger share
        return (
            lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * x[partner],
            lam[:, None] * y + (1.0 - lam[:, None]) * y[partner],
            lam * w + (1.0 - lam) * w[partner],
        )

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self.rng.permutation(len(self.rows))


def batched_predict(
    predict_fn: Callable[[NDArray[np.float32]], Any],
    images: NDArray[np.uint8],
    rows: NDArray[np.int64],
    batch_size: int,
) -> NDArray[np.float32]:
    """Run ``predict_fn`` over ``images[rows]`` in fixed-size batches (last one padded)."""
    outputs = []
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(rows[start : start + batch_size])
        x = np.asarray(images[chunk], np.float32)
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), np.float32)])
        outputs.append(np.asarray(keras.ops.convert_to_numpy(predict_fn(x)), np.float32)[:n])
    if not outputs:
        return np.zeros((0, NUM_CLASSES), np.float32)
    return np.concatenate(outputs)


def predict_probs(
    models: list[keras.Model],
    images: NDArray[np.uint8],
    rows: NDArray[np.int64],
    batch_size: int,
    tta: str = "none",
) -> NDArray[np.float32]:
    """Mean class probabilities over models and test-time views (the exported ensemble rule)."""
    total: NDArray[np.float32] | None = None
    count = 0
    for model in models:
        for view in range(len(tta_views(np.zeros((1, 2, 2, 3)), tta))):

            def fn(x: NDArray[np.float32], model: keras.Model = model, view: int = view) -> Any:
                return model.predict_on_batch(np.ascontiguousarray(tta_views(x, tta)[view]))

            probs = batched_predict(fn, images, rows, batch_size)
            total = probs if total is None else total + probs
            count += 1
    assert total is not None
    return (total / count).astype(np.float32)
