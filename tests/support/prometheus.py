"""A real Prometheus (Debian package ``prometheus``) on 127.0.0.1 for tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.processes import free_port


def prometheus_binary() -> str:
    """The prometheus binary, or skip the test."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
    return binary


@contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Start Prometheus with ``config`` (rule files relative to ``workdir``); yield its URL."""
    binary = prometheus_binary()
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    "prometheus exited: " + (workdir / "prometheus.log").read_text()[-2000:]
                )
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise TimeoutError("prometheus did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def active_targets(url: str, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Prometheus's active targets once ``count`` of them are known."""
    deadline = time.monotonic() + timeout_s
    while True:
        targets: list[dict[str, Any]] = httpx.get(url + "/api/v1/targets", timeout=5).json()[
            "data"
        ]["activeTargets"]
        if len(targets) >= count or time.monotonic() > deadline:
            return targets
        time.sleep(0.2)
