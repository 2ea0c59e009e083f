"""One row per PACS study: its instances, the exam they make and the one SR that says it.

``add_to_study`` runs in one transaction: it stores the instances' ``results`` rows (the
per-instance put decision), locks the study row (created on first sight), merges the new
instances into the study's list (in the order received; a re-graded instance keeps its place),
has the caller compose the exam and SR from every instance, and queues that SR after the settle
time. Two replicas adding to one study wait for each other on the row lock, so no instance is
lost from the exam. An SR that replaces one the PACS has (or may have: in flight) names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from gateway.store.instances import PutOutcome, insert_ignoring, put_result
from gateway.store.schema import results, studies

Status = Literal["pending", "delivered"]


@dataclass(frozen=True)
class StudyMember:
    """One graded instance of a study, as the store keeps it (no patient attributes)."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    eye: Literal["left", "right"]
    model_name: str
    model_version: int
    result: dict[str, Any]
    """The photograph's result (``results.eye_result`` JSON)."""
    document: dict[str, Any]
    """The instance's JSON kept in ``results`` (``GET /v1/results/{uid}``)."""
    content_sha256: str

    def entry(self) -> dict[str, Any]:
        """The instance in the study's ``members_json``."""
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "series_instance_uid": self.series_instance_uid,
            "eye": self.eye,
            "model": {"name": self.model_name, "version": self.model_version},
            "result": self.result,
        }


@dataclass(frozen=True)
class StudyContext:
    """Who sends, with which model, for which patient (a digest), and the settle time."""

    model_name: str
    model_version: int
    sender: str | None
    patient_digest: str
    settle_s: float
    now: float


@dataclass(frozen=True)
class StudyDraft:
    """What the caller composed from every instance: the SR and the exam JSON."""

    sr_sop_uid: str
    sr_bytes: bytes
    exam: dict[str, Any]


Compose = Callable[[list[dict[str, Any]], str | None], StudyDraft]
"""(every instance's entry in order, the SR the new one replaces) -> the new SR and exam."""


@dataclass(frozen=True)
class StudyRow:
    """A study's exam and the delivery state of its current SR."""

    study_uid: str
    model_name: str
    model_version: int
    members: list[dict[str, Any]]
    exam: dict[str, Any]
    sr_sop_uid: str | None
    replaces_sr_uid: str | None
    delivered_sr_uid: str | None
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None
    sender: str | None


@dataclass(frozen=True)
class StudyUpdate:
    """Each new instance's put outcome, and the study afterwards (None: patient conflict)."""

    outcomes: dict[str, PutOutcome]
    row: StudyRow | None
    changed: bool

    @property
    def patient_conflict(self) -> bool:
        """The study is known under another Patient ID: nothing was stored."""
        return self.row is None


_COLUMNS = (
    studies.c.study_uid,
    studies.c.model_name,
    studies.c.model_version,
    studies.c.members_json,
    studies.c.exam_json,
    studies.c.sr_sop_uid,
    studies.c.replaces_sr_uid,
    studies.c.delivered_sr_uid,
    studies.c.status,
    studies.c.attempts,
    studies.c.next_attempt_at,
    studies.c.last_error,
    studies.c.created_at,
    studies.c.updated_at,
    studies.c.delivered_at,
    studies.c.sender,
)


def get_study(conn: sa.Connection, study_uid: str) -> StudyRow | None:
    """The study's row, if any instance of it was stored."""
    row = conn.execute(
        sa.select(*_COLUMNS).where(studies.c.study_uid == study_uid, studies.c.exam_json != "{}")
    ).one_or_none()
    return None if row is None else _study_row(row)


