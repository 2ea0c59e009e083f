"""The naive baseline of bench/serving.py does the same model work as our SavedModel: for one
image, the naive service (a real uvicorn process calling Keras ``model.predict`` on the run's
fold models with float32 pixels) answers the probabilities and grade that ``serving_default``
gives for the same uint8 model input.

On the tiny model (one epoch) a horizontal flip moves the probabilities by ~1e-7, so this test
sees the fold averaging (~2e-3 between folds) and the decision rule but not the TTA;
tests/unit/test_bench_naive.py checks the TTA with flip-sensitive models."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.naive_service import naive_model_input
from gateway.backends.local import latest_version_dir
from gateway.model_card import ModelCard
from harness.processes import NaiveServiceProcess
from synthetic import encode_jpeg, synthesize_fundus
from tests.support.tiny_model import tiny_run_dir

JPEG = encode_jpeg(synthesize_fundus(3, width=2400, height=1800, seed=7))


# Two TF processes (the service builds and traces two B3 models; this one loads the SavedModel):
# ~57 s of CPU together, so more than 30 s on 2 cores even though they overlap.
@pytest.mark.slow
def test_naive_service_grades_like_the_saved_model(model_root: Path, tmp_path: Path) -> None:
    service = NaiveServiceProcess(tiny_run_dir(model_root), tmp_path / "naive.log").launch()
    try:
        import tensorflow as tf  # loads while the service loads its fold models

        version = latest_version_dir(model_root, "dr_grader", None)
        card = ModelCard.parse((version / "assets.extra" / "model_card.json").read_text())
        image = naive_model_input(JPEG, card.preprocess_config)
        serve = tf.saved_model.load(str(version)).signatures["serving_default"]
        served = {k: v.numpy()[0] for k, v in serve(image=tf.constant(image[None])).items()}

        service.wait_healthy(timeout_s=300)
        response = httpx.post(
            service.url + "/predict",
            files={"image": ("fundus.jpg", JPEG, "image/jpeg")},
            timeout=120,
        )
    finally:
        service.stop()
    assert response.status_code == 200, response.text
    naive = response.json()
    assert naive["grade"] == int(served["grade"])
    np.testing.assert_allclose(naive["probabilities"], served["probabilities"], atol=1e-5)
    assert naive["referable_probability"] == pytest.approx(
        float(served["referable_probability"]), abs=1e-5
    )
