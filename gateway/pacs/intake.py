"""The PACS dataplane: one received DICOM instance -> grade -> SR -> store, independent of HTTP.

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
from typing import TYPE_CHECKING, Any, TypeVar

from pydicom.dataset import Dataset
from pydicom.uid import UID

from fundus.dicom import GRADABLE_SOP_CLASSES
from fundus.errors import FundusError
from gateway import clinical
from gateway.backends.base import ModelSelector, ServedModel
from gateway.errors import ApiError, from_fundus
from gateway.grading import EyeOutcome, GradingService, ImageInput
from gateway.limits import InferenceLimiter, in_threads
from gateway.metrics import GatewayMetrics
from gateway.pacs import dataset, sr, stow
from gateway.pacs.stow import InstanceResult
from gateway.pacs.worker import DeliveryWorker
from gateway.results import eye_result
from gateway.settings import Settings
from gateway.store.results import ResultRow, ResultStore, StoreUnavailable, compare

if TYPE_CHECKING:
    from gateway.pacs.client import StowClient

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
        """Store the instances of one request in order; log one summary line."""
        started = time.perf_counter()
        outcomes: Counter[str] = Counter()
        refusals: Counter[str] = Counter()
        results = []
        for data in instances:
            result, outcome = await self.store(data, selector, sender, deadline)
            results.append(result)
            outcomes[outcome] += 1
            if result.error_code and outcome == "refused":
                refusals[result.error_code] += 1
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

    async def store(
        self, data: bytes, selector: ModelSelector, sender: str | None, deadline: float
    ) -> tuple[InstanceResult, str]:
        """Grade one instance and queue its SR: (STOW-RS verdict, metrics outcome)."""
        parsed = _Uids()  # filled in once the part is parsed
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                outcome = await self._store(data, selector, sender, deadline, parsed)
        except TimeoutError:
            error = ApiError("request_timeout", "the request deadline passed; send it again")
            return self._refused(parsed, error), "refused"
        except FundusError as error:
            return self._refused(parsed, from_fundus(error)), "refused"
        except sr.SourceError as error:
            return self._refused(parsed, ApiError("invalid_image", str(error))), "refused"
        except ApiError as error:
            if error.code == "instance_conflict":
                self._metrics.pacs_instances.labels(outcome="conflict").inc()
                return self._failure(parsed, error), "conflict"
            return self._refused(parsed, error), "refused"
        except Exception as error:  # a bug: log type and place only (values could be PHI)
            logger.error(
                "PACS intake failed", exc_info=error, extra={"error_code": "internal_error"}
            )
            error = ApiError("internal_error", "unexpected gateway error")
            return self._refused(parsed, error), "refused"
        self._metrics.pacs_instances.labels(outcome=outcome).inc()
        return InstanceResult(parsed.sop_class, parsed.sop_uid), outcome

    async def _store(
        self,
        data: bytes,
        selector: ModelSelector,
        sender: str | None,
        deadline: float,
        parsed: _Uids,
    ) -> str:
        # pydicom copies every element value out of the part: about its size again.
        async with self.limiter.slot(len(data)):
            ((source, digest),) = await in_threads(partial(_parse, data))
        sop_class, sop_uid, _, _ = sr.source_uids(source)
        parsed.sop_class, parsed.sop_uid = sop_class, sop_uid
        _check_uids(sop_class, sop_uid)
        if sop_class not in GRADABLE_SOP_CLASSES:
            raise ApiError(
                "dicom_unsupported_sop_class",
                f"SOP class {sop_class} is not a fundus photograph; accepted: "
                + ", ".join(sorted(GRADABLE_SOP_CLASSES.values())),
            )
        return await self._store_valid(source, data, sop_uid, digest, selector, sender, deadline)

    async def _store_valid(
        self,
        source: Dataset,
        data: bytes,
        sop_uid: str,
        digest: str,
        selector: ModelSelector,
        sender: str | None,
        deadline: float,
    ) -> str:
        """Grade (unless already graded by this model version) and queue; return the outcome."""
        served = await self._grading.resolve(selector, self._settings.backend_timeout_s)
        existing = await self._stored(self.results.get, sop_uid)
        if existing is not None:
            known = compare(existing.content_sha256, digest, _same_model(existing, served))
            if known == "conflict":
                raise self._conflict(existing, sender)
            if known == "duplicate":
                self._notify()
                return "duplicate"
        graded = await self._grading.grade(
            [ImageInput(data, "instance")], selector, explain=False, deadline=deadline
        )
        eye = graded.eyes[0]
        finding = _finding(eye, graded.served)
        sr_dataset = await asyncio.to_thread(sr.build_sr, source, finding, datetime.now(UTC))
        sr_bytes = await asyncio.to_thread(sr.encode, sr_dataset)
        result = _result_document(source, sr_dataset, eye, graded.served)
        stored = await self._stored(
            partial(self.results.put, sender=sender, content_sha256=digest),
            sop_uid,
            graded.served.name,
            graded.served.version,
            str(sr_dataset.SOPInstanceUID),
            result,
            sr_bytes,
        )
        self._notify()
        if stored == "conflict":  # another request stored other content meanwhile
            raise self._conflict(await self._stored(self.results.get, sop_uid), sender)
        if stored == "duplicate":
            return "duplicate"
        return "graded" if eye.preprocessed.quality.gradable else "ungradable"

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

    def _refused(self, parsed: _Uids, error: ApiError) -> InstanceResult:
        self._metrics.pacs_instances.labels(outcome="refused").inc()
        return self._failure(parsed, error)

    def _failure(self, parsed: _Uids, error: ApiError) -> InstanceResult:
        self._metrics.errors.labels(code=error.code).inc()
        return InstanceResult(
            parsed.sop_class,
            parsed.sop_uid,
            stow.failure_reason(error.code),
            error.code,
            error.message,
        )


def stow_client(settings: Settings) -> StowClient:
    """The STOW-RS client for the configured endpoint; secrets come from files."""
    from gateway.pacs.client import StowClient, read_secret  # httpx only when delivering

    assert settings.pacs_stow_url is not None
    basic = None
    bearer = None
    if settings.pacs_auth == "basic":
        assert settings.pacs_username is not None and settings.pacs_password_file is not None
        basic = (settings.pacs_username, read_secret(settings.pacs_password_file))
    elif settings.pacs_auth == "bearer":
        assert settings.pacs_token_file is not None
        bearer = read_secret(settings.pacs_token_file)
    verify: str | bool = str(settings.pacs_ca_file) if settings.pacs_ca_file else True
    return StowClient(
        settings.pacs_stow_url,
        timeout_s=settings.pacs_timeout_s,
        basic=basic,
        bearer=bearer,
        verify=verify,
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


def _finding(eye: EyeOutcome, served: ServedModel) -> sr.Finding:
    quality = eye.preprocessed.quality
    comments = [clinical.DISCLAIMER]
    if served.card.clinical_warning:
        comments.append(served.card.clinical_warning)
    return sr.Finding(
        model_name=served.name,
        model_version=served.version,
        gradable=quality.gradable,
        quality_score=float(quality.score),
        reasons=tuple(quality.reasons),
        action=eye.action,
        recommendation=eye.recommendation,
        grade=eye.grade,
        probabilities=tuple(eye.probabilities) if eye.probabilities is not None else None,
        referable=eye.referable,
        referable_probability=eye.referable_probability,
        laterality=eye.laterality,
        comments=tuple(comments),
    )


def _result_document(
    source: Dataset, sr_dataset: Dataset, eye: EyeOutcome, served: ServedModel
) -> dict[str, Any]:
    """The JSON result kept in the store: UIDs and the grading, no patient attributes."""
    sop_class, sop_uid, study_uid, series_uid = sr.source_uids(source)
    return {
        "sop_instance_uid": sop_uid,
        "sop_class_uid": sop_class,
        "study_instance_uid": study_uid,
        "series_instance_uid": series_uid,
        "model": {"name": served.name, "version": served.version},
        "result": eye_result(eye).model_dump(mode="json", exclude={"heatmap_png_base64"}),
        "sr": {
            "sop_class_uid": str(sr_dataset.SOPClassUID),
            "sop_instance_uid": str(sr_dataset.SOPInstanceUID),
            "series_instance_uid": str(sr_dataset.SeriesInstanceUID),
        },
        "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
