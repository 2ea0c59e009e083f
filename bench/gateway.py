"""Gateway overhead: the same preprocessed images straight to the gRPC model server vs through
the gateway, at concurrency 1 and 8, measured side by side in one run.

    python -m bench.gateway --model-root export [--requests 32]

Starts the TF Serving stand-in (harness/tfserving_server.py, serving the SavedModel
under ``--model-root``) and the gateway in tfserving mode (lean: no TF runtime). Path (a)
sends uint8 [1,S,S,3] tensors by gRPC Predict; path (b) POSTs the same S x S images as PNG to
/v1/grade (decode, quality gate, gRPC, JSON). Overhead = (b) - (a) per request, also as a
percentage of the model time (a), and the throughput lost (1 - b/a requests per second; at
concurrency 8 the median latency is mostly queueing, so throughput is the fairer figure).
Also prints the gateway's start-to-ready time and RSS.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import grpc
import httpx

from bench.inputs import preprocessed_images
from bench.perf_settings import PERF_FIELDS
from harness.gateway_stack import AUTH, rss_mib, running_stack
from harness.load import measure_load
from synthetic import encode_png


def main(argv: list[str] | None = None) -> int:
    """Print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--requests", type=int, default=32)
    args = parser.parse_args(argv)

    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from gateway.protos import to_tensor_proto

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    with running_stack(args.model_root, workdir, **PERF_FIELDS) as stack:
        server, gateway = stack.server, stack.gateway
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

        http = httpx.Client(headers=AUTH, timeout=120)

        def via_gateway(index: int) -> None:
            response = http.post(gateway.url + "/v1/grade", files={"image": pngs[index % 8]})
            assert response.status_code == 200, response.text
            # An ungradable image never reaches the model (e.g. S x S PNGs of a 64 px model
            # fail the quality gate's resolution check): its timing would not be comparable.
            assert response.json()["grade"] is not None, "ungradable: the model was not called"

        assert gateway.process is not None
        print(
            f"model input {size}px; {args.requests} requests per cell; median latency, throughput"
        )
        print(
            f"gateway start to ready: {stack.to_ready_s:.2f} s (lean, tfserving mode); "
            f"RSS {rss_mib(gateway.process.pid):.0f} MiB"
        )
        print(
            f"{'conc':>4} {'direct ms':>10} {'gateway ms':>11} {'overhead ms':>12} "
            f"{'% of model':>10} {'direct/s':>9} {'gateway/s':>10} {'thr loss':>8}"
        )
        for concurrency in (1, 8):
            direct_stats = measure_load(direct, args.requests, concurrency)
            gateway_stats = measure_load(via_gateway, args.requests, concurrency)
            direct_ms, direct_rps = direct_stats.p50_ms, direct_stats.throughput
            gateway_ms, gateway_rps = gateway_stats.p50_ms, gateway_stats.throughput
            overhead = gateway_ms - direct_ms
            print(
                f"{concurrency:>4} {direct_ms:10.1f} {gateway_ms:11.1f} {overhead:12.1f} "
                f"{100 * overhead / direct_ms:9.1f}% {direct_rps:9.2f} {gateway_rps:10.2f} "
                f"{100 * (1 - gateway_rps / direct_rps):7.1f}%"
            )
        http.close()
        channel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
