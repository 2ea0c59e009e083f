"""The real linters and validators on the real files, each with a negative control proving the
tool (as invoked here) does fail on a defect."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import CRD_GROUPS, OVERLAYS, REPO_ROOT, find_tool, one, run

# Two (here three) Kubernetes minor versions: the oldest EKS standard-support version the
# manifests target (1.33: native preStop sleep, matchLabelKeys) up to the newest schema known.
K8S_VERSIONS = ("1.33.0", "1.35.0", "1.37.0")
DOCKERFILES = (
    REPO_ROOT / "Dockerfile.gateway",
    REPO_ROOT / "deploy" / "models.Dockerfile",
    REPO_ROOT / "deploy" / "training.Dockerfile",
)
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SHELL_SCRIPTS = (
    REPO_ROOT / "deploy" / "rollout.sh",
    REPO_ROOT / "deploy" / "check.sh",
    REPO_ROOT / "k8s" / "base" / "tfserving" / "sync-models.sh",
)


def kubernetes_validate(files: list[Path], version: str) -> Any:
    tool = find_tool("kubernetes-validate")
    return run([tool, "--strict", "--quiet", "-k", version, *map(str, files)])


def test_every_overlay_renders_the_expected_objects(rendered: dict[str, list[dict[str, Any]]]):
    for name, docs in rendered.items():
        kinds = {(d["kind"], d["metadata"]["name"].split("-")[0]) for d in docs}
        for expected in [
            ("Deployment", "gateway"),
            ("Deployment", "tfserving"),
            ("Service", "gateway"),
            ("Service", "tfserving"),
            ("HorizontalPodAutoscaler", "gateway"),
            ("HorizontalPodAutoscaler", "tfserving"),
            ("PodDisruptionBudget", "gateway"),
            ("NetworkPolicy", "default"),
        ]:
            assert expected in kinds, f"{name} lacks {expected}"
        assert all(
            d["metadata"].get("namespace") == "dr-grading" for d in docs if d["kind"] != "Namespace"
        ), f"{name}: an object outside the dr-grading namespace"
    for name in ("eks", "eks-gpu"):
        assert {d["kind"] for d in rendered[name]} >= {"Ingress", "PodMonitor"}
    assert one(rendered["local"], "Secret", "gateway-api-keys")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_validate_strict(rendered_dir: Path, version: str):
    files = [rendered_dir / "builtin" / f"{name}.yaml" for name in OVERLAYS]
    result = kubernetes_validate(files, version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_rejects_a_broken_manifest(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
):
    deployment = copy.deepcopy(one(rendered["eks"], "Deployment", "gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = (
        "/readyz"  # a typo --strict must catch
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = kubernetes_validate([broken], K8S_VERSIONS[0])
    assert result.returncode != 0
    assert "paht" in result.stdout + result.stderr


# kubernetes-validate has no schemas for CRDs. The PodMonitor fields used here, from
# prometheus-operator's API reference (monitoring.coreos.com/v1 PodMonitorSpec / PodMetricsEndpoint);
# unknown fields are refused, like kubectl's strict field validation would.
PODMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "matchExpressions": {"type": "array"},
                    },
                },
                "namespaceSelector": {"type": "object"},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "jobLabel": {"type": "string"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}


def test_prometheus_operator_objects_follow_the_crd_fields(
    rendered: dict[str, list[dict[str, Any]]],
):
    crds = [
        d for name in OVERLAYS for d in rendered[name] if d["apiVersion"].startswith(CRD_GROUPS)
    ]
    assert crds, "the eks overlays should ship PodMonitors"
    for doc in crds:
        assert doc["kind"] == "PodMonitor", f"no schema here for {doc['kind']}"
        jsonschema.validate(doc, PODMONITOR_SCHEMA)
    broken = copy.deepcopy(crds[0])
    broken["spec"]["podMetricsEndpoints"][0]["targetPort"] = (
        "http"  # not a PodMetricsEndpoint field
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PODMONITOR_SCHEMA)


def hadolint(files: list[Path]) -> list[dict[str, Any]]:
    result = run([find_tool("hadolint"), "--format", "json", *map(str, files)])
    findings = json.loads(result.stdout or "[]")
    assert isinstance(findings, list)
    return findings


def test_hadolint_finds_nothing():
    assert hadolint(list(DOCKERFILES)) == []


def test_hadolint_flags_a_sloppy_dockerfile(tmp_path: Path):
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text(
        "FROM python\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n"
    )
    codes = {finding["code"] for finding in hadolint([sloppy])}
    assert {"DL3006", "DL3008"} <= codes


def actionlint(*paths: Path) -> Any:
    tool = find_tool("actionlint")
    shellcheck = find_tool("shellcheck")
    return run([tool, "-no-color", "-shellcheck", shellcheck, *map(str, paths)], cwd=REPO_ROOT)


def test_actionlint_with_shellcheck_finds_nothing():
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "release.yml", "model-release.yml"}
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_flags_a_bad_workflow(tmp_path: Path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.head_commit.message }} $UNQUOTED\n"
        "      - uses: actions/checkout@v4\n        with:\n          not-an-input: 1\n"
    )
    result = actionlint(bad)
    assert result.returncode != 0
    assert "SC2086" in result.stdout  # shellcheck ran inside actionlint
    assert "not-an-input" in result.stdout or "untrusted" in result.stdout


def test_shellcheck_finds_nothing():
    result = run([find_tool("shellcheck"), *map(str, SHELL_SCRIPTS)])
    assert result.returncode == 0, result.stdout


# Each justified inline where it is skipped (annotation / comment); see docs/deploy.md, "Checks".
ALLOWED_SKIPS = {
    "kubernetes": {"CKV_K8S_43", "CKV_K8S_15"},  # digest pinned at release; IfNotPresent
    "dockerfile": {"CKV_DOCKER_7", "CKV_DOCKER_2"},  # ARG-based FROM; data-only model image
    "github_actions": {"CKV_GHA_7"},  # model-release's inputs name the artifact, not the build
}


@pytest.fixture(scope="session")
def checkov_results(rendered_dir: Path) -> dict[str, dict[str, Any]]:
    """checkov once per framework: rendered manifests, Dockerfiles, workflows."""
    checkov = find_tool("checkov", env_var="CHECKOV")
    targets = {
        "kubernetes": ["--directory", str(rendered_dir), "--skip-path", "builtin"],
        "dockerfile": [arg for f in DOCKERFILES for arg in ("--file", str(f))],
        "github_actions": ["--directory", str(WORKFLOWS)],
    }
    results = {}
    for framework, target in targets.items():
        result = run(
            [
                checkov,
                "--skip-download",
                "--output",
                "json",
                "--framework",
                framework,
                *target,
            ]
        )
        data = json.loads(result.stdout)
        reports = data if isinstance(data, list) else [data]
        results[framework] = {
            "failed": [c for r in reports for c in r["results"]["failed_checks"]],
            "skipped": [c for r in reports for c in r["results"]["skipped_checks"]],
            "passed": sum(r["summary"]["passed"] for r in reports),
        }
    return results


@pytest.mark.slow  # checkov's three scans take ~35 s together on 2 cores
@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile", "github_actions"])
def test_checkov_no_failed_checks_and_every_skip_justified(
    checkov_results: dict[str, dict[str, Any]], framework: str
):
    result = checkov_results[framework]
    failed = [(c["check_id"], c["resource"], c.get("file_path")) for c in result["failed"]]
    assert failed == []
    assert result["passed"] > 50, "checkov ran (almost) no checks: wrong target?"
    for check in result["skipped"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) >= 20, f"{check['check_id']} skipped without a reason"
    # A new skip must be argued for here too, not only inline.
    assert {c["check_id"] for c in result["skipped"]} <= ALLOWED_SKIPS[framework]


def test_checkov_fails_an_insecure_pod(tmp_path: Path):
    checkov = find_tool("checkov", env_var="CHECKOV")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "x"},
        "spec": {
            "containers": [{"name": "c", "image": "nginx", "securityContext": {"privileged": True}}]
        },
    }
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    result = run(
        [
            checkov,
            "--quiet",
            "--skip-download",
            "--output",
            "json",
            "--framework",
            "kubernetes",
            "--directory",
            str(tmp_path),
        ]
    )
    failed = {c["check_id"] for c in json.loads(result.stdout)["results"]["failed_checks"]}
    assert "CKV_K8S_16" in failed  # privileged container
