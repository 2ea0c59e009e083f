"""The gateway and its results store at start: a PostgreSQL schema older than the code stops it
with a message (no password in it), an upgraded one serves, the embedded SQLite upgrades itself,
and a store that goes away turns /readyz and GET /v1/results into 503 store_unavailable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gateway.store.engine import make_engine
from gateway.store.migrate import head_revision, upgrade
from harness.postgres import PostgresServer
from harness.processes import REPO_ROOT, TFServingProcess
from tests.integration.conftest import API_KEY, start_gateway


def pacs_env(postgres: PostgresServer, database: str) -> dict[str, str]:
    return {
        "pacs_enabled": "true",
        "database_url": postgres.settings_url(database),
        "database_password_file": str(postgres.password_file),
    }


def test_a_database_never_upgraded_stops_the_gateway_with_a_clear_message(
    postgres: PostgresServer,
    tfserving: TFServingProcess,
    lean_protos: Path,
    keys_file: Path,
    tmp_path: Path,
) -> None:
    postgres.create_database("startup_old")
    with pytest.raises(RuntimeError, match="gateway exited") as raised:
        start_gateway(
            tmp_path, lean_protos, keys_file, tfserving.target, **pacs_env(postgres, "startup_old")
        )
    log = (tmp_path / "gateway.log").read_text()
    assert "code needs" in log and "python -m gateway.store upgrade" in log, log[-2000:]
    assert postgres.password not in log
    assert postgres.password not in str(raised.value)


def test_an_upgraded_database_serves_and_an_unreachable_one_is_not_ready(
    tfserving: TFServingProcess, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    server = PostgresServer().start()  # its own server: this test stops it
    try:
        url = server.create_database("startup_ok")
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        gateway = start_gateway(
            tmp_path, lean_protos, keys_file, tfserving.target, **pacs_env(server, "startup_ok")
        )
        try:
            gateway.wait_ready()
            headers = {"Authorization": f"Bearer {API_KEY}"}
            missing = httpx.get(gateway.url + "/v1/results/1.2.3", headers=headers, timeout=10)
            assert missing.status_code == 404
            server.stop()
            ready = httpx.get(gateway.url + "/readyz", timeout=20)
            assert ready.status_code == 503
            assert "store_unavailable" in ready.json()["error"]["message"]
            lookup = httpx.get(gateway.url + "/v1/results/1.2.3", headers=headers, timeout=20)
            assert lookup.status_code == 503
            assert lookup.json()["error"]["code"] == "store_unavailable"
            assert lookup.headers["retry-after"] == "10"
            server.start()
            gateway.wait_ready(timeout_s=30)
        finally:
            gateway.stop()
        assert server.password not in gateway.logs()
    finally:
        server.close()


def test_the_embedded_sqlite_store_upgrades_itself(
    tfserving: TFServingProcess, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "var" / "drg.sqlite3"
    gateway = start_gateway(
        tmp_path,
        lean_protos,
        keys_file,
        tfserving.target,
        pacs_enabled="true",
        database_url=f"sqlite:///{path}",
    )
    try:
        gateway.wait_ready()
    finally:
        gateway.stop()
    with make_engine(f"sqlite:///{path}").connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert revision == head_revision()


def test_the_removed_outbox_setting_is_refused_naming_its_replacement(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO_ROOT), "DRG_PACS_OUTBOX_PATH": str(tmp_path / "o.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "DRG_DATABASE_URL" in done.stderr and "import-outbox" in done.stderr
