"""The Grafana dashboards, described compactly: title, PromQL, unit, and which kind of data
each panel needs. ``observability.build`` renders them to Grafana JSON.

``source`` is what the end-to-end test checks: "gateway" panels must return data from a
running gateway; "events" panels show gateway series that exist only once something failed
(model-server errors) and "external" panels (TF Serving, kube-state-metrics) must evaluate
without error.
"""

# ruff: noqa: E501  (the dashboard table keeps each PromQL on one line)
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NAMESPACE = "dr-grading"
"""Namespace of the service (k8s/base); the rules and dashboards ship there too."""
GATEWAY_JOB = "dr-gateway"
TFSERVING_JOB = "tfserving"
"""Job names set by the PodMonitor relabelings (k8s/components/monitoring/podmonitors.yaml);
alerts.yml spells the same names, tests/deploy/test_monitoring_crosscheck.py checks all three."""
HPAS = ("gateway", "tfserving")
"""HorizontalPodAutoscaler names (k8s/base/*/hpa.yaml), as kube-state-metrics labels them."""


@dataclass(frozen=True)
class Query:
    """One PromQL target."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class PanelSpec:
    """One panel: a title, its queries and how to draw them."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "bargauge"] = "timeseries"
    source: Literal["gateway", "events", "external"] = "gateway"
    description: str = ""
    stacked: bool = False
    width: int = 12


@dataclass(frozen=True)
class DashboardSpec:
    """A dashboard: uid, title and panels (laid out two per row)."""

    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...]
    tags: tuple[str, ...] = field(default=("dr-grading",))


GATEWAY = f'job="{GATEWAY_JOB}"'
TFSERVING = f'job="{TFSERVING_JOB}",namespace="{NAMESPACE}"'
KUBE = f'namespace="{NAMESPACE}"'
HPA = f'{KUBE},horizontalpodautoscaler=~"{"|".join(HPAS)}"'
GRADING = 'route=~"/v1/grade|/v1/exams|/dicomweb/studies"'
GRADING_POST = f'{GRADING},method="POST"'

