"""The demo (and only the demo) starts TensorFlow without its start-up log lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from demo.quiet import QUIET_ENV, quiet_environ

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quiet_environ_adds_settings_and_keeps_the_users() -> None:
    env = quiet_environ({"PATH": "/bin", "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert env["PATH"] == "/bin"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the user's choice wins
    assert env["GRPC_VERBOSITY"] == QUIET_ENV["GRPC_VERBOSITY"]


def test_library_packages_set_none_of_it() -> None:
    """Quiet is a demo setting: fundus/ and gateway/ never name these variables."""
    for package in ("fundus", "gateway"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert not any(name in text for name in QUIET_ENV), path


def test_tensorflow_import_prints_nothing() -> None:
    """TF 2.21 writes oneDNN/CUDA lines on import even at TF_CPP_MIN_LOG_LEVEL=3; not here."""
    env = {k: v for k, v in quiet_environ({}).items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = (
        "from demo.quiet import quiet_tensorflow; quiet_tensorflow(); import tensorflow as tf; "
        "print(tf.constant(2) + 1)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tf.Tensor(3" in proc.stdout
    assert proc.stderr == ""
