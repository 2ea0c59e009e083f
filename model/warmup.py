"""TF Serving warmup records (``assets.extra/tf_serving_warmup_requests``).

A TFRecord file of ``tensorflow.serving.PredictionLog`` protos; TF Serving replays them when it
loads a version so the first real request does not pay for graph initialisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

WARMUP_FILE = "tf_serving_warmup_requests"


def write_warmup(
    path: Path, images: Iterable[NDArray[np.uint8]], model_name: str, signatures: Iterable[str]
) -> int:
    """One PredictRequest (batch of 1) per image and signature; returns the record count."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    count = 0
    names = list(signatures)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in images:
            for signature in names:
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
                )
                request.inputs["image"].CopyFrom(
                    tf.make_tensor_proto(np.asarray(image, np.uint8)[None])
                )
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
                count += 1
    return count


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
