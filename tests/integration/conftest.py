"""Integration fixtures: the TF Serving stand-in serving the tiny model (tests/conftest.py) and
the gateway (lean: no TF runtime) in front, all real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import GatewayProcess, TFServingProcess
from tests.conftest import API_KEY, PACS_ONLY_KEY

__all__ = ["API_KEY", "PACS_ONLY_KEY", "start_gateway"]


@pytest.fixture(scope="module")
def tfserving(model_root: Path) -> Iterator[TFServingProcess]:
    """The TF Serving stand-in with the tiny model AVAILABLE."""
    server = TFServingProcess(model_root, args=("--labels", "stable=1")).start()
    yield server
    server.stop()


def start_gateway(
    tmp_path: Path, lean_protos: Path, keys_file: Path, target: str, **env: str
) -> GatewayProcess:
    """A gateway process in tfserving mode with test-friendly limits."""
    settings = {
        "DRG_BACKEND": "tfserving",
        "DRG_TFSERVING_TARGET": target,
        "DRG_API_KEYS_FILE": str(keys_file),
        "DRG_READINESS_CACHE_S": "0",
        "DRG_BACKEND_TIMEOUT_S": "15",
        "DRG_REQUEST_TIMEOUT_S": "30",
        **{f"DRG_{k.upper()}": v for k, v in env.items()},
    }
    return GatewayProcess(settings, lean_protos, tmp_path / "gateway.log").start()


@pytest.fixture(scope="module")
def gateway(
    tfserving: TFServingProcess,
    lean_protos: Path,
    keys_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """The gateway in front of the stand-in; ready."""
    process = start_gateway(tmp_path_factory.mktemp("gw"), lean_protos, keys_file, tfserving.target)
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """HTTP client with a valid API key."""
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as http:
        yield http
