"""``ResultStore.add_to_study`` and the study outbox on SQLite and PostgreSQL: what the compose
callable is handed, what a rebuilt SR replaces through a study's whole life, mixed batches,
resends that must not delay delivery, failed attempts and released leases, retention next to
pending rows, concurrent adders on each engine, and a v1 database with a per-instance SR
written by ``ResultStore.put`` upgraded to v2."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store.config import DatabaseSettings
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.results import ResultStore
from gateway.store.studies import StudyContext, StudyDraft, StudyMember
from tests.support.result_store import CONTENT, empty_postgres

STUDY = "1.2.840.77"
SETTLE_S = 20.0
LEASE_S = 60.0
MODEL = "dr_grader"


def member(uid: str, eye: str = "left", content: str = CONTENT) -> StudyMember:
    result = {"grade": int(uid.rsplit(".", 1)[1]) % 5, "quality": {"gradable": True}}
    return StudyMember(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.77.1.5.1",
        series_instance_uid="1.2.840.77.1",
        eye=eye,  # type: ignore[arg-type]
        model_name=MODEL,
        model_version=1,
        result=result,
        document={"sop_instance_uid": uid, "result": result},
        content_sha256=content,
    )


def sr_uid_of(uids: list[str]) -> str:
    """A stable SR UID naming the sorted instances (as the real composer's does)."""
    digest = hashlib.sha256("|".join(sorted(uids)).encode()).hexdigest()
    return "2.25." + str(int(digest[:24], 16))


class Composer:
    """Records every call; the SR bytes list the instances, the exam names them."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], str | None]] = []

    def __call__(self, entries: list[dict[str, Any]], replaces: str | None) -> StudyDraft:
        self.calls.append(([dict(e) for e in entries], replaces))
        uids = [e["sop_instance_uid"] for e in entries]
        exam = {"instances": uids, "replaces": replaces}
        return StudyDraft(sr_uid_of(uids), ("SR:" + ",".join(uids)).encode(), exam)

    def replaces(self) -> list[str | None]:
        return [replaces for _, replaces in self.calls]


def add(
    store: ResultStore,
    members: list[StudyMember],
    now: float,
    composer: Composer,
    patient: str = "p1",
    study: str = STUDY,
) -> Any:
    context = StudyContext(MODEL, 1, "pacs-a", patient, SETTLE_S, now)
    return store.add_to_study(study, members, context, composer)


def test_first_add_hands_every_entry_in_order_and_waits_the_settle_time(
    store: ResultStore,
) -> None:
    now, composer = time.time(), Composer()
    members = [member("5.1"), member("5.2", "right"), member("5.3")]
    update = add(store, members, now, composer)
    assert update.outcomes == {"5.1": "stored", "5.2": "stored", "5.3": "stored"}
    assert composer.calls == [([m.entry() for m in members], None)]
    row = update.row
    assert row.members == [m.entry() for m in members]
    assert row.exam == {"instances": ["5.1", "5.2", "5.3"], "replaces": None}
    assert row.sr_sop_uid == sr_uid_of(["5.1", "5.2", "5.3"]) and row.replaces_sr_uid is None
    assert (row.status, row.attempts, row.sender) == ("pending", 0, "pacs-a")
    assert row.next_attempt_at == pytest.approx(now + SETTLE_S)
    for m in members:  # the instances' own rows: no SR of their own, the study's UID
        stored = store.get(m.sop_instance_uid)
        assert (stored.study_uid, stored.status) == (STUDY, "delivered")
        assert stored.sr_sop_uid == row.sr_sop_uid and stored.result == m.document
    assert store.stats() == (1, pytest.approx(now))
    assert store.claim("r1", now + SETTLE_S - 0.5, LEASE_S) == []
    (delivery,) = store.claim("r1", now + SETTLE_S, LEASE_S)
    assert (delivery.kind, delivery.key, delivery.attempts) == ("study", STUDY, 0)
    assert delivery.sr_bytes == b"SR:5.1,5.2,5.3"


def test_what_each_rebuilt_sr_replaces_over_a_study_s_life(store: ResultStore) -> None:
    now, composer = time.time(), Composer()
    add(store, [member("6.1")], now, composer)
    second = add(store, [member("6.2", "right")], now + 1, composer).row
    assert [[e["sop_instance_uid"] for e in entries] for entries, _ in composer.calls] == [
        ["6.1"],
        ["6.1", "6.2"],
    ]
    assert composer.replaces() == [None, None]  # nothing ever left: nothing to replace

    (sent,) = store.claim("r1", now + 1 + SETTLE_S, LEASE_S)
    assert sent.sr_sop_uid == second.sr_sop_uid
    store.mark_delivered(STUDY, sent.sr_sop_uid, kind="study")
    delivered = store.get_study(STUDY)
    assert (delivered.status, delivered.delivered_sr_uid) == ("delivered", second.sr_sop_uid)
    assert store.claim("r1", now + 10**6, LEASE_S) == []  # delivered: never sent again

    t = now + 100
    third = add(store, [member("6.3")], t, composer).row
    fourth = add(store, [member("6.4", "right")], t + 1, composer).row
    # Both name the SR the PACS has; the third never left, so the fourth does not name it.
    assert composer.replaces()[2:] == [second.sr_sop_uid, second.sr_sop_uid]
    assert third.replaces_sr_uid == fourth.replaces_sr_uid == second.sr_sop_uid
    assert (fourth.status, fourth.delivered_sr_uid) == ("pending", second.sr_sop_uid)

    (in_flight,) = store.claim("r1", t + 1 + SETTLE_S, LEASE_S)
    assert in_flight.sr_sop_uid == fourth.sr_sop_uid
    fifth = add(store, [member("6.5")], t + 2 + SETTLE_S, composer).row
    assert composer.replaces()[-1] == fourth.sr_sop_uid  # leased: may reach the PACS
    assert fifth.replaces_sr_uid == fourth.sr_sop_uid
    assert fifth.exam["instances"] == ["6.1", "6.2", "6.3", "6.4", "6.5"]
    assert store.claim("r2", t + 2 + SETTLE_S, LEASE_S) == []  # the rebuild waits to settle


def test_a_mixed_batch_and_a_pure_resend(store: ResultStore) -> None:
    now, composer = time.time(), Composer()
    first = add(store, [member("7.1"), member("7.2", "right")], now, composer).row
    resend = add(store, [member("7.1"), member("7.2", "right")], now + 5, Composer())
    assert resend.outcomes == {"7.1": "duplicate", "7.2": "duplicate"} and not resend.changed
    row = store.get_study(STUDY)  # a resend neither rebuilds nor delays delivery
    assert (row.sr_sop_uid, row.updated_at) == (first.sr_sop_uid, first.updated_at)
    assert row.next_attempt_at == pytest.approx(now + SETTLE_S)

    batch = [member("7.1"), member("7.3"), member("7.2", "right", content="b" * 64)]
    mixed = add(store, batch, now + 6, composer)
    assert mixed.outcomes == {"7.1": "duplicate", "7.3": "stored", "7.2": "conflict"}
    entries, _ = composer.calls[-1]
    assert [e["sop_instance_uid"] for e in entries] == ["7.1", "7.2", "7.3"]
    assert entries[1] == member("7.2", "right").entry()  # the first content stands
    assert store.get("7.2").content_sha256 == CONTENT
    assert mixed.row.next_attempt_at == pytest.approx(now + 6 + SETTLE_S)


def test_another_patient_changes_nothing_and_known_instances_make_no_study(
    store: ResultStore,
) -> None:
    now, composer = time.time(), Composer()
    before = add(store, [member("8.1")], now, composer).row
    refused = add(store, [member("8.2"), member("8.1")], now + 1, composer, patient="p2")
    assert refused.patient_conflict and not refused.changed
    assert refused.outcomes == {"8.2": "conflict", "8.1": "conflict"}
    assert len(composer.calls) == 1 and store.get("8.2") is None
    assert store.get_study(STUDY) == before

    # An instance stored on its own before (a v1 per-instance SR) joins no new study.
    assert store.put("8.9", MODEL, 1, "2.25.89", {}, b"SR", sender="pacs-a", content_sha256=CONTENT)
    known = add(store, [member("8.9")], now, Composer(), study="1.2.840.78")
    assert known.outcomes == {"8.9": "duplicate"} and known.row is None
    assert store.get_study("1.2.840.78") is None and store.get("8.9").study_uid is None


def test_failed_attempts_and_released_leases(store: ResultStore) -> None:
    now, composer = time.time(), Composer()
    row = add(store, [member("9.1")], now, composer).row
    due = now + SETTLE_S
    (lease,) = store.claim("r1", due, LEASE_S)
    assert store.claim("r2", due, LEASE_S) == []  # leased to r1
    store.mark_failed("r2", STUDY, lease.sr_sop_uid, "http_500", due + 1, kind="study")
    assert store.get_study(STUDY).attempts == 0  # not r2's lease: no-op
    store.mark_failed("r1", STUDY, lease.sr_sop_uid, "http_503", due + 50, kind="study")
    failed = store.get_study(STUDY)
    assert (failed.attempts, failed.last_error, failed.status) == (1, "http_503", "pending")
    assert failed.next_attempt_at == pytest.approx(due + 50)
    assert store.claim("r2", due + 49, LEASE_S) == []
    (retry,) = store.claim("r2", due + 50, LEASE_S)
    assert (retry.attempts, retry.sr_sop_uid) == (1, row.sr_sop_uid)

    assert store.release("r1") == 0  # r1 holds nothing now
    assert store.release("r2") == 1  # a clean stop: r3 may send it at once
    (taken,) = store.claim("r3", due + 50, LEASE_S)
    assert taken.key == STUDY

    rebuilt = add(store, [member("9.2")], due + 60, composer).row
    assert (rebuilt.attempts, rebuilt.last_error) == (0, None)  # a new SR starts afresh
    assert rebuilt.next_attempt_at == pytest.approx(due + 60 + SETTLE_S)


def test_purge_deletes_delivered_studies_with_their_instances_only(store: ResultStore) -> None:
    now = time.time()
    done = add(store, [member("3.1"), member("3.2")], now, Composer(), study="1.2.3.1").row
    add(store, [member("3.3")], now, Composer(), study="1.2.3.2")
    store.put("3.9", MODEL, 1, "2.25.39", {}, b"SR", sender="pacs-a", content_sha256=CONTENT)
    leases = {d.key: d for d in store.claim("r1", now + SETTLE_S, LEASE_S, limit=10)}
    assert set(leases) == {"1.2.3.1", "1.2.3.2", "3.9"}
    store.mark_delivered("1.2.3.1", done.sr_sop_uid, kind="study")
    assert store.release("r1") == 2

    assert store.purge(time.time() + 1) == 2  # the delivered study's two instances
    assert store.get_study("1.2.3.1") is None
    assert store.get("3.1") is None and store.get("3.2") is None
    kept = store.get_study("1.2.3.2")
    assert kept is not None and kept.status == "pending"
    assert store.get("3.3").study_uid == "1.2.3.2" and store.get("3.9").status == "pending"
    assert store.stats()[0] == 2


def test_concurrent_adders_to_one_study_lose_no_instance(database: DatabaseSettings) -> None:
    """Two replicas (one store each) add different instances at once; on PostgreSQL the study
    row lock orders them, on SQLite BEGIN IMMEDIATE does."""
    stores = [ResultStore.open(database) for _ in range(2)]
    composers = [Composer(), Composer()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def adder(index: int) -> None:
        try:
            for n in range(4):
                barrier.wait(30)
                uid = f"4.{index}{n}"
                add(
                    stores[index],
                    [member(uid, ("left", "right")[index])],
                    time.time(),
                    composers[index],
                )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=adder, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors
        expected = sorted(f"4.{i}{n}" for i in range(2) for n in range(4))
        row = stores[0].get_study(STUDY)
        assert sorted(m["sop_instance_uid"] for m in row.members) == expected
        assert sorted(row.exam["instances"]) == expected
        assert row.sr_sop_uid == sr_uid_of(expected)
        last = max((c for comp in composers for c in comp.calls), key=lambda c: len(c[0]))
        assert len(last[0]) == len(expected)  # one compose saw every instance
        for uid in expected:  # every instance's row names the final SR
            assert stores[1].get(uid).sr_sop_uid == row.sr_sop_uid
    finally:
        for store in stores:
            store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(engine URL, gateway settings) of a database never upgraded, on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'drg.sqlite3'}"
        yield url, DatabaseSettings(url=url)
    else:
        yield empty_postgres(request.getfixturevalue("postgres"), "v1_put")


def test_a_v1_instance_sr_stays_deliverable_after_the_upgrade(
    old_database: tuple[str, DatabaseSettings],
) -> None:
    url, settings = old_database
    engine = make_engine(url)
    try:
        assert upgrade(engine, "0001") == "0001"
        assert "studies" not in sa.inspect(engine).get_table_names()
        old = ResultStore(engine)  # the v1 code path: a pending per-instance SR
        outcome = old.put(
            "1.9",
            MODEL,
            1,
            "2.25.19",
            {"grade": 3},
            b"OLD",
            sender="pacs-a",
            content_sha256=CONTENT,
        )
        assert outcome == "stored"
        assert upgrade(engine) == "0002"
    finally:
        engine.dispose()
    store = ResultStore.open(settings)
    try:
        row = store.get("1.9")
        assert (row.status, row.study_uid, row.result) == ("pending", None, {"grade": 3})
        now = time.time()
        add(store, [member("1.1")], now - SETTLE_S, Composer())  # a study due now, too
        study, instance = store.claim("r1", now, LEASE_S, limit=5)
        assert (study.kind, study.key) == ("study", STUDY)  # study SRs first
        assert (instance.kind, instance.key, instance.sr_bytes) == ("instance", "1.9", b"OLD")
        store.mark_delivered("1.9", "2.25.19")
        assert store.get("1.9").status == "delivered"
        assert (
            store.put(
                "1.9", MODEL, 1, "2.25.19", {}, b"OLD", sender="pacs-a", content_sha256=CONTENT
            )
            == "duplicate"
        )
    finally:
        store.close()
