"""Studies in the results store on both engines: the first add creates the study, later adds
merge and rebuild, resends change nothing, another patient stores nothing, the settle time,
what a new SR replaces (never sent / delivered / in flight), retention, two replicas adding to
one study at once (PostgreSQL row lock), and an upgrade from store version 1 that keeps a
pending per-instance SR deliverable."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store.config import DatabaseSettings
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.results import ResultStore
from gateway.store.studies import StudyContext, StudyDraft, StudyMember
from harness.postgres import PostgresServer
from tests.support.result_store import CONTENT, database_name, fresh_postgres

STUDY = "1.2.840.1"
SETTLE_S = 30.0
LEASE_S = 60.0


def member(uid: str, eye: str = "left", content: str = CONTENT, version: int = 1) -> StudyMember:
    result = {"grade": 2, "quality": {"gradable": True}}
    return StudyMember(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.77.1.5.1",
        series_instance_uid="1.2.840.1.1",
        eye=eye,  # type: ignore[arg-type]
        model_name="dr_grader",
        model_version=version,
        result=result,
        document={"sop_instance_uid": uid, "result": result},
        content_sha256=content,
    )


class Composer:
    """Records what the store hands over; the SR UID names the sorted instances."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, entries: list[dict[str, Any]], replaces: str | None) -> StudyDraft:
        uids = [e["sop_instance_uid"] for e in entries]
        self.calls.append((uids, replaces))
        sr_uid = "2.25." + str(abs(hash(tuple(sorted(uids)))) % 10**30)
        return StudyDraft(sr_uid, f"SR:{'|'.join(uids)}".encode(), {"instances": uids})


def context(now: float, patient: str = "p1") -> StudyContext:
    return StudyContext("dr_grader", 1, "pacs-a", patient, SETTLE_S, now)


def add(
    store: ResultStore, members: list[StudyMember], now: float, patient: str = "p1"
) -> tuple[Any, Composer]:
    composer = Composer()
    return store.add_to_study(STUDY, members, context(now, patient), composer), composer


def test_first_add_creates_later_adds_merge_resends_change_nothing(store: ResultStore) -> None:
    now = time.time()
    update, composer = add(store, [member("1.1"), member("1.2", "right")], now)
    assert update.outcomes == {"1.1": "stored", "1.2": "stored"} and update.changed
    assert composer.calls == [(["1.1", "1.2"], None)]
    row = update.row
    assert row.status == "pending" and row.next_attempt_at == pytest.approx(now + SETTLE_S)
    assert [m["eye"] for m in row.members] == ["left", "right"]
    assert store.get("1.1").study_uid == STUDY
    assert store.get("1.1").sr_sop_uid == row.sr_sop_uid

    again, composer = add(store, [member("1.1")], now + 1)
    assert again.outcomes == {"1.1": "duplicate"} and not again.changed
    assert composer.calls == [] and again.row.sr_sop_uid == row.sr_sop_uid

    later, composer = add(store, [member("1.3")], now + 2)
    assert composer.calls == [(["1.1", "1.2", "1.3"], None)]  # never sent: replaces nothing
    assert later.row.sr_sop_uid != row.sr_sop_uid
    assert store.get("1.1").sr_sop_uid == later.row.sr_sop_uid  # members follow the study

    regraded, composer = add(store, [member("1.2", "right", version=2)], now + 3)
    assert regraded.outcomes == {"1.2": "stored"}
    assert [m["sop_instance_uid"] for m in regraded.row.members] == ["1.1", "1.2", "1.3"]
    assert regraded.row.members[1]["model"]["version"] == 2  # re-graded in place

    conflict, _ = add(store, [member("1.3", content="b" * 64)], now + 4)
    assert conflict.outcomes == {"1.3": "conflict"} and not conflict.changed


def test_another_patient_stores_nothing(store: ResultStore) -> None:
    add(store, [member("1.1")], time.time())
    update, composer = add(store, [member("1.9")], time.time(), patient="p2")
    assert update.patient_conflict and composer.calls == []
    assert store.get("1.9") is None
    assert [m["sop_instance_uid"] for m in store.get_study(STUDY).members] == ["1.1"]


