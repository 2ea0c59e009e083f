"""CPU inference options for one EfficientNet pass, side by side in one run (issue 18 item 3).

    python -m bench.cpu_options [--config model/configs/b3_512_5fold.yaml | --run runs/<run>]
        [--options float32,xla,onednn_bf16,keras_bf16] [--batches 1,2,8] [--threads 1]
        [--repeats 3]

Each option runs in its own process (thread pools, grappler options and the Keras dtype policy
are fixed per process), on the same network and the same inputs:

- ``float32``: ``tf.function`` in graph mode, what the exported SavedModel runs in TF Serving;
- ``xla``: the same function with ``jit_compile=True`` (TF Serving:
  ``--xla_cpu_compilation_enabled`` and a function exported with XLA);
- ``onednn_bf16``: grappler's ``auto_mixed_precision_onednn_bfloat16`` rewrite, which runs
  convolutions and matmuls in bfloat16 on oneDNN (AMX / AVX512-BF16 where the CPU has them);
- ``keras_bf16``: the network built under Keras' ``mixed_bfloat16`` policy (an export that would
  compute in bfloat16 whatever server runs it).

With ``--run`` the network is fold 0 of a trained run (its config and weights), else an
untrained network of ``--config`` (same graph and compute; no weights file, no download). The
inputs are the full-resolution EyePACS samples (or synthetic photographs) through fundus/, plus
synthetic ones, at the network's input size. Printed per option and batch: median seconds per
forward, per image, the speed-up over float32, the first call (trace and compile), and the
largest probability difference and argmax agreement with float32 on those inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_CONFIG = REPO_ROOT / "model" / "configs" / "b3_512_5fold.yaml"
OPTIONS = ("float32", "xla", "onednn_bf16", "keras_bf16")


def _network(args: argparse.Namespace, option: str) -> tuple[Any, int]:
    """(Keras model, input size) for this option: fold 0 of ``--run`` or an untrained one."""
    import keras

    from model.config import load_config
    from model.network import build_model

    if option == "keras_bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if args.run is None:
        config = load_config(args.config)
        return build_model(config, seed=0), config.image_size
    from model.training import fold_dir, load_fold_weights

    config = load_config(args.run / "config.yaml")
    model = build_model(config, seed=0)
    load_fold_weights(model, fold_dir(args.run, 0))
    return model, config.image_size


def _inputs(size: int) -> Any:
    """uint8 [N, S, S, 3]: the full-resolution photographs and synthetic ones through fundus/."""
    import numpy as np

    from bench.inputs import full_resolution_jpegs, model_inputs, preprocessed_images
    from fundus.config import PreprocessConfig

    _, jpegs = full_resolution_jpegs()
    images = model_inputs(jpegs, PreprocessConfig(size=size)) + preprocessed_images(size, 10)
    return np.stack(images)


def worker(args: argparse.Namespace, option: str, outputs_path: Path) -> dict[str, Any]:
    """One option in this (fresh) process: timings per batch; probabilities saved for the parent."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if option == "onednn_bf16":
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    model, size = _network(args, option)

    def call(pixels: Any) -> Any:
        return tf.cast(model(tf.cast(pixels, tf.float32), training=False), tf.float32)

    forward = tf.function(call, jit_compile=option == "xla")
    images = _inputs(size)
    rows = []
    for batch in args.batches:
        pixels = tf.constant(np.resize(images, (batch, *images.shape[1:])))
        started = time.perf_counter()
        forward(pixels).numpy()
        first = time.perf_counter() - started
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            forward(pixels).numpy()
            seconds.append(time.perf_counter() - started)
        rows.append({"batch": batch, "first_s": first, "seconds": statistics.median(seconds)})
    probabilities = np.concatenate(
        [forward(tf.constant(images[i : i + 8])).numpy() for i in range(0, len(images), 8)]
    )
    np.save(outputs_path, probabilities)
    return {"option": option, "size": size, "rows": rows, "load": os.getloadavg()[0]}


def run_option(args: argparse.Namespace, option: str, workdir: Path) -> dict[str, Any]:
    """``worker`` in a child process; its JSON line plus the probabilities it saved."""
    import numpy as np

    outputs_path = workdir / f"{option}.npy"
    command = [sys.executable, "-m", "bench.cpu_options", "--worker", option,
               "--outputs", str(outputs_path), *_shared_args(args)]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(f"option {option} failed:\n{result.stderr[-2000:]}")
    record = dict(json.loads(result.stdout.strip().splitlines()[-1]))
    record["probabilities"] = np.load(outputs_path)
    return record


def _shared_args(args: argparse.Namespace) -> list[str]:
    network = ["--run", str(args.run)] if args.run else ["--config", str(args.config)]
    return [*network, "--batches", ",".join(map(str, args.batches)),
            "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip


def print_report(records: list[dict[str, Any]]) -> None:
    """One line per option and batch, against the float32 record of the same batch."""
    base = next(r for r in records if r["option"] == "float32")
    base_seconds = {row["batch"]: row["seconds"] for row in base["rows"]}
    reference = base["probabilities"]
    print(
        f"{'option':12} {'batch':>5} {'s/forward':>9} {'s/image':>8} {'x float32':>9} "
        f"{'first s':>8} {'max|dp|':>8} {'argmax =':>8}"
    )
    for record in records:
        probabilities = record["probabilities"]
        max_diff = float(abs(probabilities - reference).max())
        same = int((probabilities.argmax(1) == reference.argmax(1)).sum())
        for row in record["rows"]:
            speed_up = base_seconds[row["batch"]] / row["seconds"]
            print(
                f"{record['option']:12} {row['batch']:>5} {row['seconds']:>9.3f} "
                f"{row['seconds'] / row['batch']:>8.3f} {speed_up:>9.2f} {row['first_s']:>8.2f} "
                f"{max_diff:>8.4f} {same:>4}/{len(reference):<3}"
            )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (also the per-option worker with ``--worker``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PRODUCTION_CONFIG)
    parser.add_argument("--run", type=Path, help="a trained run: fold 0's config and weights")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--batches", default="1,2,8")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (pod: 1/batch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=OPTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--outputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in str(args.batches).split(",")]
    if args.worker:
        print(json.dumps(worker(args, args.worker, args.outputs)))
        return 0
    options = args.options.split(",")
    if "float32" not in options or not set(options) <= set(OPTIONS):
        parser.error(f"--options: a subset of {','.join(OPTIONS)} that includes float32")
    network = f"fold 0 of {args.run}" if args.run else f"untrained, {args.config.name}"
    print(f"network: {network}; {args.threads} intra-op thread(s); load {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cpu-options-") as workdir:
        records = [run_option(args, option, Path(workdir)) for option in options]
    print(f"input {records[0]['size']} px, {len(records[0]['probabilities'])} images compared")
    print_report(records)
    print(f"end: load {os.getloadavg()[0]:.2f}; wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
