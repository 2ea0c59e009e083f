"""A real Prometheus scrapes the running gateway (local backend, tiny model) during a mixed
load; every dashboard query and every rule expression is then evaluated through its HTTP API.

The scrape config is the one prometheus-operator generates from the rendered eks overlay's
gateway PodMonitor (tests/support/podmonitor.py), so the series carry the job, namespace, pod,
container, endpoint and track labels they get in the cluster, and /metrics is read from the
separate metrics port as there.

There is no TF Serving here, so its panels (and the kube-state-metrics ones) are only checked to
evaluate without error; gateway and model panels must return data (no dead panels).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.processes import GatewayProcess, free_port
from observability.build import GATEWAY_JOB, NAMESPACE, panel_sources
from synthetic import encode_jpeg, encode_png, synthesize_fundus, synthesize_non_fundus
from tests.deploy.conftest import REPO_ROOT, find_tool, one, render_overlay
from tests.support.podmonitor import scrape_configs
from tests.support.prometheus import prometheus_binary, running_prometheus

RULES = Path(__file__).resolve().parents[2] / "observability" / "prometheus"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(
    model_root: Path, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Gateway, local backend on the tiny model, auth off (loopback demo settings), /metrics
    on its own port as in the cluster."""
    process = GatewayProcess(
        {
            "DRG_BACKEND": "local",
            "DRG_MODEL_DIR": str(model_root),
            "DRG_AUTH": "disabled",
            "DRG_ENVIRONMENT": "development",
            "DRG_READINESS_CACHE_S": "0",
            "DRG_METRICS_PORT": str(free_port()),
        },
        lean_protos=Path("/nonexistent"),
        log_path=tmp_path_factory.mktemp("gw") / "gateway.log",
    ).start(timeout_s=180)
    process.wait_ready(timeout_s=120)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def prometheus(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on 127.0.0.1 scraping the gateway every second the way the operator scrapes
    a gateway pod (the rendered PodMonitor's relabelings), with our rule files."""
    prometheus_binary()
    docs = render_overlay(find_tool("kubectl"), REPO_ROOT / "k8s" / "overlays" / "eks")
    workdir = tmp_path_factory.mktemp("prometheus")
    for name in ("recording_rules.yml", "alerts.yml"):
        shutil.copy(RULES / name, workdir / name)
    metrics = f"127.0.0.1:{gateway.env['DRG_METRICS_PORT']}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["recording_rules.yml", "alerts.yml"],
        "scrape_configs": scrape_configs(
            one(docs, "PodMonitor", "gateway"),
            one(docs, "Deployment", "gateway"),
            metrics,
            interval="1s",
        ),
    }
    with running_prometheus(config, workdir) as url:
        yield url


def drive_mixed_load(gateway: GatewayProcess, seconds: float) -> dict[int, int]:
    """Good, ungradable and bad requests for ``seconds``; returns counts by status."""
    good = [encode_jpeg(synthesize_fundus(g, width=1000, height=750, seed=g)) for g in range(5)]
    ungradable = encode_png(synthesize_non_fundus("document", seed=1))
    blurred = encode_jpeg(synthesize_fundus(1, width=1000, height=750, seed=9, blur_sigma=12))
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    index = 0
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        while time.monotonic() < deadline:
            for body in (
                good[index % 5],
                ungradable,
                blurred,
                b"not an image",
                good[(index + 2) % 5][:900],
            ):
                status = client.post("/v1/grade", files={"image": body}).status_code
                statuses[status] = statuses.get(status, 0) + 1
            exam = [
                ("left", ("l0.jpg", good[index % 5], "image/jpeg")),
                ("left", ("l1.jpg", good[(index + 1) % 5], "image/jpeg")),
                ("right", ("r0.jpg", blurred, "image/jpeg")),
            ]
            client.post("/v1/exams", files=exam)
            client.get("/readyz")
            index += 1
    return statuses


def query(prometheus: str, expr: str) -> list[object]:
    response = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[object] = body["data"]["result"]
    return result


def test_dashboards_and_rules_against_real_prometheus(
    gateway: GatewayProcess, prometheus: str
) -> None:
    statuses = drive_mixed_load(gateway, seconds=12)
    assert statuses.get(200, 0) > 0 and any(400 <= s < 500 for s in statuses)
    time.sleep(3)  # two more scrapes after the load
    targets = httpx.get(prometheus + "/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    labels = targets[0]["labels"]
    assert (labels["job"], labels["namespace"], labels["track"]) == (
        GATEWAY_JOB,
        NAMESPACE,
        "stable",
    )

    dead = []
    for uid, title, source, expr in panel_sources():
        promql = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
        result = query(prometheus, promql)
        if source == "gateway" and not result:
            dead.append(f"{uid} / {title}: {promql}")
    assert not dead, "panels without data:\n" + "\n".join(dead)

    rules = httpx.get(prometheus + "/api/v1/rules").json()["data"]["groups"]
    loaded = [rule for group in rules for rule in group["rules"]]
    expected = sum(
        len(g["rules"])
        for f in ("recording_rules.yml", "alerts.yml")
        for g in yaml.safe_load((RULES / f).read_text())["groups"]
    )
    assert len(loaded) == expected
    unhealthy = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not unhealthy
    for rule in loaded:
        query(prometheus, rule["query"])
    # The recording rules produce data from the live gateway.
    assert query(prometheus, "drg:http_requests:rate5m")
    assert query(prometheus, "route:drg_http_requests:rate5m")
