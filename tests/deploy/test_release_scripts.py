"""deploy/ scripts used by the workflows: models.config state, rendering with image digest and
model state, the canary watch (against a Prometheus API stand-in), rollout snapshots and
parallel waits (how the workflows call them: test_workflows.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy import canary_watch, models_config
from deploy.models_config import ConfigError, ReleaseState
from observability import dashboards
from tests.deploy.conftest import REPO_ROOT, container, one, run

DIGEST = "sha256:" + "ab" * 32
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dr-gateway"


# --- models.config --------------------------------------------------------------------------


def test_models_config_round_trip_and_release_pointer():
    for state in (ReleaseState(1, 1), ReleaseState(3, 4), ReleaseState(9, 2)):
        assert models_config.parse(models_config.build(state)) == state
        assert ReleaseState.from_json(state.to_json()) == state
    # The committed bootstrap state is exactly what the release tooling writes.
    committed = (REPO_ROOT / "k8s" / "base" / "tfserving" / "models.config").read_text()
    assert committed == models_config.build(ReleaseState(1, 1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'x' } ", "not a ModelServerConfig"),
        ('model_config_list { config { name: "other" } }', "exactly one model"),
        (
            'model_config_list { config { name: "dr_grader" base_path: "/models/dr_grader" '
            'model_platform: "tensorflow" model_version_policy { latest { num_versions: 1 } } } }',
            "specific",
        ),
        (
            'model_config_list { config { name: "dr_grader" base_path: "/models/dr_grader" '
            'model_platform: "tensorflow" model_version_policy { specific { versions: 2 } } '
            'version_labels { key: "stable" value: 2 } } }',
            "lacks ['canary']",
        ),
        (
            'model_config_list { config { name: "dr_grader" base_path: "/models/dr_grader" '
            'model_platform: "tensorflow" model_version_policy { specific { versions: 2 versions: 3 } } '
            'version_labels { key: "stable" value: 2 } version_labels { key: "canary" value: 2 } } }',
            "exactly the labelled versions",
        ),
        (
            'model_config_list { config { name: "dr_grader" base_path: "s3://b/dr_grader" '
            'model_platform: "tensorflow" } }',
            "local absolute path",
        ),
    ],
)
def test_models_config_refuses_what_would_break_serving(text: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        models_config.parse(text)


@pytest.mark.parametrize(
    "pointer", ['{"stable": 1}', '{"stable": 0, "canary": 1}', '{"stable": true, "canary": 1}']
)
def test_release_pointer_refuses_bad_state(pointer: str):
    with pytest.raises(ConfigError):
        ReleaseState.from_json(pointer)


# --- render ------------------------------------------------------------------------------------


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(REPO_ROOT / "deploy" / "render.py"), *args], cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def release_render(kubectl: str) -> dict[tuple[int, int], list[dict[str, Any]]]:
    out = {}
    for state in ((3, 3), (3, 4)):
        result = render(
            "--overlay",
            "eks",
            "--image",
            f"{ECR}@{DIGEST}",
            "--stable",
            str(state[0]),
            "--canary",
            str(state[1]),
        )
        assert result.returncode == 0, result.stderr
        out[state] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def test_release_render_pins_the_gateway_by_digest_and_carries_the_model_state(release_render):
    for (stable, canary), docs in release_render.items():
        for name in ("gateway", "gateway-canary"):
            assert container(one(docs, "Deployment", name), "gateway")["image"] == f"{ECR}@{DIGEST}"
        config = next(
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("tfserving-config-")
        )
        assert models_config.parse(config["data"]["models.config"]) == ReleaseState(stable, canary)
        assert "batching.config" in config["data"] and "monitoring.config" in config["data"]
        volumes = one(docs, "Deployment", "tfserving")["spec"]["template"]["spec"]["volumes"]
        assert {"name": config["metadata"]["name"]} == next(
            v["configMap"] for v in volumes if v["name"] == "config"
        )
    # A model state change renames the ConfigMap: the model servers roll, and can roll back.
    names = {
        state: next(
            d["metadata"]["name"]
            for d in docs
            if d["metadata"]["name"].startswith("tfserving-config-")
        )
        for state, docs in release_render.items()
    }
    assert names[(3, 3)] != names[(3, 4)]


def test_render_refuses_a_mutable_or_malformed_image():
    for image in ("dr-gateway", f"{ECR}@sha256:short", "UPPER/case:tag"):
        result = render("--overlay", "eks", "--image", image)
        assert result.returncode != 0 and "--image" in result.stderr


# --- canary watch against a Prometheus HTTP API stand-in ----------------------------------------


class FakePrometheus:
    """Answers /api/v1/query like Prometheus, from a function of the PromQL text."""

    def __init__(self, answer: Callable[[str], list[dict[str, Any]] | None]) -> None:
        self.answer = answer
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)["query"][0]
                outer.queries.append(query)
                result = outer.answer(query)
                body: dict[str, Any]
                if result is None:
                    body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
                    self.send_response(400)
                else:
                    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakePrometheus:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def scenario(
    canary: dict[str, Any], stable: dict[str, Any]
) -> Callable[[str], list[dict[str, Any]]]:
    """Series values per track; the PromQL decides which one is asked for."""

    def answer(query: str) -> list[dict[str, Any]]:
        values = canary if 'track="canary"' in query else stable
        if query.startswith("sum by (grade)"):
            return [
                {"metric": {"grade": str(g)}, "value": [0, str(n)]}
                for g, n in enumerate(values["grades"])
            ]
        if query.startswith("max by (version)"):
            return [{"metric": {"version": v}, "value": [0, "1"]} for v in values["versions"]]
        if query.startswith("histogram_quantile"):
            key = "p95"
        elif 'status=~"5.."' in query:
            key = "errors"
        else:
            key = "requests"
        return [{"metric": {}, "value": [0, str(values[key])]}] if values[key] is not None else []

    return answer


HEALTHY = {
    "requests": 200, "errors": 1, "p95": 0.8, "versions": ["7"], "grades": [125, 28, 31, 9, 11],
}  # fmt: skip
STABLE = {
    "requests": 2000, "errors": 10, "p95": 0.7, "versions": ["6"],
    "grades": [1200, 300, 300, 100, 100],
}  # fmt: skip


def watch(prometheus_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        [sys.executable, "-m", "deploy.canary_watch", "--prometheus", prometheus_url, "--duration", "0.3",
         "--interval", "0.1", "--expect-version", "7", *extra],
        cwd=REPO_ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("canary", "code", "reason"),
    [
        (HEALTHY, 0, "PROMOTE"),
        ({**HEALTHY, "errors": 20}, 1, "canary error rate 10.00%"),
        ({**HEALTHY, "p95": 4.2}, 1, "p95 latency 4.20 s"),
        ({**HEALTHY, "requests": 5, "errors": 0}, 1, "not enough evidence"),
        ({**HEALTHY, "versions": ["6", "7"]}, 1, "expected only 7"),
        ({**HEALTHY, "p95": None}, 0, "PROMOTE"),  # no histogram yet: p95 unknown, not a failure
        # No request fails, but the canary calls far more eyes referable than stable does.
        ({**HEALTHY, "grades": [60, 20, 80, 20, 20]}, 1, "canary grade mix differs"),
        ({**HEALTHY, "grades": [50, 10, 10, 3, 2]}, 1, "images graded by the canary (< 200)"),
    ],
)
def test_canary_watch_decides(canary: dict[str, Any], code: int, reason: str):
    with FakePrometheus(scenario(canary, STABLE)) as prometheus:
        result = watch(prometheus.url)
    assert result.returncode == code, result.stdout + result.stderr
    assert reason in result.stdout + result.stderr
    observations = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert observations and observations[0]["canary"]["requests"] == canary["requests"]


def test_grade_mix_statistics():
    # Same proportions: no distance, no evidence of a difference.
    assert canary_watch.grade_mix([10, 20, 30, 0, 0], [100, 200, 300, 0, 0]) == (0.0, 1.0)
    # 2x2 table [[30, 10], [10, 30]]: chi-square 20 with 1 df -> p = 7.7e-6; TV 0.5.
    tv, p = canary_watch.grade_mix([30, 10, 0, 0, 0], [10, 30, 0, 0, 0])
    assert tv == pytest.approx(0.5) and p == pytest.approx(7.744e-6, rel=1e-3)
    assert canary_watch.chi2_sf(9.4877, 4) == pytest.approx(0.05, rel=1e-3)
    limits = canary_watch.Limits(0.02, 2.0, 3.0, 20, min_graded=200)
    base = canary_watch.Observation(200, 0, 1.0, frozenset({"7"}))

    def obs(grades: list[float]) -> canary_watch.Observation:
        return canary_watch.Observation(200, 0, 1.0, frozenset({"7"}), tuple(grades))

    stable = obs([1200, 300, 300, 100, 100])
    # Material and significant -> rollback; significant but tiny (huge counts) -> no rollback.
    assert canary_watch.grade_verdict(obs([60, 20, 80, 20, 20]), stable, limits)
    assert not canary_watch.grade_verdict(
        obs([118_000, 31_000, 31_000, 10_000, 10_000]),
        obs([1_200_000, 300_000, 300_000, 100_000, 100_000]),
        limits,
    )
    # A big shift on a handful of images is not judged (min_graded) ...
    assert not canary_watch.grade_verdict(obs([2, 0, 5, 0, 0]), stable, limits)
    # ... and at the end that lack of evidence blocks the promotion.
    assert "not enough evidence" in (
        canary_watch.verdict(obs([2, 0, 5, 0, 0]), stable, limits, True) or ""
    )
    assert base.grades == (0.0,) * 5


def test_canary_watch_tolerates_a_bad_stable_period():
    # Stable itself at 8 % errors: a canary at 10 % is within 2x stable, so not the model's fault.
    with FakePrometheus(
        scenario({**HEALTHY, "errors": 20}, {**STABLE, "errors": 160})
    ) as prometheus:
        assert watch(prometheus.url).returncode == 0


def test_canary_watch_rolls_back_without_prometheus():
    with FakePrometheus(lambda query: None) as prometheus:
        result = watch(prometheus.url)
    assert result.returncode == 3 and "Prometheus unusable" in result.stderr


def test_canary_queries_use_series_the_gateway_exports(gateway_metrics, rendered):
    families = {f.name: f for f in text_string_to_metric_families(gateway_metrics)}
    # prometheus_client names counters without _total and histograms without _bucket.
    exported = set(families) | {f"{n}_total" for n in families} | {f"{n}_bucket" for n in families}
    queries = canary_watch.queries("dr-grading", "canary", 300)
    for promql in queries.values():
        for metric in re.findall(r"\b(drg_[a-z_]+)\{", promql):
            assert metric in exported, metric
            base = re.sub(r"_(total|bucket)$", "", metric)
            sample_labels = {k for s in families[base].samples for k in s.labels}
            used = set(re.findall(r"(\w+)=~?\"", promql.split(metric, 1)[1].split("}", 1)[0]))
            # namespace and track are target labels Prometheus adds (the PodMonitor copies track).
            assert used - {"namespace", "track"} <= sample_labels | {"le"}, (metric, used)
    monitor = one(rendered["eks"], "PodMonitor", "gateway")
    assert "track" in monitor["spec"]["podTargetLabels"]
    routes = {
        s.labels["route"] for s in families["drg_http_requests"].samples if "route" in s.labels
    }
    grading = {r for r in routes if re.fullmatch(canary_watch.GRADING_ROUTES, r)}
    assert grading == set(), grading  # /livez and /v1/grading-scale are not grading
    for route in ("/v1/grade", "/v1/exams", "/dicomweb/studies"):
        assert re.fullmatch(canary_watch.GRADING_ROUTES, route)
    assert f'route=~"{canary_watch.GRADING_ROUTES}"' == dashboards.GRADING


# --- rollout.sh ---------------------------------------------------------------------------------


@pytest.fixture
def fake_kubectl(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A kubectl that reads revisions from files and logs every call."""
    state = tmp_path / "revisions"
    state.mkdir()
    log = tmp_path / "kubectl.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$3" = get ]; then cat "' + str(state) + '/$5" 2>/dev/null || exit 1; fi\n'
        'if [ "$3" = rollout ] && [ "$4" = status ]; then sleep "${FAKE_SLEEP:-0}";'
        ' [ "$5" = "deployment/${FAKE_FAIL:-none}" ] && exit 1; fi\n'
        "exit 0\n"
    )
    (bin_dir / "kubectl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NAMESPACE": "dr-grading"}
    yield env, state
    log.unlink(missing_ok=True)


