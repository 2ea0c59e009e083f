"""STOW-RS client and delivery worker against a fake PACS that speaks STOW-RS (no network:
httpx's in-process transport), with a real SQLite results store."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.metrics import GatewayMetrics
from gateway.pacs import stow
from gateway.pacs.client import StowClient, interpret
from gateway.pacs.worker import DeliveryWorker, backoff_s
from gateway.store.config import DatabaseSettings
from gateway.store.results import ResultStore

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"
SENT = {"sender": "pacs-1", "content_sha256": "0" * 64}


def stow_answer(stored: list[str], failed: dict[str, int] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if stored:
        document["00081199"] = {
            "vr": "SQ",
            "Value": [{"00081155": {"vr": "UI", "Value": [uid]}} for uid in stored],
        }
    if failed:
        document["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081155": {"vr": "UI", "Value": [uid]},
                    "00081197": {"vr": "US", "Value": [reason]},
                }
                for uid, reason in failed.items()
            ],
        }
    return document


@pytest.mark.parametrize(
    ("status", "document", "delivered", "pause_all", "detail"),
    [
        (200, stow_answer(["9.9"]), True, False, "http_200"),
        (200, None, True, False, "http_200"),
        (202, stow_answer(["9.9"], {"1.1": 0x0122}), True, False, "http_202"),
        (202, stow_answer(["1.1"], {"9.9": 0xA900}), False, False, "failure_reason_0xA900"),
        (409, stow_answer([], {"9.9": 0xA700}), False, True, "failure_reason_0xA700"),
        (409, None, False, False, "http_409"),
        (400, None, False, False, "http_400"),
        (401, None, False, True, "http_401"),
        (403, None, False, True, "http_403"),
        (429, None, False, True, "http_429"),
        (500, None, False, True, "http_500"),
        (503, stow_answer(["9.9"]), False, True, "http_503"),
    ],
)
def test_interpret(
    status: int, document: Any, delivered: bool, pause_all: bool, detail: str
) -> None:
    outcome = interpret(status, document, "9.9")
    assert (outcome.delivered, outcome.pause_all, outcome.detail) == (delivered, pause_all, detail)


class FakePacs:
    """A STOW-RS origin server: parses requests with the gateway's own parser, answers JSON."""

    def __init__(self, outages: int = 0, refuse: bool = False) -> None:
        self.outages = outages
        self.refuse = refuse
        self.requests: list[httpx.Request] = []
        self.stored: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.outages > 0:
            self.outages -= 1
            raise httpx.ConnectError("connection refused", request=request)
        parts = stow.split_body(request.headers["content-type"], request.content, max_parts=10)
        uid = "2.25.7"
        if self.refuse:
            return httpx.Response(409, json=stow_answer([], {uid: stow.SOP_CLASS_NOT_SUPPORTED}))
        self.stored += parts
        return httpx.Response(
            200, json=stow_answer([uid]), headers={"Content-Type": stow.DICOM_JSON_MEDIA_TYPE}
        )


def test_client_sends_one_multipart_related_instance_with_auth() -> None:
    pacs = FakePacs()

    async def scenario() -> None:
        client = StowClient(
            "http://pacs.example/dicom-web/",
            timeout_s=5,
            basic=("drg", "s3cret"),
            transport=httpx.MockTransport(pacs),
        )
        outcome = await client.store("2.25.7", b"DICOM-BYTES\r\n--tricky")
        await client.aclose()
        assert outcome.delivered

    asyncio.run(scenario())
    request = pacs.requests[0]
    assert str(request.url) == "http://pacs.example/dicom-web/studies"
    assert request.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert request.headers["accept"] == stow.DICOM_JSON_MEDIA_TYPE
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"drg:s3cret").decode()
    assert pacs.stored == [b"DICOM-BYTES\r\n--tricky"]


def test_client_bearer_token_and_transport_errors() -> None:
    pacs = FakePacs(outages=1)

    async def scenario() -> list[bool]:
        client = StowClient(
            "http://pacs.example/dw", timeout_s=5, bearer="tok", transport=httpx.MockTransport(pacs)
        )
        first = await client.store("2.25.7", b"x")
        second = await client.store("2.25.7", b"x")
        await client.aclose()
        assert first.pause_all and first.detail == "transport_ConnectError"
        return [first.delivered, second.delivered]

    assert asyncio.run(scenario()) == [False, True]
    assert pacs.requests[1].headers["authorization"] == "Bearer tok"


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for failures in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        for _ in range(20):
            delay = backoff_s(failures, 0.5, 30.0, rng)
            assert ceiling / 2 <= delay <= ceiling
    assert backoff_s(50, 0.5, 30.0, rng) <= 30.0


def open_store(path: Path) -> ResultStore:
    """A SQLite results store (upgraded on open, as the embedded default is)."""
    return ResultStore.open(DatabaseSettings(url=f"sqlite:///{path}"))


def make_worker(
    store: ResultStore, pacs: Any, metrics: GatewayMetrics, lease_s: float = 30.0
) -> DeliveryWorker:
    client = StowClient("http://pacs/dw", timeout_s=5, transport=httpx.MockTransport(pacs))
    return DeliveryWorker(
        store,
        client,
        metrics,
        initial_backoff_s=0.02,
        max_backoff_s=0.1,
        lease_s=lease_s,
        poll_s=0.05,
        retention_s=86400.0,
    )


