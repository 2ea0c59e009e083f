"""``make demo``'s two commands on the tiny model: the table and URLs, no TensorFlow log lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from demo.quiet import QUIET_ENV
from harness.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# glog/absl lines (I0000 00:00:..., W1203 ...), absl's pre-init notice, TF's CPU-feature notice.
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|To enable the following)", re.M)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    # A user's shell, not this test session's: modules imported earlier in the session (e.g.
    # deploy.validate_model) set TF_CPP_MIN_LOG_LEVEL=2, which the demo would respect as the
    # user's choice.
    environ = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_model_demo_finds_the_export_without_tensorflow(model_root: Path) -> None:
    proc = _run(["model.demo", "--out", str(model_root)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("demo model present: ")
    assert proc.stderr == ""


def test_demo_prints_table_and_url_without_tf_noise(model_root: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = _run(
        [
            "demo",
            "--model-dir",
            str(model_root),
            "--port",
            str(port),
            "--shared",
            str(tmp_path),
            "--no-serve",
        ],
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert TF_NOISE.search(output) is None, output
    assert '"logger":"absl"' not in output  # TensorFlow's Python warnings on loading the model
    assert f"gateway ready at http://127.0.0.1:{port}" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("synthetic_")]
    assert len(rows) == 6, proc.stdout
