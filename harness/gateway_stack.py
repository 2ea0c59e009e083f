"""The system every gateway bench measures: the TF Serving stand-in serving a SavedModel and the
lean gateway (tfserving mode, no TF runtime) in front of it, real processes on 127.0.0.1.

The one place that starts them, shared by the performance benches (``bench.gateway``,
``bench.serving``), the reliability runners (``reliability.soak``, ``reliability.faults``,
``reliability.malformed``) and tests/reliability, so all of them start, measure and stop the same
system the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from gateway.settings import Settings
from harness.processes import GatewayProcess, TFServingProcess, free_port
from harness.tcp_gate import TcpGate
from synthetic import encode_jpeg, synthesize_fundus

API_KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def fundus_jpeg(seed: int = 41) -> bytes:
    """A synthetic 1200 x 900 fundus photograph as JPEG (about 100 kB), gradable."""
    return encode_jpeg(synthesize_fundus(2, width=1200, height=900, seed=seed))


@dataclass(frozen=True)
class GatewaySetup:
    """What a gateway needs besides its settings: lean protos and an API key file."""

    workdir: Path
    lean_protos: Path
    keys_file: Path

    @classmethod
    def create(
        cls, workdir: Path, lean_protos: Path | None = None, keys_file: Path | None = None
    ) -> GatewaySetup:
        """Under ``workdir``: build the lean protos unless given, write a key file holding
        ``API_KEY`` (grade scope) unless one is given."""
        workdir.mkdir(parents=True, exist_ok=True)
        if lean_protos is None:
            lean_protos = workdir / "lean-protos"
            build_lean_protos(lean_protos)
        if keys_file is None:
            keys_file = workdir / "keys.txt"
            keys_file.write_text(f"bench {hash_key(API_KEY)} grade\n")
        return cls(workdir, lean_protos, keys_file)

    def settings(self, **fields: str) -> dict[str, str]:
        """DRG_* environment: the key file plus Settings ``fields`` (production defaults
        otherwise), e.g. ``backend="tfserving", backend_timeout_s="2"``."""
        return {
            "DRG_API_KEYS_FILE": str(self.keys_file),
            **{f"DRG_{name.upper()}": value for name, value in fields.items()},
        }

    def tfserving_gateway(
        self, target: str, log_name: str = "gateway.log", **fields: str
    ) -> GatewayProcess:
        """A started (live, not yet ready) lean gateway in front of the gRPC ``target``."""
        settings = self.settings(backend="tfserving", tfserving_target=target, **fields)
        return GatewayProcess(settings, self.lean_protos, self.workdir / log_name).start()

    def local_gateway(
        self, model_root: Path, log_name: str = "local.log", **fields: str
    ) -> GatewayProcess:
        """A started gateway with the in-process backend (it loads TF and the SavedModel before
        it answers /livez); the lean protos must not shadow the real TF here."""
        settings = self.settings(backend="local", model_dir=str(model_root), **fields)
        process = GatewayProcess(settings, Path("/nonexistent"), self.workdir / log_name)
        return process.start(timeout_s=600)


@dataclass
class Stack:
    """The stand-in and the gateway of one run; ``stop`` ends both."""

    model_root: Path
    setup: GatewaySetup
    server: TFServingProcess
    gateway: GatewayProcess
    to_ready_s: float
    """Seconds from the gateway's process start to its first /readyz 200."""
    gate: TcpGate | None = None
    owns_server: bool = True

    @property
    def server_args(self) -> tuple[str, ...]:
        """The stand-in's command-line options (``--predict-delay 1.0``)."""
        return self.server.args

    @property
    def settings(self) -> dict[str, str]:
        """The gateway's DRG_* environment."""
        return {k: v for k, v in self.gateway.env.items() if k.startswith("DRG_")}

    @property
    def workdir(self) -> Path:
        """Where the key file and the process logs are."""
        return self.setup.workdir

    @property
    def grade_url(self) -> str:
        """``POST /v1/grade`` of the gateway."""
        return self.gateway.url + "/v1/grade"

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the bench's API key."""
        return AUTH

    @property
    def gateway_pid(self) -> int:
        """PID of the running gateway process."""
        if self.gateway.process is None:
            raise RuntimeError("the gateway is not running")
        return self.gateway.process.pid

    def setting(self, name: str) -> float:
        """A numeric gateway setting (``request_timeout_s``): as started, else its default."""
        value = self.settings.get(f"DRG_{name.upper()}")
        if value is None:
            return float(Settings.model_fields[name].default)
        return float(value)

    def kill_server(self) -> None:
        """SIGKILL the stand-in; behind a gate, also reset its connections and refuse new ones."""
        if self.gate is not None:
            self.gate.shut()
        self.server.stop()

    def restart_server(self) -> None:
        """Start a new stand-in on the same port and wait until AVAILABLE; then open the gate."""
        self.server = TFServingProcess(
            self.model_root,
            port=self.server.port,
            args=self.server_args,
            batching=self.server.batching,
        ).start()
        if self.gate is not None:
            self.gate.open()

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, graceful) and kill the stand-in if this stack started it."""
        self.gateway.stop()
        if self.owns_server:
            self.server.stop()
        if self.gate is not None:
            self.gate.close()


def start_stack(
    model_root: Path,
    workdir: Path,
    *,
    server_args: tuple[str, ...] = (),
    lean_protos: Path | None = None,
    keys_file: Path | None = None,
    gated: bool = False,
    server: TFServingProcess | None = None,
    **gateway_fields: str,
) -> Stack:
    """Start the stand-in (on a fixed free port, so it can be restarted there) and a ready gateway.

    ``lean_protos``, ``keys_file``: see ``GatewaySetup.create``. ``gated``: the gateway reaches
    the stand-in through a ``TcpGate`` (see harness/tcp_gate.py). ``server``: a running stand-in to
    use instead (left running by ``Stack.stop``). ``gateway_fields`` are Settings fields
    (``backend_timeout_s="2"``); the rest keep their production defaults.
    """
    if server is not None and server_args:
        raise ValueError("server_args start a new stand-in; a running server keeps its own")
    setup = GatewaySetup.create(workdir, lean_protos, keys_file)
    owns_server = server is None
    if server is None:
        server = TFServingProcess(model_root, port=free_port(), args=server_args).start(
            timeout_s=600  # a 512 px fold ensemble takes minutes to load on 2 cores
        )
    gate = TcpGate(server.port) if gated else None
    try:
        if gate is not None:
            gate.open()
        target = server.target if gate is None else gate.target
        gateway = setup.tfserving_gateway(target, **gateway_fields)
        to_ready_s = start_to_ready_s(gateway, timeout_s=60)
    except BaseException:
        if owns_server:
            server.stop()
        if gate is not None:
            gate.close()
        raise
    return Stack(model_root, setup, server, gateway, to_ready_s, gate, owns_server)


@contextmanager
def running_stack(model_root: Path, workdir: Path, **options: Any) -> Iterator[Stack]:
    """``start_stack`` (same arguments) for a ``with`` block; stops both processes after it."""
    stack = start_stack(model_root, workdir, **options)
    try:
        yield stack
    finally:
        stack.stop()


def start_to_ready_s(gateway: GatewayProcess, timeout_s: float = 600) -> float:
    """Seconds from process start to the first /readyz 200 (``gateway`` is started, live)."""
    return gateway.started_s + gateway.wait_ready(timeout_s)


def rss_mib(pid: int) -> float:
    """Resident set size of a process (VmRSS), MiB."""
    return memory_kib(pid)["VmRSS"] / 1024


def memory_kib(
    pid: int, fields: tuple[str, ...] = ("VmRSS", "RssAnon", "RssFile")
) -> dict[str, int]:
    """Memory figures of a process (``/proc/PID/status`` fields, KiB); OSError when it is gone."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            values[name] = int(rest.split()[0])
    if set(values) != set(fields):
        raise RuntimeError(f"no memory figures for process {pid}")
    return values


def scrape_counter(base_url: str, name: str, **labels: str) -> float:
    """Sum of the ``/metrics`` samples named ``name`` whose labels include ``labels``."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
