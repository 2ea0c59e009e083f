"""One model input on the wire: a gRPC PredictRequest with uint8 ``tensor_content`` (what the
gateway sends) vs the float32 JSON body TF Serving's REST API takes (``{"instances": ...}``).

For each: the serialized size, the client's build+serialize time, the server-side parse time
back to a numpy array (protobuf parse + ``np.frombuffer`` / ``json.loads`` + ``np.asarray``),
and the time to move the bytes over a loopback TCP connection to a sink thread that reads them
all and answers one byte (raw TCP: the HTTP/2 or HTTP/1.1 framing is not included). Medians.
The parse figures are Python's (upb protobuf, the stdlib json); TF Serving parses in C++.
"""

from __future__ import annotations

import json
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.signatures import IMAGE_INPUT, SERVING_SIGNATURE
from gateway.protos import from_tensor_proto, predict_pb2, to_tensor_proto

_HEADER = struct.Struct("!Q")


def grpc_request(image: NDArray[np.uint8]) -> bytes:
    """Serialized PredictRequest for one image, uint8 [1,S,S,3] as ``tensor_content``."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dr_grader"
    request.model_spec.signature_name = SERVING_SIGNATURE
    request.inputs[IMAGE_INPUT].CopyFrom(to_tensor_proto(image[None]))
    return bytes(request.SerializeToString())


def parse_grpc_request(data: bytes) -> NDArray[Any]:
    """What the model server does with it: parse, then the tensor as an array."""
    return from_tensor_proto(predict_pb2.PredictRequest.FromString(data).inputs[IMAGE_INPUT])


def rest_json_body(image: NDArray[np.uint8]) -> bytes:
    """TF Serving REST ``:predict`` body, row format, float32 values."""
    instances = image[None].astype(np.float32).tolist()
    return json.dumps({"instances": instances}).encode()


def parse_rest_json_body(data: bytes) -> NDArray[Any]:
    """Parse the body and make the float32 tensor."""
    return np.asarray(json.loads(data)["instances"], dtype=np.float32)


@contextmanager
def loopback_sink() -> Iterator[Callable[[bytes], None]]:
    """A function that sends one length-prefixed payload to a sink thread on 127.0.0.1 and
    waits for its one-byte answer once it has read every byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        with connection:
            while not done.is_set():
                header = connection.recv(_HEADER.size, socket.MSG_WAITALL)
                if len(header) < _HEADER.size:
                    return
                remaining = _HEADER.unpack(header)[0]
                while remaining:
                    received = connection.recv_into(view, min(remaining, len(buffer)))
                    if received == 0:
                        return
                    remaining -= received
                connection.sendall(b"k")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(payload: bytes) -> None:
        client.sendall(_HEADER.pack(len(payload)))
        client.sendall(payload)
        if client.recv(1) != b"k":
            raise RuntimeError("the loopback sink did not acknowledge")

    try:
        yield send
    finally:
        done.set()
        client.close()
        thread.join(timeout=5)
        listener.close()


@dataclass(frozen=True)
class WireFigures:
    """Size and median times (ms) of one encoding."""

    name: str
    size_bytes: int
    build_ms: float
    parse_ms: float
    transfer_ms: float

    @property
    def total_ms(self) -> float:
        """Build + transfer + parse."""
        return self.build_ms + self.transfer_ms + self.parse_ms


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_wire(image: NDArray[np.uint8], repeats: int) -> list[WireFigures]:
    """Both encodings of ``image`` (uint8 [S,S,3]); checks each round trip is lossless."""
    encodings: list[tuple[str, Callable[[NDArray[np.uint8]], bytes], Callable[[bytes], Any]]] = [
        ("gRPC PredictRequest, uint8 tensor_content", grpc_request, parse_grpc_request),
        ('REST JSON {"instances"}, float32', rest_json_body, parse_rest_json_body),
    ]
    figures = []
    with loopback_sink() as send:
        for name, build, parse in encodings:
            payload = build(image)
            if not np.array_equal(parse(payload), image[None]):
                raise AssertionError(f"{name}: the parsed tensor differs from the image")
            send(payload)  # warm the connection
            figures.append(
                WireFigures(
                    name,
                    len(payload),
                    _median_ms(partial(build, image), repeats),
                    _median_ms(partial(parse, payload), repeats),
                    _median_ms(partial(send, payload), repeats),
                )
            )
    return figures
