"""Generate the Grafana dashboards and the Kubernetes objects that ship them and the rules.

    python -m observability.build          # write the files
    python -m observability.build --check  # exit 1 if the committed files are stale

The dashboards (observability/dashboards.py) are rendered to Grafana dashboard JSON with the
datasource as a variable; the rules (prometheus/*.yml) become one PrometheusRule labelled for
the cluster's ruleSelector (k8s/cluster/kube-prometheus-stack-values.yaml).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from observability.dashboards import (
    DASHBOARD_SPECS,
    GATEWAY_JOB,
    HPAS,
    NAMESPACE,
    TFSERVING_JOB,
    DashboardSpec,
    PanelSpec,
)

__all__ = ["DASHBOARDS", "GATEWAY_JOB", "HPAS", "NAMESPACE", "TFSERVING_JOB", "main"]

ROOT = Path(__file__).resolve().parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
K8S = ROOT / "k8s"
CLUSTER_VALUES = ROOT.parent / "k8s" / "cluster" / "kube-prometheus-stack-values.yaml"
"""Helm values of the cluster's kube-prometheus-stack: the rule and dashboard selectors."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


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


def cluster_values() -> dict[str, Any]:
    """The kube-prometheus-stack Helm values of k8s/cluster (the selectors live there)."""
    values: dict[str, Any] = yaml.safe_load(CLUSTER_VALUES.read_text())
    return values


def rule_selector_labels() -> dict[str, str]:
    """Labels the cluster's Prometheus selects PrometheusRules by (its ruleSelector)."""
    labels: dict[str, str] = cluster_values()["prometheus"]["prometheusSpec"]["ruleSelector"][
        "matchLabels"
    ]
    return labels


def dashboard_labels() -> dict[str, str]:
    """The label the Grafana sidecar loads dashboard ConfigMaps by."""
    sidecar = cluster_values()["grafana"]["sidecar"]["dashboards"]
    return {str(sidecar["label"]): str(sidecar["labelValue"])}


def prometheus_rule() -> dict[str, Any]:
    """A prometheus-operator PrometheusRule holding both rule files (one rule file for
    Prometheus, so group names must be unique across them), labelled for the ruleSelector."""
    groups = []
    for name in ("recording_rules.yml", "alerts.yml"):
        groups += yaml.safe_load((ROOT / "prometheus" / name).read_text())["groups"]
    names = [group["name"] for group in groups]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"rule group names repeated across the rule files: {duplicates}")
    labels = {"app.kubernetes.io/part-of": "dr-grading", **rule_selector_labels()}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "dr-grading", "labels": labels},
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
        "namespace": NAMESPACE,
        "resources": ["k8s/prometheusrule.yaml"],
        "generatorOptions": {"labels": dashboard_labels(), "disableNameSuffixHash": True},
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
