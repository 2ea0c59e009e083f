"""TF Serving's batching rules (``--enable_batching``), in one place, pure Python.

With batching on, TF Serving wraps every signature of a SavedModel in a BatchingSession
(tensorflow_serving/batching/batching_session.cc, batching_util.h; the task limit is in
TensorFlow's shared_batch_scheduler.h). A request is a "task" whose size is the 0th dimension of
its inputs; tasks are concatenated along dimension 0, padded up to an allowed batch size by
repeating a row, run once, and the outputs are split back along dimension 0. Hence:

- every input needs rank >= 1 and all inputs of a request the same 0th dimension;
- a task larger than ``max_batch_size`` is refused (with ``enable_large_batch_splitting`` the limit
  still applies to the task; only the executed batches become ``max_execution_batch_size``);
- every output needs rank >= 1 and a 0th dimension equal to the padded batch size.

Used by model/ (export verification; the warmup batch sizes), by deploy/validate_model.py
(static SignatureDef check, dynamic calls at batch sizes 1 and 2, warmup records) and by the TF
Serving stand-in (harness/tfserving_server.py: the same refusals, codes and messages). The
batching configs TF Serving is started with live in k8s/ (``BATCHING_CONFIGS``).

Error codes are gRPC status names, so this module needs neither grpc nor TensorFlow (it lives in
model/ because model/ writes the SavedModel contract TF Serving serves; importing it loads no
Keras).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# The BatchingParameters files TF Serving runs with (k8s base = docker-compose; the GPU profile).
BATCHING_CONFIGS = (
    REPO_ROOT / "k8s" / "base" / "tfserving" / "batching.config",
    REPO_ROOT / "k8s" / "components" / "tfserving-gpu" / "batching.config",
)

# BatchingParameters fields (session_bundle_config.proto). Wrapped ones are `name { value: N }`.
_WRAPPED_INT = {
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "max_execution_batch_size",
}
_WRAPPED_STR = {"thread_pool_name"}
_PLAIN_BOOL = {"pad_variable_length_inputs", "enable_large_batch_splitting"}
_REPEATED_INT = {"allowed_batch_sizes"}
_DEFAULT_MAX_BATCH_SIZE = 1000  # BasicBatchScheduler's default when the file omits it


class BatchingError(Exception):
    """What TF Serving's batching layer answers: a gRPC status name and its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BatchingParameters:
    """The fields of TF Serving's BatchingParameters that decide what is refused or padded."""

    max_batch_size: int = _DEFAULT_MAX_BATCH_SIZE
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None
    pad_variable_length_inputs: bool = False
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def execution_limit(self) -> int:
        """Largest batch actually run (max_execution_batch_size only counts with splitting)."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size


_LINE = re.compile(
    r"(?P<key>[a-z_]+)\s*(?:\{\s*value\s*:\s*(?P<wrapped>[^}\s]+)\s*\}|:\s*(?P<plain>\S+))"
)


def parse_batching_parameters(text: str, where: str = "batching parameters") -> BatchingParameters:
    """Parse a text-proto BatchingParameters file; unknown fields are errors (as in TF Serving)."""
    values: dict[str, Any] = {}
    allowed: list[int] = []
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    position = 0
    for match in _LINE.finditer(body):
        if body[position : match.start()].strip():
            raise ValueError(f"{where}: cannot parse {body[position : match.start()].strip()!r}")
        position = match.end()
        key, wrapped, plain = match["key"], match["wrapped"], match["plain"]
        raw = wrapped if wrapped is not None else plain
        try:
            if key in _WRAPPED_INT and wrapped is not None:
                values[key] = int(raw)
            elif key in _WRAPPED_STR and wrapped is not None:
                values[key] = raw.strip('"')
            elif key in _REPEATED_INT and plain is not None:
                allowed.append(int(raw))
            elif key in _PLAIN_BOOL and plain in ("true", "false"):
                values[key] = plain == "true"
            else:
                raise ValueError(f"{where}: unknown or malformed field {match.group(0)!r}")
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    if body[position:].strip():
        raise ValueError(f"{where}: cannot parse {body[position:].strip()!r}")
    params = BatchingParameters(
        max_batch_size=values.pop("max_batch_size", _DEFAULT_MAX_BATCH_SIZE),
        allowed_batch_sizes=tuple(allowed),
        enable_large_batch_splitting=values.pop("enable_large_batch_splitting", False),
        max_execution_batch_size=values.pop("max_execution_batch_size", None),
        pad_variable_length_inputs=values.pop("pad_variable_length_inputs", False),
        other=values,
    )
    check_parameters(params)
    return params


def load_batching_parameters(path: Path) -> BatchingParameters:
    """Read and check one ``--batching_parameters_file``."""
    return parse_batching_parameters(path.read_text(), str(path))


def check_parameters(params: BatchingParameters) -> None:
    """TF Serving's checks when it creates the batching session (refuses to load otherwise)."""
    allowed = params.allowed_batch_sizes
    if not allowed:
        return
    if any(b <= a for a, b in itertools.pairwise(allowed)):
        raise BatchingError(
            "INVALID_ARGUMENT", "allowed_batch_sizes entries must be monotonically increasing"
        )
    limit = params.execution_limit
    if allowed[-1] != limit:
        raise BatchingError(
            "INVALID_ARGUMENT",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
            f"{allowed[-1]}; expected {limit}",
        )


