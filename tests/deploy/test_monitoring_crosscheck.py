"""The monitoring objects agree with each other as rendered: the job labels the PodMonitors
produce (through a real Prometheus running the operator's relabelings) are the ones the alert
rules, the promtool tests and the dashboards select on; the PrometheusRule and the dashboard
ConfigMaps carry the labels the cluster's kube-prometheus-stack selects them by."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.processes import free_port
from observability.build import (
    CLUSTER_VALUES,
    GATEWAY_JOB,
    HPAS,
    NAMESPACE,
    TFSERVING_JOB,
    panel_sources,
)
from tests.deploy.conftest import REPO_ROOT, objects, one, render_overlay
from tests.support.podmonitor import scrape_configs
from tests.support.prometheus import active_targets, running_prometheus

RULES = REPO_ROOT / "observability" / "prometheus"
RULE_TESTS = sorted((RULES / "tests").glob("*_test.yml"))
MONITORED = ("eks", "eks-gpu")  # the overlays with the monitoring component
EXPECTED_JOBS = {"gateway": GATEWAY_JOB, "tfserving": TFSERVING_JOB}
"""PodMonitor name -> the job its targets must get."""


def produced_job(podmonitor: dict[str, Any]) -> str:
    """The job label of the PodMonitor's targets: the operator's "<namespace>/<name>", then its
    replace relabelings on ``job`` without source labels (the only kind used here)."""
    spec = podmonitor["spec"]
    assert "jobLabel" not in spec, "jobLabel would take the job from a pod label"
    job = f"{podmonitor['metadata']['namespace']}/{podmonitor['metadata']['name']}"
    for endpoint in spec["podMetricsEndpoints"]:
        for rule in endpoint.get("relabelings", []):
            if rule.get("targetLabel") != "job":
                continue
            assert not rule.get("sourceLabels") and rule.get("action", "replace") == "replace"
            job = rule["replacement"]
    return job


def rule_exprs() -> list[str]:
    exprs = []
    for name in ("recording_rules.yml", "alerts.yml"):
        for group in yaml.safe_load((RULES / name).read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def matcher_values(label: str, exprs: list[str]) -> set[str]:
    """Every value ``label`` is matched against with = or =~ in the expressions."""
    found = set()
    for expr in exprs:
        for value in re.findall(rf'\b{label}=~?"([^"]*)"', expr):
            found |= set(value.split("|"))
    return found


@pytest.mark.parametrize("overlay", MONITORED)
def test_podmonitor_jobs_are_the_ones_rules_and_dashboards_select(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    podmonitors = {d["metadata"]["name"]: d for d in objects(rendered[overlay], "PodMonitor")}
    assert set(podmonitors) == set(EXPECTED_JOBS)
    jobs = {name: produced_job(pm) for name, pm in podmonitors.items()}
    assert jobs == EXPECTED_JOBS
    dashboards = [expr for _, _, _, expr in panel_sources()]
    for where, exprs in (("rules", rule_exprs()), ("dashboards", dashboards)):
        used = matcher_values("job", exprs)
        assert used == set(jobs.values()), f"{where} select jobs {used}, PodMonitors give {jobs}"
        assert matcher_values("namespace", exprs) == {NAMESPACE}, where
    hpas = {d["metadata"]["name"] for d in objects(rendered[overlay], "HorizontalPodAutoscaler")}
    assert set(HPAS) == hpas
    assert matcher_values("horizontalpodautoscaler", dashboards) == hpas
    assert {d["metadata"]["namespace"] for d in podmonitors.values()} == {NAMESPACE}


def test_the_default_job_label_would_not_match(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Negative control: without the relabelings the operator's job is "<namespace>/<name>"."""
    podmonitor = copy.deepcopy(one(rendered["eks"], "PodMonitor", "gateway"))
    for endpoint in podmonitor["spec"]["podMetricsEndpoints"]:
        endpoint.pop("relabelings", None)
    assert produced_job(podmonitor) == "dr-grading/gateway" != GATEWAY_JOB


