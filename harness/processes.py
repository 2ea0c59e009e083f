"""Real processes on 127.0.0.1 for tests and benches: the TF Serving stand-in, the gateway and
the naive baseline service, each started, probed for readiness and stopped the same way."""

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

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# What production runs TF Serving with (k8s/base/tfserving/deployment.yaml, docker-compose.yml).
BATCHING_CONFIG = REPO_ROOT / "k8s" / "base" / "tfserving" / "batching.config"


class HttpProcess:
    """``python -m <module>`` on a free port with its output in a log file; ready once an HTTP
    path answers 200."""

    name = "process"

    def __init__(
        self, command: list[str], env: dict[str, str], log_path: Path, *, cwd: Path = REPO_ROOT
    ) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._began = 0.0
        self.started_s = 0.0

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The port the process serves on."""
        return int(self.env.get("DRG_PORT", "0"))

    @property
    def pid(self) -> int:
        """Process id (started)."""
        assert self.process is not None, "not started"
        return self.process.pid

    def launch(self) -> HttpProcess:
        """Start the process without waiting for it."""
        self._log = self.log_path.open("ab")
        self._began = time.monotonic()
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=self._log, stderr=self._log
        )
        return self

    def wait_http(self, path: str, timeout_s: float, interval_s: float) -> float:
        """Poll ``path`` until it answers 200; ``started_s`` = seconds from launch to that 200.
        RuntimeError (with the log's tail) when the process exits first, else TimeoutError."""
        assert self.process is not None, "launch() first"
        while time.monotonic() - self._began < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.logs()[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    self.started_s = time.monotonic() - self._began
                    return self.started_s
            except httpx.HTTPError:
                pass
            time.sleep(interval_s)
        raise TimeoutError(f"{self.name} did not start")

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Signal, wait (SIGKILL after ``timeout_s``) and return the exit code."""
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


class GatewayProcess(HttpProcess):
    """``python -m gateway`` (or ``module``, e.g. ``reliability.http_variant h11``) from ``root``
    with the lean protos first on PYTHONPATH, only the given DRG_* settings, and a log file."""

    name = "gateway"

    def __init__(
        self,
        env: dict[str, str],
        lean_protos: Path,
        log_path: Path,
        *,
        root: Path = REPO_ROOT,
        module: tuple[str, ...] = ("gateway",),
    ) -> None:
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRG_")},
            "PYTHONPATH": f"{lean_protos}{os.pathsep}{root}",
            "DRG_PORT": str(free_port()),
            "DRG_HOST": "127.0.0.1",
            **env,
        }
        super().__init__([sys.executable, "-m", *module], full_env, log_path, cwd=root)

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        """Start and wait for /livez."""
        self.launch()
        self.wait_http("/livez", timeout_s, interval_s=0.05)
        return self

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


class NaiveServiceProcess(HttpProcess):
    """``python -m bench.naive_service`` (uvicorn, 1 worker) on a free port."""

    name = "naive service"

    def __init__(self, run_dir: Path, log_path: Path) -> None:
        self.run_dir = run_dir
        self._port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [sys.executable, "-m", "bench.naive_service", "--run-dir", str(run_dir)]
        super().__init__([*command, "--port", str(self._port)], env, log_path)

    @property
    def port(self) -> int:
        """The port given on the command line."""
        return self._port

    def start(self, timeout_s: float = 600.0) -> NaiveServiceProcess:
        """Launch and wait until it serves."""
        self.launch()
        return self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 600.0) -> NaiveServiceProcess:
        """Poll /health; ``started_s`` = seconds from launch to the first 200."""
        try:
            self.wait_http("/health", timeout_s, interval_s=0.1)
        except TimeoutError:
            self.stop()
            raise
        return self


class TFServingProcess:
    """``python -m harness.tfserving_server`` in its own process (it imports TensorFlow).

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
        """Start, learn the port (the stand-in prints ``PORT n`` first), optionally wait until
        the model is AVAILABLE."""
        command = [
            sys.executable,
            "-m",
            "harness.tfserving_server",
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
