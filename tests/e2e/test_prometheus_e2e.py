"""A real Prometheus scrapes the running gateway (local backend, tiny model) during a mixed
load; every dashboard query and every rule expression is then evaluated through its HTTP API.

There is no TF Serving here, so its panels (and the kube-state-metrics ones) are only checked to
evaluate without error; gateway and model panels must return data (no dead panels).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from fundus.synthetic import encode_jpeg, encode_png, synthesize_fundus, synthesize_non_fundus
from observability.build import panel_sources
from tests.support.processes import GatewayProcess, free_port

RULES = Path(__file__).resolve().parents[2] / "observability" / "prometheus"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(
    model_root: Path, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Gateway, local backend on the tiny model, auth off (loopback demo settings)."""
    process = GatewayProcess(
        {
            "DRG_BACKEND": "local",
            "DRG_MODEL_DIR": str(model_root),
            "DRG_AUTH": "disabled",
            "DRG_ENVIRONMENT": "development",
            "DRG_READINESS_CACHE_S": "0",
        },
        lean_protos=Path("/nonexistent"),
        log_path=tmp_path_factory.mktemp("gw") / "gateway.log",
    ).start(timeout_s=180)
    process.wait_ready(timeout_s=120)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def prometheus(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on 127.0.0.1 scraping the gateway every second, with our rule files."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
    workdir = tmp_path_factory.mktemp("prometheus")
    for name in ("recording_rules.yml", "alerts.yml"):
        shutil.copy(RULES / name, workdir / name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["recording_rules.yml", "alerts.yml"],
        "scrape_configs": [
            {
                "job_name": "dr-gateway",
                "static_configs": [{"targets": [gateway.url.removeprefix("http://")]}],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise TimeoutError("prometheus did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


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
            client.post("/v1/exams", files={"left": good[index % 5], "right": blurred})
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
