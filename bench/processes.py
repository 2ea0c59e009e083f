"""The processes a benchmark starts on 127.0.0.1: the TF Serving stand-in with the lean gateway
in front (tests/support/processes.py), the naive baseline service, and their memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from bench.gateway_stack import memory_kib
from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from tests.support.processes import REPO_ROOT, GatewayProcess, TFServingProcess, free_port

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# A 512 px B3 ensemble on 2 CPU cores takes seconds per request once 8 queue up.
SLOW_MODEL_TIMEOUT_S = "300"


def rss_mib(pid: int) -> float:
    """Resident set size of a process (VmRSS), MiB."""
    return memory_kib(pid)["VmRSS"] / 1024


@dataclass(frozen=True)
class GatewaySetup:
    """What a gateway in tfserving mode needs: lean protos and an API key file."""

    workdir: Path
    lean_protos: Path
    keys_file: Path

    @classmethod
    def create(cls, workdir: Path) -> GatewaySetup:
        """Build the lean protos and a key file holding ``KEY`` under ``workdir``."""
        lean = workdir / "protos"
        build_lean_protos(lean)
        keys = workdir / "keys.txt"
        keys.write_text(f"bench {hash_key(KEY)} grade\n")
        return cls(workdir, lean, keys)

    def settings(self, **overrides: str) -> dict[str, str]:
        """DRG_* for a benchmark: 8 concurrent inferences, quiet logs, long timeouts."""
        return {
            "DRG_API_KEYS_FILE": str(self.keys_file),
            "DRG_MAX_CONCURRENT_INFERENCES": "8",
            "DRG_LOG_LEVEL": "WARNING",
            "DRG_BACKEND_TIMEOUT_S": SLOW_MODEL_TIMEOUT_S,
            "DRG_REQUEST_TIMEOUT_S": SLOW_MODEL_TIMEOUT_S,
            **overrides,
        }

    def tfserving_gateway(self, target: str, log_name: str = "gateway.log") -> GatewayProcess:
        """A started (live) lean gateway in tfserving mode in front of ``target``."""
        settings = self.settings(DRG_BACKEND="tfserving", DRG_TFSERVING_TARGET=target)
        return GatewayProcess(settings, self.lean_protos, self.workdir / log_name).start()

    def local_gateway(self, model_root: Path, log_name: str = "local.log") -> GatewayProcess:
        """A started gateway with the in-process backend (loads TF and the SavedModel before it
        answers /livez); the lean protos must not shadow the real TF here."""
        settings = self.settings(DRG_BACKEND="local", DRG_MODEL_DIR=str(model_root))
        process = GatewayProcess(settings, Path("/nonexistent"), self.workdir / log_name)
        return process.start(timeout_s=600)


def start_to_ready_s(gateway: GatewayProcess, timeout_s: float = 600) -> float:
    """Seconds from process start to the first /readyz 200 (``gateway`` is started, live)."""
    return gateway.started_s + gateway.wait_ready(timeout_s)


@dataclass
class Stack:
    """The TF Serving stand-in and a ready gateway in front of it."""

    server: TFServingProcess
    gateway: GatewayProcess
    setup: GatewaySetup
    to_ready_s: float


@contextmanager
def gateway_stack(model_root: Path, setup: GatewaySetup) -> Iterator[Stack]:
    """Start the stand-in (waits until the model is AVAILABLE) and a gateway; stop both."""
    server = TFServingProcess(model_root).start(timeout_s=600)
    gateway = None
    try:
        gateway = setup.tfserving_gateway(server.target)
        yield Stack(server, gateway, setup, start_to_ready_s(gateway))
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()


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
