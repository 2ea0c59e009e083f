"""The SavedModel run in-process: the embedded default (``make demo``) and small installs.

TensorFlow is imported here only, when this backend starts; the tfserving mode never loads it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.signatures import CARD_INPUT, CARD_OUTPUT, IMAGE_INPUT
from gateway.backends.base import (
    CARD_SIGNATURE,
    EXPLAIN_SIGNATURE,
    SERVING_SIGNATURE,
    ModelSelector,
    Prediction,
    ServedModel,
)
from gateway.backends.signatures import (
    check_card_signature,
    check_signatures,
    prediction_from_outputs,
)
from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics
from gateway.model_card import ModelCard


def latest_version_dir(model_dir: Path, model_name: str, version: int | None) -> Path:
    """``<model_dir>/<name>/<version>``: the pinned version, else the highest integer one."""
    root = model_dir / model_name
    if version is not None:
        path = root / str(version)
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"no SavedModel at {path}")
        return path
    versions = [
        int(p.name) for p in root.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()
    ]
    if not versions:
        raise FileNotFoundError(f"no SavedModel versions under {root}")
    return root / str(max(versions))


class LocalBackend:
    """Serves one version of the exported SavedModel from disk."""

    def __init__(
        self, model_dir: Path, model_name: str, version: int | None, metrics: GatewayMetrics
    ) -> None:
        self._model_dir = model_dir
        self._model_name = model_name
        self._pinned = version
        self._metrics = metrics
        self._signatures: dict[str, Any] = {}
        self._served: ServedModel | None = None

    async def start(self) -> None:
        """Load the SavedModel (imports TensorFlow) in a worker thread."""
        self._served = await asyncio.to_thread(self._load)

    def _load(self) -> ServedModel:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        path = latest_version_dir(self._model_dir, self._model_name, self._pinned)
        loaded = tf.saved_model.load(str(path))
        self._signatures = dict(loaded.signatures)
        self._keepalive = loaded  # signatures need the loaded object alive
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        defs = dict(proto.meta_graphs[0].signature_def)
        check_card_signature(defs)
        card_call = self._signatures[CARD_SIGNATURE]
        rows = card_call(**{CARD_INPUT: tf.zeros([1], tf.int32)})[CARD_OUTPUT]
        card = ModelCard.parse(rows.numpy()[0])
        check_signatures(defs, card)
        return ServedModel(self._model_name, int(path.name), card)

    async def close(self) -> None:
        """Nothing to release beyond the Python objects."""
        self._signatures = {}

    async def check_ready(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """Loaded means available."""
        return await self.resolve(selector, timeout_s)

    async def resolve(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """The one loaded version; other versions and labels are not served here."""
        if self._served is None:
            raise ApiError("not_ready", "the model is still loading")
        wrong_version = selector.version is not None and selector.version != self._served.version
        if wrong_version or selector.label:
            raise ApiError(
                "model_unavailable",
                f"{selector.describe()} is not served by the local backend "
                f"(it serves version {self._served.version})",
            )
        return self._served

    async def predict(
        self, images: NDArray[np.uint8], served: ServedModel, explain: bool, timeout_s: float
    ) -> Prediction:
        """Run the signature in a thread (TF releases the GIL), bounded by ``timeout_s``."""
        name = EXPLAIN_SIGNATURE if explain else SERVING_SIGNATURE
        started = time.perf_counter()
        try:
            outputs = await asyncio.wait_for(
                asyncio.to_thread(self._run, name, images), timeout=timeout_s
            )
        except TimeoutError:
            self._metrics.backend_errors.labels(call="predict", grpc_code="DEADLINE_EXCEEDED").inc()
            raise ApiError("backend_timeout", "the local model did not answer in time") from None
        finally:
            self._metrics.backend_duration.labels(call="predict").observe(
                time.perf_counter() - started
            )
        return prediction_from_outputs(outputs, served.name, served.version, len(images), explain)

    def _run(self, name: str, images: NDArray[np.uint8]) -> dict[str, NDArray[Any]]:
        import tensorflow as tf

        result = self._signatures[name](**{IMAGE_INPUT: tf.constant(images, dtype=tf.uint8)})
        return {key: value.numpy() for key, value in result.items()}
