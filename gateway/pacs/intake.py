"""The PACS dataplane, independent of HTTP: received DICOM instances -> grades -> one exam and
one SR per study -> store (docs/pacs.md "One result per study").

A request's instances are graded one by one; then each study's graded instances are stored in
one transaction with the study's rebuilt SR (``ResultStore.add_to_study``), which joins them to
the instances of the study received earlier. The SR goes out ``DRG_PACS_STUDY_SETTLE_S`` after
the study's latest instance. An instance must name its eye (ImageLaterality or Laterality R/L;
``laterality_missing`` otherwise); a study known under another Patient ID refuses the instance
(``study_patient_mismatch``).

Patient and study attributes stay inside the parsed dataset and the SR bytes; log lines,
metric labels and error messages carry only codes, counts, client names and model versions:
one summary line per STOW-RS request (counts by outcome), one warning per content conflict.

Bounded work per request: the parts were counted by ``stow.split_body``; each part is parsed in
a worker thread under the inference limiter's slot (the same budget as gradings, so hostile
bodies cannot starve them) with a bounded number of reads (``gateway.pacs.dataset``); the
request has one deadline, and instances not finished by then fail with ``request_timeout``
(the PACS resends them) while those already graded stay stored. A results store that cannot be
reached fails the instance with 503 ``store_unavailable`` (the PACS resends it): nothing is
reported stored that was not committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pydicom.uid import UID

from fundus.dicom import GRADABLE_SOP_CLASSES, laterality_of
from fundus.errors import FundusError
from gateway.backends.base import ModelSelector, ServedModel
from gateway.errors import ApiError, from_fundus
from gateway.grading import GradingService, ImageInput
from gateway.limits import InferenceLimiter, in_threads
from gateway.metrics import EXAM_FINDINGS, GatewayMetrics
from gateway.pacs import dataset, sr, stow
from gateway.pacs.stow import InstanceResult
from gateway.pacs.study import StudyComposer, patient_digest
from gateway.pacs.worker import DeliveryWorker
from gateway.results import eye_result
from gateway.settings import Settings
from gateway.store.results import ResultRow, ResultStore, StoreUnavailable, compare
from gateway.store.studies import StudyContext, StudyMember, StudyRow

logger = logging.getLogger("gateway.pacs")
T = TypeVar("T")
STORE_THREADS = 4
"""Threads for store calls made inside requests (the connection pool holds 5)."""
STORE_RETRY_S = 10
"""Retry-After for ``store_unavailable`` (a database restart or failover takes seconds)."""


@dataclass
class _Uids:
    """What is known of a part for its STOW-RS verdict (unknown until it parses)."""

    sop_class: str | None = None
    sop_uid: str | None = None


@dataclass(frozen=True)
class _Graded:
    """An instance graded in this request, to be stored with its study."""

    source: Dataset
    member: StudyMember
    member_study: str
    patient_digest: str
    served: ServedModel

    @property
    def uids(self) -> tuple[str, str]:
        """(SOP Class, SOP Instance) UIDs."""
        return self.member.sop_class_uid, self.member.sop_instance_uid

    @property
    def parsed(self) -> _Uids:
        """The UIDs for a failure verdict."""
        return _Uids(*self.uids)


class PacsIntake:
    """Grades received instances, builds their SRs and queues them for delivery."""

    def __init__(
        self,
        grading: GradingService,
        store: ResultStore,
        worker: DeliveryWorker | None,
        metrics: GatewayMetrics,
        settings: Settings,
    ) -> None:
        self.results = store
        # Store calls get their own threads: in the default executor they would queue behind
        # image decodes and SR encodes, and a millisecond query would wait for a busy core.
        self._store_threads = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="drg-store")
        self._grading = grading
        self._worker = worker
        self._metrics = metrics
        self._settings = settings

    @classmethod
    async def open(
        cls, settings: Settings, grading: GradingService, metrics: GatewayMetrics
    ) -> PacsIntake:
        """Open the store and start the delivery worker (when a STOW-RS URL is configured).

        Raises ``SchemaOutOfDate`` or ``StoreUnavailable``: the gateway then refuses to start.
        """
        store = await asyncio.to_thread(ResultStore.open, settings.database)
        worker = None
        if settings.pacs_stow_url:
            from gateway.pacs.client import stow_client  # httpx only when delivering

            worker = DeliveryWorker(
                store,
                stow_client(settings),
                metrics,
                initial_backoff_s=settings.pacs_retry_initial_s,
                max_backoff_s=settings.pacs_retry_max_s,
                lease_s=settings.pacs_lease_s,
                poll_s=settings.pacs_poll_s,
                retention_s=settings.results_retention_days * 86400,
            )
            worker.start()
        else:
            logger.warning(
                "DRG_PACS_STOW_URL is not set: results are kept in the store, not delivered",
                extra={"event": "pacs_delivery_disabled"},
            )
        metrics.store_up.set(1)
        return cls(grading, store, worker, metrics, settings)

    @property
    def limiter(self) -> InferenceLimiter:
        """The grading service's inference limiter (STOW-RS parsing holds its slots too)."""
        return self._grading.limiter

    async def close(self) -> None:
        """Stop the worker (pending rows stay in the store) and close the database."""
        if self._worker is not None:
            await self._worker.stop()
        await asyncio.to_thread(self.results.close)
        self._store_threads.shutdown(wait=False)

    async def lookup(self, sop_instance_uid: str) -> ResultRow | None:
        """The stored result of a source instance (503 ``store_unavailable`` when unreachable)."""
        return await self._stored(self.results.get, sop_instance_uid)

    async def lookup_study(self, study_uid: str) -> StudyRow | None:
        """A study's exam and SR state (503 ``store_unavailable`` when unreachable)."""
        return await self._stored(self.results.get_study, study_uid)

    async def check_store(self) -> None:
        """One round trip to the store (readiness); ``store_unavailable`` when it fails."""
        await self._stored(self.results.ping)

    async def _stored(self, call: Callable[..., T], *args: Any) -> T:
        """Run a store call in a thread; an unreachable store becomes ``store_unavailable``."""
        started = time.perf_counter()
        try:
            value = await asyncio.get_running_loop().run_in_executor(
                self._store_threads, partial(call, *args)
            )
        except StoreUnavailable as error:
            self._metrics.store_up.set(0)
            raise ApiError(
                "store_unavailable", f"{error}; send it again later", retry_after_s=STORE_RETRY_S
            ) from None
        finally:
            operation = (call.func if isinstance(call, partial) else call).__name__
            self._metrics.store_duration.labels(operation=operation).observe(
                time.perf_counter() - started
            )
        self._metrics.store_up.set(1)
        return value

    async def store_all(
        self,
        instances: list[bytes],
        selector: ModelSelector,
        sender: str | None,
        deadline: float,
    ) -> list[InstanceResult]:
        """Grade the instances of one request in order, then store each study's instances
        and its new SR in one transaction per study; log one summary line."""
        started = time.perf_counter()
        verdicts: list[tuple[InstanceResult, str] | None] = [None] * len(instances)
        by_study: dict[str, list[tuple[int, _Graded]]] = {}
        for index, data in enumerate(instances):
            received = await self.receive(data, selector, sender, deadline)
            if isinstance(received, _Graded):
                by_study.setdefault(received.member_study, []).append((index, received))
            else:
                verdicts[index] = received
        for study_uid, graded in by_study.items():
            stored = await self._store_study(study_uid, [g for _, g in graded], sender)
            for (index, _), verdict in zip(graded, stored, strict=True):
                verdicts[index] = verdict
        outcomes: Counter[str] = Counter()
        refusals: Counter[str] = Counter()
        results = []
        for found in verdicts:
            assert found is not None
            result, outcome = found
            results.append(result)
            outcomes[outcome] += 1
            if outcome == "refused":
                self._metrics.pacs_instances.labels(outcome="refused").inc()
                if result.error_code:
                    refusals[result.error_code] += 1
            elif outcome != "conflict":
                self._metrics.pacs_instances.labels(outcome=outcome).inc()
        logger.info(
            "STOW-RS request stored",
            extra={
                "event": "pacs_stow",
                "client": sender,
                "images": len(instances),
                "status": stow.response_status(results),
                "outcomes": dict(outcomes),
                "refusals": dict(refusals) or None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return results

    async def receive(
        self, data: bytes, selector: ModelSelector, sender: str | None, deadline: float
    ) -> tuple[InstanceResult, str] | _Graded:
        """Parse and grade one instance: graded (to store with its study) or a verdict
        (STOW-RS result, metrics outcome) for a refusal or a known instance."""
        parsed = _Uids()  # filled in once the part is parsed
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self._receive(data, selector, sender, deadline, parsed)
        except TimeoutError:
            error = ApiError("request_timeout", "the request deadline passed; send it again")
            return self._failure(parsed, error), "refused"
        except FundusError as error:
            return self._failure(parsed, from_fundus(error)), "refused"
        except sr.SourceError as error:
            return self._failure(parsed, ApiError("invalid_image", str(error))), "refused"
        except ApiError as error:
            if error.code == "instance_conflict":
                self._metrics.pacs_instances.labels(outcome="conflict").inc()
                return self._failure(parsed, error), "conflict"
            return self._failure(parsed, error), "refused"
        except Exception as error:  # a bug: log type and place only (values could be PHI)
            logger.error(
                "PACS intake failed", exc_info=error, extra={"error_code": "internal_error"}
            )
            error = ApiError("internal_error", "unexpected gateway error")
            return self._failure(parsed, error), "refused"

    async def _receive(
        self,
        data: bytes,
        selector: ModelSelector,
        sender: str | None,
        deadline: float,
        parsed: _Uids,
    ) -> tuple[InstanceResult, str] | _Graded:
        # pydicom copies every element value out of the part: about its size again.
        async with self.limiter.slot(len(data)):
            ((source, digest),) = await in_threads(partial(_parse, data))
        sop_class, sop_uid, study_uid, series_uid = sr.source_uids(source)
        parsed.sop_class, parsed.sop_uid = sop_class, sop_uid
        _check_uids(sop_class, sop_uid, study_uid, series_uid)
        if sop_class not in GRADABLE_SOP_CLASSES:
            raise ApiError(
                "dicom_unsupported_sop_class",
                f"SOP class {sop_class} is not a fundus photograph; accepted: "
                + ", ".join(sorted(GRADABLE_SOP_CLASSES.values())),
            )
        laterality = laterality_of(source)
        if laterality is None:
            raise ApiError(
                "laterality_missing",
                "the instance names no eye (ImageLaterality or Laterality R or L): each "
                "photograph of a study exam must say which eye it shows",
            )
        served = await self._grading.resolve(selector, self._settings.backend_timeout_s)
        existing = await self._stored(self.results.get, sop_uid)
        if existing is not None:
            known = compare(existing.content_sha256, digest, _same_model(existing, served))
            if known == "conflict":
                raise self._conflict(existing, sender)
            if known == "duplicate":
                return InstanceResult(sop_class, sop_uid), "duplicate"
        graded = await self._grading.grade(
            [ImageInput(data, "instance")], selector, explain=False, deadline=deadline
        )
        eye = graded.eyes[0]
        result = eye_result(eye).model_dump(mode="json", exclude={"heatmap_png_base64"})
        member = StudyMember(
            sop_instance_uid=sop_uid,
            sop_class_uid=sop_class,
            series_instance_uid=series_uid,
            eye="left" if laterality == "L" else "right",
            model_name=graded.served.name,
            model_version=graded.served.version,
            result=result,
            document={
                "sop_instance_uid": sop_uid,
                "sop_class_uid": sop_class,
                "study_instance_uid": study_uid,
                "series_instance_uid": series_uid,
                "model": {"name": graded.served.name, "version": graded.served.version},
                "result": result,
                "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            content_sha256=digest,
        )
        return _Graded(source, member, study_uid, patient_digest(study_uid, source), graded.served)

    async def _store_study(
        self, study_uid: str, graded: list[_Graded], sender: str | None
    ) -> list[tuple[InstanceResult, str]]:
        """Store one study's graded instances with its new SR (one transaction)."""
        first = graded[0]
        served = first.served
        composer = StudyComposer(
            study_uid,
            first.source,
            served.name,
            served.version,
            served.card.clinical_warning,
            datetime.now(UTC),
        )
        others = [g for g in graded if g.patient_digest != first.patient_digest]
        members = [g.member for g in graded if g.patient_digest == first.patient_digest]
        context = StudyContext(
            served.name,
            served.version,
            sender,
            first.patient_digest,
            self._settings.pacs_study_settle_s,
            time.time(),
        )
        try:
            update = await self._stored(
                self.results.add_to_study, study_uid, members, context, composer
            )
        except ApiError as error:  # store_unavailable: nothing of the study was stored
            return [(self._failure(g.parsed, error), "refused") for g in graded]
        except Exception as error:  # a bug: log type and place only (values could be PHI)
            logger.error(
                "PACS study store failed", exc_info=error, extra={"error_code": "internal_error"}
            )
            failed = ApiError("internal_error", "unexpected gateway error")
            return [(self._failure(g.parsed, failed), "refused") for g in graded]
        self._notify()
        row = update.row
        if update.changed and row is not None and row.created_at == row.updated_at:
            # A study counts as one exam once, when its first SR is built.
            patient = row.exam["patient"]
            findings = {name: bool(patient.get(name)) for name in EXAM_FINDINGS}
            self._metrics.observe_exam(findings, len(row.members))
        verdicts = []
        for item in graded:
            outcome = update.outcomes.get(item.member.sop_instance_uid)
            if item in others or update.patient_conflict:
                verdicts.append((self._failure(item.parsed, _patient_mismatch()), "refused"))
            elif outcome == "conflict":  # another request stored other content meanwhile
                conflict = self._conflict(None, sender)
                self._metrics.pacs_instances.labels(outcome="conflict").inc()
                verdicts.append((self._failure(item.parsed, conflict), "conflict"))
            elif outcome == "duplicate":
                verdicts.append((InstanceResult(*item.uids), "duplicate"))
            else:
                gradable = item.member.result["quality"]["gradable"]
                verdicts.append(
                    (InstanceResult(*item.uids), "graded" if gradable else "ungradable")
                )
        return verdicts

    def _conflict(self, existing: ResultRow | None, sender: str | None) -> ApiError:
        """Log the conflict (client names only: no UID, no patient data) and build its error."""
        owner = existing.sender if existing is not None else None
        logger.warning(
            "SOP Instance UID already received with different content; refused (first "
            f"sender: {owner or 'unknown'})",
            extra={"event": "pacs_conflict", "client": sender, "error_code": "instance_conflict"},
        )
        return ApiError(
            "instance_conflict",
            "this SOP Instance UID was already received with different content (pixels, "
            "patient or study attributes); the first result stands",
        )

    def _notify(self) -> None:
        if self._worker is not None:
            self._worker.notify()

    def _failure(self, parsed: _Uids, error: ApiError) -> InstanceResult:
        self._metrics.errors.labels(code=error.code).inc()
        return InstanceResult(
            parsed.sop_class,
            parsed.sop_uid,
            stow.failure_reason(error.code),
            error.code,
            error.message,
        )


def _parse(data: bytes) -> tuple[Dataset, str]:
    """Parse a part (bounded) and digest its content; runs in a worker thread."""
    source = dataset.read_instance(data)
    return source, dataset.content_digest(source)


def _check_uids(*uids: str) -> None:
    for value in uids:
        if len(value) > 64 or not UID(value).is_valid:
            raise ApiError("invalid_image", "the instance carries a malformed UID")


def _same_model(row: ResultRow | None, served: ServedModel) -> bool:
    return row is not None and (row.model_name, row.model_version) == (
        served.name,
        served.version,
    )


def _patient_mismatch() -> ApiError:
    return ApiError(
        "study_patient_mismatch",
        "this study was received with another Patient ID; the instance was not stored",
    )
