"""STOW-RS intake on the SQLite and the PostgreSQL results store, side by side in one run, at
concurrency 1 and 8 (issue 16 item 9).

    python -m bench.stow_intake --model-root export [--requests 64]

Starts the gateway twice, one after the other, with the local backend (in-process TF serving the
SavedModel under ``--model-root``) and the PACS intake on: once with the embedded SQLite store (a
file in a temp dir), once with a real PostgreSQL 15 (harness/postgres.py, on 127.0.0.1, the
schema upgraded first). ``DRG_PACS_STOW_URL`` is not set, so no delivery worker runs: the SRs stay
in the store and only the request path is measured. Each request POSTs one new synthetic DICOM
photograph (distinct seed, so distinct UIDs: a known UID would be a cheap duplicate, not a store
write) to ``/dicomweb/studies``. Per cell: instances/s, p50/p99 latency, and the store share =
the gateway's ``drg_store_duration_seconds_sum`` (all operations, scraped before and after the
timed requests) over the sum of the request latencies.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.perf_settings import PERF_FIELDS
from gateway.auth import hash_key
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.schema import results
from harness.gateway_stack import API_KEY, AUTH, GatewaySetup, scrape_counter
from harness.load import LoadStats, measure_load
from harness.postgres import PostgresServer
from harness.processes import GatewayProcess
from synthetic import encode_dicom, synthesize_fundus

CONCURRENCY = (1, 8)
STORE_SECONDS = "drg_store_duration_seconds_sum"
PREDICTIONS = "drg_predictions_total"
WIDTH, HEIGHT = 640, 560


@dataclass(frozen=True)
class Row:
    """One cell: a store at a concurrency."""

    store: str
    concurrency: int
    stats: LoadStats
    store_s: float
    """Seconds the gateway spent in store calls during the timed requests."""

    @property
    def store_share(self) -> float:
        """Store seconds over the summed request seconds."""
        return self.store_s / (sum(self.stats.latencies_ms) / 1000)

    @property
    def store_ms_per_request(self) -> float:
        """Mean store time of one request."""
        return 1000 * self.store_s / self.stats.requests


def stow_body(seed: int) -> tuple[bytes, str]:
    """A multipart/related body holding one new DICOM photograph, and its Content-Type."""
    image = synthesize_fundus(seed % 5, width=WIDTH, height=HEIGHT, seed=seed)
    part = encode_dicom(image, seed=seed)
    boundary = "stow-" + uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stored_rows(url: str) -> int:
    """Rows in the results table of the database at ``url`` (a SQLAlchemy URL)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one())
    finally:
        engine.dispose()


def measure_cell(
    gateway: GatewayProcess, store: str, url: str, concurrency: int, requests: int, seed: int
) -> Row:
    """One warm-up request, then ``requests`` timed STOW-RS requests of new instances (seeds
    from ``seed`` on); checks each one was graded by the model and written to ``url``."""
    bodies = [stow_body(seed + i) for i in range(requests + 1)]
    http = httpx.Client(headers=AUTH, timeout=300)
    stow_url = gateway.url + "/dicomweb/studies"

    def send(index: int) -> None:
        body, content_type = bodies[index]
        response = http.post(stow_url, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text

    try:
        send(requests)  # warm-up, untimed and outside the store figures
        store_before = scrape_counter(gateway.url, STORE_SECONDS)
        graded_before = scrape_counter(gateway.url, PREDICTIONS)
        rows_before = stored_rows(url)
        stats = measure_load(send, requests, concurrency, warmup=0)
        store_s = scrape_counter(gateway.url, STORE_SECONDS) - store_before
        graded = scrape_counter(gateway.url, PREDICTIONS) - graded_before
        written = stored_rows(url) - rows_before
    finally:
        http.close()
    # An ungradable image skips the model, a known UID the write: neither would be comparable.
    # (Counted here, not by drg_pacs_instances_total: on PostgreSQL the intake counts a new
    # instance as "duplicate", as ResultStore.put reads rowcount -1 from psycopg.)
    assert graded == requests, f"{store}: {graded:.0f} of {requests} instances graded"
    assert written == requests, f"{store}: {written} of {requests} instances stored"
    return Row(store, concurrency, stats, store_s)


@contextmanager
def pacs_gateway(
    setup: GatewaySetup, model_root: Path, name: str, database: dict[str, str]
) -> Iterator[GatewayProcess]:
    """A ready local-backend gateway with the PACS intake on and no delivery URL."""
    fields = {**PERF_FIELDS, "pacs_enabled": "true", **database}
    gateway = setup.local_gateway(model_root, log_name=f"{name}.log", **fields)
    try:
        gateway.wait_ready(timeout_s=120)
        yield gateway
    finally:
        gateway.stop()


def run(model_root: Path, requests: int, postgres: PostgresServer, workdir: Path) -> list[Row]:
    """Measure both stores at every concurrency; ``postgres`` is a started server."""
    keys = workdir / "keys.txt"
    keys.write_text(f"bench {hash_key(API_KEY)} pacs\n")
    setup = GatewaySetup.create(workdir, lean_protos=Path("/nonexistent"), keys_file=keys)
    database = "stow_bench_" + uuid.uuid4().hex[:8]
    engine = make_engine(postgres.create_database(database))
    try:
        upgrade(engine)  # what `python -m gateway.store upgrade` does
    finally:
        engine.dispose()
    sqlite_url = f"sqlite:///{workdir / 'drg.sqlite3'}"
    stores = {
        "sqlite": ({"database_url": sqlite_url}, sqlite_url),
        "postgresql": (
            {
                "database_url": postgres.settings_url(database),
                "database_password_file": str(postgres.password_file),
            },
            postgres.url_for(database),
        ),
    }
    rows = []
    seed = 1_000
    for name, (settings, url) in stores.items():
        with pacs_gateway(setup, model_root, name, settings) as gateway:
            for concurrency in CONCURRENCY:
                rows.append(measure_cell(gateway, name, url, concurrency, requests, seed))
                seed += requests + 1
    return rows


def table(rows: list[Row]) -> list[str]:
    """The printed lines: a header and one line per cell."""
    lines = [
        f"{'store':<10} {'conc':>4} {'inst/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'store ms':>9} {'store %':>8}"
    ]
    for row in rows:
        lines.append(
            f"{row.store:<10} {row.concurrency:>4} {row.stats.throughput:7.2f} "
            f"{row.stats.p50_ms:8.1f} {row.stats.p99_ms:8.1f} "
            f"{row.store_ms_per_request:9.2f} {100 * row.store_share:7.2f}%"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-stow-"))
    with PostgresServer() as postgres:
        rows = run(args.model_root, args.requests, postgres, workdir)
    print(
        f"local backend, PACS intake, one {WIDTH}x{HEIGHT} DICOM (explicit VR LE) per "
        f"STOW-RS request; {args.requests} timed requests per cell; store ms = mean per request"
    )
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
