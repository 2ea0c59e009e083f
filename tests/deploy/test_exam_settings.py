"""The gateway never sends TF Serving a Predict it refuses: DRG_MAX_PREDICT_BATCH fits the
mounted batching config's max_batch_size in every overlay (CPU 2, GPU 32)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import text_format

from tests.deploy.conftest import OVERLAYS
from tests.deploy.test_crosschecks import (
    BatchingParameters,
    deployment,
    flags,
    mounted_file,
    pod_env,
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_predict_batches_fit_tf_serving(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = rendered[overlay]
    tfserving = deployment(docs, "tfserving")
    params = text_format.Parse(
        mounted_file(tfserving, "tfserving", flags(tfserving)["batching_parameters_file"], docs),
        BatchingParameters(),
    )
    for name in ("gateway", "gateway-canary"):
        env = pod_env(docs, deployment(docs, name), "gateway")
        batch = int(env["DRG_MAX_PREDICT_BATCH"])
        assert 1 <= batch <= params.max_batch_size.value, (overlay, name, batch)
        assert int(env["DRG_MAX_IMAGES_PER_EYE"]) >= 1
