"""JPEG fast path (DCT-scaled decode) vs naive full decode + resize, side by side.

For each full-resolution fundus JPEG (the EyePACS samples in ../shared when present, else large
synthetic photographs) both pipelines run alternately, `--repeats` times each; the table gives
median milliseconds per image, the ratio, and the mean absolute difference of the two 512 px
model inputs (0..255 scale).

    python -m bench.preprocess [--repeats 7] [--size 512]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from fundus.config import PreprocessConfig
from fundus.decode import decode_image
from fundus.pipeline import load_and_preprocess, preprocess_image
from fundus.types import Preprocessed

SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "eyepacs-sample"


def load_inputs() -> tuple[str, list[tuple[str, bytes]]]:
    """Real full-resolution JPEGs when available, else synthetic ones of the same sizes."""
    files = sorted(SHARED_SAMPLES.glob("*.jpeg"))
    if files:
        return "EyePACS samples (../shared)", [(p.name, p.read_bytes()) for p in files]
    from fundus.synthetic import encode_jpeg, synthesize_fundus

    sizes = [(4752, 3168), (2592, 1944), (4928, 3264), (3888, 2592)]
    inputs = [
        (f"synthetic_{w}x{h}.jpg", encode_jpeg(synthesize_fundus(i % 5, width=w, height=h, seed=i)))
        for i, (w, h) in enumerate(sizes)
    ]
    return "synthetic photographs (../shared absent)", inputs


def naive(data: bytes, config: PreprocessConfig) -> Preprocessed:
    """Full-resolution decode, then the same crop/resize/quality code."""
    image, info = decode_image(data, target_size=None)
    return preprocess_image(image, config, info)


def timed(function: Callable[[], Preprocessed]) -> tuple[float, Preprocessed]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    """Print per-image medians, ratios and output differences, then the overall figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    config = PreprocessConfig(size=args.size)
    source, inputs = load_inputs()
    print(f"inputs: {source}; output {args.size}px; {args.repeats} repeats, alternating")
    print(
        f"{'image':26} {'source':>10} {'scale':>5} {'naive ms':>9} {'fast ms':>8} "
        f"{'ratio':>6} {'MAD':>6}"
    )
    ratios, mads, fast_all, naive_all = [], [], [], []
    for name, data in inputs:
        fast_times, naive_times = [], []
        fast_result = naive_result = None
        for _ in range(args.repeats):
            elapsed, fast_result = timed(partial(load_and_preprocess, data, config))
            fast_times.append(elapsed)
            elapsed, naive_result = timed(partial(naive, data, config))
            naive_times.append(elapsed)
        assert fast_result is not None and naive_result is not None
        fast_ms = statistics.median(fast_times) * 1000
        naive_ms = statistics.median(naive_times) * 1000
        mad = float(
            np.abs(fast_result.image.astype(np.int16) - naive_result.image.astype(np.int16)).mean()
        )
        info = fast_result.info
        ratios.append(naive_ms / fast_ms)
        mads.append(mad)
        fast_all.append(fast_ms)
        naive_all.append(naive_ms)
        print(
            f"{name:26} {info.source_width}x{info.source_height:<5} {info.reduced_scale:>5} "
            f"{naive_ms:9.1f} {fast_ms:8.1f} {naive_ms / fast_ms:6.2f} {mad:6.2f}"
        )
    print(
        f"median over images: naive {statistics.median(naive_all):.1f} ms, fast "
        f"{statistics.median(fast_all):.1f} ms, ratio {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x); mean abs difference of outputs "
        f"{statistics.mean(mads):.2f} / 255"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
