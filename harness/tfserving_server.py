"""A test stand-in for TensorFlow Serving's gRPC API, serving a real exported SavedModel.

What it stands in for: ``tensorflow_model_server --port=... --model_base_path=... --model_name=...``
(no TF Serving binary can be installed here). It implements TF Serving's official gRPC
services with the servicer base classes generated in tensorflow-serving-api
(``PredictionServiceServicer``, ``ModelServiceServicer``), loads every integer version
directory under ``<base>/<name>/`` with ``tf.saved_model.load`` and runs the requested
signature. It reproduces TF Serving's observable behaviour that the gateway depends on:

- NOT_FOUND ``Servable not found for request: Latest(<name>)`` while a model is loading, and
  ``Could not find version N of model <name>`` for an unknown version;
- INVALID_ARGUMENT ``Unrecognized servable version label: X``;
- FAILED_PRECONDITION ``Serving signature key "X" not found.``;
- INVALID_ARGUMENT for wrong input names, dtypes and shapes;
- outputs serialised as typed ``*_val`` fields (TF Serving's default ``AsProtoField``);
- GetModelMetadata with ``signature_def`` packed as ``SignatureDefMap``; GetModelStatus with
  LOADING/AVAILABLE states.

With ``--enable-batching`` (TF Serving's ``--enable_batching``; harness/processes.py turns
it on by default, as production runs) and optionally ``--batching-parameters-file`` (the same
text-proto file TF Serving reads, e.g. k8s/base/tfserving/batching.config), every signature goes
through TF Serving's BatchingSession rules (model/tfserving_batching.py) with its codes and
messages: rank-0 inputs, unequal 0th dimensions and tasks above ``max_batch_size`` are
INVALID_ARGUMENT; each task is split (``enable_large_batch_splitting``) and padded to an allowed
batch size by repeating its first row; outputs without a batch dimension equal to the padded size
are FAILED_PRECONDITION. Warmup records go through the same path, and a refused one fails the
version's load (state END, as TF Serving). What it does not do: merge concurrent requests into
one batch (each request is batched alone), queue limits and batch timeouts.

Extra knobs for tests: ``--load-delay`` (seconds in LOADING), ``--predict-delay`` (slow
inference: added to serving_default/explain Predict calls), ``--labels stable=1,canary=2``,
``--predict-log FILE`` (a line per Predict call with its signature: which server got what).
Prints ``PORT <n>`` on stdout once listening.

    python -m harness.tfserving_server --model-base-path export --model-name dr_grader
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from contract.signatures import CARD_SIGNATURE, SERVING_SIGNATURE
from model.tfserving_batching import (
    BatchingError,
    BatchingParameters,
    check_outputs,
    check_task,
    execution_batches,
    load_batching_parameters,
    padded_size,
    task_size,
)

_TYPED_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_STRING: "string_val",
}


class RpcError(Exception):
    """A gRPC status to return."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def as_proto_field(array: np.ndarray, dtype: int) -> tensor_pb2.TensorProto:
    """Serialise like TF's Tensor::AsProtoField: shape plus the typed value field."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape)
    values = array.reshape(-1).tolist()
    getattr(proto, _TYPED_FIELD[dtype]).extend(values)
    return proto


def run_signature(
    function: Any, inputs: dict[str, np.ndarray], batching: BatchingParameters | None
) -> dict[str, np.ndarray]:
    """Call a signature; with batching, the way TF Serving's BatchingSession runs one task."""
    if batching is None:
        return {k: np.asarray(v.numpy()) for k, v in function(**inputs).items()}
    size = task_size({k: v.shape for k, v in inputs.items()})
    check_task(size, batching)
    pieces: list[dict[str, np.ndarray]] = []
    start = 0
    for part in execution_batches(size, batching):
        rows = {k: v[start : start + part] for k, v in inputs.items()}
        padding = padded_size(part, batching.allowed_batch_sizes) - part
        if padding > 0:  # TF Serving repeats the first row of the last task
            rows = {k: np.concatenate([v, np.repeat(v[:1], padding, 0)]) for k, v in rows.items()}
        outputs = {
            k: np.asarray(v.numpy())
            for k, v in function(**{k: tf.constant(v) for k, v in rows.items()}).items()
        }
        check_outputs({k: v.shape for k, v in outputs.items()}, part + padding)
        pieces.append({k: v[:part] for k, v in outputs.items()})
        start += part
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


