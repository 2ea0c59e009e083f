"""Training past one device: data parallel steps and fold-to-GPU pinning.

``train.distribution: data_parallel`` splits every global batch (``train.batch_size``) over all
devices Keras sees (JAX backend); gradients are averaged across devices each step.
``fold_gpus`` is how ``model.parallel`` spreads fold processes over the GPUs of one machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

import keras


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def fold_gpus(folds: Sequence[int], gpus: Sequence[str]) -> dict[int, str | None]:
    """Round-robin: the i-th fold to run gets GPU ``gpus[i % len(gpus)]`` (None: no GPU)."""
    if not gpus:
        return dict.fromkeys(folds)
    return {k: gpus[i % len(gpus)] for i, k in enumerate(folds)}


def apply_distribution(name: str, global_batch: int) -> int:
    """Set the Keras distribution named by ``train.distribution``; returns the device count.

    Call before any model is built. ``data_parallel`` needs the JAX backend and a global batch
    that divides evenly over the devices.
    """
    if name == "none":
        return 1
    if name != "data_parallel":
        raise ValueError(f"unknown train.distribution {name!r}")
    if keras.backend.backend() != "jax":
        raise ValueError("train.distribution=data_parallel needs KERAS_BACKEND=jax")
    devices = keras.distribution.list_devices()
    if global_batch % len(devices):
        raise ValueError(
            f"train.batch_size {global_batch} does not divide over {len(devices)} devices"
        )
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)
