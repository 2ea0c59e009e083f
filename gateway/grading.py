"""The dataplane: what grading one image or one exam means, independent of HTTP.

Preprocessing uses the PreprocessConfig from the card of the exact model version that will
run the prediction (the version is resolved first, then pinned in the Predict call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from numpy.typing import NDArray

from fundus.budget import admit
from fundus.config import DecodeLimits
from fundus.errors import FundusError
from fundus.pipeline import load_and_preprocess
from fundus.quality import ANALYSIS_SIZE
from fundus.types import Laterality, Preprocessed, QualityReport
from gateway import clinical
from gateway.backends.base import ModelBackend, ModelSelector, Prediction, ServedModel
from gateway.backends.retry import RetryPolicy
from gateway.errors import ApiError, from_fundus
from gateway.heatmap import overlay_base64
from gateway.limits import InferenceLimiter, in_threads
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings

logger = logging.getLogger("gateway.grading")


@dataclass(frozen=True)
class ImageInput:
    """One uploaded image and what the caller says about it."""

    data: bytes
    field: str
    laterality: Laterality | None = None


@dataclass
class EyeOutcome:
    """Result for one image (gradable or not)."""

    preprocessed: Preprocessed
    laterality: Laterality | None
    grade: int | None = None
    probabilities: list[float] | None = None
    referable: bool | None = None
    referable_probability: float | None = None
    heatmap_png_base64: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def quality(self) -> QualityReport:
        """The quality gate's verdict on this photograph."""
        return self.preprocessed.quality

    @property
    def recommendation(self) -> str:
        """Plain-language advice for the clinician."""
        if self.grade is None or self.referable is None:
            return clinical.ungradable_recommendation(self.preprocessed.quality.reasons)
        return clinical.recommendation_for(self.grade, self.referable)

    @property
    def action(self) -> clinical.Action:
        """Machine-readable next step."""
        if self.grade is None or self.referable is None:
            return "retake_or_refer_in_person"
        return clinical.action_for(self.grade, self.referable)


@dataclass(frozen=True)
class GradingOutcome:
    """All images of one request, the model that graded them and where the time went."""

    served: ServedModel
    eyes: list[EyeOutcome]
    preprocess_ms: float
    inference_ms: float


