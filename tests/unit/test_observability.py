"""Prometheus rules (promtool), generated files, Grafana dashboard schema, and cross-checks
of every metric name against the gateway's real registry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from gateway.metrics import GatewayMetrics
from observability.build import DASHBOARDS, panel_sources
from observability.build import main as build_main

ROOT = Path(__file__).resolve().parents[2] / "observability"
RULE_FILES = [ROOT / "prometheus" / "recording_rules.yml", ROOT / "prometheus" / "alerts.yml"]
SCHEMA_DIR = ROOT / "schema"
EXTERNAL_PREFIXES = (":tensorflow:", "kube_", "up")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    return path


def test_rules_are_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_every_alert_fires_and_stays_silent_as_tested() -> None:
    tests = sorted((ROOT / "prometheus" / "tests").glob("*_test.yml"))
    done = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULE_FILES[1].read_text())["groups"]
        for rule in group["rules"]
    }
    tested = {m for path in tests for m in re.findall(r"alertname: (\w+)", path.read_text())}
    assert alerts <= tested, f"alerts without promtool tests: {sorted(alerts - tested)}"


def test_the_prometheus_rule_loads_as_one_rule_file(tmp_path: Path) -> None:
    """prometheus-operator writes a PrometheusRule as one rule file: Prometheus refuses it
    (and with it every alert) when a group name repeats across recording_rules and alerts."""
    rule = yaml.safe_load((ROOT / "k8s" / "prometheusrule.yaml").read_text())
    as_file = tmp_path / "dr-grading.yml"
    as_file.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run(
        [promtool(), "check", "rules", str(as_file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = sum(len(group["rules"]) for group in rule["spec"]["groups"])
    sources = sum(
        len(group["rules"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
    )
    assert loaded == sources


def test_every_alert_has_runbook_text() -> None:
    for group in yaml.safe_load(RULE_FILES[1].read_text())["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "ticket"}


def test_generated_files_are_up_to_date() -> None:
    assert build_main(["--check"]) == 0


def _gateway_metric_names() -> set[str]:
    """Every series name the gateway can expose (histograms: _bucket, _sum, _count too)."""
    text = generate_latest(GatewayMetrics().registry).decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)", text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        if kind == "counter":
            names.add(f"{name}_total")
    return names


def _names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    tokens = set(re.findall(r"[:a-zA-Z_][:a-zA-Z0-9_]*", without_ranges))
    return {
        t
        for t in tokens
        if t.startswith(("drg_", ":tensorflow:", "kube_", "process_")) or t == "up"
    }


def test_every_metric_used_exists_in_the_gateway() -> None:
    known = _gateway_metric_names()
    exprs = [expr for _, _, _, expr in panel_sources()]
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    used = set().union(*(_names_in(expr) for expr in exprs))
    own = {name for name in used if not name.startswith(EXTERNAL_PREFIXES)}
    assert own, "no gateway metrics found in the dashboards and rules"
    assert own <= known, f"unknown metrics: {sorted(own - known)}"


def test_dashboards_use_the_datasource_variable() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["templating"]["list"][0] == {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
        }
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"]


@pytest.fixture(scope="module")
def dashboard_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """JSON Schema of Grafana's Dashboard type, generated from the npm @grafana/schema types."""
    generator = SCHEMA_DIR / "node_modules" / ".bin" / "ts-json-schema-generator"
    types = (
        SCHEMA_DIR
        / "node_modules"
        / "@grafana"
        / "schema"
        / "dist"
        / "types"
        / "raw"
        / "dashboard"
        / "x"
        / "types.gen.d.ts"
    )
    if not generator.exists() or not types.exists():
        pytest.skip(
            "run `npm ci --prefix observability/schema` (.ci/run does) to validate dashboards"
        )
    out = tmp_path_factory.mktemp("schema") / "dashboard.schema.json"
    done = subprocess.run(
        [
            str(generator),
            "--path",
            str(types),
            "--type",
            "Dashboard",
            "--no-type-check",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    schema: dict[str, object] = json.loads(out.read_text())
    return schema


def test_dashboards_match_grafana_schema(dashboard_schema: dict[str, object]) -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(dashboard_schema)
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert len(paths) == 4
    for path in paths:
        errors = [
            f"{list(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(json.loads(path.read_text()))
        ]
        assert not errors, f"{path.name}: {errors[:5]}"


def test_schema_catches_a_broken_dashboard(dashboard_schema: dict[str, object]) -> None:
    import jsonschema

    broken = json.loads(next(DASHBOARDS.glob("*.json")).read_text())
    broken["panels"][0]["gridPos"] = {"h": 8, "w": 12}  # x and y missing
    broken["refrsh"] = "5s"  # typo
    assert len(list(jsonschema.Draft7Validator(dashboard_schema).iter_errors(broken))) >= 2