class LoadedVersion:
    """One version: the loaded object, its signatures and their SignatureDef protos.

    Like ``--enable_model_warmup`` (TF Serving's default), the PredictLog records in
    ``assets.extra/tf_serving_warmup_requests`` are replayed before the version is AVAILABLE
    (through the batching rules when they are on: a refused record fails the load).
    """

    def __init__(self, path: Path, batching: BatchingParameters | None) -> None:
        self.version = int(path.name)
        self.batching = batching
        self.model = tf.saved_model.load(str(path))
        self.functions: dict[str, Any] = dict(self.model.signatures)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = dict(proto.meta_graphs[0].signature_def)
        self.warmed_up = self._warm_up(path / "assets.extra" / "tf_serving_warmup_requests")

    def _warm_up(self, records: Path) -> int:
        if not records.is_file():
            return 0
        count = 0
        for raw in tf.data.TFRecordDataset(str(records)):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(raw.numpy())
            request = log.predict_log.request
            name = request.model_spec.signature_name or SERVING_SIGNATURE
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            try:
                run_signature(self.functions[name], inputs, self.batching)
            except BatchingError as error:
                raise RuntimeError(f"warmup record {count + 1} ({name}): {error.message}") from None
            count += 1
        return count


class ModelStore:
    """Versions under ``<base>/<name>``, loaded after ``load_delay`` seconds, and labels."""

    def __init__(
        self,
        base: Path,
        name: str,
        labels: dict[str, int],
        load_delay: float,
        batching: BatchingParameters | None = None,
    ) -> None:
        self.name = name
        self.labels = labels
        self.batching = batching
        self.versions: dict[int, LoadedVersion] = {}
        self.failed: dict[int, str] = {}  # version -> why its load failed (state END)
        self.pending = sorted(int(p.name) for p in (base / name).iterdir() if p.name.isdigit())
        self._base = base
        threading.Thread(target=self._load, args=(load_delay,), daemon=True).start()

    def _load(self, delay: float) -> None:
        time.sleep(delay)
        for version in list(self.pending):
            try:
                loaded = LoadedVersion(self._base / self.name / str(version), self.batching)
                self.versions[version] = loaded
            except Exception as error:  # TF Serving: the load fails, the version ends
                self.failed[version] = str(error)
                print(f"version {version} failed to load: {error}", file=sys.stderr, flush=True)
            self.pending.remove(version)

    def resolve(self, spec: Any) -> LoadedVersion:
        """TF Serving's servable lookup for a ModelSpec."""
        if spec.name != self.name:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({spec.name})",
            )
        if spec.HasField("version"):
            version = spec.version.value
            if version not in self.versions:
                raise RpcError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Specific({self.name}, {version})",
                )
            return self.versions[version]
        if spec.version_label:
            if spec.version_label not in self.labels:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {spec.version_label}",
                )
            version = self.labels[spec.version_label]
            if version not in self.versions:
                raise RpcError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Specific({self.name}, {version})",
                )
            return self.versions[version]
        if not self.versions:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({self.name})"
            )
        return self.versions[max(self.versions)]


def _check_input(name: str, proto: Any, spec: Any, index: int) -> np.ndarray:
    if proto.dtype != spec.dtype:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Expects arg[{index}] to be {tf.dtypes.as_dtype(spec.dtype).name} but "
            f"{tf.dtypes.as_dtype(proto.dtype).name} is provided",
        )
    try:
        array: np.ndarray = tf.make_ndarray(proto)
    except Exception as error:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"input {name}: {error}") from None
    expected = [int(d.size) for d in spec.tensor_shape.dim]
    if not spec.tensor_shape.unknown_rank and (
        len(expected) != array.ndim
        or any(e not in (-1, a) for e, a in zip(expected, array.shape, strict=True))
    ):
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input {name}: shape {list(array.shape)} is incompatible with {expected}",
        )
    return array


