"""Serving cost of two exports side by side in one run: the fold ensemble (the teacher) and one
distilled network (the student), issue 18.

For each export, one after the other (never at the same time): (a) the model-compute limit,
``serving_default`` in this process on uint8 batches of 1 and 8 (images/s); (b) end to end,
the lean gateway in front of the TF Serving stand-in serving that export, the full-resolution
JPEGs POSTed to ``/v1/grade`` at concurrency 1 and 8 (images/s, p50, p99); (c) the CPU seconds
one photograph costs (this process, all threads, batch 1), which other work on the machine
barely changes where it halves wall-clock throughput. Then the ratios student / teacher, beside
the passes per image each model card states. The cost of a pass does
not depend on what the weights learnt, so barely trained exports measure it as well as trained
ones.

    python -m bench.student_cost --teacher <teacher export root> --student <root> [--student <root>]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.inputs import full_resolution_jpegs, gradable_jpegs, model_inputs
from bench.perf_settings import PERF_FIELDS
from bench.serving import HTTP_TIMEOUT_S, TABLE_HEADER, Row, grading_call, load_rows
from bench.serving import model_compute_limit as compute_limit
from contract.model_card import CARD_PATH
from contract.signatures import SERVING_SIGNATURE
from gateway.backends.local import latest_version_dir
from gateway.model_card import ModelCard
from harness.gateway_stack import AUTH, running_stack
from model.distill import passes_per_image


def cpu_seconds_per_image(version_dir: Path, images: list[np.ndarray], calls: int) -> float:
    """(c): process CPU time (all threads) per batch-1 ``serving_default`` call, after warm-up."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures[SERVING_SIGNATURE]
    serve(image=tf.constant(images[0][None]))["grade"].numpy()
    began = time.process_time()
    for i in range(calls):
        serve(image=tf.constant(images[i % len(images)][None]))["grade"].numpy()
    return (time.process_time() - began) / calls


def measure(name: str, model_root: Path, requests: int, workdir: Path) -> tuple[int, list[Row]]:
    """(passes per image, rows of (a) and (b)) for one export."""
    version_dir = latest_version_dir(model_root, "dr_grader", None)
    text = (version_dir / CARD_PATH).read_text()
    card = ModelCard.parse(text)
    raw = json.loads(text)  # cards exported before passes_per_image: from the ensemble block
    passes = int(
        raw.get("passes_per_image")
        or passes_per_image(raw["ensemble"]["members"], raw["ensemble"]["tta"])
    )
    config = card.preprocess_config
    _, all_jpegs = full_resolution_jpegs()
    jpegs = gradable_jpegs(all_jpegs, config)
    print(
        f"\n{name}: {version_dir} ({config.size} px), {passes} passes per image; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(TABLE_HEADER)
    inputs = model_inputs(jpegs, config)
    rows = compute_limit(version_dir, inputs, requests)
    gc.collect()
    cpu_s = cpu_seconds_per_image(version_dir, inputs, requests)
    rows.append(Row("(c) CPU s per image", "batch 1", 1.0 / cpu_s, cpu_s * 1000, cpu_s * 1000))
    print(f"{rows[-1].path:32} {rows[-1].setting:>8} {cpu_s:8.3f} s", flush=True)
    gc.collect()
    with (
        running_stack(model_root, workdir / name, **PERF_FIELDS) as stack,
        httpx.Client(headers=AUTH, timeout=HTTP_TIMEOUT_S) as http,
    ):
        call = grading_call(http, stack.gateway.url + "/v1/grade", jpegs)
        rows += load_rows(call, "(b) ours", requests)
    return passes, rows


def print_ratios(teacher: list[Row], student: list[Row]) -> None:
    """Per cell: how many times the teacher's images/s the student serves, and its latency."""
    print(f"{'cell':40} {'images/s x':>10} {'p50 /':>8} {'p99 /':>8}")
    for t, s in zip(teacher, student, strict=True):
        speedup = s.images_per_s / t.images_per_s if t.images_per_s else float("nan")
        p50 = s.p50_ms / t.p50_ms if t.p50_ms else float("nan")
        p99 = s.p99_ms / t.p99_ms if t.p99_ms else float("nan")
        print(f"{t.path + ' ' + t.setting:40} {speedup:10.2f} {p50:8.2f} {p99:8.2f}")


def main(argv: list[str] | None = None) -> int:
    """Measure the teacher, then the student; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True, help="<root>/dr_grader/<N>")
    parser.add_argument(
        "--student", type=Path, required=True, action="append", help="repeat for several"
    )
    parser.add_argument("--requests", type=int, default=16, help="timed requests per cell")
    args = parser.parse_args(argv)
    began = time.monotonic()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.2f}; {args.requests} timed "
        "requests per cell; one export after the other"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-student-"))
    teacher_passes, teacher = measure("teacher", args.teacher, args.requests, workdir)
    students = [
        measure(f"student {i}", root, args.requests, workdir)
        for i, root in enumerate(args.student, 1)
    ]
    for i, (student_passes, student) in enumerate(students, 1):
        print(f"\nstudent {i} / teacher: passes {student_passes} / {teacher_passes}")
        print_ratios(teacher, student)
    print(f"\ntotal wall time {time.monotonic() - began:.0f} s; logs in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
