"""Serving performance side by side in one run: model-compute limit, our stack end to end, the
naive baseline, payload, cold start.

(a) model-compute limit: the SavedModel loaded in this process (``tf.saved_model.load``,
    ``serving_default``) on preprocessed uint8 batches of 1 and 8 at the model size: images/s.
(b) ours end to end: the lean gateway (tfserving mode, no TF runtime) in front of the TF Serving
    stand-in (harness/tfserving_server.py) serving that SavedModel; the full-resolution
    JPEGs POSTed to /v1/grade at concurrency 1 and 8: throughput, p50, p99, and the share of
    (a) reached (the goal: >= 90 % at concurrency 8, against the better of batch 1 and 8).
(c) naive baseline (bench/naive_service.py: FastAPI, full-resolution Pillow decode, float32,
    Keras ``model.predict`` per request on the run's fold models) on the same JPEGs and
    concurrency; ratios ours/naive.
(d) payload of one model input: gRPC uint8 ``tensor_content`` vs TF Serving's REST float32
    JSON (bench/payload.py).
(e) cold start: gateway process start to /readyz 200 in tfserving mode (``--starts`` times,
    median) and its RSS; the same for the local backend (loads TF and the SavedModel).

The phases run one after another, never at the same time: (a) runs alone in this process; the
stand-in and gateway of (b) are stopped before the naive service of (c) starts; the cold starts
run while nothing else is busy. Only the JPEGs the quality gate passes are sent (the gateway
sends no other to the model). Latency percentiles are nearest-rank over ``--requests`` timed
requests per cell after one untimed warm-up request (with fewer than 100, p99 is the slowest).

    python -m bench.serving --model-root runs/smoke512_export --run-dir runs/smoke512
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.inputs import full_resolution_jpegs, gradable_jpegs, model_inputs
from bench.payload import WireFigures, measure_wire
from bench.perf_settings import PERF_FIELDS
from contract.model_card import CARD_PATH
from contract.signatures import SERVING_SIGNATURE
from fundus.config import PreprocessConfig
from gateway.backends.local import latest_version_dir
from gateway.model_card import ModelCard
from harness.gateway_stack import AUTH, rss_mib, running_stack, start_to_ready_s
from harness.load import LoadStats, measure_load
from harness.processes import GatewayProcess, NaiveServiceProcess

CONCURRENCIES = (1, 8)
BATCHES = (1, 8)
GOAL_SHARE = 0.9
HTTP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Row:
    """One measured cell: images per second and per-request latency."""

    path: str
    setting: str
    images_per_s: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, path: str, setting: str, stats: LoadStats, images_per_call: int = 1) -> Row:
        """From a load run whose calls each carry ``images_per_call`` images."""
        return cls(path, setting, stats.throughput * images_per_call, stats.p50_ms, stats.p99_ms)

    def line(self) -> str:
        """Fixed-width table line."""
        return (
            f"{self.path:32} {self.setting:>8} {self.images_per_s:8.3f} {self.p50_ms:10.1f} "
            f"{self.p99_ms:10.1f}"
        )


TABLE_HEADER = f"{'path':32} {'setting':>8} {'images/s':>8} {'p50 ms':>10} {'p99 ms':>10}"


def model_compute_limit(version_dir: Path, images: list[np.ndarray], requests: int) -> list[Row]:
    """(a): ``serving_default`` in this process, one caller, batches of 1 and 8."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    serve = loaded.signatures[SERVING_SIGNATURE]
    rows = []
    for batch in BATCHES:
        batches = [
            np.stack([images[(i * batch + j) % len(images)] for j in range(batch)])
            for i in range(len(images))
        ]

        def call(index: int, batches: list[np.ndarray] = batches) -> None:
            serve(image=tf.constant(batches[index % len(batches)]))["grade"].numpy()

        calls = requests if batch == 1 else max(2, requests // batch)
        stats = measure_load(call, calls, concurrency=1)
        rows.append(Row.of("(a) SavedModel in-process", f"batch {batch}", stats, batch))
        print(rows[-1].line(), flush=True)
    return rows


def grading_call(
    http: httpx.Client, url: str, jpegs: list[tuple[str, bytes]]
) -> Callable[[int], None]:
    """POST the index-th JPEG (cycling) as multipart ``image``; it must come back graded."""

    def call(index: int) -> None:
        data = jpegs[index % len(jpegs)][1]
        response = http.post(url, files={"image": ("fundus.jpg", data, "image/jpeg")})
        if response.status_code != 200 or response.json().get("grade") is None:
            raise RuntimeError(f"{url}: not graded: {response.status_code} {response.text[:300]}")

    return call


def load_rows(call: Callable[[int], None], path: str, requests: int) -> list[Row]:
    """One row per concurrency, printed as measured."""
    rows = []
    for concurrency in CONCURRENCIES:
        rows.append(Row.of(path, f"conc {concurrency}", measure_load(call, requests, concurrency)))
        print(rows[-1].line(), flush=True)
    return rows


@dataclass(frozen=True)
class ColdStart:
    """Start-to-ready seconds and RSS (MiB, once ready) over repeated starts."""

    seconds: list[float]
    rss_mib: list[float]

    def line(self, what: str) -> str:
        """Median, range and RSS."""
        return (
            f"{what}: start to /readyz 200 median {statistics.median(self.seconds):.2f} s "
            f"(min {min(self.seconds):.2f}, max {max(self.seconds):.2f}, n={len(self.seconds)}); "
            f"RSS once ready median {statistics.median(self.rss_mib):.0f} MiB"
        )


def cold_starts(start: Callable[[int], GatewayProcess], starts: int) -> ColdStart:
    """Start a gateway ``starts`` times in turn (``start(i)`` returns it live), each stopped
    before the next."""
    seconds, rss = [], []
    for index in range(starts):
        gateway = start(index)
        try:
            seconds.append(start_to_ready_s(gateway))
            assert gateway.process is not None
            rss.append(rss_mib(gateway.process.pid))
        finally:
            gateway.stop()
    return ColdStart(seconds, rss)


def print_wire(figures: list[WireFigures]) -> None:
    """(d) table and ratios."""
    print(
        f"{'encoding':44} {'bytes':>10} {'build ms':>9} {'transfer':>9} {'parse ms':>9} "
        f"{'total ms':>9}"
    )
    for f in figures:
        print(
            f"{f.name:44} {f.size_bytes:10d} {f.build_ms:9.2f} {f.transfer_ms:9.2f} "
            f"{f.parse_ms:9.2f} {f.total_ms:9.2f}"
        )
    grpc, rest = figures
    print(
        f"REST JSON / gRPC: {rest.size_bytes / grpc.size_bytes:.1f}x the bytes, "
        f"{rest.total_ms / grpc.total_ms:.1f}x the time per request"
    )


def print_summary(limit: list[Row], ours: list[Row], naive: list[Row]) -> None:
    """Shares of the compute limit, the goal verdict, and ours/naive ratios."""
    best = max(limit, key=lambda row: row.images_per_s)
    print(f"\n== summary: model-compute limit = {best.images_per_s:.3f} images/s ({best.setting})")
    for row in ours:
        shares = ", ".join(
            f"{100 * row.images_per_s / ref.images_per_s:.1f} % of {ref.setting}" for ref in limit
        )
        print(f"ours {row.setting}: {row.images_per_s:.3f} images/s = {shares}")
    share = ours[-1].images_per_s / best.images_per_s
    verdict = "MET" if share >= GOAL_SHARE else "NOT MET"
    print(
        f"goal: ours at {ours[-1].setting} >= {100 * GOAL_SHARE:.0f} % of the limit: {verdict} "
        f"({100 * share:.1f} %)"
    )
    for mine, theirs in zip(ours, naive, strict=True):
        print(
            f"ours/naive {mine.setting}: throughput {mine.images_per_s / theirs.images_per_s:.2f}x;"
            f" latency naive/ours p50 {theirs.p50_ms / mine.p50_ms:.2f}x, "
            f"p99 {theirs.p99_ms / mine.p99_ms:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    """Run (a)-(e) in turn and print each as measured, then the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, required=True, help="<root>/dr_grader/<N>")
    parser.add_argument("--run-dir", type=Path, required=True, help="its training run (folds)")
    parser.add_argument("--requests", type=int, default=24, help="timed requests per cell")
    parser.add_argument("--starts", type=int, default=5, help="tfserving-mode cold starts")
    parser.add_argument("--local-starts", type=int, default=3, help="local-backend cold starts")
    parser.add_argument("--payload-size", type=int, default=512, help="side of the (d) image")
    parser.add_argument("--payload-repeats", type=int, default=15)
    args = parser.parse_args(argv)
    began = time.monotonic()

    version_dir = latest_version_dir(args.model_root, "dr_grader", None)
    card = ModelCard.parse((version_dir / CARD_PATH).read_text())
    config = card.preprocess_config
    source, all_jpegs = full_resolution_jpegs()
    jpegs = gradable_jpegs(all_jpegs, config)
    if not jpegs:
        raise SystemExit("no gradable benchmark JPEG")
    load = os.getloadavg()
    print(
        f"model {version_dir} ({config.size} px); inputs: {len(jpegs)} gradable of "
        f"{len(all_jpegs)} {source}; {os.cpu_count()} CPUs, load average at start "
        f"{load[0]:.2f}; {args.requests} timed requests per cell; phases run one after another"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))

    print(f"\n(a) model-compute limit (uint8 batches, one caller)\n{TABLE_HEADER}")
    limit = model_compute_limit(version_dir, model_inputs(jpegs, config), args.requests)
    gc.collect()  # drop (a)'s SavedModel (the TF runtime itself stays loaded in this process)

    print(f"\n(b) ours: client -> gateway (lean, tfserving) -> gRPC stand-in\n{TABLE_HEADER}")
    with (
        running_stack(args.model_root, workdir, **PERF_FIELDS) as stack,
        httpx.Client(headers=AUTH, timeout=HTTP_TIMEOUT_S) as http,
    ):
        ours = load_rows(
            grading_call(http, stack.gateway.url + "/v1/grade", jpegs), "(b) ours", args.requests
        )
        tfserving_starts = cold_starts(
            lambda i: stack.setup.tfserving_gateway(
                stack.server.target, f"cold-{i}.log", **PERF_FIELDS
            ),
            args.starts,
        )
    setup = stack.setup

    print(f"\n(c) naive baseline: client -> FastAPI + Keras model.predict\n{TABLE_HEADER}")
    naive_service = NaiveServiceProcess(args.run_dir, workdir / "naive.log").start()
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
            naive = load_rows(
                grading_call(http, naive_service.url + "/predict", jpegs),
                "(c) naive",
                args.requests,
            )
        naive_rss = rss_mib(naive_service.pid)
    finally:
        naive_service.stop()

    payload_config = PreprocessConfig.from_dict({**config.to_dict(), "size": args.payload_size})
    image = model_inputs(jpegs[:1], payload_config)[0]
    repeats = args.payload_repeats
    print(f"\n(d) payload: one {args.payload_size} px model input, medians of {repeats}")
    print_wire(measure_wire(image, repeats))

    print("\n(e) cold start")
    print(tfserving_starts.line("gateway, tfserving mode (lean)"))
    local_starts = cold_starts(
        lambda i: setup.local_gateway(args.model_root, f"local-{i}.log", **PERF_FIELDS),
        args.local_starts,
    )
    print(local_starts.line("gateway, local backend (TF + SavedModel in-process)"))
    print(
        f"naive baseline (for reference): start to /health {naive_service.started_s:.2f} s; "
        f"RSS after its load test {naive_rss:.0f} MiB"
    )

    print_summary(limit, ours, naive)
    print(f"\ntotal wall time {time.monotonic() - began:.0f} s; process logs in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
