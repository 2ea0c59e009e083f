"""The system under test of the reliability benches: the TF Serving stand-in serving a SavedModel
and the lean gateway (tfserving mode, no TF runtime) in front of it, real processes on 127.0.0.1.

Shared by ``bench.soak``, ``bench.faults`` and tests/reliability so that the benches and the CI
tests start, measure and stop the same system the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.tcp_gate import TcpGate
from fundus.synthetic import encode_jpeg, synthesize_fundus
from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from gateway.settings import Settings
from tests.support.processes import GatewayProcess, TFServingProcess, free_port

API_KEY = "reliability-bench-key"
_METRIC_LINE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def fundus_jpeg(seed: int = 41) -> bytes:
    """A synthetic 1200 x 900 fundus photograph as JPEG (about 100 kB), gradable."""
    return encode_jpeg(synthesize_fundus(2, width=1200, height=900, seed=seed))


@dataclass
class Stack:
    """The stand-in and the gateway of one run; ``stop`` ends both."""

    model_root: Path
    workdir: Path
    server: TFServingProcess
    gateway: GatewayProcess
    server_args: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    gate: TcpGate | None = None
    owns_server: bool = True

    @property
    def grade_url(self) -> str:
        """``POST /v1/grade`` of the gateway."""
        return self.gateway.url + "/v1/grade"

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the bench's API key."""
        return {"Authorization": f"Bearer {API_KEY}"}

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
            self.model_root, port=self.server.port, args=self.server_args
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


def gateway_settings(target: str, keys_file: Path, **overrides: str) -> dict[str, str]:
    """Production defaults but for the target and keys, plus ``overrides`` (Settings fields)."""
    return {
        "DRG_BACKEND": "tfserving",
        "DRG_TFSERVING_TARGET": target,
        "DRG_API_KEYS_FILE": str(keys_file),
        **{f"DRG_{name.upper()}": value for name, value in overrides.items()},
    }


def start_stack(
    model_root: Path,
    workdir: Path,
    *,
    server_args: tuple[str, ...] = (),
    lean_protos: Path | None = None,
    gated: bool = False,
    server: TFServingProcess | None = None,
    **gateway_overrides: str,
) -> Stack:
    """Start the stand-in (on a fixed free port, so it can be restarted there) and a ready gateway.

    ``lean_protos``: an existing lean protos directory (the tests' session fixture); built into
    ``workdir`` when absent. ``gated``: the gateway reaches the stand-in through a ``TcpGate``
    (see bench/tcp_gate.py). ``server``: a running stand-in to use instead (left running by
    ``Stack.stop``). ``gateway_overrides`` are Settings fields (``backend_timeout_s="2"``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if lean_protos is None:
        lean_protos = workdir / "lean-protos"
        build_lean_protos(lean_protos)
    keys_file = workdir / "keys.txt"
    keys_file.write_text(f"reliability {hash_key(API_KEY)} grade\n")
    owns_server = server is None
    if server is None:
        server = TFServingProcess(model_root, port=free_port(), args=server_args).start()
    gate = TcpGate(server.port) if gated else None
    try:
        if gate is not None:
            gate.open()
        target = server.target if gate is None else gate.target
        settings = gateway_settings(target, keys_file, **gateway_overrides)
        gateway = GatewayProcess(settings, lean_protos, workdir / "gateway.log").start()
        gateway.wait_ready(timeout_s=60)
    except BaseException:
        if owns_server:
            server.stop()
        if gate is not None:
            gate.close()
        raise
    return Stack(model_root, workdir, server, gateway, server.args, settings, gate, owns_server)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process (from /proc/PID/status), KiB."""
    fields = ("VmRSS", "RssAnon", "RssFile")
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            values[name] = int(rest.split()[0])
    if set(values) != set(fields):
        raise RuntimeError(f"no memory figures for process {pid}")
    return values


def scrape_counter(base_url: str, name: str, **labels: str) -> float:
    """Sum of the ``/metrics`` samples of ``name`` whose labels include ``labels``."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match is None or match["name"] != name:
            continue
        present = set((match["labels"] or "").split(","))
        if wanted <= present:
            total += float(match["value"])
    return total
