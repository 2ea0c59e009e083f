"""What the performance benches add to bench/gateway_stack.py: the naive baseline service on
127.0.0.1 and the gateway settings they measure with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tests.support.processes import REPO_ROOT, free_port

# A 512 px B3 ensemble on 2 CPU cores takes seconds per request once 8 queue up.
SLOW_MODEL_TIMEOUT_S = "300"
PERF_FIELDS = {
    "max_concurrent_inferences": "8",
    "log_level": "WARNING",
    "backend_timeout_s": SLOW_MODEL_TIMEOUT_S,
    "request_timeout_s": SLOW_MODEL_TIMEOUT_S,
    "shutdown_grace_s": str(int(SLOW_MODEL_TIMEOUT_S) + 5),  # must exceed the request timeout
}
"""Gateway Settings of the performance benches: 8 concurrent inferences, quiet logs, long
timeouts (the stack is measured, not its deadlines)."""


class NaiveServiceProcess:
    """``python -m bench.naive_service`` (uvicorn, 1 worker) on a free port."""

    def __init__(self, run_dir: Path, log_path: Path) -> None:
        self.run_dir = run_dir
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._began = 0.0
        self.started_s = 0.0

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 600.0) -> NaiveServiceProcess:
        """Launch and wait until it serves."""
        return self.launch().wait_healthy(timeout_s)

    def launch(self) -> NaiveServiceProcess:
        """Start the process without waiting (it loads the fold models before it serves)."""
        self._log = self.log_path.open("ab")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [sys.executable, "-m", "bench.naive_service", "--run-dir", str(self.run_dir)]
        self._began = time.monotonic()
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
        )
        return self

    def wait_healthy(self, timeout_s: float = 600.0) -> NaiveServiceProcess:
        """Poll /health; ``started_s`` = seconds from launch to the first 200."""
        assert self.process is not None, "launch() first"
        while time.monotonic() - self._began < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"naive service exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    self.started_s = time.monotonic() - self._began
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError("naive service did not start")

    @property
    def pid(self) -> int:
        """Process id (started)."""
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """Terminate and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        self.process = None
