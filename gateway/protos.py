"""The TensorFlow Serving protocol: generated protobuf/gRPC modules, and tensors without TF.

These modules are plain Python. For ``python -m gateway`` in tfserving mode they come from a
copy built by ``gateway.lean_protos`` (with an empty ``tensorflow/__init__.py``): the image's
/opt/lean-protos, or the venv's lean-protos folder (``make setup``), put first on the path
before this module is imported, so it never loads the TF runtime (tests check the running
process). Imported anywhere else (the full TF install), the same modules come from TF itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

__all__ = [
    "from_tensor_proto",
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "model_pb2",
    "model_service_pb2_grpc",
    "predict_pb2",
    "prediction_service_pb2_grpc",
    "tensor_pb2",
    "to_tensor_proto",
    "types_pb2",
]

_NUMPY_TO_DTYPE: dict[np.dtype[Any], int] = {
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
}
_DTYPE_TO_NUMPY: dict[int, np.dtype[Any]] = {v: k for k, v in _NUMPY_TO_DTYPE.items()}
_VALUE_FIELD = {
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
}


def to_tensor_proto(array: NDArray[np.generic]) -> tensor_pb2.TensorProto:
    """numpy array -> TensorProto with packed ``tensor_content`` (what TF's client would send)."""
    dtype = _NUMPY_TO_DTYPE.get(array.dtype)
    if dtype is None:
        raise TypeError(f"unsupported dtype {array.dtype}")
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )
    content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=content.tobytes())


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> NDArray[np.generic]:
    """TensorProto -> numpy, from ``tensor_content`` or the typed ``*_val`` fields.

    TF Serving answers with the typed fields by default (``AsProtoField``); a repeated field
    holding one value for a larger shape means "all elements equal" (TF's compact form).
    """
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = int(np.prod(shape)) if shape else 1
    if proto.dtype == types_pb2.DT_STRING:
        values = np.array(list(proto.string_val), dtype=object)
        return values.reshape(shape) if size == len(values) else values
    numpy_dtype = _DTYPE_TO_NUMPY.get(proto.dtype)
    if numpy_dtype is None:
        raise TypeError(f"unsupported tensor dtype {types_pb2.DataType.Name(proto.dtype)}")
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=numpy_dtype.newbyteorder("<"))
    else:
        flat = np.asarray(getattr(proto, _VALUE_FIELD[proto.dtype]), dtype=numpy_dtype)
        if flat.size == 1 and size > 1:
            flat = np.full(size, flat[0], dtype=numpy_dtype)
    if flat.size != size:
        raise ValueError(f"tensor holds {flat.size} values for shape {shape}")
    return np.asarray(flat, dtype=numpy_dtype).reshape(shape)
