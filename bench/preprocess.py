"""Whole preprocessing pipeline vs a plain OpenCV full decode + resize, side by side.

For each full-resolution fundus JPEG (the EyePACS samples in ../shared when present, else large
synthetic photographs) these run in turn, interleaved, ``--repeats`` times each:
- ours: ``fundus.load_and_preprocess``, the whole pipeline the gateway and training run (header
  checks, libjpeg DCT-scaled decode at 1/2..1/8, disc location, crop, square, resize, quality
  gate); ``decode`` and ``rest`` are its two steps (``decode_image``, ``preprocess_image``)
  timed apart in a separate run;
- plain: ``cv2.imdecode`` at full size + ``cv2.resize`` to S (INTER_AREA), nothing else: the
  floor of a pipeline without DCT scaling (no crop, no quality gate);
- naive: full-resolution decode (``decode_image`` without a target size), then the same
  crop/resize/quality code (``--naive``).
The table gives median milliseconds, the ratio plain/ours (goal >= 2.2x) and, with ``--naive``,
the mean absolute difference between our and the naive 512 px model inputs (0..255).

Parity with an earlier implementation: ``--save-reference FILE`` (run it on the old code)
stores every image's model input and quality verdict; ``--reference FILE`` (on the new code)
reports the mean absolute difference of the model inputs and the verdicts that changed.

    python -m bench.preprocess [--repeats 9] [--size 512] [--naive] [--reference FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.inputs import full_resolution_jpegs
from fundus.config import PreprocessConfig
from fundus.decode import decode_image
from fundus.pipeline import load_and_preprocess, preprocess_image
from fundus.quality import ANALYSIS_SIZE
from fundus.types import Preprocessed

GOAL_RATIO = 2.2


def plain_opencv(data: bytes, size: int) -> np.ndarray:
    """Full-resolution ``cv2.imdecode`` + ``cv2.resize`` to ``size`` square, nothing else."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("OpenCV could not decode the benchmark input")
    return np.asarray(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA))


def naive_pillow(data: bytes, config: PreprocessConfig) -> Preprocessed:
    """Full-resolution decode, then the same crop/resize/quality code."""
    image, info = decode_image(data, target_size=None)
    return preprocess_image(image, config, info)


def timed(function: Callable[[], Any], times: list[float]) -> Any:
    """Run ``function``, append its wall time in ms to ``times``, return its result."""
    start = time.perf_counter()
    result = function()
    times.append((time.perf_counter() - start) * 1000)
    return result


def load_average() -> str:
    """The 1/5/15-minute load average (timings on a shared machine are read against it)."""
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def save_reference(path: Path, outputs: dict[str, Preprocessed]) -> None:
    """Model inputs and verdicts of this implementation, for a later ``--reference`` run."""
    arrays: dict[str, Any] = {name: result.image for name, result in outputs.items()}
    verdicts = {
        name: {
            "gradable": r.quality.gradable,
            "score": r.quality.score,
            "reasons": r.quality.reasons,
        }
        for name, r in outputs.items()
    }
    arrays["verdicts"] = np.asarray(json.dumps(verdicts))
    np.savez_compressed(path, **arrays)


def compare_reference(path: Path, outputs: dict[str, Preprocessed]) -> str:
    """MAD of the model inputs and verdict changes against a saved reference."""
    with np.load(path) as saved:
        verdicts = json.loads(str(saved["verdicts"]))
        mads, changed, score_diffs = [], 0, []
        for name, result in outputs.items():
            old = saved[name].astype(np.int16)
            mads.append(float(np.abs(result.image.astype(np.int16) - old).mean()))
            verdict = verdicts[name]
            changed += verdict["gradable"] != result.quality.gradable or tuple(
                verdict["reasons"]
            ) != tuple(result.quality.reasons)
            score_diffs.append(abs(verdict["score"] - result.quality.score))
    return (
        f"vs reference {path.name}: model input MAD mean {statistics.mean(mads):.4f} / 255, "
        f"max {max(mads):.4f}; verdicts or reasons changed {changed} of {len(outputs)}; "
        f"max |score difference| {max(score_diffs):.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Print per-image medians and ratios, then the figures over all images."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--naive", action="store_true", help="also time the naive full decode")
    parser.add_argument("--save-reference", type=Path)
    parser.add_argument("--reference", type=Path)
    args = parser.parse_args(argv)
    config = PreprocessConfig(size=args.size)
    source, inputs = full_resolution_jpegs()
    print(f"inputs: {source}; output {args.size}px; {args.repeats} repeats, interleaved")
    print(f"start: {load_average()}")
    naive_head = f" {'naive':>6} {'MAD':>5}" if args.naive else ""
    print(
        f"{'image':16} {'source':>10} {'scale':>5} {'ours':>6} {'decode':>6} {'rest':>5} "
        f"{'plain':>6} {'x plain':>7}{naive_head}   (median ms)"
    )
    rows: list[tuple[float, float]] = []
    target = max(args.size, ANALYSIS_SIZE)
    outputs: dict[str, Preprocessed] = {}
    for name, data in inputs:
        ours_t: list[float] = []
        decode_t: list[float] = []
        rest_t: list[float] = []
        plain_t: list[float] = []
        naive_t: list[float] = []
        naive = None
        for _ in range(args.repeats):
            ours = timed(partial(load_and_preprocess, data, config), ours_t)
            timed(partial(plain_opencv, data, args.size), plain_t)
            # The same two steps load_and_preprocess runs, timed apart (after a plain run too).
            image, info = timed(partial(decode_image, data, target_size=target), decode_t)
            timed(partial(preprocess_image, image, config, info), rest_t)
            if args.naive:
                naive = timed(partial(naive_pillow, data, config), naive_t)
        outputs[name] = ours
        ours_ms, decode_ms, rest_ms, plain_ms = (
            statistics.median(t) for t in (ours_t, decode_t, rest_t, plain_t)
        )
        rows.append((ours_ms, plain_ms))
        extra = ""
        if naive is not None:
            mad = float(np.abs(ours.image.astype(np.int16) - naive.image.astype(np.int16)).mean())
            extra = f" {statistics.median(naive_t):6.1f} {mad:5.2f}"
        info = ours.info
        print(
            f"{name:16} {info.source_width}x{info.source_height:<5} {info.reduced_scale:>5} "
            f"{ours_ms:6.1f} {decode_ms:6.1f} {rest_ms:5.1f} {plain_ms:6.1f} "
            f"{plain_ms / ours_ms:7.2f}{extra}"
        )
    ours_all = [r[0] for r in rows]
    plain_all = [r[1] for r in rows]
    ratio = statistics.median(p / o for o, p in rows)
    print(
        f"median over images: ours {statistics.median(ours_all):.1f} ms, plain OpenCV "
        f"{statistics.median(plain_all):.1f} ms; plain/ours median ratio {ratio:.2f}x "
        f"(goal >= {GOAL_RATIO}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'}), ratio of "
        f"medians {statistics.median(plain_all) / statistics.median(ours_all):.2f}x"
    )
    print(f"end: {load_average()}")
    if args.save_reference:
        save_reference(args.save_reference, outputs)
        print(f"reference saved to {args.save_reference}")
    if args.reference:
        print(compare_reference(args.reference, outputs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