# The generated servicer bases are untyped (no stubs for tensorflow-serving-api).
class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """Predict and GetModelMetadata."""

    def __init__(
        self, store: ModelStore, predict_delay: float, predict_log: Path | None = None
    ) -> None:
        self.store = store
        self.predict_delay = predict_delay
        self.predict_log = predict_log
        self._log_lock = threading.Lock()

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        signature_name = request.model_spec.signature_name or SERVING_SIGNATURE
        if self.predict_log is not None:  # one line per call: tests count where calls went
            with self._log_lock, self.predict_log.open("a") as log:
                log.write(f"{signature_name}\n")
        try:
            loaded = self.store.resolve(request.model_spec)
            if signature_name not in loaded.signature_defs:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f'Serving signature key "{signature_name}" not found.',
                )
            signature = loaded.signature_defs[signature_name]
            if set(request.inputs) != set(signature.inputs):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input size does not match signature: {len(request.inputs)}!="
                    f"{len(signature.inputs)} len({{{','.join(sorted(request.inputs))}}}) != "
                    f"len({{{','.join(sorted(signature.inputs))}}})",
                )
            if loaded.batching is not None:  # the BatchingSession sees the task first
                shapes = {
                    k: [d.size for d in v.tensor_shape.dim] for k, v in request.inputs.items()
                }
                check_task(task_size(shapes), loaded.batching)
            inputs = {
                name: _check_input(name, request.inputs[name], signature.inputs[name], i)
                for i, name in enumerate(sorted(signature.inputs))
            }
            if self.predict_delay and signature_name != CARD_SIGNATURE:
                time.sleep(self.predict_delay)
            try:
                outputs = run_signature(loaded.functions[signature_name], inputs, loaded.batching)
            except tf.errors.InvalidArgumentError as error:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, error.message) from None
            response = predict_pb2.PredictResponse()
            response.model_spec.name = self.store.name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = signature_name
            for alias, array in outputs.items():
                dtype = signature.outputs[alias].dtype
                response.outputs[alias].CopyFrom(as_proto_field(array, dtype))
            return response
        except BatchingError as error:
            context.abort(grpc.StatusCode[error.code], error.message)
        except RpcError as error:
            context.abort(error.code, error.message)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Metadata field(s) not supported: only signature_def is",
                )
            loaded = self.store.resolve(request.model_spec)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, signature in loaded.signature_defs.items():
                signature_map.signature_def[name].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = self.store.name
            response.model_spec.version.value = loaded.version
            response.metadata["signature_def"].Pack(signature_map)
            return response
        except RpcError as error:
            context.abort(error.code, error.message)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """GetModelStatus."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        spec = request.model_spec
        status = get_model_status_pb2.ModelVersionStatus
        if spec.name != self.store.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        store = self.store
        wanted: list[int] = sorted(set(store.versions) | set(store.pending) | set(store.failed))
        if spec.HasField("version"):
            wanted = [spec.version.value]
        elif spec.version_label:
            if spec.version_label not in self.store.labels:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {spec.version_label}",
                )
            wanted = [self.store.labels[spec.version_label]]
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in wanted:
            error = store.failed.get(version)
            if version in store.versions:
                state = status.AVAILABLE
            elif version in store.pending:
                state = status.LOADING
            elif error is not None:  # a failed load ends the version, with the reason
                entry = response.model_version_status.add(version=version, state=status.END)
                entry.status.error_code = 3  # tensorflow.error.INVALID_ARGUMENT
                entry.status.error_message = error
                continue
            else:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {version} of model {self.store.name}",
                )
            response.model_version_status.add(version=version, state=state)
        return response


def main(argv: list[str] | None = None) -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-base-path", type=Path, required=True)
    parser.add_argument("--model-name", default="dr_grader")
    parser.add_argument("--labels", default="")
    parser.add_argument("--load-delay", type=float, default=0.0)
    parser.add_argument("--predict-delay", type=float, default=0.0)
    parser.add_argument("--enable-batching", action="store_true", help="TF Serving's rules")
    parser.add_argument("--batching-parameters-file", type=Path, help="text BatchingParameters")
    parser.add_argument("--predict-log", type=Path, help="append each Predict's signature name")
    args = parser.parse_args(argv)
    if args.batching_parameters_file and not args.enable_batching:
        parser.error("--batching-parameters-file needs --enable-batching")
    batching = None
    if args.enable_batching:
        batching = (
            load_batching_parameters(args.batching_parameters_file)
            if args.batching_parameters_file
            else BatchingParameters()
        )
    labels = {
        key: int(value)
        for key, value in (item.split("=") for item in args.labels.split(",") if item)
    }
    store = ModelStore(args.model_base_path, args.model_name, labels, args.load_delay, batching)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store, args.predict_delay, args.predict_log), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
