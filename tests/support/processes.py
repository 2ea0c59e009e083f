"""Real processes for integration tests: the TF Serving stand-in and the gateway, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# What production runs TF Serving with (k8s/base/tfserving/deployment.yaml, docker-compose.yml).
BATCHING_CONFIG = REPO_ROOT / "k8s" / "base" / "tfserving" / "batching.config"


class TFServingProcess:
    """``tests.support.tfserving_server`` in its own process (it imports TensorFlow).

    Batching is on by default with the production batching config, as TF Serving runs in the
    cluster: the stand-in then refuses what TF Serving's BatchingSession refuses.
    ``batching=False`` serves without it; a Path uses that BatchingParameters file instead.
    """

    def __init__(
        self,
        model_base: Path,
        *,
        port: int = 0,
        args: tuple[str, ...] = (),
        batching: bool | Path = True,
    ) -> None:
        self.model_base = model_base
        self.port = port
        self.args = args
        self.batching = batching
        self.process: subprocess.Popen[str] | None = None

    @property
    def batching_args(self) -> tuple[str, ...]:
        """The stand-in's batching options (TF Serving's --enable_batching and its file)."""
        if self.batching is False:
            return ()
        config = BATCHING_CONFIG if self.batching is True else self.batching
        return ("--enable-batching", "--batching-parameters-file", str(config))

    def start(self, wait_available: bool = True, timeout_s: float = 300.0) -> TFServingProcess:
        """Start, learn the port, optionally wait until the model is AVAILABLE."""
        command = [
            sys.executable,
            "-m",
            "tests.support.tfserving_server",
            "--model-base-path",
            str(self.model_base),
            "--port",
            str(self.port),
            *self.batching_args,
            *self.args,
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"TF Serving stand-in did not start: {line!r}")
        self.port = int(line.split()[1])
        if wait_available:
            self.wait_available(deadline - time.monotonic())
        return self

    @property
    def target(self) -> str:
        """host:port for DRG_TFSERVING_TARGET."""
        return f"127.0.0.1:{self.port}"

    def wait_available(self, timeout_s: float) -> None:
        """Poll GetModelStatus (through the full TF protos) until a version is AVAILABLE."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "dr_grader"
            while time.monotonic() < deadline:
                try:
                    response = stub.GetModelStatus(request, timeout=2)
                    if any(s.state == 30 for s in response.model_version_status):
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise TimeoutError("model never became AVAILABLE")

    def stop(self) -> None:
        """Kill the process (TF Serving going away abruptly)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class GatewayProcess:
    """``python -m gateway`` with the lean protos first on PYTHONPATH and a log file."""

    def __init__(self, env: dict[str, str], lean_protos: Path, log_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRG_")},
            "PYTHONPATH": f"{lean_protos}{os.pathsep}{REPO_ROOT}",
            "DRG_PORT": str(self.port),
            "DRG_HOST": "127.0.0.1",
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_s = 0.0

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        """Start and wait for /livez."""
        self._log = self.log_path.open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/livez", timeout=1).status_code == 200:
                    self.started_s = time.monotonic() - began
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("gateway did not start")

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Seconds until /readyz answered 200."""
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("gateway never became ready")

    def logs(self) -> str:
        """Everything the gateway wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Signal and wait; return the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
            try:
                code = self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        if self._log is not None:
            self._log.close()
        self.process = None
        return code
