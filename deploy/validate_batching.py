"""deploy/validate_model.py's checks that a version is servable by TF Serving with batching on.

TF Serving runs with ``--enable_batching`` (k8s/base/tfserving/deployment.yaml,
docker-compose.yml), which batches EVERY signature; the rules are in model/tfserving_batching.py
(shared with the TF Serving stand-in). Three checks, each returning problem strings:

- ``static_problems``: every served SignatureDef has inputs and outputs of rank >= 1 whose 0th
  dimension is -1 (the shared batch dimension);
- ``call_problems``: each signature called at batch sizes 1 and 2 answers outputs whose 0th
  dimension is the batch size (what BatchingSession needs to split a batch back);
- ``warmup_problems``: every warmup record is a task every batching config accepts (a refused
  record fails the whole load), and each signature the gateway calls is warmed up at every
  batch size ``warmup_batch_sizes`` picks from the configs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contract.signatures import CARD_INPUT, CARD_SIGNATURE, IMAGE_INPUT, SERVING_SIGNATURE
from model.tfserving_batching import (
    BATCHING_CONFIGS,
    BatchingError,
    BatchingParameters,
    check_outputs,
    check_task,
    load_batching_parameters,
    servable_signatures,
    signature_problems,
    task_size,
    warmup_batch_sizes,
)

__all__ = ["BatchingError", "call_problems", "load_configs", "static_problems", "warmup_problems"]
CALL_BATCH_SIZES = (1, 2)


def load_configs(paths: Iterable[Path] = BATCHING_CONFIGS) -> list[BatchingParameters]:
    """The BatchingParameters files TF Serving is started with (default: the k8s ones)."""
    return [load_batching_parameters(Path(path)) for path in paths]


def static_problems(defs: Mapping[str, Any]) -> list[str]:
    """``signature_problems`` for every servable SignatureDef."""
    served = servable_signatures(defs)
    return [
        problem for name in sorted(served) for problem in signature_problems(name, served[name])
    ]


def call_problems(functions: Mapping[str, Any], images: np.ndarray) -> list[str]:
    """Call each signature at batch sizes 1 and 2 (``images``: uint8 [>=2, S, S, 3])."""
    import tensorflow as tf

    problems = []
    for name in sorted(functions):
        for batch in CALL_BATCH_SIZES:
            if name == CARD_SIGNATURE:
                inputs = {CARD_INPUT: tf.zeros([batch], tf.int32)}
            else:
                inputs = {IMAGE_INPUT: tf.constant(images[:batch], tf.uint8)}
            try:
                outputs = functions[name](**inputs)
                check_outputs({k: v.shape.as_list() for k, v in outputs.items()}, batch)
            except BatchingError as error:
                problems.append(f"{name} at batch size {batch}: {error.message}")
            except (tf.errors.OpError, TypeError, ValueError) as error:
                first_line = str(error).strip().splitlines()[0][:200]
                problems.append(f"{name} at batch size {batch} failed: {first_line}")
    return problems


def warmup_problems(
    logs: Sequence[Any], configs: Sequence[BatchingParameters], signatures: Iterable[str]
) -> list[str]:
    """Records every config accepts; each of ``signatures`` at every warmup batch size."""
    problems = []
    seen: set[tuple[str, int]] = set()
    for number, log in enumerate(logs, start=1):
        request = log.predict_log.request
        name = request.model_spec.signature_name or SERVING_SIGNATURE
        shapes = {k: [int(d.size) for d in v.tensor_shape.dim] for k, v in request.inputs.items()}
        try:
            size = task_size(shapes)
            for config in configs:
                check_task(size, config)
        except BatchingError as error:
            problems.append(f"warmup record {number} ({name}): TF Serving refuses it: {error}")
            continue
        seen.add((name, size))
    sizes = warmup_batch_sizes(configs)
    for name in signatures:
        missing = [b for b in sizes if (name, b) not in seen]
        if missing:
            problems.append(
                f"warmup lacks {name} at batch sizes {missing} (the batching configs allow "
                f"{sizes}; each runs cold on its first request otherwise)"
            )
    return problems