class GradingService:
    """Resolve the model version, preprocess with its card, predict, interpret."""

    def __init__(self, backend: ModelBackend, settings: Settings, metrics: GatewayMetrics) -> None:
        self.backend = backend
        self._settings = settings
        self._metrics = metrics
        self._limiter = InferenceLimiter(
            settings.max_concurrent_inferences,
            settings.max_queued_inferences,
            metrics,
            memory_budget_bytes=settings.decode_memory_budget_bytes,
        )
        self._limits = DecodeLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            max_decoded_bytes=settings.max_decoded_bytes,
        )
        self._retry = RetryPolicy.from_settings(settings)
        self._resolved: dict[ModelSelector, tuple[float, ServedModel]] = {}
        self._ready: tuple[float, ServedModel] | None = None

    @property
    def limiter(self) -> InferenceLimiter:
        """The inference budget; other CPU-heavy request work (STOW-RS parsing) shares it."""
        return self._limiter

    def default_selector(self) -> ModelSelector:
        """The version or label the gateway is configured for."""
        return ModelSelector(self._settings.model_version, self._settings.model_label)

    async def resolve(
        self, selector: ModelSelector, timeout_s: float, fresh: bool = False
    ) -> ServedModel:
        """The served version for ``selector``, cached for ``readiness_cache_s``."""
        now = time.monotonic()
        cached = self._resolved.get(selector)
        if cached and not fresh and now - cached[0] < self._settings.readiness_cache_s:
            return cached[1]
        served = await self.backend.resolve(selector, timeout_s)
        self._resolved[selector] = (now, served)
        self._metrics.set_model(served.name, served.version)
        return served

    async def readiness(self, timeout_s: float) -> ServedModel:
        """The configured version is served (AVAILABLE) and fits; cached briefly."""
        selector = self.default_selector()
        now = time.monotonic()
        cached = self._ready
        if cached and now - cached[0] < self._settings.readiness_cache_s:
            return cached[1]
        served = await self.backend.check_ready(selector, timeout_s)
        self._ready = (now, served)
        self._resolved[selector] = (now, served)
        self._metrics.set_model(served.name, served.version)
        return served

    async def grade(
        self, inputs: list[ImageInput], selector: ModelSelector, explain: bool, deadline: float
    ) -> GradingOutcome:
        """Grade one or more images in one Predict call; ungradable ones are not sent.

        The images' estimated decode memory is read from their headers first (a bomb is refused
        here with 413, before it waits for a slot) and held together from the limiter's budget:
        an exam's two eyes are preprocessed at the same time.
        """
        served = await self.resolve(selector, self._call_timeout(deadline))
        costs = await asyncio.gather(*(self._decode_cost(item, served) for item in inputs))
        async with self._limiter.slot(sum(costs)):
            started = time.perf_counter()
            preprocessed = await in_threads(
                *(partial(self._preprocess, item, served) for item in inputs)
            )
            preprocess_ms = (time.perf_counter() - started) * 1000
            eyes = [
                self._start_outcome(item, pre)
                for item, pre in zip(inputs, preprocessed, strict=True)
            ]
            gradable = [eye for eye in eyes if eye.preprocessed.quality.gradable]
            inference_ms = 0.0
            if gradable:
                started = time.perf_counter()
                served, prediction = await self._predict_all(
                    [eye.preprocessed.image for eye in gradable],
                    selector,
                    served,
                    explain,
                    deadline,
                )
                inference_ms = (time.perf_counter() - started) * 1000
                self._apply(prediction, gradable, served, explain)
        return GradingOutcome(served, eyes, preprocess_ms, inference_ms)

    async def _predict_all(
        self,
        images: list[NDArray[np.uint8]],
        selector: ModelSelector,
        served: ServedModel,
        explain: bool,
        deadline: float,
    ) -> tuple[ServedModel, Prediction]:
        """Predict in calls of at most ``DRG_MAX_PREDICT_BATCH`` images (TF Serving refuses a
        larger one), concurrently; every call must come from the same model version."""
        size = self._settings.max_predict_batch
        chunks = [np.stack(images[i : i + size]) for i in range(0, len(images), size)]
        answers = await asyncio.gather(
            *(self._predict(chunk, selector, served, explain, deadline) for chunk in chunks)
        )
        versions = {(answer.name, answer.version) for _, answer in answers}
        if len(versions) > 1:
            raise ApiError("model_unavailable", "the model changed during the request; retry")
        if len(answers) == 1:
            return answers[0]
        predictions = [prediction for _, prediction in answers]
        heatmaps = [p.heatmap for p in predictions if p.heatmap is not None]
        return answers[0][0], Prediction(
            name=predictions[0].name,
            version=predictions[0].version,
            probabilities=np.concatenate([p.probabilities for p in predictions]),
            grade=np.concatenate([p.grade for p in predictions]),
            referable_probability=np.concatenate([p.referable_probability for p in predictions]),
            heatmap=np.concatenate(heatmaps) if len(heatmaps) == len(predictions) else None,
        )

    async def _predict(
        self,
        batch: NDArray[np.uint8],
        selector: ModelSelector,
        served: ServedModel,
        explain: bool,
        deadline: float,
    ) -> tuple[ServedModel, Prediction]:
        """Predict on ``served``; re-resolve when its version went away, as the policy says."""
        reresolved = 0
        while True:
            try:
                prediction = await self.backend.predict(
                    batch, served, explain, self._call_timeout(deadline)
                )
                return served, prediction
            except ApiError as error:
                if not self._retry.reresolve(error.code, reresolved):
                    raise
            reresolved += 1
            # The pinned version went away (a reload or rollout): find the one served now.
            self._resolved.pop(selector, None)
            newer = await self.resolve(selector, self._call_timeout(deadline), fresh=True)
            if newer.card.preprocess_config != served.card.preprocess_config:
                raise ApiError("model_unavailable", "the model changed during the request; retry")
            served = newer

    def _call_timeout(self, deadline: float) -> float:
        """Per-call deadline: the backend timeout, never beyond the request deadline."""
        return min(self._settings.backend_timeout_s, _remaining(deadline))

    async def _decode_cost(self, item: ImageInput, served: ServedModel) -> int:
        """Estimated decode + preprocessing peak of one image, from its header (bytes)."""
        target = max(served.card.preprocess_config.size, ANALYSIS_SIZE)  # as load_and_preprocess
        try:
            cost = await asyncio.to_thread(admit, item.data, self._limits, target)
        except FundusError as error:
            api_error = from_fundus(error)
            api_error.message = f"{item.field}: {api_error.message}"
            raise api_error from None
        return cost.working_bytes

    def _preprocess(self, item: ImageInput, served: ServedModel) -> Preprocessed:
        """Decode and preprocess one image (in a worker thread, see ``in_threads``)."""
        started = time.perf_counter()
        try:
            return load_and_preprocess(item.data, served.card.preprocess_config, self._limits)
        except FundusError as error:
            api_error = from_fundus(error)
            api_error.message = f"{item.field}: {api_error.message}"
            raise api_error from None
        finally:
            self._metrics.preprocess_duration.observe(time.perf_counter() - started)

    def _start_outcome(self, item: ImageInput, pre: Preprocessed) -> EyeOutcome:
        laterality = pre.laterality or item.laterality
        outcome = EyeOutcome(pre, laterality)
        if item.laterality and pre.laterality and item.laterality != pre.laterality:
            raise ApiError(
                "laterality_mismatch",
                f"{item.field}: sent as {item.laterality}, but its DICOM ImageLaterality is "
                f"{pre.laterality}; send it in the other eye's field (nothing was graded)",
            )
        if not pre.quality.gradable:
            self._metrics.ungradable_images.inc()
        for reason in pre.quality.reasons:
            self._metrics.ungradable.labels(reason=reason).inc()
        return outcome

    def _apply(
        self, prediction: Prediction, eyes: list[EyeOutcome], served: ServedModel, explain: bool
    ) -> None:
        threshold = served.card.referable_threshold
        for index, eye in enumerate(eyes):
            grade = int(prediction.grade[index])
            probabilities = [float(p) for p in prediction.probabilities[index]]
            referable_probability = float(prediction.referable_probability[index])
            eye.grade = grade
            eye.probabilities = probabilities
            eye.referable_probability = referable_probability
            eye.referable = clinical.is_referable(grade, referable_probability, threshold)
            if explain and prediction.heatmap is not None:
                eye.heatmap_png_base64 = overlay_base64(
                    eye.preprocessed.image,
                    prediction.heatmap[index],
                    self._settings.heatmap_opacity,
                )
            self._metrics.predictions.labels(grade=str(grade)).inc()
            self._metrics.confidence.observe(probabilities[grade])
            self._metrics.referable_probability.observe(referable_probability)
            if eye.referable:
                self._metrics.referable.inc()


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ApiError("request_timeout", "the request deadline passed")
    return remaining
