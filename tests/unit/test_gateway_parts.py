"""Gateway parts without a network: heatmap overlay, backpressure, signature checks."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image
from tensorflow.core.protobuf import meta_graph_pb2

from gateway.backends.signatures import check_signatures, prediction_from_outputs
from gateway.errors import ApiError
from gateway.heatmap import overlay_png
from gateway.limits import InferenceLimiter
from gateway.metrics import GatewayMetrics
from gateway.model_card import ModelCard
from gateway.protos import types_pb2

CARD = ModelCard.parse(
    '{"name": "dr_grader", "input_size": 64, "preprocess": {"size": 64}, "referable_threshold": 0.4}'
)


def test_overlay_is_a_png_of_the_image_size() -> None:
    image = np.full((64, 64, 3), 100, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    png = Image.open(io.BytesIO(overlay_png(image, heatmap, opacity=0.5)))
    assert png.format == "PNG"
    assert png.size == (64, 64)
    pixels = np.asarray(png.convert("RGB")).astype(int)
    assert not np.array_equal(pixels[0, 0], pixels[63, 63])  # hot corner differs from cold one


def test_card_parse_checks_the_preprocess_block() -> None:
    assert CARD.preprocess_config.size == 64
    with pytest.raises(ValueError, match="input_size"):
        ModelCard.parse('{"name": "x", "input_size": 32, "preprocess": {"size": 64}}')
    with pytest.raises(ValueError, match="unknown PreprocessConfig keys"):
        ModelCard.parse('{"name": "x", "input_size": 64, "preprocess": {"size": 64, "sise": 1}}')


def _signature(
    size: int, dtype: int = types_pb2.DT_UINT8, outputs: tuple[str, ...] = ()
) -> meta_graph_pb2.SignatureDef:
    signature = meta_graph_pb2.SignatureDef()
    image = signature.inputs["image"]
    image.dtype = dtype
    for dim in (-1, size, size, 3):
        image.tensor_shape.dim.add(size=dim)
    for name in outputs:
        signature.outputs[name].dtype = types_pb2.DT_FLOAT
    return signature


SERVING = ("probabilities", "grade", "referable_probability")


def test_matching_signatures_pass() -> None:
    check_signatures(
        {
            "serving_default": _signature(64, outputs=SERVING),
            "explain": _signature(64, outputs=("probabilities", "heatmap")),
        },
        CARD,
    )


@pytest.mark.parametrize(
    ("signatures", "fragment"),
    [
        ({"serving_default": _signature(64, outputs=SERVING)}, "no 'explain'"),
        (
            {
                "serving_default": _signature(32, outputs=SERVING),
                "explain": _signature(32, outputs=("heatmap",)),
            },
            "[-1, 64, 64, 3]",
        ),
        (
            {
                "serving_default": _signature(64, types_pb2.DT_FLOAT, SERVING),
                "explain": _signature(64, outputs=("heatmap",)),
            },
            "DT_FLOAT",
        ),
        (
            {
                "serving_default": _signature(64, outputs=("probabilities",)),
                "explain": _signature(64, outputs=("heatmap",)),
            },
            "lacks outputs",
        ),
        (
            {
                "serving_default": _signature(64, outputs=SERVING),
                "explain": _signature(64, outputs=("probabilities",)),
            },
            "heatmap",
        ),
    ],
)
def test_mismatches_are_not_ready_reasons(
    signatures: dict[str, meta_graph_pb2.SignatureDef], fragment: str
) -> None:
    with pytest.raises(ApiError) as caught:
        check_signatures(signatures, CARD)
    assert caught.value.code == "model_mismatch"
    assert fragment in caught.value.message


def test_prediction_parsing_validates_shapes() -> None:
    probabilities = np.array([[0.1, 0.1, 0.6, 0.1, 0.1]], np.float32)
    prediction = prediction_from_outputs({"probabilities": probabilities}, "m", 1, 1, explain=False)
    assert prediction.grade.tolist() == [2]
    assert prediction.referable_probability[0] == pytest.approx(0.8)
    with pytest.raises(ApiError, match="shape"):
        prediction_from_outputs({"probabilities": probabilities}, "m", 1, 2, explain=False)
    with pytest.raises(ApiError, match="heatmap"):
        prediction_from_outputs({"probabilities": probabilities}, "m", 1, 1, explain=True)


def test_limiter_queues_then_refuses() -> None:
    async def scenario() -> list[str]:
        limiter = InferenceLimiter(max_running=1, max_queued=1, metrics=GatewayMetrics())
        outcomes: list[str] = []
        release = asyncio.Event()

        async def job(name: str) -> None:
            try:
                async with limiter.slot():
                    outcomes.append(f"{name} ran")
                    await release.wait()
            except ApiError as error:
                outcomes.append(f"{name} {error.code} {error.retry_after_s}")

        tasks = [asyncio.create_task(job(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == "a ran"
    assert "c overloaded 1" in outcomes
    assert "b ran" in outcomes


def test_clinical_warning_comes_from_the_card() -> None:
    assert CARD.clinical_warning is None
    demo = ModelCard.parse(
        '{"name": "x", "input_size": 64, "preprocess": {"size": 64}, "clinical_use": false, '
        '"clinical_use_note": "demo only"}'
    )
    assert demo.clinical_warning == "demo only"
