"""bench.stow_intake with tiny numbers: two real gateways (local backend, the tiny model, PACS
intake on), one on a SQLite file and one on a real PostgreSQL, each at concurrency 1 and 8; every
cell's instances are graded and written (the bench checks both), and its figures are positive."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.stow_intake import CONCURRENCY, run, table
from harness.postgres import PostgresServer

REQUESTS = 3


# Two gateways loading TF and the SavedModel one after the other: 40-60 s on 2 cores.
@pytest.mark.slow
def test_both_stores_at_both_concurrencies_give_positive_figures(
    model_root: Path, postgres: PostgresServer, tmp_path: Path
) -> None:
    rows = run(model_root, REQUESTS, postgres, tmp_path)
    assert [(row.store, row.concurrency) for row in rows] == [
        (store, concurrency) for store in ("sqlite", "postgresql") for concurrency in CONCURRENCY
    ]
    for row in rows:
        assert row.stats.requests == REQUESTS
        assert row.stats.throughput > 0 and 0 < row.stats.p50_ms <= row.stats.p99_ms
        assert row.store_s > 0  # a get and a put per request, each timed by the gateway
        assert 0 < row.store_share < 1  # store calls are a part of each request's time
    lines = table(rows)
    assert len(lines) == 1 + len(rows)
    assert [line.split()[:2] for line in lines[1:]] == [
        [row.store, str(row.concurrency)] for row in rows
    ]
    assert all(line.endswith("%") for line in lines[1:])
