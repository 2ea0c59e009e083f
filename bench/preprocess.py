"""JPEG fast path (DCT-scaled decode) vs naive full decode + resize, side by side.

For each full-resolution fundus JPEG (the EyePACS samples in ../shared when present, else large
synthetic photographs) three pipelines run in turn, `--repeats` times each:
- fast: ``fundus.load_and_preprocess`` (Pillow ``draft``: libjpeg decodes at 1/2..1/8 scale);
- naive (Pillow): full-resolution Pillow decode, then the same crop/resize/quality code;
- naive (OpenCV): full-resolution ``cv2.imdecode``, then the same code.
The table gives median milliseconds per image, the ratios naive/fast, and the mean absolute
difference between the fast and the naive (Pillow) 512 px model inputs (0..255 scale).

    python -m bench.preprocess [--repeats 7] [--size 512]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from bench.inputs import full_resolution_jpegs
from fundus.config import PreprocessConfig
from fundus.decode import decode_image
from fundus.pipeline import load_and_preprocess, preprocess_image
from fundus.types import Preprocessed


def naive_pillow(data: bytes, config: PreprocessConfig) -> Preprocessed:
    """Full-resolution Pillow decode, then the same crop/resize/quality code."""
    image, info = decode_image(data, target_size=None)
    return preprocess_image(image, config, info)


def naive_opencv(data: bytes, config: PreprocessConfig) -> Preprocessed:
    """Full-resolution OpenCV decode, then the same crop/resize/quality code."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("OpenCV could not decode the benchmark input")
    return preprocess_image(np.ascontiguousarray(bgr[:, :, ::-1]), config)


def median_ms(function: Callable[[], Preprocessed], times: list[float]) -> Preprocessed:
    start = time.perf_counter()
    result = function()
    times.append((time.perf_counter() - start) * 1000)
    return result


def main(argv: list[str] | None = None) -> int:
    """Print per-image medians, ratios and output differences, then the overall figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    config = PreprocessConfig(size=args.size)
    source, inputs = full_resolution_jpegs()
    print(f"inputs: {source}; output {args.size}px; {args.repeats} repeats, interleaved")
    print(
        f"{'image':24} {'source':>10} {'scale':>5} {'fast':>6} {'Pillow':>7} {'OpenCV':>7} "
        f"{'x Pil':>6} {'x CV':>6} {'MAD':>5}   (median ms)"
    )
    rows = []
    for name, data in inputs:
        fast_t: list[float] = []
        pil_t: list[float] = []
        cv_t: list[float] = []
        for _ in range(args.repeats):
            fast = median_ms(partial(load_and_preprocess, data, config), fast_t)
            naive = median_ms(partial(naive_pillow, data, config), pil_t)
            median_ms(partial(naive_opencv, data, config), cv_t)
        fast_ms, pil_ms, cv_ms = (statistics.median(t) for t in (fast_t, pil_t, cv_t))
        mad = float(np.abs(fast.image.astype(np.int16) - naive.image.astype(np.int16)).mean())
        rows.append((fast_ms, pil_ms, cv_ms, mad))
        info = fast.info
        print(
            f"{name:24} {info.source_width}x{info.source_height:<5} {info.reduced_scale:>5} "
            f"{fast_ms:6.1f} {pil_ms:7.1f} {cv_ms:7.1f} {pil_ms / fast_ms:6.2f} "
            f"{cv_ms / fast_ms:6.2f} {mad:5.2f}"
        )
    fast_all, pil_all, cv_all, mads = (list(column) for column in zip(*rows, strict=True))
    print(
        f"median over images: fast {statistics.median(fast_all):.1f} ms; naive Pillow "
        f"{statistics.median(pil_all):.1f} ms (ratio "
        f"{statistics.median([p / f for p, f in zip(pil_all, fast_all, strict=True)]):.2f}x); "
        f"naive OpenCV {statistics.median(cv_all):.1f} ms (ratio "
        f"{statistics.median([c / f for c, f in zip(cv_all, fast_all, strict=True)]):.2f}x); "
        f"mean abs difference fast vs naive {statistics.mean(mads):.2f} / 255"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