def test_settle_time_then_delivery_and_what_a_new_sr_replaces(store: ResultStore) -> None:
    now = time.time()
    first = add(store, [member("1.1")], now)[0].row
    assert store.claim("r1", now + SETTLE_S - 1, LEASE_S) == []  # still settling
    (delivery,) = store.claim("r1", now + SETTLE_S, LEASE_S)
    assert (delivery.kind, delivery.key, delivery.sr_sop_uid) == ("study", STUDY, first.sr_sop_uid)
    store.mark_delivered(STUDY, first.sr_sop_uid, kind="study")
    delivered = store.get_study(STUDY)
    assert delivered.status == "delivered" and delivered.delivered_sr_uid == first.sr_sop_uid

    second, composer = add(store, [member("1.2")], now + 100)
    assert composer.calls[0][1] == first.sr_sop_uid  # the PACS has the first: named
    assert second.row.replaces_sr_uid == first.sr_sop_uid
    (in_flight,) = store.claim("r1", now + 100 + SETTLE_S, LEASE_S)
    third, composer = add(store, [member("1.3")], now + 101 + SETTLE_S)
    assert composer.calls[0][1] == in_flight.sr_sop_uid  # may reach the PACS: named
    # The in-flight SR's answer arrives late: recorded, the third stays pending.
    store.mark_delivered(STUDY, in_flight.sr_sop_uid, kind="study")
    row = store.get_study(STUDY)
    assert row.status == "pending" and row.sr_sop_uid == third.row.sr_sop_uid
    assert row.delivered_sr_uid == in_flight.sr_sop_uid
    store.mark_failed("r1", STUDY, third.row.sr_sop_uid, "http_503", now + 10**6, kind="study")
    assert store.get_study(STUDY).attempts == 0  # r1 held no lease on the third: no-op


def test_retention_deletes_a_delivered_study_with_its_instances(store: ResultStore) -> None:
    now = time.time()
    row = add(store, [member("1.1"), member("1.2")], now)[0].row
    store.claim("r1", now + SETTLE_S, LEASE_S)
    store.mark_delivered(STUDY, row.sr_sop_uid, kind="study")
    assert store.stats() == (0, None)
    assert store.purge(time.time() - 60) == 0  # delivered just now: kept
    assert store.purge(time.time() + 1) == 2
    assert store.get_study(STUDY) is None and store.get("1.1") is None


def test_two_replicas_adding_to_one_study_at_once_lose_nothing(
    postgres: PostgresServer,
) -> None:
    database = fresh_postgres(postgres, "studies_race")[1]
    stores = [ResultStore.open(database) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def adder(index: int) -> None:
        try:
            barrier.wait()
            for n in range(5):
                uid = f"1.{index}.{n}"
                stores[index].add_to_study(STUDY, [member(uid)], context(time.time()), Composer())
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=adder, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors
        row = stores[0].get_study(STUDY)
        assert sorted(m["sop_instance_uid"] for m in row.members) == sorted(
            f"1.{i}.{n}" for i in range(2) for n in range(5)
        )
        assert sorted(row.exam["instances"]) == sorted(m["sop_instance_uid"] for m in row.members)
    finally:
        for store in stores:
            store.close()


def test_an_upgrade_from_version_1_keeps_a_pending_instance_sr_deliverable(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database(database_name("v1_to_v2"))
    engine = make_engine(url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO results (source_sop_uid, model_name, model_version, sr_sop_uid,"
                    " result_json, sr_bytes, status, attempts, next_attempt_at, created_at,"
                    " sender, content_sha256) VALUES ('9.9', 'dr_grader', 1, '2.25.9', '{}',"
                    " :sr, 'pending', 0, 0, 0, 'pacs-a', :digest)"
                ),
                {"sr": b"OLD-SR", "digest": CONTENT},
            )
        assert upgrade(engine) == "0002"
    finally:
        engine.dispose()
    database = DatabaseSettings(
        url=postgres.settings_url(url.rsplit("/", 1)[1]), password_file=postgres.password_file
    )
    store = ResultStore.open(database)
    try:
        (delivery,) = store.claim("r1", time.time(), LEASE_S)
        assert (delivery.kind, delivery.key, delivery.sr_bytes) == ("instance", "9.9", b"OLD-SR")
        store.mark_delivered("9.9", "2.25.9")
        assert store.get("9.9").status == "delivered" and store.get("9.9").study_uid is None
    finally:
        store.close()
