"""Generate the Grafana dashboards and the Kubernetes objects that ship them and the rules.

    python -m observability.build          # write the files
    python -m observability.build --check  # exit 1 if the committed files are stale

Dashboards are described compactly below (title, PromQL, unit, and which kind of data each
panel needs) and rendered to Grafana dashboard JSON with the datasource as a variable.
``source`` is what the end-to-end test checks: "gateway" panels must return data from a
running gateway; "events" panels show gateway series that exist only once something failed
(model-server errors) and "external" panels (TF Serving, kube-state-metrics) must evaluate
without error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
K8S = ROOT / "k8s"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


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


GATEWAY = 'job="dr-gateway"'
GRADING = 'route=~"/v1/grade|/v1/exams|/dicomweb/studies"'

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
                "5xx ratio",
                (
                    Query(
                        f'(sum(rate(drg_http_requests_total{{{GATEWAY},status=~"5.."}}[$__rate_interval])) or vector(0)) / clamp_min(sum(rate(drg_http_requests_total{{{GATEWAY}}}[$__rate_interval])), 1e-9)',
                        "5xx",
                    ),
                ),
                "percentunit",
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
                        'sum by (status) (rate(:tensorflow:serving:request_count{model_name="dr_grader"}[$__rate_interval]))',
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
                        'histogram_quantile(0.95, sum by (API, le) (rate(:tensorflow:serving:request_latency_bucket{model_name="dr_grader"}[$__rate_interval]))) / 1e6',
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
                        'histogram_quantile(0.95, sum by (le) (rate(:tensorflow:serving:runtime_latency_bucket{model_name="dr_grader"}[$__rate_interval]))) / 1e6',
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
                        "histogram_quantile(0.95, sum by (le) (rate(:tensorflow:serving:batching_session:queuing_latency_bucket[$__rate_interval]))) / 1e6",
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
                        "max by (model_path, status) (:tensorflow:serving:model_warmup_latency_sum / clamp_min(:tensorflow:serving:model_warmup_latency_count, 1)) / 1e6",
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
            PanelSpec("Gateway pods scraped", (Query(f"count(up{{{GATEWAY}}} == 1)", "pods up"),)),
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
                "Replicas vs HPA desired",
                (
                    Query(
                        'kube_horizontalpodautoscaler_status_current_replicas{horizontalpodautoscaler=~"dr-gateway|tfserving"}',
                        "{{horizontalpodautoscaler}} current",
                    ),
                    Query(
                        'kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler=~"dr-gateway|tfserving"}',
                        "{{horizontalpodautoscaler}} desired",
                    ),
                ),
                source="external",
                description="From kube-state-metrics.",
            ),
            PanelSpec(
                "Gateway memory (RSS)",
                (Query(f"process_resident_memory_bytes{{{GATEWAY}}}", "{{instance}}"),),
                "bytes",
            ),
        ),
    ),
)


def render_panel(spec: PanelSpec, panel_id: int, x: int, y: int) -> dict[str, Any]:
    """Grafana panel JSON."""
    custom: dict[str, Any] = {}
    if spec.kind == "timeseries":
        custom = {"drawStyle": "line", "fillOpacity": 20 if spec.stacked else 0, "lineWidth": 1}
        if spec.stacked:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    options: dict[str, Any] = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}
    }
    if spec.kind != "timeseries":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return {
        "id": panel_id,
        "type": spec.kind,
        "title": spec.title,
        "description": spec.description or f"Source: {spec.source} metrics.",
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": spec.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": spec.unit, "custom": custom}, "overrides": []},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": spec.kind == "timeseries",
                "instant": spec.kind != "timeseries",
            }
            for i, query in enumerate(spec.queries)
        ],
    }


def render_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    """Grafana dashboard JSON (schemaVersion 39), datasource chosen by a variable."""
    panels = []
    x = y = 0
    for index, panel in enumerate(spec.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(render_panel(panel, index, x, y))
        x += panel.width
    return {
        "uid": spec.uid,
        "title": spec.title,
        "description": spec.description,
        "tags": list(spec.tags),
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def panel_sources() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, source, expr) for every target: what the e2e test checks."""
    return [
        (dashboard.uid, panel.title, panel.source, query.expr)
        for dashboard in DASHBOARD_SPECS
        for panel in dashboard.panels
        for query in panel.queries
    ]


def prometheus_rule() -> dict[str, Any]:
    """A prometheus-operator PrometheusRule holding both rule files."""
    groups = []
    for name in ("recording_rules.yml", "alerts.yml"):
        groups += yaml.safe_load((ROOT / "prometheus" / name).read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "dr-grading", "labels": {"app.kubernetes.io/part-of": "dr-grading"}},
        "spec": {"groups": groups},
    }


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {
        DASHBOARDS / f"{spec.uid}.json": json.dumps(render_dashboard(spec), indent=2) + "\n"
        for spec in DASHBOARD_SPECS
    }
    header = "# Generated by `python -m observability.build` from prometheus/*.yml. Do not edit.\n"
    files[K8S / "prometheusrule.yaml"] = header + yaml.safe_dump(
        prometheus_rule(), sort_keys=False, width=100
    )
    names = sorted(f"{spec.uid}.json" for spec in DASHBOARD_SPECS)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["k8s/prometheusrule.yaml"],
        "generatorOptions": {"labels": {"grafana_dashboard": "1"}, "disableNameSuffixHash": True},
        "configMapGenerator": [
            {"name": "drg-grafana-dashboards", "files": [f"grafana/dashboards/{n}" for n in names]}
        ],
    }
    files[ROOT / "kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if stale:
        print("stale generated files (run python -m observability.build):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