DASHBOARD_SPECS = (
    DashboardSpec(
        uid="drg-gateway-red",
        title="DR grading: gateway (RED)",
        description="Rate, errors and duration of the gateway by route, and its model-server calls.",
        panels=(
            PanelSpec(
                "Requests by route",
                (
                    Query(
                        f"sum by (route) (rate(drg_http_requests_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{route}}",
                    ),
                ),
                "reqps",
                stacked=True,
            ),
            PanelSpec(
                "Responses by status",
                (
                    Query(
                        f"sum by (status) (rate(drg_http_requests_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{status}}",
                    ),
                ),
                "reqps",
                stacked=True,
            ),
            PanelSpec(
                "Grading 5xx ratio (availability SLO: 99.5 %)",
                (
                    Query(
                        f'(sum(rate(drg_http_requests_total{{{GATEWAY},{GRADING_POST},status=~"5.."}}[$__rate_interval])) or vector(0)) / clamp_min(sum(rate(drg_http_requests_total{{{GATEWAY},{GRADING_POST}}}[$__rate_interval])), 1e-9)',
                        "5xx",
                    ),
                ),
                "percentunit",
                description="Server errors of POST /v1/grade, /v1/exams, /dicomweb/studies only: "
                "probes and scrapes would hide failing gradings. Alerts: DRGAvailabilitySLOBurn*.",
            ),
            PanelSpec(
                "Errors by code",
                (
                    Query(
                        f"sum by (code) (rate(drg_errors_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{code}}",
                    ),
                ),
                "reqps",
                stacked=True,
                description="Stable error codes from gateway/errors.py (4xx: bad input; 5xx: service).",
            ),
            PanelSpec(
                "Latency p50 / p95 / p99 by route",
                tuple(
                    Query(
                        f"histogram_quantile({q}, sum by (route, le) (rate(drg_http_request_duration_seconds_bucket{{{GATEWAY},{GRADING}}}[$__rate_interval])))",
                        f"p{int(q * 100)} {{{{route}}}}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
                "s",
            ),
            PanelSpec(
                "Requests in flight",
                (
                    Query(
                        f"sum by (instance) (drg_http_requests_in_flight{{{GATEWAY}}})",
                        "{{instance}}",
                    ),
                ),
            ),
            PanelSpec(
                "Model server call latency p95",
                (
                    Query(
                        f"histogram_quantile(0.95, sum by (call, le) (rate(drg_backend_request_duration_seconds_bucket{{{GATEWAY}}}[$__rate_interval])))",
                        "{{call}}",
                    ),
                ),
                "s",
            ),
            PanelSpec(
                "Model server errors by gRPC code",
                (
                    Query(
                        f"sum by (call, grpc_code) (rate(drg_backend_errors_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{call}} {{grpc_code}}",
                    ),
                ),
                "reqps",
                source="events",
                description="Empty while TF Serving answers every call.",
            ),
            PanelSpec(
                "Preprocessing p95 (decode, crop, quality gate)",
                (
                    Query(
                        f"histogram_quantile(0.95, sum by (le) (rate(drg_preprocess_duration_seconds_bucket{{{GATEWAY}}}[$__rate_interval])))",
                        "p95",
                    ),
                ),
                "s",
            ),
            PanelSpec(
                "Ready gateways", (Query(f"sum(drg_ready{{{GATEWAY}}})", "ready"),), kind="stat"
            ),
            PanelSpec(
                "PACS: results pending",
                (Query(f"max(drg_pacs_outbox_pending{{{GATEWAY}}})", "pending"),),
                description="SRs not yet accepted by the PACS, in the shared results store "
                "(every pod reports the same count; alert: DRGPacsOutboxBacklog).",
            ),
            PanelSpec(
                "PACS: oldest pending result",
                (Query(f"max(drg_pacs_outbox_oldest_pending_seconds{{{GATEWAY}}})", "oldest"),),
                "s",
                description="Age of the oldest SR waiting for the PACS (alert: "
                "DRGPacsDeliveryStalled above 30 min).",
            ),
            PanelSpec(
                "PACS deliveries by result",
                (
                    Query(
                        f"sum by (result) (rate(drg_pacs_deliveries_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{result}}",
                    ),
                ),
                "reqps",
                stacked=True,
                description="STOW-RS pushes of SRs: delivered, refused (by the PACS), "
                "unavailable (PACS down). Alert: DRGPacsDeliveryFailing.",
            ),
            PanelSpec(
                "Results store: call latency p95 by operation",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (le, operation) "
                        f"(rate(drg_store_duration_seconds_bucket{{{GATEWAY}}}[$__rate_interval])))",
                        "{{operation}}",
                    ),
                ),
                "s",
                description="Database calls inside PACS requests (DRG_DATABASE_URL). "
                "store_unavailable answers: alert DRGResultsStoreUnavailable.",
            ),
        ),
    ),
    DashboardSpec(
        uid="drg-model-outputs",
        title="DR grading: model outputs",
        description="What the model says: grade mix, referable rate, ungradable images, confidence.",
        panels=(
            PanelSpec(
                "Grade mix",
                (
                    Query(
                        f"sum by (grade) (rate(drg_predictions_total{{{GATEWAY}}}[$__rate_interval]))",
                        "grade {{grade}}",
                    ),
                ),
                "reqps",
                stacked=True,
            ),
            PanelSpec(
                "Referable rate",
                (
                    Query(
                        f"sum(rate(drg_referable_total{{{GATEWAY}}}[$__rate_interval])) / clamp_min(sum(rate(drg_predictions_total{{{GATEWAY}}}[$__rate_interval])), 1e-9)",
                        "referable",
                    ),
                ),
                "percentunit",
            ),
            PanelSpec(
                "Ungradable images by reason",
                (
                    Query(
                        f"sum by (reason) (rate(drg_ungradable_total{{{GATEWAY}}}[$__rate_interval]))",
                        "{{reason}}",
                    ),
                ),
                "reqps",
                stacked=True,
            ),
            PanelSpec(
                "Ungradable ratio",
                (
                    Query(
                        f"sum(rate(drg_ungradable_images_total{{{GATEWAY}}}[$__rate_interval])) / clamp_min(sum(rate(drg_ungradable_images_total{{{GATEWAY}}}[$__rate_interval])) + sum(rate(drg_predictions_total{{{GATEWAY}}}[$__rate_interval])), 1e-9)",
                        "ungradable",
                    ),
                ),
                "percentunit",
            ),
            PanelSpec(
                "Exams by patient-level finding (share of exams)",
                (
                    Query(
                        f"sum by (finding) (rate(drg_exam_findings_total{{{GATEWAY}}}[$__rate_interval])) / scalar(clamp_min(sum(rate(drg_exams_total{{{GATEWAY}}}[$__rate_interval])), 1e-9))",
                        "{{finding}}",
                    ),
                ),
                "percentunit",
                description="Referable, vision-threatening (grade >= 3 in either eye) and "
                "insufficient quality (an eye without a gradable photograph), per exam.",
            ),
            PanelSpec(
                "Photographs per exam (mean)",
                (
                    Query(
                        f"sum(rate(drg_exam_photographs_sum{{{GATEWAY}}}[$__rate_interval])) / clamp_min(sum(rate(drg_exam_photographs_count{{{GATEWAY}}}[$__rate_interval])), 1e-9)",
                        "photographs",
                    ),
                ),
                description="Both eyes together; a screening visit usually takes 1-3 per eye.",
            ),
            PanelSpec(
                "Confidence distribution (probability of the predicted grade)",
                (
                    Query(
                        f"sum by (le) (increase(drg_prediction_confidence_bucket{{{GATEWAY}}}[$__range]))",
                        "{{le}}",
                    ),
                ),
                kind="bargauge",
            ),
            PanelSpec(
                "Mean confidence",
                (
                    Query(
                        f"sum(rate(drg_prediction_confidence_sum{{{GATEWAY}}}[$__rate_interval])) / clamp_min(sum(rate(drg_prediction_confidence_count{{{GATEWAY}}}[$__rate_interval])), 1e-9)",
                        "mean",
                    ),
                ),
                "percentunit",
            ),
            PanelSpec(
                "P(referable) distribution",
                (
                    Query(
                        f"sum by (le) (increase(drg_referable_probability_bucket{{{GATEWAY}}}[$__range]))",
                        "{{le}}",
                    ),
                ),
                kind="bargauge",
            ),
            PanelSpec(
                "Model version served",
                (
                    Query(
                        f"max by (model, version) (drg_model_info{{{GATEWAY}}})",
                        "{{model}} v{{version}}",
                    ),
                ),
                kind="stat",
            ),
        ),
    ),
    DashboardSpec(
        uid="drg-tfserving",
        title="DR grading: TensorFlow Serving",
        description="TF Serving's own metrics (monitoring config: /monitoring/prometheus/metrics).",
        panels=(
            PanelSpec(
                "Requests by status",
                (
                    Query(
                        f'sum by (status) (rate(:tensorflow:serving:request_count{{model_name="dr_grader",{TFSERVING}}}[$__rate_interval]))',
                        "{{status}}",
                    ),
                ),
                "reqps",
                source="external",
                stacked=True,
            ),
            PanelSpec(
                "Request latency p95 by API",
                (
                    Query(
                        f'histogram_quantile(0.95, sum by (API, le) (rate(:tensorflow:serving:request_latency_bucket{{model_name="dr_grader",{TFSERVING}}}[$__rate_interval]))) / 1e6',
                        "{{API}}",
                    ),
                ),
                "s",
                source="external",
            ),
            PanelSpec(
                "Runtime latency p95",
                (
                    Query(
                        f'histogram_quantile(0.95, sum by (le) (rate(:tensorflow:serving:runtime_latency_bucket{{model_name="dr_grader",{TFSERVING}}}[$__rate_interval]))) / 1e6',
                        "session run",
                    ),
                ),
                "s",
                source="external",
            ),
            PanelSpec(
                "Batching queue latency p95",
                (
                    Query(
                        f"histogram_quantile(0.95, sum by (le) (rate(:tensorflow:serving:batching_session:queuing_latency_bucket{{{TFSERVING}}}[$__rate_interval]))) / 1e6",
                        "queue",
                    ),
                ),
                "s",
                source="external",
            ),
            PanelSpec(
                "Model warmup time",
                (
                    Query(
                        f"max by (model_path, status) (:tensorflow:serving:model_warmup_latency_sum{{{TFSERVING}}} / clamp_min(:tensorflow:serving:model_warmup_latency_count{{{TFSERVING}}}, 1)) / 1e6",
                        "{{model_path}} {{status}}",
                    ),
                ),
                "s",
                source="external",
                kind="stat",
            ),
        ),
    ),
    DashboardSpec(
        uid="drg-capacity",
        title="DR grading: capacity",
        description="Replicas against what the HPAs want, and load per gateway pod.",
        panels=(
            PanelSpec(
                "Gateway pods scraped",
                (Query(f"count(up{{{GATEWAY}}} == 1)", "pods up"),),
                description="Targets of the gateway PodMonitor scraped now. Alerts: "
                "DRGGatewayDown, DRGGatewayAbsent.",
            ),
            PanelSpec(
                "TF Serving pods scraped",
                (Query(f"count(up{{{TFSERVING}}} == 1)", "pods up"),),
                source="external",
                description="Targets of the tfserving PodMonitor scraped now. Alerts: "
                "DRGTFServingDown, DRGTFServingTargetDown.",
            ),
            PanelSpec(
                "In-flight requests per pod",
                (
                    Query(f"avg(drg_http_requests_in_flight{{{GATEWAY}}})", "avg"),
                    Query(f"max(drg_http_requests_in_flight{{{GATEWAY}}})", "max"),
                ),
                description="The HPA's custom metric (target in k8s/).",
            ),
            PanelSpec(
                "Inference slots: running and queued",
                (
                    Query(f"sum(drg_inferences_running{{{GATEWAY}}})", "running"),
                    Query(f"sum(drg_inferences_queued{{{GATEWAY}}})", "queued"),
                ),
            ),
            PanelSpec(
                "Refused (queue full)",
                (
                    Query(
                        f"sum(rate(drg_rejected_total{{{GATEWAY}}}[$__rate_interval]))",
                        "503 overloaded",
                    ),
                ),
                "reqps",
            ),
            PanelSpec(
                "Replicas vs HPA desired and max",
                tuple(
                    Query(
                        f"max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_{series}{{{HPA}}})",
                        f"{{{{horizontalpodautoscaler}}}} {legend}",
                    )
                    for series, legend in (
                        ("status_current_replicas", "current"),
                        ("status_desired_replicas", "desired"),
                        ("spec_max_replicas", "max"),
                    )
                ),
                source="external",
                description="From kube-state-metrics. Alert: DRGHPAAtMaxReplicas (current >= max "
                "for 15 min).",
            ),
            PanelSpec(
                "Containers OOM-killed (restarts in 15 min)",
                (
                    Query(
                        f'sum by (pod, container) (increase(kube_pod_container_status_restarts_total{{{KUBE}}}[15m]) and on (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{{{KUBE},reason="OOMKilled"}} == 1))',
                        "{{pod}} {{container}}",
                    ),
                ),
                source="external",
                description="From kube-state-metrics. Alert: DRGContainerOOMKilled.",
            ),
            PanelSpec(
                "Gateway memory (RSS)",
                (Query(f"process_resident_memory_bytes{{{GATEWAY}}}", "{{instance}}"),),
                "bytes",
            ),
        ),
    ),
)