def test_rollout_undo_goes_back_only_where_the_release_moved(fake_kubectl, tmp_path):
    env, state = fake_kubectl
    script = str(REPO_ROOT / "deploy" / "rollout.sh")
    for name, revision in (("gateway", "4"), ("gateway-canary", "4"), ("tfserving", "9")):
        (state / name).write_text(revision)
    snapshot = tmp_path / "before.txt"
    assert run([script, "snapshot", str(snapshot)], env=env).returncode == 0
    assert snapshot.read_text().split("\n")[:3] == ["gateway 4", "gateway-canary 4", "tfserving 9"]
    (state / "gateway").write_text("5")  # the release moved the gateways only
    (state / "gateway-canary").write_text("5")
    result = run([script, "undo", str(snapshot)], env=env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "kubectl.log").read_text()
    assert "rollout undo deployment/gateway --to-revision=4" in calls
    assert "rollout undo deployment/gateway-canary --to-revision=4" in calls
    assert "rollout undo deployment/tfserving" not in calls
    assert calls.count("rollout status") == 3


def test_rollout_waits_for_the_deployments_in_parallel(fake_kubectl, tmp_path):
    env, state = fake_kubectl
    for name in ("gateway", "gateway-canary", "tfserving"):
        (state / name).write_text("1")
    import time

    started = time.monotonic()
    result = run([str(REPO_ROOT / "deploy" / "rollout.sh"), "wait"], env={**env, "FAKE_SLEEP": "1"})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 2.5, f"three 1 s waits took {elapsed:.1f} s: sequential"
    failing = {**env, "FAKE_SLEEP": "0", "FAKE_FAIL": "gateway-canary"}
    assert run([str(REPO_ROOT / "deploy" / "rollout.sh"), "wait"], env=failing).returncode != 0


def test_render_records_the_source_revision_on_deployments_only(kubectl):
    sha = "0123456789abcdef0123456789abcdef01234567"
    result = render("--overlay", "eks", "--stable", "3", "--source-revision", sha)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        annotations = doc["metadata"].get("annotations") or {}
        assert (annotations.get("dr-grading.io/source-revision") == sha) == (
            doc["kind"] == "Deployment"
        )
        if doc["kind"] == "Deployment":  # not on the pod template: recording it rolls nothing
            template = doc["spec"]["template"]["metadata"].get("annotations") or {}
            assert "dr-grading.io/source-revision" not in template
    bad = render("--overlay", "eks", "--stable", "3", "--source-revision", "main")
    assert bad.returncode != 0 and "40-hex" in bad.stderr
