"""Benchmark inputs: full-resolution fundus JPEGs and preprocessed model inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fundus.config import PreprocessConfig
from fundus.pipeline import load_and_preprocess, preprocess_image
from synthetic import encode_jpeg, synthesize_fundus

SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "eyepacs-sample"
SYNTHETIC_SIZES = ((4752, 3168), (2592, 1944), (4928, 3264), (3888, 2592))


def full_resolution_jpegs() -> tuple[str, list[tuple[str, bytes]]]:
    """(where they come from, [(name, bytes)]): the EyePACS samples in ../shared when present,
    else synthetic photographs of the same camera sizes."""
    files = sorted(SHARED_SAMPLES.glob("*.jpeg"))
    if files:
        return "EyePACS samples (../shared)", [(p.name, p.read_bytes()) for p in files]
    inputs = [
        (f"synthetic_{w}x{h}.jpg", encode_jpeg(synthesize_fundus(i % 5, width=w, height=h, seed=i)))
        for i, (w, h) in enumerate(SYNTHETIC_SIZES)
    ]
    return "synthetic photographs (../shared absent)", inputs


def gradable_jpegs(
    jpegs: list[tuple[str, bytes]], config: PreprocessConfig
) -> list[tuple[str, bytes]]:
    """Only the photographs the quality gate passes: the gateway sends no other to the model,
    so a benchmark of model work must not include them."""
    return [(n, d) for n, d in jpegs if load_and_preprocess(d, config).quality.gradable]


def model_inputs(jpegs: list[tuple[str, bytes]], config: PreprocessConfig) -> list[np.ndarray]:
    """uint8 [S,S,3] model inputs made by the gateway's own pipeline from ``jpegs``."""
    return [load_and_preprocess(data, config).image for _, data in jpegs]


def preprocessed_images(size: int, count: int) -> list[np.ndarray]:
    """Model inputs made by fundus/ from synthetic photographs."""
    config = PreprocessConfig(size=size)
    return [
        preprocess_image(synthesize_fundus(i % 5, width=1600, height=1200, seed=i), config).image
        for i in range(count)
    ]