# --- one request (task) ---------------------------------------------------------------------


def task_size(input_shapes: Mapping[str, Sequence[int]]) -> int:
    """batching_util.h ComputeTensorBatchSize: the shared 0th dimension of the inputs."""
    if not input_shapes:
        raise BatchingError(
            "INVALID_ARGUMENT", "Batching Run() must have at least one input tensor"
        )
    sizes = set()
    for shape in input_shapes.values():
        if len(shape) == 0:
            raise BatchingError(
                "INVALID_ARGUMENT", "Batching Run() input tensors must have at least one dimension"
            )
        sizes.add(int(shape[0]))
    if len(sizes) > 1:
        raise BatchingError(
            "INVALID_ARGUMENT", "Batching Run() input tensors must have equal 0th-dimension size"
        )
    return sizes.pop()


def check_task(size: int, params: BatchingParameters) -> None:
    """shared_batch_scheduler.h: a task above max_batch_size never enters the queue."""
    if size > params.max_batch_size:
        raise BatchingError(
            "INVALID_ARGUMENT",
            f"Task size {size} is larger than maximum input batch size {params.max_batch_size}",
        )


def execution_batches(size: int, params: BatchingParameters) -> list[int]:
    """Sizes of the batches a task run alone executes in (before padding): one batch, or with
    ``enable_large_batch_splitting`` chunks of at most the execution limit."""
    limit = params.execution_limit if params.enable_large_batch_splitting else params.max_batch_size
    if size <= 0 or limit <= 0:
        return [size]
    return [min(limit, size - start) for start in range(0, size, limit)]


def padded_size(size: int, allowed: Sequence[int]) -> int:
    """RoundToLowestAllowedBatchSize: the smallest allowed size >= ``size`` (or ``size``)."""
    for candidate in allowed:
        if candidate >= size:
            return candidate
    return size


def check_outputs(output_shapes: Mapping[str, Sequence[int]], batch_size: int) -> None:
    """BatchingSession::SplitOutputTensors: outputs must split back along dimension 0."""
    for shape in output_shapes.values():
        if len(shape) == 0:
            raise BatchingError("FAILED_PRECONDITION", "Batched output tensor has 0 dimensions")
        if int(shape[0]) != batch_size:
            raise BatchingError(
                "FAILED_PRECONDITION",
                "Batched output tensor's 0th dimension does not equal the sum of the 0th "
                "dimension sizes of the input tensors",
            )


# --- SignatureDefs (static) and warmup batch sizes ------------------------------------------


def _dims(tensor_info: Any) -> list[int] | None:
    shape = tensor_info.tensor_shape
    return None if shape.unknown_rank else [int(d.size) for d in shape.dim]


INIT_OP_SIGNATURE = "__saved_model_init_op"  # not servable; TF Serving does not batch it


def servable_signatures(signature_defs: Mapping[str, Any]) -> dict[str, Any]:
    """The SignatureDefs a client can call (the SavedModel init op is not one)."""
    return {k: v for k, v in signature_defs.items() if k != INIT_OP_SIGNATURE}


def signature_problems(name: str, signature_def: Any) -> list[str]:
    """Why a SignatureDef cannot be served with batching on: every input and output must have
    a known rank >= 1 with an unknown (-1) 0th dimension, the batch dimension they share."""
    problems = []
    for side, tensors in (("input", signature_def.inputs), ("output", signature_def.outputs)):
        for key in sorted(tensors):
            dims = _dims(tensors[key])
            if dims is None:
                problems.append(f"{name} {side} {key}: unknown rank, batching needs rank >= 1")
            elif not dims:
                problems.append(
                    f"{name} {side} {key}: rank 0 (scalar); TF Serving with batching refuses it "
                    "(give it a batch dimension [-1, ...])"
                )
            elif dims[0] != -1:
                problems.append(
                    f"{name} {side} {key}: 0th dimension is {dims[0]}, expected -1 (the batch "
                    "dimension shared by inputs and outputs)"
                )
    if not signature_def.inputs:
        problems.append(f"{name}: no inputs; batching needs at least one input tensor")
    return problems


def warmup_batch_sizes(configs: Iterable[BatchingParameters]) -> list[int]:
    """Batch sizes worth warming up under every given config: each allowed batch size (1 too when
    a config pads nothing) that no config refuses (<= every max_batch_size); a warmup record that
    TF Serving refuses fails the whole model load."""
    configs = list(configs)
    if not configs:
        return [1, 2]
    ceiling = min(c.max_batch_size for c in configs)
    wanted: set[int] = set()
    for config in configs:
        wanted.update(config.allowed_batch_sizes or (1, 2))
    return sorted(size for size in wanted if size <= ceiling)


def default_warmup_batch_sizes() -> list[int]:
    """``warmup_batch_sizes`` of the configs in k8s/ (``BATCHING_CONFIGS``)."""
    missing = [str(path) for path in BATCHING_CONFIGS if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"TF Serving batching configs {missing} not found (run from the repository, or set "
            "export.warmup_batch_sizes)"
        )
    return warmup_batch_sizes(load_batching_parameters(path) for path in BATCHING_CONFIGS)