def rule_test_series(metric: str) -> list[dict[str, str]]:
    """Label sets of the promtool tests' input series of ``metric``."""
    found = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                match = re.fullmatch(rf"{metric}\{{(.*)\}}", series["series"])
                if match:
                    found.append(dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))))
    return found


def test_real_prometheus_gives_targets_the_labels_the_rule_tests_use(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Prometheus runs the operator's relabelings of the rendered PodMonitors (with and without
    their own relabelings); the target labels decide which promtool series are realistic."""
    docs = rendered["eks"]
    address = f"127.0.0.1:{free_port()}"  # nothing listens: only the labels matter here
    configs = []
    for name in EXPECTED_JOBS:
        podmonitor = one(docs, "PodMonitor", name)
        deployment = one(docs, "Deployment", name)
        configs += scrape_configs(podmonitor, deployment, address, interval="1s")
        before = copy.deepcopy(podmonitor)
        for endpoint in before["spec"]["podMetricsEndpoints"]:
            endpoint.pop("relabelings", None)
        configs += scrape_configs(
            before, deployment, address, interval="1s", job_name_prefix="before-fix"
        )
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": configs}
    with running_prometheus(config, tmp_path) as url:
        targets = active_targets(url, count=len(configs))
    by_pool = {t["scrapePool"]: t["labels"] for t in targets}
    assert len(by_pool) == len(configs), by_pool
    for name, job in EXPECTED_JOBS.items():
        labels = by_pool[f"podMonitor/{NAMESPACE}/{name}/0"]
        assert labels["job"] == job
        assert by_pool[f"before-fix/{NAMESPACE}/{name}/0"]["job"] == f"{NAMESPACE}/{name}"
        assert labels["namespace"] == NAMESPACE and labels["instance"] == address
        series = [s for s in rule_test_series("up") if s.get("job") == job]
        assert series, f"no promtool test feeds up{{job={job!r}}}"
        for labelset in series:
            assert set(labelset) == set(labels), (job, sorted(labelset), sorted(labels))
            for key in ("namespace", "container", "endpoint"):
                assert labelset[key] == labels[key], (job, key)
    gateway = by_pool[f"podMonitor/{NAMESPACE}/gateway/0"]
    assert gateway["track"] == "stable"  # podTargetLabels (canary_watch.py selects on it)
    drg_series = [s for s in rule_test_series(r"drg_\w+") if s.get("job") == GATEWAY_JOB]
    assert drg_series and all(set(gateway) <= set(s) for s in drg_series)


def render_observability(kubectl: str) -> list[dict[str, Any]]:
    return render_overlay(kubectl, REPO_ROOT / "observability")


def test_prometheus_rule_and_dashboards_carry_the_cluster_selectors(kubectl: str) -> None:
    values = yaml.safe_load(CLUSTER_VALUES.read_text())
    spec = values["prometheus"]["prometheusSpec"]
    docs = render_observability(kubectl)
    rule = one(docs, "PrometheusRule", "dr-grading")
    selector = spec["ruleSelector"]["matchLabels"]
    assert "release" in selector, "kube-prometheus-stack's default ruleSelector is on release"
    assert selector.items() <= rule["metadata"]["labels"].items()
    assert spec.get("ruleNamespaceSelector") == {}  # any namespace, dr-grading included
    # PodMonitors carry no release label: the podMonitorSelector must not ask for one.
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert "podMonitorSelector" not in spec and spec.get("podMonitorNamespaceSelector") == {}
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    configmap = one(docs, "ConfigMap", "drg-grafana-dashboards")
    assert configmap["metadata"]["labels"][sidecar["label"]] == str(sidecar["labelValue"])
    assert sidecar["enabled"] is True and sidecar["searchNamespace"] == "ALL"
    assert {d["metadata"]["namespace"] for d in docs} == {NAMESPACE}
    # prometheus-adapter (the HPA metrics) queries the Prometheus this chart installs.
    adapter = yaml.safe_load((CLUSTER_VALUES.parent / "prometheus-adapter-values.yaml").read_text())
    assert adapter["prometheus"]["url"] == "http://prometheus-operated.monitoring.svc"
