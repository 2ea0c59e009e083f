"""The PACS dataplane: one received DICOM instance -> grade -> SR -> outbox, independent of HTTP.

Patient and study attributes stay inside the parsed dataset and the SR bytes; log lines,
metric labels and error messages carry only codes, counts and model versions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from fundus.dicom import GRADABLE_SOP_CLASSES, read_dataset
from fundus.errors import FundusError
from gateway import clinical
from gateway.api.responses import eye_result
from gateway.backends.base import ModelSelector, ServedModel
from gateway.errors import ApiError, from_fundus
from gateway.grading import EyeOutcome, GradingService, ImageInput
from gateway.metrics import GatewayMetrics
from gateway.pacs import sr, stow
from gateway.pacs.outbox import Outbox, OutboxRow
from gateway.pacs.stow import InstanceResult
from gateway.pacs.worker import DeliveryWorker
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.pacs.client import StowClient

logger = logging.getLogger("gateway.pacs")


class PacsIntake:
    """Grades received instances, builds their SRs and queues them for delivery."""

    def __init__(
        self,
        grading: GradingService,
        outbox: Outbox,
        worker: DeliveryWorker | None,
        metrics: GatewayMetrics,
        settings: Settings,
    ) -> None:
        self.outbox = outbox
        self._grading = grading
        self._worker = worker
        self._metrics = metrics
        self._settings = settings

    @classmethod
    async def open(
        cls, settings: Settings, grading: GradingService, metrics: GatewayMetrics
    ) -> PacsIntake:
        """Open the outbox and start the delivery worker (when a STOW-RS URL is configured)."""
        outbox = await asyncio.to_thread(Outbox, settings.pacs_outbox_path)
        worker = None
        if settings.pacs_stow_url:
            worker = DeliveryWorker(
                outbox,
                stow_client(settings),
                metrics,
                initial_backoff_s=settings.pacs_retry_initial_s,
                max_backoff_s=settings.pacs_retry_max_s,
            )
            worker.start()
        else:
            logger.warning(
                "DRG_PACS_STOW_URL is not set: results are kept in the outbox, not delivered",
                extra={"event": "pacs_delivery_disabled"},
            )
        return cls(grading, outbox, worker, metrics, settings)

    async def close(self) -> None:
        """Stop the worker (pending rows stay in the outbox) and close the database."""
        if self._worker is not None:
            await self._worker.stop()
        await asyncio.to_thread(self.outbox.close)

    async def lookup(self, sop_instance_uid: str) -> OutboxRow | None:
        """The stored result of a source instance."""
        return await asyncio.to_thread(self.outbox.get, sop_instance_uid)

    async def store(self, data: bytes, selector: ModelSelector) -> InstanceResult:
        """Grade one instance and queue its SR; every failure becomes a STOW-RS failure item."""
        sop_class: str | None = None
        sop_uid: str | None = None
        try:
            source = await asyncio.to_thread(read_dataset, data)
            sop_class, sop_uid, _, _ = sr.source_uids(source)
            _check_uids(sop_class, sop_uid)
            if sop_class not in GRADABLE_SOP_CLASSES:
                raise ApiError(
                    "dicom_unsupported_sop_class",
                    f"SOP class {sop_class} is not a fundus photograph; accepted: "
                    + ", ".join(sorted(GRADABLE_SOP_CLASSES.values())),
                )
            outcome = await self._store_valid(source, data, sop_uid, selector)
        except FundusError as error:
            return self._refused(sop_class, sop_uid, from_fundus(error))
        except sr.SourceError as error:
            return self._refused(sop_class, sop_uid, ApiError("invalid_image", str(error)))
        except ApiError as error:
            return self._refused(sop_class, sop_uid, error)
        except Exception as error:  # a bug: log type and place only (values could be PHI)
            logger.error(
                "PACS intake failed", exc_info=error, extra={"error_code": "internal_error"}
            )
            return self._refused(
                sop_class, sop_uid, ApiError("internal_error", "unexpected gateway error")
            )
        self._metrics.pacs_instances.labels(outcome=outcome).inc()
        return InstanceResult(sop_class, sop_uid)

    async def _store_valid(
        self, source: Dataset, data: bytes, sop_uid: str, selector: ModelSelector
    ) -> str:
        """Grade (unless already graded by this model version) and queue; return the outcome."""
        deadline = time.monotonic() + self._settings.request_timeout_s
        served = await self._grading.resolve(selector, self._settings.backend_timeout_s)
        existing = await asyncio.to_thread(self.outbox.get, sop_uid)
        if _same_model(existing, served):
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
        stored = await asyncio.to_thread(
            self.outbox.put,
            sop_uid,
            graded.served.name,
            graded.served.version,
            str(sr_dataset.SOPInstanceUID),
            result,
            sr_bytes,
        )
        self._notify()
        if not stored:
            return "duplicate"
        logger.info(
            "instance graded; SR queued",
            extra={
                "event": "pacs_graded",
                "gradable": eye.preprocessed.quality.gradable,
                "model_version": graded.served.version,
            },
        )
        return "graded" if eye.preprocessed.quality.gradable else "ungradable"

    def _notify(self) -> None:
        if self._worker is not None:
            self._worker.notify()

    def _refused(
        self, sop_class: str | None, sop_uid: str | None, error: ApiError
    ) -> InstanceResult:
        self._metrics.pacs_instances.labels(outcome="refused").inc()
        self._metrics.errors.labels(code=error.code).inc()
        logger.info("instance refused", extra={"event": "pacs_refused", "error_code": error.code})
        return InstanceResult(
            sop_class, sop_uid, stow.failure_reason(error.code), error.code, error.message
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


def _check_uids(*uids: str) -> None:
    for value in uids:
        if len(value) > 64 or not UID(value).is_valid:
            raise ApiError("invalid_image", "the instance carries a malformed UID")


def _same_model(row: OutboxRow | None, served: ServedModel) -> bool:
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
    """The JSON result kept in the outbox: UIDs and the grading, no patient attributes."""
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
