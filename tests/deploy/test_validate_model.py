"""deploy/validate_model.py on toy SavedModels (one defect at a time) and on the real tiny export;
deploy/smoke_test.py against the real gateway in front of the TF Serving stand-in."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.auth import hash_key
from tests.deploy.conftest import REPO_ROOT, run

pytest.importorskip("tensorflow")

from deploy.validate_model import main, validate
from model.tfserving_batching import (
    BATCHING_CONFIGS,
    default_warmup_batch_sizes,
    load_batching_parameters,
)

SMOKE_KEY = "deploy-smoke-key"
# What the k8s TF Serving batching configs allow (model/tfserving_batching.py reads them).
SIZES = default_warmup_batch_sizes()
MAX_BATCH = min(load_batching_parameters(p).max_batch_size for p in BATCHING_CONFIGS)


def cli(*args: str) -> Any:
    return run(
        [sys.executable, str(REPO_ROOT / "deploy" / "validate_model.py"), *args], cwd=REPO_ROOT
    )


def test_a_good_model_is_releasable(toy_model_factory):
    version_dir = toy_model_factory("none")
    report, summary = validate(version_dir)
    assert report.problems == []
    # every signature at every batch size the k8s batching configs allow
    assert summary["warmup_records"] == 3 * len(SIZES) and summary["input_size"] == 32
    assert len(summary["grades"]) == 5 and all(0 <= g <= 4 for g in summary["grades"])


def test_cli_exit_codes(toy_model_factory, tmp_path, capsys):
    # In-process for the model runs (a second TensorFlow start costs ~10 s), as a script for the
    # rest: the workflow calls `python deploy/validate_model.py`.
    assert main([str(toy_model_factory("none"))]) == 0
    assert "releasable" in capsys.readouterr().out
    assert main([str(toy_model_factory("no_softmax"))]) == 1
    assert "FAILED: serving_default probabilities do not sum to 1" in capsys.readouterr().err
    not_a_version = tmp_path / "dr_grader" / "latest"
    not_a_version.mkdir(parents=True)
    result = cli(str(not_a_version))
    assert result.returncode == 1 and "positive integer" in result.stderr


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("card_size_mismatch", "the card's PreprocessConfig says [-1, 64, 64, 3]"),
        ("no_softmax", "probabilities do not sum to 1"),
        ("no_warmup", "tf_serving_warmup_requests is missing"),
        (
            "warmup_wrong_input",
            "warmup record 1: inputs ['pixels'] != serving_default inputs ['image']",
        ),
        ("no_explain", "missing signatures ['explain']"),
        ("float_input", "serving_default input image: dtype DT_FLOAT, expected DT_UINT8"),
        # TF Serving runs with --enable_batching (issue 14, finding 1): the batching rules.
        ("scalar_card", "batching: model_card input unused: rank 0 (scalar)"),
        ("scalar_card", "batching: model_card output model_card: rank 0 (scalar)"),
        (
            "card_one_row",
            "batching: model_card at batch size 2: Batched output tensor's 0th dimension does "
            "not equal the sum of the 0th dimension sizes of the input tensors",
        ),
        ("warmup_batch_1_only", f"warmup lacks explain at batch sizes {SIZES[1:]}"),
        ("warmup_batch_1_only", f"warmup lacks model_card at batch sizes {SIZES[1:]}"),
        (
            "warmup_too_large",
            f"warmup record {len(SIZES) + 1} (serving_default): TF Serving refuses it: Task "
            f"size 16 is larger than maximum input batch size {MAX_BATCH}",
        ),
    ],
)
def test_each_defect_is_reported(toy_model_factory, defect: str, message: str):
    report, _ = validate(toy_model_factory(defect))
    assert any(message in problem for problem in report.problems), report.problems


def test_reference_images_from_a_directory(toy_model_factory, tmp_path):
    from synthetic import encode_jpeg, synthesize_fundus

    (tmp_path / "left.jpg").write_bytes(encode_jpeg(synthesize_fundus(2, seed=3, laterality="L")))
    (tmp_path / "right.jpeg").write_bytes(encode_jpeg(synthesize_fundus(3, seed=4)))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    report, summary = validate(toy_model_factory("none"), tmp_path)
    assert summary["images"] == ["left.jpg", "right.jpeg"]
    assert len(report.problems) == 1
    assert report.problems[0].startswith("reference image broken.png: preprocessing failed (")


def test_card_and_directory_must_agree(toy_model_factory, tmp_path):
    import shutil

    source = toy_model_factory("none")
    moved = tmp_path / "dr_grader" / "2"
    shutil.copytree(source, moved)
    report, _ = validate(moved)
    assert "model card version 1 != directory version 2" in report.problems


@pytest.mark.slow
def test_the_real_tiny_export_is_releasable(real_model_version_dir: Path):
    result = cli(str(real_model_version_dir))
    assert result.returncode == 0, result.stdout + result.stderr


# --- smoke test against the real gateway and the TF Serving stand-in ---------------------------


@pytest.fixture(scope="module")
def toy_stack(toy_model_factory, lean_protos: Path, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """TF Serving stand-in serving the toy model (labels as in models.config) + the lean gateway."""
    from harness.processes import TFServingProcess
    from tests.integration.conftest import start_gateway

    model_root = toy_model_factory("none", version=1).parents[1]
    keys = tmp_path_factory.mktemp("keys") / "api_keys"
    keys.write_text(f"smoke {hash_key(SMOKE_KEY)} grade\n")
    server = TFServingProcess(model_root, args=("--labels", "stable=1,canary=1")).start()
    gateway = start_gateway(
        tmp_path_factory.mktemp("gw"), lean_protos, keys, server.target, model_label="stable"
    )
    try:
        gateway.wait_ready()
        yield {"url": gateway.url, "server": server, "gateway": gateway}
    finally:
        gateway.stop(signal.SIGTERM)
        server.stop()


def smoke(url: str, *extra: str, key: str = SMOKE_KEY) -> Any:
    return run(
        [sys.executable, "-m", "deploy.smoke_test", "--url", url, *extra],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "SMOKE_API_KEY": key},
    )


def test_smoke_test_passes_against_a_working_deployment(toy_stack):
    result = smoke(toy_stack["url"], "--expect-version", "1")
    assert result.returncode == 0, result.stderr
    assert "smoke test passed" in result.stdout


def test_smoke_test_fails_on_wrong_version_or_key(toy_stack):
    result = smoke(toy_stack["url"], "--expect-version", "2")
    assert result.returncode == 1 and "expected 2" in result.stderr
    result = smoke(toy_stack["url"], key="not-the-key")
    assert result.returncode == 1 and "401" in result.stderr


def test_smoke_test_fails_when_nothing_listens():
    from harness.processes import free_port

    result = smoke(f"http://127.0.0.1:{free_port()}", "--ready-timeout", "1")
    assert result.returncode == 1 and "/readyz not 200" in result.stderr