def run_worker(store: ResultStore, pacs: FakePacs, until: float, metrics: GatewayMetrics) -> None:
    async def scenario() -> None:
        worker = make_worker(store, pacs, metrics)
        worker.start()
        deadline = time.monotonic() + until
        while time.monotonic() < deadline:
            row = store.get("1.2.3")
            if row is not None and row.status == "delivered":
                break
            await asyncio.sleep(0.02)
        await worker.stop()

    asyncio.run(scenario())


def test_worker_retries_through_an_outage_until_delivered(tmp_path: Path) -> None:
    store = open_store(tmp_path / "drg.sqlite3")
    store.put("1.2.3", "dr_grader", 1, "2.25.7", {"x": 1}, b"SR", **SENT)
    pacs = FakePacs(outages=4)
    metrics = GatewayMetrics()
    run_worker(store, pacs, 10, metrics)
    row = store.get("1.2.3")
    assert row is not None and row.status == "delivered"
    assert row.attempts == 5
    assert pacs.stored == [b"SR"]
    value = metrics.registry.get_sample_value
    assert value("drg_pacs_deliveries_total", {"result": "unavailable"}) == 4
    assert value("drg_pacs_deliveries_total", {"result": "delivered"}) == 1


def test_a_refused_sr_stays_pending_and_keeps_being_retried(tmp_path: Path) -> None:
    store = open_store(tmp_path / "drg.sqlite3")
    store.put("1.2.3", "dr_grader", 1, "2.25.7", {"x": 1}, b"SR", **SENT)
    pacs = FakePacs(refuse=True)
    run_worker(store, pacs, 0.5, GatewayMetrics())
    row = store.get("1.2.3")
    assert row is not None and row.status == "pending"
    assert row.attempts >= 2
    assert row.last_error == "failure_reason_0x0122"


def test_worker_delivers_rows_left_from_a_previous_run(tmp_path: Path) -> None:
    path = tmp_path / "drg.sqlite3"
    before = open_store(path)
    before.put("1.2.3", "dr_grader", 1, "2.25.7", {"x": 1}, b"SR", **SENT)
    assert [d.key for d in before.claim("old-run", time.time(), 30)] == ["1.2.3"]
    before.mark_failed("old-run", "1.2.3", "2.25.7", "http_503", time.time() + 0.05)
    before.close()
    store = open_store(path)
    pacs = FakePacs()
    run_worker(store, pacs, 5, GatewayMetrics())
    row = store.get("1.2.3")
    assert row is not None and row.status == "delivered"


class EchoPacs:
    """Accepts every SR; the SR bytes here are ``b"SR:" + its UID`` (echoed as referenced)."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = stow.split_body(request.headers["content-type"], request.content, max_parts=10)
        uid = parts[0].decode().removeprefix("SR:")
        self.stored.append(uid)
        return httpx.Response(
            200, json=stow_answer([uid]), headers={"Content-Type": stow.DICOM_JSON_MEDIA_TYPE}
        )


def put_many(store: ResultStore, count: int) -> list[str]:
    uids = [f"1.2.{i}" for i in range(count)]
    for i, uid in enumerate(uids):
        store.put(uid, "dr_grader", 1, f"2.25.{i}", {"x": i}, f"SR:2.25.{i}".encode(), **SENT)
    return uids


def run_until_delivered(store: ResultStore, workers: list[DeliveryWorker], uids: list[str]) -> None:
    async def scenario() -> None:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all((row := store.get(uid)) and row.status == "delivered" for uid in uids):
                break
            await asyncio.sleep(0.05)
        for worker in workers:
            await worker.stop()

    asyncio.run(scenario())


def test_two_workers_on_one_store_send_each_sr_exactly_once(tmp_path: Path) -> None:
    store = open_store(tmp_path / "drg.sqlite3")
    uids = put_many(store, 30)
    pacs = EchoPacs()
    workers = [make_worker(store, pacs, GatewayMetrics()) for _ in range(2)]
    assert workers[0].owner != workers[1].owner
    run_until_delivered(store, workers, uids)
    assert sorted(pacs.stored) == sorted(f"2.25.{i}" for i in range(30))


def test_a_dead_owners_lease_expires_and_another_worker_delivers(tmp_path: Path) -> None:
    store = open_store(tmp_path / "drg.sqlite3")
    uids = put_many(store, 3)
    claimed_at = time.time()
    claimed = store.claim("dead-replica", claimed_at, lease_s=0.5, limit=3)
    assert len(claimed) == 3  # claimed and never marked: the replica died
    pacs = EchoPacs()
    worker = make_worker(store, pacs, GatewayMetrics(), lease_s=30.0)
    run_until_delivered(store, [worker], uids)
    assert sorted(pacs.stored) == ["2.25.0", "2.25.1", "2.25.2"]
    for uid in uids:  # not before the dead replica's lease ended
        row = store.get(uid)
        assert row is not None and row.delivered_at is not None
        assert row.delivered_at >= claimed_at + 0.5
