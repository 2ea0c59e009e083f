"""Prometheus metrics: module-style histograms/counters with few, bounded labels.

One registry per app (tests build several apps in one process). Label values are bounded:
routes are route templates (unknown paths -> "other"), status codes, gRPC code names, grades
0-4, the quality reasons of fundus.REASONS, the error codes of gateway.errors.ERRORS and the
fixed PACS outcome/result names.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from contract.grades import NUM_GRADES, REFERABLE_MIN_GRADE

# p99 latency SLO per grading route, in seconds: 1.5 x (its own TF Serving batch + one full
# batch ahead) of the measured 5-fold B3 ensemble on a 4-CPU TF Serving pod (bench/sizing.py,
# `python -m bench.tfserving_sizing`); an exam is two images. The alert rules
# (observability/prometheus/recording_rules.yml) read the bucket at exactly these bounds.
LATENCY_SLO_S = {"/v1/grade": 8.0, "/v1/exams": 10.5}
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Store calls take milliseconds; a whole second means a database in trouble."""
EXAM_FINDINGS = ("referable", "vision_threatening", "insufficient_quality")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.5, 15.0, 30.0)
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


class GatewayMetrics:
    """All gateway metrics, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "drg_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "drg_http_request_duration_seconds",
            "HTTP request duration.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "drg_http_requests_in_flight", "HTTP requests being handled now.", registry=r
        )
        self.errors = Counter(
            "drg_errors_total", "Error responses by stable error code.", ["code"], registry=r
        )
        self.inferences_running = Gauge(
            "drg_inferences_running", "Gradings holding an inference slot.", registry=r
        )
        self.inferences_queued = Gauge(
            "drg_inferences_queued", "Gradings waiting for an inference slot.", registry=r
        )
        self.rejected = Counter(
            "drg_rejected_total",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        self.preprocess_duration = Histogram(
            "drg_preprocess_duration_seconds",
            "Decode + preprocess + quality gate per image.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_duration = Histogram(
            "drg_backend_request_duration_seconds",
            "Model server call duration by call.",
            ["call"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "drg_backend_errors_total",
            "Failed model server calls by call and gRPC code.",
            ["call", "grpc_code"],
            registry=r,
        )
        self.predictions = Counter(
            "drg_predictions_total", "Graded images by predicted grade.", ["grade"], registry=r
        )
        self.referable = Counter(
            "drg_referable_total", "Graded images judged referable.", registry=r
        )
        self.ungradable = Counter(
            "drg_ungradable_total",
            "Images refused by the quality gate, by reason.",
            ["reason"],
            registry=r,
        )
        self.ungradable_images = Counter(
            "drg_ungradable_images_total",
            "Images refused by the quality gate (one per image, whatever the reasons).",
            registry=r,
        )
        self.confidence = Histogram(
            "drg_prediction_confidence",
            "Probability of the predicted grade.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.referable_probability = Histogram(
            "drg_referable_probability",
            f"P(grade >= {REFERABLE_MIN_GRADE}) per graded image.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "drg_model_info",
            "1 for the model version the gateway last resolved.",
            ["model", "version"],
            registry=r,
        )
        self.ready = Gauge("drg_ready", "1 when /readyz last answered ready.", registry=r)
        self.pacs_instances = Counter(
            "drg_pacs_instances_total",
            "STOW-RS instances by outcome: graded, ungradable, duplicate, conflict, refused.",
            ["outcome"],
            registry=r,
        )
        self.pacs_deliveries = Counter(
            "drg_pacs_deliveries_total",
            "SR delivery attempts to the PACS by result: delivered, refused, unavailable.",
            ["result"],
            registry=r,
        )
        self.pacs_delivery_duration = Histogram(
            "drg_pacs_delivery_duration_seconds",
            "STOW-RS call duration when pushing an SR to the PACS.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pacs_outbox_pending = Gauge(
            "drg_pacs_outbox_pending",
            "Results not yet accepted by the PACS, store-wide (every replica reports the same).",
            registry=r,
        )
        self.pacs_outbox_oldest_age = Gauge(
            "drg_pacs_outbox_oldest_pending_seconds",
            "Age of the oldest result not yet accepted by the PACS, store-wide (0 when none).",
            registry=r,
        )
        self.store_up = Gauge(
            "drg_store_up",
            "1 when this replica's last results-store call succeeded; 0 when it failed "
            "(or PACS intake is off).",
            registry=r,
        )
        self.store_duration = Histogram(
            "drg_store_duration_seconds",
            "Results-store calls made while serving a request (PACS intake, result reads).",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.results_purged = Counter(
            "drg_results_purged_total",
            "Delivered results deleted after DRG_RESULTS_RETENTION_DAYS.",
            registry=r,
        )
        self.exams = Counter(
            "drg_exams_total",
            "Exams (screening visits), one per patient: POST /v1/exams answers and PACS studies "
            "(counted once, when their first SR is built).",
            registry=r,
        )
        self.exam_findings = Counter(
            "drg_exam_findings_total",
            "Exams by patient-level finding: referable, vision_threatening, insufficient_quality.",
            ["finding"],
            registry=r,
        )
        self.exam_photographs = Histogram(
            "drg_exam_photographs",
            "Photographs per exam (both eyes together).",
            buckets=(1, 2, 3, 4, 5, 6, 7, 8),
            registry=r,
        )
        for finding in EXAM_FINDINGS:
            self.exam_findings.labels(finding=finding)
        for operation in ("get", "put", "ping"):
            self.store_duration.labels(operation=operation)
        for outcome in ("graded", "ungradable", "duplicate", "conflict", "refused"):
            self.pacs_instances.labels(outcome=outcome)
        for result in ("delivered", "refused", "unavailable"):
            self.pacs_deliveries.labels(result=result)
        for grade in range(NUM_GRADES):
            self.predictions.labels(grade=str(grade))

    def observe_exam(self, findings: dict[str, bool], photographs: int) -> None:
        """Count one exam, its patient-level findings (``EXAM_FINDINGS``) and its photographs."""
        self.exams.inc()
        self.exam_photographs.observe(photographs)
        for finding in EXAM_FINDINGS:
            if findings.get(finding):
                self.exam_findings.labels(finding=finding).inc()

    def set_model(self, name: str, version: int) -> None:
        """Point drg_model_info at the current version (one series with value 1)."""
        self.model_info.clear()
        self.model_info.labels(model=name, version=str(version)).set(1)
