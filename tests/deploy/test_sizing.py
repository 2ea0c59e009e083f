"""bench.sizing: TF Serving settings derived from measured B3 pass costs, and the k8s files,
gateway settings and release workflow cross-checked against that derivation."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from google.protobuf import text_format

from bench.sizing import Cell, Measurement, batch_seconds, derive, load_measurement
from tests.deploy.conftest import REPO_ROOT, container, objects, one
from tests.deploy.test_crosschecks import BatchingParameters, flags, mounted_file, pod_env

GIB = 2**30


def measurement(cost: dict[tuple[int, int], float], peak: float = 0.5 * GIB) -> Measurement:
    """A synthetic measurement: seconds per forward for (pass batch, threads)."""
    cells = tuple(
        Cell(batch, threads, seconds, int(peak * batch / 4))
        for (batch, threads), seconds in cost.items()
    )
    return Measurement(
        cells=cells, folds=5, views=2, input_size=512, weights_bytes=43_000_000,
        runtime_rss_bytes=int(0.75 * GIB), measured_cpus=2,
    )  # fmt: skip


LINEAR = {(b, 1): 0.17 * b for b in (1, 2, 4, 8)}


def test_threads_that_do_not_scale_give_more_batch_threads():
    sizing = derive(measurement({**LINEAR, **{(b, 2): 0.17 * b for b in (1, 2, 4, 8)}}))
    assert (sizing.threads_per_batch, sizing.num_batch_threads) == (1, 4)
    assert sizing.intra_op_parallelism == 4 and sizing.inter_op_parallelism == 4


def test_threads_that_scale_buy_latency_at_the_same_throughput():
    sizing = derive(measurement({**LINEAR, **{(b, 2): 0.085 * b for b in (1, 2, 4, 8)}}))
    assert (sizing.threads_per_batch, sizing.num_batch_threads) == (2, 2)
    assert sizing.num_batch_threads * sizing.threads_per_batch == sizing.node_cpus


def test_batch_size_follows_the_cost_per_image_never_below_an_exam():
    # CPU-like: bigger batches are not cheaper per image -> the exam's 2, never padded from 1.
    cpu = derive(measurement(LINEAR))
    assert cpu.max_batch_size == 2 and cpu.allowed_batch_sizes == (1, 2)
    # GPU-like: the cost per image halves with each doubling -> the largest batch.
    gpu = derive(measurement({(b, 1): 0.1 * b**0.3 for b in (1, 2, 4, 8, 16)}))
    assert gpu.max_batch_size == 8 and gpu.allowed_batch_sizes == (1, 2, 4, 8)
    # Batch 4 within 5 % of batch 8's cost per image: the smaller (lower latency) wins.
    near = derive(measurement({(1, 1): 1.0, (2, 1): 1.2, (4, 1): 1.3, (8, 1): 2.5, (16, 1): 4.9}))
    assert near.max_batch_size == 4


def test_timeout_memory_hpa_and_slos_follow_from_the_batch_time():
    m = measurement(LINEAR)
    sizing = derive(m)
    full = batch_seconds(m, 2, 1)
    assert full == pytest.approx(5 * 0.17 * 4)  # 5 folds x one pass over 2 images x 2 views
    # Running batches + max_enqueued_batches (one round of num_batch_threads), 1.5 x margin.
    assert sizing.max_enqueued_batches == sizing.num_batch_threads
    assert sizing.backend_timeout_s >= 1.5 * 2 * full
    assert sizing.backend_timeout_s < 1.5 * 2 * full + 1
    expected = 1.25 * (0.75 * GIB + 2 * 5 * 43_000_000 + 4 * 0.5 * GIB) / GIB
    assert expected <= sizing.memory_gib < expected + 0.5
    assert sizing.hpa_pending_per_pod == 4  # 4 batch threads x 2 images / 2 per exam
    assert sizing.slo_p99_s["/v1/exams"] > sizing.slo_p99_s["/v1/grade"] >= full


def test_old_settings_did_not_fit_the_measured_model():
    # The finding: a batch of 8 images of the 5-fold hflip ensemble vs the old 10 s timeout.
    m = load_measurement()
    assert m.passes_per_image == 10
    assert batch_seconds(m, 8, 1) > 10.0
    assert derive(m).max_batch_size < 8


# --- the committed files agree with the derivation from the committed measurement ------------


@pytest.fixture(scope="module")
def sizing() -> Any:
    return derive(load_measurement(), node_cpus=4)


def test_measurement_is_of_the_production_config():
    m = load_measurement()
    config = yaml.safe_load((REPO_ROOT / "model" / "configs" / "b3_512_5fold.yaml").read_text())
    assert m.folds == config["folds"]["n_splits"] == 5
    assert m.views == {"none": 1, "hflip": 2, "flip4": 4}[config["eval"]["tta"]]
    assert m.input_size == config["preprocess"]["size"] == 512
    assert {c.batch for c in m.cells} >= {1, 2, 4, 8} and {c.threads for c in m.cells} >= {1, 2}


@pytest.mark.parametrize("overlay", ["local", "eks"])
def test_cpu_tfserving_matches_the_derivation(rendered, sizing, overlay):
    docs = rendered[overlay]
    tfserving = one(docs, "Deployment", "tfserving")
    params = text_format.Parse(
        mounted_file(tfserving, "tfserving", flags(tfserving)["batching_parameters_file"], docs),
        BatchingParameters(),
    )
    assert params.num_batch_threads.value == sizing.num_batch_threads
    assert params.max_batch_size.value == sizing.max_batch_size
    assert tuple(params.allowed_batch_sizes) == sizing.allowed_batch_sizes
    assert params.max_enqueued_batches.value == sizing.max_enqueued_batches
    assert params.batch_timeout_micros.value == sizing.batch_timeout_micros
    given = flags(tfserving)
    assert int(given["tensorflow_intra_op_parallelism"]) == sizing.intra_op_parallelism
    assert int(given["tensorflow_inter_op_parallelism"]) == sizing.inter_op_parallelism
    limits = container(tfserving, "tfserving")["resources"]["limits"]
    assert limits["cpu"] == str(sizing.node_cpus)
    assert limits["memory"] == sizing.memory_quantity
    env = pod_env(docs, one(docs, "Deployment", "gateway"), "gateway")
    assert float(env["DRG_BACKEND_TIMEOUT_S"]) == sizing.backend_timeout_s
    assert float(env["DRG_REQUEST_TIMEOUT_S"]) > sizing.backend_timeout_s


def test_every_tfserving_pod_is_guaranteed_qos(rendered):
    for overlay in ("eks", "eks-gpu"):
        spec = one(rendered[overlay], "Deployment", "tfserving")["spec"]["template"]["spec"]
        for item in spec["containers"] + spec["initContainers"]:
            resources = item["resources"]
            assert resources["requests"] == resources["limits"], (overlay, item["name"])


def test_autoscaler_target_and_canary_latency_bound_match_the_derivation(rendered, sizing):
    hpa = one(rendered["eks"], "HorizontalPodAutoscaler", "tfserving")
    external = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert [e["target"]["averageValue"] for e in external] == [str(sizing.hpa_pending_per_pod)]
    workflow = (REPO_ROOT / ".github" / "workflows" / "model-release.yml").read_text()
    bound = re.findall(r"--max-p95-seconds (\S+)", workflow)
    assert [float(b) for b in bound] == [max(sizing.slo_p99_s.values())]
    assert objects(
        rendered["local"], "HorizontalPodAutoscaler"
    )  # local: CPU only, checked elsewhere


def test_latency_slos_of_the_gateway_and_the_alert_rules_match_the_derivation(sizing):
    """The per-route p99 targets: derived here, bucket bounds of the gateway's histogram, and
    the bounds the latency SLO recording rules read (one threshold per route)."""
    from gateway.metrics import LATENCY_BUCKETS, LATENCY_SLO_S

    assert sizing.slo_p99_s == LATENCY_SLO_S
    assert set(LATENCY_SLO_S.values()) <= set(LATENCY_BUCKETS)
    rules = (REPO_ROOT / "observability" / "prometheus" / "recording_rules.yml").read_text()
    group = next(g for g in yaml.safe_load(rules)["groups"] if g["name"] == "drg-latency-slo")
    for rule in group["rules"]:
        bounds = re.findall(r'route="([^"]+)",le=~?"([0-9.]+)', rule["expr"])
        assert {route: float(le) for route, le in bounds} == LATENCY_SLO_S, rule["record"]


def test_the_bench_rederives_from_the_committed_figures():
    # `--derive-only` needs no TensorFlow: the step to repeat after a run on the real node.
    result = subprocess.run(
        [sys.executable, "-m", "bench.tfserving_sizing", "--derive-only"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "num_batch_threads = " in result.stdout
        and "passes per image = 5 folds x 2" in result.stdout
    )
