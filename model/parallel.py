"""Train the folds of one run as concurrent processes sharing one GPU.

``python -m model.parallel --config C run_dir=R [key=value ...]``

A from-scratch B3 step at 128 px leaves an H100 mostly idle (many small kernels), so five fold
processes side by side (best under CUDA MPS) finish far sooner than five folds in a row. Steps:

1. ``model.train ... folds.only=[]`` prepares the data cache and folds.csv once, so the fold
   processes never race on them;
2. fold 0 starts first; once its first epoch is done its XLA executables are in the JAX
   persistent compilation cache, and the other folds start and load them instead of compiling;
3. when every fold is finished, ``model.train`` runs once more without ``folds.only``: it trains
   nothing and aggregates (oof.csv, test_predictions.csv, thresholds). If a fold paused
   (``train.pause_after_s``, counted here from this launcher's start, so every fold pauses
   before the same lease ends), run the same command again later to resume.

Each fold's output goes to ``R/fold_K.log``. With several GPUs visible, fold processes are
round-robined over them (``CUDA_VISIBLE_DEVICES`` per process, ``model.distribution.fold_gpus``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from model.config import load_config
from model.distribution import fold_gpus, visible_gpus


def _train_command(config_path: str, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "model.train",
        "--config",
        config_path,
        "--no-progress",
        *overrides,
    ]


def _first_epoch_done(run_dir: Path, fold: int) -> bool:
    history = run_dir / f"fold_{fold}" / "history.csv"
    return history.exists() and len(history.read_text().splitlines()) >= 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.parallel", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument(
        "--stagger-timeout",
        type=float,
        default=900.0,
        help="longest wait (s) for fold 0's first epoch before starting the rest",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides (run_dir= required)")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    if not config.run_dir:
        parser.error("give run_dir=... so every process shares one run directory")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pause_after = config.train.pause_after_s
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(run_dir / "jax_cache"))
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes, one GPU
    env.setdefault("PYTHONUNBUFFERED", "1")

    subprocess.run(
        _train_command(args.config, [*args.overrides, "folds.only=[]"]), env=env, check=True
    )
    folds = list(
        config.folds.only if config.folds.only is not None else range(config.folds.n_splits)
    )
    todo = [k for k in folds if not (run_dir / f"fold_{k}" / "DONE").exists()]
    processes: dict[int, subprocess.Popen[bytes]] = {}
    gpu_of = fold_gpus(todo, visible_gpus(env))
    for i, k in enumerate(todo):
        log = (run_dir / f"fold_{k}.log").open("ab")
        extra = [f"folds.only=[{k}]"]
        if pause_after is not None:
            left = max(0.0, pause_after - (time.monotonic() - started))
            extra.append(f"train.pause_after_s={left:.0f}")
        command = _train_command(args.config, [*args.overrides, *extra])
        fold_env = dict(env)
        if gpu_of[k] is not None:
            fold_env["CUDA_VISIBLE_DEVICES"] = str(gpu_of[k])
        processes[k] = subprocess.Popen(command, env=fold_env, stdout=log, stderr=subprocess.STDOUT)
        if i == 0 and len(todo) > 1:
            waited_until = time.monotonic() + args.stagger_timeout
            while (
                not _first_epoch_done(run_dir, k)
                and processes[k].poll() is None
                and time.monotonic() < waited_until
            ):
                time.sleep(2)
            print(f"fold {k} compiled; starting folds {todo[1:]}", flush=True)
    failed = [k for k, p in processes.items() if p.wait() != 0]
    if failed:
        print(f"folds {failed} failed: see {run_dir}/fold_K.log", file=sys.stderr)
        return 1
    pending = [k for k in folds if not (run_dir / f"fold_{k}" / "DONE").exists()]
    if pending:
        print(f"folds {pending} paused: run the same command again to resume", flush=True)
        return 0
    subprocess.run(_train_command(args.config, args.overrides), env=env, check=True)
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
