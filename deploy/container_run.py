"""Run the gateway image as the clusters do (read-only root, non-root, /tmp a tmpfs, no
capabilities) on the host network, bound to 127.0.0.1, in front of a TF Serving on the host.

    python -m deploy.container_run --image dr-gateway:0.1.0 --export export [--runs 5]

prints the container's cold start (``run`` to the first ``/readyz`` 200) beside the same
gateway started as a host process. The container tests (tests/container) use ``Container``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from deploy.images import Engine, ImageError, find_engine, project_version

if TYPE_CHECKING:
    from harness.gateway_stack import GatewaySetup

KEYS_PATH = "/run/secrets/api_keys"  # where docker-compose.yml mounts the key file too


@dataclass
class Container:
    """One gateway container; ``start`` runs it detached, ``stop`` signals and waits."""

    engine: Engine
    image: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    name: str = field(default_factory=lambda: f"drg-test-{uuid.uuid4().hex[:10]}")
    started_at: float = 0.0

    @property
    def url(self) -> str:
        """Base URL on the host (the container shares the host's network)."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The ``run`` command line: the securityContext of k8s/ and docker-compose.yml."""
        args = ["run", "-d", "--name", self.name, "--network", "host", "--read-only"]
        args += ["--tmpfs", "/tmp", "--cap-drop", "ALL"]
        args += ["--security-opt", "no-new-privileges", *self.engine.run_flags()]
        if self.engine.is_podman:
            args += ["--health-interval", "disable"]  # no systemd timers here; run by hand
        for mount in self.mounts:
            args += ["-v", mount]
        env = {"DRG_HOST": "127.0.0.1", "DRG_PORT": str(self.port), **self.env}
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        return [self.engine.path, *args, self.image]

    def start(self) -> Container:
        """Run detached; ``started_at`` is the monotonic time just before ``run``."""
        self.started_at = time.monotonic()
        done = subprocess.run(self.command(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageError(f"{self.engine.name} run failed: {done.stderr[-2000:]}")
        return self

    def wait_http(self, path: str, timeout_s: float = 60) -> float:
        """Seconds from ``start`` until ``path`` answered 200; RuntimeError with the logs when
        the container exited first, TimeoutError otherwise."""
        while time.monotonic() - self.started_at < timeout_s:
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return time.monotonic() - self.started_at
            except httpx.HTTPError:
                if self.state() != "running":
                    raise RuntimeError(f"container exited: {self.logs()[-2000:]}") from None
            time.sleep(0.05)
        raise TimeoutError(f"{path} never answered 200: {self.logs()[-2000:]}")

    def inspect(self, template: str) -> str:
        """``inspect --format template`` of the container."""
        return self.engine.run("inspect", "--format", template, self.name).strip()

    def state(self) -> str:
        """running, exited, ..."""
        return self.inspect("{{.State.Status}}")

    def host_pid(self) -> int:
        """PID of the container's PID 1 on the host."""
        return int(self.inspect("{{.State.Pid}}"))

    def logs(self) -> str:
        """stdout and stderr of the container so far."""
        done = subprocess.run(
            [self.engine.path, "logs", self.name], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A command inside the running container (its user, its environment)."""
        return subprocess.run(
            [self.engine.path, "exec", self.name, *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def healthcheck(self) -> int:
        """Exit status of the image's HEALTHCHECK command, run once now."""
        if self.engine.is_podman:
            args = [self.engine.path, "healthcheck", "run", self.name]
        else:  # docker has no one-shot run: execute the configured test itself
            args = [self.engine.path, "exec", self.name, *self.healthcheck_command()]
        return subprocess.run(args, capture_output=True, check=False, timeout=60).returncode

    def healthcheck_command(self) -> list[str]:
        """The image's HEALTHCHECK test as an exec command line."""
        return _exec_form(self.inspect("{{json .Config.Healthcheck.Test}}"))

    def stop(self, grace_s: float = 45) -> tuple[int, float]:
        """SIGTERM (the image's STOPSIGNAL), SIGKILL after ``grace_s``: (exit code, seconds)."""
        began = time.monotonic()
        self.engine.run(
            "stop", "-t", str(int(grace_s)), self.name, check=False, timeout=grace_s + 30
        )
        seconds = time.monotonic() - began
        return int(self.inspect("{{.State.ExitCode}}")), seconds

    def remove(self) -> None:
        """Remove the container (stopped or not)."""
        self.engine.run("rm", "-f", self.name, check=False)


def _exec_form(test_json: str) -> list[str]:
    """The command of a ``["CMD", ...]`` / ``["CMD-SHELL", "..."]`` healthcheck test."""
    import json

    test = json.loads(test_json)
    return test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


def gateway_container(
    engine: Engine, image: str, target: str, keys_file: Path, port: int, **settings: str
) -> Container:
    """A (not yet started) gateway container in tfserving mode: the key file mounted read-only
    where compose mounts its secret, ``settings`` as DRG_* variables."""
    env = {
        "DRG_TFSERVING_TARGET": target,
        "DRG_API_KEYS_FILE": KEYS_PATH,
        **{f"DRG_{name.upper()}": value for name, value in settings.items()},
    }
    return Container(engine, image, port, env, [f"{keys_file}:{KEYS_PATH}:ro"])


def cold_starts(engine: Engine, image: str, target: str, keys_file: Path, runs: int) -> list[float]:
    """Seconds from ``run`` to the first /readyz 200, one fresh container per run."""
    from harness.processes import free_port

    seconds = []
    for _ in range(runs):
        container = gateway_container(engine, image, target, keys_file, free_port())
        try:
            seconds.append(container.start().wait_http("/readyz"))
        finally:
            container.stop()
            container.remove()
    return seconds


def process_starts(setup: GatewaySetup, target: str, runs: int) -> list[float]:
    """The same for the gateway as a host process (harness.gateway_stack, lean protos)."""
    from harness.gateway_stack import start_to_ready_s

    seconds = []
    for index in range(runs):
        gateway = setup.tfserving_gateway(target, log_name=f"gateway-{index}.log")
        try:
            seconds.append(start_to_ready_s(gateway, timeout_s=60))
        finally:
            gateway.stop()
    return seconds


def _summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s "
        f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: cold starts of the image and of the host process, against the stand-in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=f"dr-gateway:{project_version()}")
    parser.add_argument("--export", type=Path, default=Path("export"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    engine = find_engine()
    if engine is None:
        print("no OCI engine (docker or podman) found", file=sys.stderr)
        return 2
    from harness.gateway_stack import GatewaySetup
    from harness.processes import TFServingProcess

    server = TFServingProcess(args.export).start(timeout_s=600)
    try:
        with tempfile.TemporaryDirectory(prefix="drg-coldstart-") as tmp:
            setup = GatewaySetup.create(Path(tmp))
            container = cold_starts(engine, args.image, server.target, setup.keys_file, args.runs)
            process = process_starts(setup, server.target, args.runs)
    finally:
        server.stop()
    print(f"{args.image} ({engine.name}) run -> /readyz 200: {_summary(container)}")
    print(f"host process (python -m gateway) start -> /readyz 200: {_summary(process)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
