"""Integration fixtures: a tiny model exported by model/, the TF Serving stand-in serving it,
and the gateway (lean: no TF runtime) in front, all real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from tests.support.processes import GatewayProcess, TFServingProcess
from tests.support.tiny_model import tiny_export

API_KEY = "integration-test-key"
PACS_ONLY_KEY = "pacs-only-key"


@pytest.fixture(scope="session")
def lean_protos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TF Serving's generated modules without the TF runtime (as in the gateway image)."""
    out = tmp_path_factory.mktemp("lean") / "protos"
    build_lean_protos(out)
    return out


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/dr_grader/1``: the tiny config trained and exported by model/."""
    return tiny_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clients: one allowed to grade, one PACS-only."""
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"tester {hash_key(API_KEY)} grade\npacs {hash_key(PACS_ONLY_KEY)} pacs\n")
    return path


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
