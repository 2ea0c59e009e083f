"""Losses on class probabilities [B, 5] (every head outputs probabilities), backend-agnostic.

- ``ce``: categorical cross-entropy (+ label smoothing); class weights come as sample weights.
- ``focal``: categorical focal loss (Lin et al. 2017).
- ``ordinal``: binary cross-entropy on the four cumulative events y > k, k = 0..3, computed
  from the probabilities; used with the cumulative (CORAL-style) ordinal head.
- ``ce_ordinal``: ce + ``ordinal_weight`` * ordinal.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import NDArray

from model.config import LossConfig

_EPS = 1e-6


def _smooth(y_true: Any, label_smoothing: float) -> Any:
    if label_smoothing <= 0:
        return y_true
    k = ops.cast(ops.shape(y_true)[-1], y_true.dtype)
    return y_true * (1.0 - label_smoothing) + label_smoothing / k


def cumulative(p: Any) -> Any:
    """[B, K] class probabilities (or one-hot) -> [B, K-1] P(y > k) for k = 0..K-2."""
    return 1.0 - ops.cumsum(p, axis=-1)[..., :-1]


@keras.saving.register_keras_serializable(package="dr")
class OrdinalLoss(keras.losses.Loss):  # type: ignore[misc]
    """Mean binary cross-entropy over the cumulative events y > k."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "ordinal", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _smooth(ops.cast(y_true, "float32"), self.label_smoothing)
        target = cumulative(y_true)
        pred = ops.clip(cumulative(ops.cast(y_pred, "float32")), _EPS, 1.0 - _EPS)
        bce = -(target * ops.log(pred) + (1.0 - target) * ops.log(1.0 - pred))
        return ops.mean(bce, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="dr")
class CombinedLoss(keras.losses.Loss):  # type: ignore[misc]
    """Cross-entropy + ``weight`` * ordinal loss."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        weight: float = 1.0,
        name: str = "ce_ordinal",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.weight = weight
        self._ce = keras.losses.CategoricalCrossentropy(
            label_smoothing=label_smoothing, reduction=None
        )
        self._ordinal = OrdinalLoss(label_smoothing, reduction=None)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self._ce(y_true, y_pred) + self.weight * self._ordinal(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "weight": self.weight,
        }


def make_loss(config: LossConfig) -> keras.losses.Loss:
    """The configured loss object."""
    if config.name == "ce":
        return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    if config.name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=config.focal_gamma, label_smoothing=config.label_smoothing
        )
    if config.name == "ordinal":
        return OrdinalLoss(config.label_smoothing)
    return CombinedLoss(config.label_smoothing, config.ordinal_weight)


def class_weights(grades: NDArray[np.integer], mode: str, k: int = 5) -> NDArray[np.float32]:
    """Per-grade weights with mean 1 over the training images: 'balanced' (n / (k * n_c)),
    'sqrt' (its square root, gentler) or 'none'."""
    counts = np.bincount(np.asarray(grades, np.int64), minlength=k).astype(np.float64)
    if mode == "none":
        return np.ones(k, np.float32)
    raw = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
    if mode == "sqrt":
        raw = np.sqrt(raw)
    elif mode != "balanced":
        raise ValueError(f"unknown class_weight mode {mode!r}")
    mean = (raw * counts).sum() / counts.sum()
    out: NDArray[np.float32] = (raw / mean).astype(np.float32)
    return out
