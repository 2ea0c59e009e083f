"""Integration fixtures: the TF Serving stand-in serving the tiny model (tests/conftest.py) and
the gateway (lean: no TF runtime) in front, all real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.auth import hash_key
from gateway.store.config import DatabaseSettings
from gateway.store.results import ResultStore
from harness.processes import GatewayProcess, TFServingProcess
from tests.conftest import API_KEY, PACS_ONLY_KEY
from tests.support.result_store import fresh_postgres

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


def start_pacs_gateway(
    workdir: Path, lean_protos: Path, target: str, clients: dict[str, tuple[str, str]], **env: str
) -> GatewayProcess:
    """A ready gateway with the PACS intake on, its SQLite store in ``workdir`` and these API
    clients (name -> (key, scopes))."""
    keys = workdir / "keys.txt"
    keys.write_text(
        "".join(f"{name} {hash_key(key)} {scopes}\n" for name, (key, scopes) in clients.items())
    )
    process = start_gateway(
        workdir,
        lean_protos,
        keys,
        target,
        pacs_enabled="true",
        database_url=f"sqlite:///{workdir / 'drg.sqlite3'}",
        **env,
    )
    process.wait_ready()
    return process


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    """Settings of an empty store on each engine (the SQLite file's folder does not exist yet)."""
    if request.param == "sqlite":
        return DatabaseSettings(url=f"sqlite:///{tmp_path / 'var' / 'drg.sqlite3'}")
    return fresh_postgres(request.getfixturevalue("postgres"), "engines")[1]


@pytest.fixture
def store(database: DatabaseSettings) -> Iterator[ResultStore]:
    """The results store opened on ``database`` (each engine in turn)."""
    store = ResultStore.open(database)
    yield store
    store.close()
