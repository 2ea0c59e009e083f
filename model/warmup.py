"""TF Serving warmup records (``assets.extra/tf_serving_warmup_requests``).

A TFRecord file of ``tensorflow.serving.PredictionLog`` protos; TF Serving replays them when it
loads a version so the first real request does not pay for graph initialisation. With
``--enable_batching`` every batch is padded up to one of the config's ``allowed_batch_sizes`` and
TensorFlow prepares kernels per shape, so one record per (signature, batch size) is written: the
batch sizes come from the TF Serving batching configs in k8s/
(``model.tfserving_batching.default_warmup_batch_sizes``) unless the export config names them.
A record TF Serving refuses (e.g. larger than ``max_batch_size``) fails the whole load, so sizes
above the smallest ``max_batch_size`` are never written.

The tensors are written compactly: the shape plus ONE value, which TensorFlow's
``Tensor::FromProto`` repeats over the whole shape; a batch of 8 images at 512 px costs a few
bytes instead of 6 MiB. Warmup only needs the shapes and the code paths, not real pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from contract.signatures import CARD_INPUT, CARD_SIGNATURE, IMAGE_INPUT

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many (saved_model_warmup_util)
_FILL_PIXEL = 128  # mid grey: finite activations, a non-trivial Grad-CAM


def _filled(dtype: int, shape: Sequence[int], value: int) -> object:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape]
    return tensor_pb2.TensorProto(
        dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims), int_val=[value]
    )


def warmup_requests(
    model_name: str, size: int, batch_sizes: Sequence[int], signatures: Iterable[str]
) -> list[object]:
    """One PredictionLog per signature and batch size: ``image`` uint8 [b, S, S, 3] for the
    image signatures, ``unused`` int32 [b] for ``model_card``."""
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    logs: list[object] = []
    for signature in signatures:
        for batch in batch_sizes:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            if signature == CARD_SIGNATURE:
                request.inputs[CARD_INPUT].CopyFrom(_filled(types_pb2.DT_INT32, [batch], 0))
            else:
                tensor = _filled(types_pb2.DT_UINT8, [batch, size, size, 3], _FILL_PIXEL)
                request.inputs[IMAGE_INPUT].CopyFrom(tensor)
            logs.append(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
            )
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(logs)} warmup records; TF Serving reads at most 1000")
    return logs


def write_warmup(
    path: Path,
    model_name: str,
    size: int,
    batch_sizes: Sequence[int],
    signatures: Iterable[str],
) -> int:
    """Write ``warmup_requests(...)`` as a TFRecord file; returns the record count."""
    import tensorflow as tf

    logs = warmup_requests(model_name, size, batch_sizes, signatures)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())  # type: ignore[attr-defined]
    return len(logs)


def read_warmup(path: Path) -> list[object]:
    """Parse every record back into PredictionLog protos (raises on a malformed file)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        if not log.HasField("predict_log"):
            raise ValueError(f"{path}: record without predict_log")
        logs.append(log)
    return logs
