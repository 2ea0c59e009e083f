"""Measure one EfficientNet-B3 forward pass on this CPU and derive TF Serving's settings from it.

    python -m bench.tfserving_sizing [--config model/configs/b3_512_5fold.yaml] \\
        [--batches 1,2,4,8] [--threads 1,2] [--repeats 3] [--node-cpus 4] [--write]

Each (batch, intra-op threads) cell runs in its own process (TensorFlow's thread pools are fixed
at start, and the peak RSS of a process only grows): an untrained network built by
``model.network.build_model`` from the production config (same graph and compute as a trained
fold model; no weights file, no download) is called as a ``tf.function`` on uint8 pixels cast to
float32, as the SavedModel does. Printed per cell: median seconds of one forward pass, seconds
per image-pass, and the peak RSS above the RSS of the built model (activations + workspaces).

The derivation (``bench.sizing.derive``, pure and unit-tested) then scales those figures to the
TF Serving pod: passes per image = folds x TTA views of the production config, the pod's CPU
count (``--node-cpus``). ``--write`` stores the measurement in ``bench/results/`` where the
tests/deploy cross-checks read it and compare the k8s files with what it derives. Re-run this on
the real node type to replace the figures of the development machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.sizing import RESULTS_PATH, Measurement, Sizing, derive, load_measurement

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_CONFIG = REPO_ROOT / "model" / "configs" / "b3_512_5fold.yaml"


def _status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` figure of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worker(config_path: Path, batch: int, threads: int, repeats: int) -> dict[str, Any]:
    """One cell, in this (fresh) process: time and peak memory of B3 forward passes."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    # Before any op: the pools are created once per process.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    runtime_kib = _status_kib("VmRSS")

    from model.config import load_config
    from model.network import build_model

    config = load_config(config_path)
    model = build_model(config, seed=0)
    size = config.image_size
    forward = tf.function(
        lambda x: model(tf.cast(x, tf.float32), training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
    )
    pixels = tf.constant(
        np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8)
    )
    forward.get_concrete_function()  # trace only: the graph exists, no activation allocated yet
    model_kib = _status_kib("VmRSS")
    peak_reset = _reset_peak()
    forward(pixels).numpy()  # first run (allocator warm-up), not timed; its peak counts
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(pixels).numpy()
        seconds.append(time.perf_counter() - started)
    peak_kib = _status_kib("VmHWM")
    return {
        "load_average_after": round(os.getloadavg()[0], 2),
        "batch": batch,
        "threads": threads,
        "seconds": statistics.median(seconds),
        "all_seconds": [round(s, 4) for s in seconds],
        "peak_above_model_bytes": max(0, peak_kib - model_kib) * 1024 if peak_reset else None,
        "model_rss_bytes": model_kib * 1024,
        "runtime_rss_bytes": runtime_kib * 1024,
        "weights_bytes": int(model.count_params()) * 4,
        "params": int(model.count_params()),
    }


def run_cell(config_path: Path, batch: int, threads: int, repeats: int) -> dict[str, Any]:
    """Run ``worker`` in a child process and return its JSON line."""
    command = [
        sys.executable, "-m", "bench.tfserving_sizing", "--worker",
        "--config", str(config_path), "--batches", str(batch), "--threads", str(threads),
        "--repeats", str(repeats),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(f"cell batch {batch} threads {threads} failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def production_passes(config_path: Path) -> tuple[int, int, int]:
    """(folds, TTA views, input size) of a config, read from the config (never retyped)."""
    import numpy as np

    from model.config import load_config
    from model.network import tta_views

    config = load_config(config_path)
    views = len(tta_views(np.zeros((1, 2, 2, 3), np.float32), config.eval.tta))
    return config.folds.n_splits, views, config.image_size


def print_report(measurement: Measurement, sizing: Sizing) -> None:
    """The measured cells, then the derived settings with their reasons."""
    print(
        f"measured on {measurement.machine}: {measurement.measured_cpus} CPUs, "
        f"load average at start {measurement.load_average:.2f}"
    )
    print(
        f"one pass = EfficientNet-B3 forward at {measurement.input_size} px; passes per image = "
        f"{measurement.folds} folds x {measurement.views} TTA views = "
        f"{measurement.passes_per_image}"
    )
    print(f"{'batch':>5} {'threads':>7} {'s/forward':>10} {'s/img-pass':>11} {'peak MiB':>9}")
    for cell in measurement.cells:
        peak = "-" if cell.peak_bytes is None else f"{cell.peak_bytes / 2**20:.0f}"
        print(
            f"{cell.batch:>5} {cell.threads:>7} {cell.seconds:>10.3f} "
            f"{cell.seconds / cell.batch:>11.3f} {peak:>9}"
        )
    print(
        f"one fold: {measurement.weights_bytes / 2**20:.0f} MiB of float32 weights; "
        f"TF runtime RSS {measurement.runtime_rss_bytes / 2**20:.0f} MiB"
    )
    print(f"derived for a {sizing.node_cpus}-CPU TF Serving pod:")
    for key, value in sizing.as_dict().items():
        print(f"  {key} = {value}")
    for reason in sizing.reasons:
        print(f"  - {reason}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (also the per-cell worker with ``--worker``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PRODUCTION_CONFIG)
    parser.add_argument("--batches", default="1,2,4,8", help="B3 pass batch sizes")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--node-cpus", type=int, default=4, help="CPU limit of the TF Serving pod")
    parser.add_argument("--write", action="store_true", help=f"store the figures in {RESULTS_PATH}")
    parser.add_argument("--derive-only", action="store_true", help=f"re-derive from {RESULTS_PATH}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    if args.worker:
        print(json.dumps(worker(args.config, batches[0], threads[0], args.repeats)))
        return 0
    if args.derive_only:
        measurement = load_measurement(RESULTS_PATH)
    else:
        folds, views, size = production_passes(args.config)
        load = os.getloadavg()[0]
        cells = [run_cell(args.config, b, t, args.repeats) for t in threads for b in batches]
        for cell in cells:
            print(json.dumps(cell), flush=True)
        record = {
            "config": str(args.config.relative_to(REPO_ROOT)),
            "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
            "measured_cpus": os.cpu_count(),
            "load_average": load,
            "folds": folds,
            "views": views,
            "input_size": size,
            "repeats": args.repeats,
            "cells": cells,
        }
        measurement = Measurement.from_dict(record)
        if args.write:
            RESULTS_PATH.write_text(json.dumps(record, indent=2) + "\n")
            print(f"wrote {RESULTS_PATH.relative_to(REPO_ROOT)}")
    print_report(measurement, derive(measurement, node_cpus=args.node_cpus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
