"""numpy <-> TensorProto without TensorFlow, both encodings TF Serving uses."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.protos import (
    from_tensor_proto,
    tensor_pb2,
    to_tensor_proto,
    types_pb2,
)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.float32, np.float64])
def test_round_trip_tensor_content(dtype: type) -> None:
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    proto = to_tensor_proto(array)
    assert proto.tensor_content
    restored = from_tensor_proto(proto)
    assert restored.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(restored, array)


def test_typed_fields_as_tf_serving_sends_them() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=2)
    proto.float_val.extend([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(from_tensor_proto(proto), [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)


def test_compact_single_value_fills_the_shape() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[3])
    proto.tensor_shape.dim.add(size=4)
    assert from_tensor_proto(proto).tolist() == [3, 3, 3, 3]


def test_value_count_mismatch_is_an_error() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[1, 2])
    proto.tensor_shape.dim.add(size=3)
    with pytest.raises(ValueError, match="holds 2 values"):
        from_tensor_proto(proto)


def test_strings() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b'{"a": 1}'])
    assert from_tensor_proto(proto).reshape(-1)[0] == b'{"a": 1}'


def test_uint8_batch_is_packed_bytes() -> None:
    images = np.zeros((2, 8, 8, 3), np.uint8)
    assert len(to_tensor_proto(images).tensor_content) == 2 * 8 * 8 * 3


def test_unsupported_dtype() -> None:
    with pytest.raises(TypeError):
        to_tensor_proto(np.zeros(2, np.complex64))
