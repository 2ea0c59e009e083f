"""Build the tiny model with model/ (train on synthetic photographs, export) for the tests.

The integration, deploy, e2e and reliability tests serve this SavedModel; it is trained,
evaluated, exported and verified by the real ``model.pipeline`` command with
``model/configs/tiny.yaml`` (synthetic images, EfficientNet-B3 at 64 px, 2 folds, 1 epoch): a
few minutes on 2 CPU cores, once per test session (tests/conftest.py ``model_root``). The
pipeline test checks the run directory it leaves (``tiny_run_dir``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "model" / "configs" / "tiny.yaml"


def _run(arguments: list[str], log: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("ab") as output:
        done = subprocess.run(
            [sys.executable, "-m", *arguments],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(arguments[:2])} failed; see {log}:\n{log.read_text()[-3000:]}"
        )


def tiny_run_dir(root: Path) -> Path:
    """The training run directory ``tiny_export(root)`` leaves beside ``root``."""
    return root.parent / f"{root.name}-work" / "run"


def tiny_export(root: Path) -> Path:
    """Train, evaluate and export the tiny config; return ``root`` holding ``dr_grader/1``."""
    run_dir = tiny_run_dir(root)
    work = run_dir.parent
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    _run(
        [
            "model.pipeline",
            "--config",
            str(TINY_CONFIG),
            f"run_dir={run_dir}",
            f"cache.root={work / 'cache'}",
            f"export.root={root}",
            "export.version=1",
        ],
        log,
    )
    if not (root / "dr_grader" / "1" / "saved_model.pb").is_file():
        raise RuntimeError(f"the export did not produce {root}/dr_grader/1; see {log}")
    return root
