"""TensorFlow Serving over gRPC: one grpc.aio channel per process, a deadline on every call,
retried as ``gateway/backends/retry.py`` says (UNAVAILABLE only, inside the deadline)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
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
from gateway.backends.retry import RetryPolicy
from gateway.backends.signatures import (
    check_card_signature,
    check_signatures,
    prediction_from_outputs,
)
from gateway.errors import ApiError, from_grpc
from gateway.metrics import GatewayMetrics
from gateway.model_card import ModelCard
from gateway.protos import (
    from_tensor_proto,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    to_tensor_proto,
)

ResponseT = TypeVar("ResponseT")
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


class TFServingBackend:
    """Client of TF Serving's PredictionService and ModelService."""

    def __init__(
        self,
        target: str,
        model_name: str,
        metrics: GatewayMetrics,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._target = target
        self._model_name = model_name
        self._metrics = metrics
        self._retry = retry or RetryPolicy()
        self._channel: grpc.aio.Channel | None = None
        self._predict_stub: Any = None
        self._model_stub: Any = None
        self._cards: dict[int, ModelCard] = {}

    async def start(self) -> None:
        """Open the one channel of this process (connects lazily)."""
        self._channel = grpc.aio.insecure_channel(
            self._target,
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
                # Spread calls over every address of a headless Service (dns:///host:port).
                ("grpc.lb_policy_name", "round_robin"),
                ("grpc.enable_retries", 0),  # retries are ours: RetryPolicy, in the deadline
                # Reconnect to a restarted model server within about a second. gRPC's default
                # backoff grows to 120 s and TF Serving listens only once its models are loaded:
                # without this, after a 75 s outage the gateway still answered 503 10 s after
                # the model server was back (docs/reliability/faults.md).
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel, letting in-flight calls finish for a moment."""
        if self._channel is not None:
            await self._channel.close(grace=2.0)
            self._channel = None

    async def _call(
        self,
        call: str,
        method: Callable[..., Awaitable[ResponseT]],
        request: Any,
        timeout_s: float,
    ) -> ResponseT:
        """One RPC with deadline and metrics (per try), retried as the policy says."""
        if self._channel is None:
            raise ApiError("not_ready", "the gateway is not started")

        async def send(remaining_s: float) -> ResponseT:
            started = time.perf_counter()
            try:
                return await method(request, timeout=remaining_s)
            except grpc.aio.AioRpcError as error:
                self._metrics.backend_errors.labels(call=call, grpc_code=error.code().name).inc()
                raise
            finally:
                self._metrics.backend_duration.labels(call=call).observe(
                    time.perf_counter() - started
                )

        try:
            return await self._retry.call(send, timeout_s, call)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error.code(), error.details() or "") from None

    def _spec(
        self, selector: ModelSelector, signature: str = SERVING_SIGNATURE
    ) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self._model_name, signature_name=signature)
        if selector.version is not None:
            spec.version.value = selector.version
        elif selector.label:
            spec.version_label = selector.label
        return spec

    async def version_state(self, selector: ModelSelector, timeout_s: float) -> str:
        """TF Serving's state name for the version a selector means (AVAILABLE when servable)."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._spec(selector))
        response = await self._call("status", self._model_stub.GetModelStatus, request, timeout_s)
        states = sorted(response.model_version_status, key=lambda s: s.version, reverse=True)
        if not states:
            return "UNKNOWN"
        if any(s.state == _AVAILABLE for s in states):
            return "AVAILABLE"
        name: str = get_model_status_pb2.ModelVersionStatus.State.Name(states[0].state)
        return name

    async def check_ready(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """GetModelStatus says AVAILABLE, then ``resolve`` (metadata, card, signature check)."""
        state = await self.version_state(selector, timeout_s)
        if state != "AVAILABLE":
            raise ApiError(
                "model_unavailable", f"{self._model_name} {selector.describe()} is {state}"
            )
        return await self.resolve(selector, timeout_s)

    async def resolve(self, selector: ModelSelector, timeout_s: float) -> ServedModel:
        """GetModelMetadata for the selector, the version's card, and a signature check."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._spec(selector), metadata_field=["signature_def"]
        )
        response = await self._call(
            "metadata", self._predict_stub.GetModelMetadata, request, timeout_s
        )
        version = int(response.model_spec.version.value)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signature_map):
            raise ApiError("model_mismatch", "model metadata holds no signature_def map")
        card = self._cards.get(version)
        if card is None:
            check_card_signature(dict(signature_map.signature_def))
            card = await self._fetch_card(version, timeout_s)
            self._cards[version] = card
        check_signatures(dict(signature_map.signature_def), card)
        return ServedModel(self._model_name, version, card)

    async def _fetch_card(self, version: int, timeout_s: float) -> ModelCard:
        request = predict_pb2.PredictRequest(
            model_spec=self._spec(ModelSelector(version=version), CARD_SIGNATURE)
        )
        # One row: TF Serving batches every signature, so the input needs a batch dimension.
        request.inputs[CARD_INPUT].CopyFrom(to_tensor_proto(np.zeros([1], dtype=np.int32)))
        response = await self._call("model_card", self._predict_stub.Predict, request, timeout_s)
        if CARD_OUTPUT not in response.outputs:
            raise ApiError("model_mismatch", "model_card signature returned no model_card")
        rows = from_tensor_proto(response.outputs[CARD_OUTPUT])
        if rows.shape != (1,):
            raise ApiError("model_mismatch", f"model_card returned shape {list(rows.shape)}")
        raw = rows[0]
        try:
            return ModelCard.parse(raw)
        except ValueError as error:
            raise ApiError("model_mismatch", f"invalid model card: {error}") from None

    async def predict(
        self, images: NDArray[np.uint8], served: ServedModel, explain: bool, timeout_s: float
    ) -> Prediction:
        """Predict on exactly ``served.version`` so the preprocessing used matches its card."""
        signature = EXPLAIN_SIGNATURE if explain else SERVING_SIGNATURE
        request = predict_pb2.PredictRequest(
            model_spec=self._spec(ModelSelector(version=served.version), signature)
        )
        request.inputs[IMAGE_INPUT].CopyFrom(to_tensor_proto(images))
        response = await self._call("predict", self._predict_stub.Predict, request, timeout_s)
        outputs = {name: from_tensor_proto(t) for name, t in response.outputs.items()}
        version = int(response.model_spec.version.value) or served.version
        return prediction_from_outputs(outputs, served.name, version, len(images), explain)
