"""What the grading service needs from a model backend, independent of the transport."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from contract.signatures import CARD_SIGNATURE, EXPLAIN_SIGNATURE, SERVING_SIGNATURE
from gateway.model_card import ModelCard

__all__ = [  # the signature names are the contract's, re-exported for the backends
    "CARD_SIGNATURE",
    "EXPLAIN_SIGNATURE",
    "SERVING_SIGNATURE",
    "ModelBackend",
    "ModelSelector",
    "Prediction",
    "ServedModel",
]


@dataclass(frozen=True)
class ModelSelector:
    """Which model version a request wants: a version, a label (stable/canary) or the latest."""

    version: int | None = None
    label: str | None = None

    def describe(self) -> str:
        """Human-readable form for messages."""
        if self.version is not None:
            return f"version {self.version}"
        return f"label {self.label!r}" if self.label else "latest version"


@dataclass(frozen=True)
class ServedModel:
    """A concrete model version that is being served, with its card."""

    name: str
    version: int
    card: ModelCard


@dataclass(frozen=True)
class Prediction:
    """Outputs for a batch of N images from one model version."""

    name: str
    version: int
    probabilities: NDArray[np.float32]
    grade: NDArray[np.int64]
    referable_probability: NDArray[np.float32]
    heatmap: NDArray[np.float32] | None = None


class ModelBackend(Protocol):
    """A place that runs the exported SavedModel."""

    async def start(self) -> None:
        """Open connections / load the model."""

    async def close(self) -> None:
        """Release connections."""

    async def resolve(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """Find the version a selector means now, with its card; check the signature fits."""

    async def check_ready(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """Like ``resolve``, and the backend reports the version as servable (AVAILABLE)."""

    async def predict(
        self, images: NDArray[np.uint8], served: ServedModel, explain: bool, timeout_s: float
    ) -> Prediction:
        """Run ``serving_default`` (or ``explain``) of exactly ``served.version``."""
