"""TF Serving runs with --enable_batching (issue 14, finding 1): the stand-in with batching on
refuses what TF Serving's BatchingSession refuses, and the gateway is ready only on an export
whose every signature is batchable.

One stand-in serves four toy versions (tests/deploy/toy_model.py) under a test batching config
(max_batch_size 4, allowed_batch_sizes 2, 4: a single row is padded to 2):
1 = the model_card signature as exported before the fix (rank-0 ``unused``), 2 = model_card
answering one row whatever the batch, 3 = the fixed contract, 4 = a warmup record above
max_batch_size. The real tiny export is checked in front of the production config by the module
fixtures of tests/integration/conftest.py (batching on by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from harness.processes import TFServingProcess
from tests.deploy.toy_model import build_toy_model
from tests.integration.conftest import API_KEY, start_gateway

VERSIONS = {1: "scalar_card", 2: "card_one_row", 3: "none", 4: "warmup_too_large"}
_STATE = get_model_status_pb2.ModelVersionStatus
BATCHING = "max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n"


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TFServingProcess]:
    root = tmp_path_factory.mktemp("toys")
    for version, defect in VERSIONS.items():
        build_toy_model(root, version=version, defect=defect)
    config = root / "batching.config"
    config.write_text(BATCHING)
    server = TFServingProcess(root, batching=config).start(wait_available=False)
    _wait_loaded(server)
    yield server
    server.stop()


def _status(server: TFServingProcess, version: int) -> object:
    with grpc.insecure_channel(server.target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "dr_grader"
        request.model_spec.version.value = version
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        return stub.GetModelStatus(request, timeout=5).model_version_status[0]


def _wait_loaded(server: TFServingProcess, timeout_s: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            states = [_status(server, v).state for v in VERSIONS]  # type: ignore[attr-defined]
            if all(s in (_STATE.AVAILABLE, _STATE.END) for s in states):
                return
        except grpc.RpcError:
            pass
        time.sleep(0.3)
    raise TimeoutError("toy versions never finished loading")


def _predict(server: TFServingProcess, version: int, signature: str, key: str, array: np.ndarray):
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dr_grader"
    request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=30)


def _refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_the_old_model_card_signature_is_refused(toy_server):
    """What the gateway sent before the fix (rank 0) and the old export (rank-0 input)."""
    scalar = np.array(0, np.int32)
    assert _refusal(lambda: _predict(toy_server, 1, "model_card", "unused", scalar)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Batching Run() input tensors must have at least one dimension",
    )
    # The fixed signature, called the fixed way: one row in, one card out (padded 1 -> 2 inside).
    response = _predict(toy_server, 3, "model_card", "unused", np.zeros([1], np.int32))
    assert [d.size for d in response.outputs["model_card"].tensor_shape.dim] == [1]
    assert b'"name": "dr_grader"' in response.outputs["model_card"].string_val[0]


def test_batching_rules_of_tf_serving(toy_server):
    images = np.zeros([5, 32, 32, 3], np.uint8)
    assert _refusal(lambda: _predict(toy_server, 3, "serving_default", "image", images)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Task size 5 is larger than maximum input batch size 4",
    )
    # 3 rows are padded to 4 and split back: the caller sees its 3 rows only.
    response = _predict(toy_server, 3, "serving_default", "image", images[:3])
    assert [d.size for d in response.outputs["probabilities"].tensor_shape.dim] == [3, 5]
    # An output that ignores the batch cannot be split back (FAILED_PRECONDITION, as TF Serving).
    assert _refusal(
        lambda: _predict(toy_server, 2, "model_card", "unused", np.zeros([1], np.int32))
    ) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension "
        "sizes of the input tensors",
    )


def test_a_refused_warmup_record_fails_the_load(toy_server):
    status = _status(toy_server, 4)
    assert status.state == get_model_status_pb2.ModelVersionStatus.END  # type: ignore[attr-defined]
    message = status.status.error_message  # type: ignore[attr-defined]
    assert "Task size 16 is larger than maximum input batch size 4" in message


def _readyz(gateway) -> httpx.Response:
    return httpx.get(gateway.url + "/readyz", timeout=10)


@pytest.mark.parametrize(("version", "ready"), [(1, False), (3, True)])
def test_the_gateway_is_ready_only_on_a_batchable_export(
    toy_server, lean_protos: Path, keys_file: Path, tmp_path: Path, version: int, ready: bool
):
    gateway = start_gateway(
        tmp_path, lean_protos, keys_file, toy_server.target, model_version=str(version)
    )
    try:
        if ready:
            gateway.wait_ready(timeout_s=30)
            with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
                assert http.get(gateway.url + "/readyz").status_code == 200
        else:
            response = _readyz(gateway)
            assert response.status_code == 503
            assert "'model_card' must take 'unused' int32 [-1]" in response.text
    finally:
        gateway.stop()
