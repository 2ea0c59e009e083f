"""Gateway overhead: the same preprocessed images straight to the gRPC model server vs through
the gateway, at concurrency 1 and 8, measured side by side in one run.

    python -m bench.gateway --model-root export [--requests 32]

Starts the TF Serving stand-in (tests/support/tfserving_server.py, serving the SavedModel
under ``--model-root``) and the gateway in tfserving mode (lean: no TF runtime). Path (a)
sends uint8 [1,S,S,3] tensors by gRPC Predict; path (b) POSTs the same S x S images as PNG to
/v1/grade (decode, quality gate, gRPC, JSON). Overhead = (b) - (a) per request, also as a
percentage of the model time (a), and the throughput lost (1 - b/a requests per second; at
concurrency 8 the median latency is mostly queueing, so throughput is the fairer figure).
Also prints the gateway's start-to-ready time and RSS.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np

from fundus.config import PreprocessConfig
from fundus.pipeline import preprocess_image
from fundus.synthetic import encode_png, synthesize_fundus
from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from tests.support.processes import GatewayProcess, TFServingProcess

KEY = "bench-key"


def preprocessed_images(size: int, count: int) -> list[np.ndarray]:
    """Model inputs made by fundus/ from synthetic photographs."""
    config = PreprocessConfig(size=size)
    return [
        preprocess_image(synthesize_fundus(i % 5, width=1600, height=1200, seed=i), config).image
        for i in range(count)
    ]


def run_load(call: Callable[[int], None], requests: int, concurrency: int) -> tuple[float, float]:
    """(median latency ms, throughput req/s) for ``requests`` calls at ``concurrency``."""
    latencies: list[float] = []

    def timed(index: int) -> None:
        started = time.perf_counter()
        call(index)
        latencies.append((time.perf_counter() - started) * 1000)

    call(0)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(requests)))
    elapsed = time.perf_counter() - started
    return statistics.median(latencies), requests / elapsed


def main(argv: list[str] | None = None) -> int:
    """Print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--requests", type=int, default=32)
    args = parser.parse_args(argv)

    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from gateway.protos import to_tensor_proto

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    lean = workdir / "protos"
    build_lean_protos(lean)
    keys = workdir / "keys.txt"
    keys.write_text(f"bench {hash_key(KEY)} grade\n")
    server = TFServingProcess(args.model_root).start()
    gateway = GatewayProcess(
        {
            "DRG_TFSERVING_TARGET": server.target,
            "DRG_API_KEYS_FILE": str(keys),
            "DRG_MAX_CONCURRENT_INFERENCES": "8",
            "DRG_LOG_LEVEL": "WARNING",
            # A 512 px B3 ensemble on 2 CPU cores takes seconds per request once 8 queue up.
            "DRG_BACKEND_TIMEOUT_S": "300",
            "DRG_REQUEST_TIMEOUT_S": "300",
        },
        lean,
        workdir / "gateway.log",
    ).start()
    try:
        to_ready = gateway.started_s + gateway.wait_ready()
        ready = httpx.get(gateway.url + "/readyz").json()
        size = int(ready["input_size"])
        images = preprocessed_images(size, 8)
        pngs = [encode_png(image) for image in images]
        channel = grpc.insecure_channel(
            server.target, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def direct(index: int) -> None:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "dr_grader"
            request.inputs["image"].CopyFrom(to_tensor_proto(images[index % 8][None]))
            stub.Predict(request, timeout=120)

        http = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=120)

        def via_gateway(index: int) -> None:
            response = http.post(gateway.url + "/v1/grade", files={"image": pngs[index % 8]})
            assert response.status_code == 200, response.text

        assert gateway.process is not None
        status = Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines()
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        print(
            f"model input {size}px; {args.requests} requests per cell; median latency, throughput"
        )
        print(
            f"gateway start to ready: {to_ready:.2f} s (lean, tfserving mode); "
            f"RSS {rss_kb / 1024:.0f} MiB"
        )
        print(
            f"{'conc':>4} {'direct ms':>10} {'gateway ms':>11} {'overhead ms':>12} "
            f"{'% of model':>10} {'direct/s':>9} {'gateway/s':>10} {'thr loss':>8}"
        )
        for concurrency in (1, 8):
            direct_ms, direct_rps = run_load(direct, args.requests, concurrency)
            gateway_ms, gateway_rps = run_load(via_gateway, args.requests, concurrency)
            overhead = gateway_ms - direct_ms
            print(
                f"{concurrency:>4} {direct_ms:10.1f} {gateway_ms:11.1f} {overhead:12.1f} "
                f"{100 * overhead / direct_ms:9.1f}% {direct_rps:9.2f} {gateway_rps:10.2f} "
                f"{100 * (1 - gateway_rps / direct_rps):7.1f}%"
            )
        http.close()
        channel.close()
    finally:
        gateway.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