def add_to_study(
    conn: sa.Connection,
    study_uid: str,
    members: list[StudyMember],
    context: StudyContext,
    compose: Compose,
) -> StudyUpdate:
    """Store ``members`` (all of ``study_uid``) and rebuild the study's SR when one is new."""
    now = context.now
    conn.execute(
        insert_ignoring(conn, studies).values(
            study_uid=study_uid,
            model_name=context.model_name,
            model_version=context.model_version,
            members_json="[]",
            exam_json="{}",
            status="pending",
            attempts=0,
            next_attempt_at=now + context.settle_s,
            created_at=now,
            updated_at=now,
            sender=context.sender,
            patient_digest=context.patient_digest,
        )
    )
    locked = conn.execute(
        sa.select(
            studies.c.members_json,
            studies.c.sr_sop_uid,
            studies.c.replaces_sr_uid,
            studies.c.status,
            studies.c.lease_expires_at,
            studies.c.patient_digest,
        )
        .where(studies.c.study_uid == study_uid)
        .with_for_update()
    ).one()
    if locked.patient_digest not in (None, context.patient_digest):
        return StudyUpdate({m.sop_instance_uid: "conflict" for m in members}, None, False)
    outcomes = {
        m.sop_instance_uid: put_result(
            conn, m.sop_instance_uid, _row_values(m, study_uid, now), sender=context.sender
        )
        for m in members
    }
    stored = [m for m in members if outcomes[m.sop_instance_uid] == "stored"]
    entries: list[dict[str, Any]] = json.loads(locked.members_json)
    if not stored:
        if not entries:  # the row was created for instances that all turned out known
            conn.execute(sa.delete(studies).where(studies.c.study_uid == study_uid))
        return StudyUpdate(outcomes, get_study(conn, study_uid), False)
    places = {entry["sop_instance_uid"]: index for index, entry in enumerate(entries)}
    for member in stored:
        if member.sop_instance_uid in places:
            entries[places[member.sop_instance_uid]] = member.entry()
        else:
            places[member.sop_instance_uid] = len(entries)
            entries.append(member.entry())
    draft = compose(entries, _replaces(locked, now))
    conn.execute(
        sa.update(studies)
        .where(studies.c.study_uid == study_uid)
        .values(
            model_name=context.model_name,
            model_version=context.model_version,
            members_json=json.dumps(entries, separators=(",", ":")),
            exam_json=json.dumps(draft.exam, separators=(",", ":")),
            sr_sop_uid=draft.sr_sop_uid,
            sr_bytes=draft.sr_bytes,
            replaces_sr_uid=_replaces(locked, now),
            status="pending",
            attempts=0,
            next_attempt_at=now + context.settle_s,
            last_error=None,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            sender=sa.func.coalesce(studies.c.sender, context.sender),
            patient_digest=sa.func.coalesce(studies.c.patient_digest, context.patient_digest),
        )
    )
    conn.execute(
        sa.update(results)
        .where(results.c.study_uid == study_uid)
        .values(sr_sop_uid=draft.sr_sop_uid)
    )
    return StudyUpdate(outcomes, get_study(conn, study_uid), True)


def _replaces(locked: Any, now: float) -> str | None:
    """The SR a new one supersedes: the current one if the PACS has it or it is in flight,
    else the one the current (never sent) SR was to replace."""
    if locked.sr_sop_uid is None:
        return None
    in_flight = locked.lease_expires_at is not None and locked.lease_expires_at > now
    if locked.status == "delivered" or in_flight:
        return str(locked.sr_sop_uid)
    return None if locked.replaces_sr_uid is None else str(locked.replaces_sr_uid)


def _row_values(member: StudyMember, study_uid: str, now: float) -> dict[str, Any]:
    """A study instance's ``results`` row: no SR of its own (its study's SR says it)."""
    return {
        "model_name": member.model_name,
        "model_version": member.model_version,
        "sr_sop_uid": "",  # set to the study's SR below, in the same transaction
        "result_json": json.dumps(member.document, separators=(",", ":")),
        "sr_bytes": None,
        "status": "delivered",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
        "content_sha256": member.content_sha256,
        "lease_owner": None,
        "lease_expires_at": None,
        "study_uid": study_uid,
    }


def _study_row(row: Any) -> StudyRow:
    return StudyRow(
        study_uid=row.study_uid,
        model_name=row.model_name,
        model_version=row.model_version,
        members=json.loads(row.members_json),
        exam=json.loads(row.exam_json),
        sr_sop_uid=row.sr_sop_uid,
        replaces_sr_uid=row.replaces_sr_uid,
        delivered_sr_uid=row.delivered_sr_uid,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
        sender=row.sender,
    )
