"""contract/: the grading scale, the model card and the signatures that export, gateway and
deploy share; no runtime is imported with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from contract import grades
from contract.model_card import EXPORT_KEYS, ModelCard, check_export
from contract.signature_checks import (
    card_signature_problem,
    contract_problems,
    from_signature_defs,
    readiness_problem,
)
from contract.signatures import (
    CARD_SIGNATURE,
    EXPLAIN_SIGNATURE,
    SERVING_SIGNATURE,
    SIGNATURES,
    SignatureSpec,
    TensorSpec,
    card_outputs,
    required_signatures,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "model" / "configs"


def test_importing_the_contract_loads_no_runtime_and_no_part() -> None:
    code = (
        "import sys\n"
        "import contract.grades, contract.model_card, contract.signatures\n"
        "import contract.signature_checks\n"
        "banned = {'tensorflow', 'keras', 'gateway', 'model', 'deploy', 'fundus', 'numpy'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_scale_has_five_distinct_grades_in_order() -> None:
    assert [g.number for g in grades.GRADES] == [0, 1, 2, 3, 4] == list(range(grades.NUM_GRADES))
    for names in (grades.GRADE_NAMES, grades.GRADE_SHORT_NAMES, grades.CLASS_NAMES):
        assert len(names) == 5 and len(set(names)) == 5
    # What export has always written into the card, and what the gateway has always shown.
    assert grades.CLASS_NAMES == ("no DR", "mild", "moderate", "severe", "proliferative")
    assert grades.GRADE_NAMES[2] == "Moderate non-proliferative DR"
    # Referable = moderate NPDR or worse; vision-threatening = severe NPDR or worse.
    assert grades.REFERABLE_MIN_GRADE == 2
    assert grades.VISION_THREATENING_MIN_GRADE == 3
    assert grades.GRADES[grades.VISION_THREATENING_MIN_GRADE].name.startswith("Severe")
    assert [g.referable for g in grades.GRADES] == [False, False, True, True, True]
    assert [grades.is_grade(n) for n in (-1, 0, 4, 5)] == [False, True, True, False]


def test_clinical_decisions_use_the_contracts_referable_grade() -> None:
    from deploy.clinical_gate import referable_of
    from gateway.clinical import is_referable, recommendation_for
    from model.metrics import referable_probability

    for grade in grades.GRADES:
        # Probability below any threshold: the grade alone decides.
        assert is_referable(grade.number, 0.0, 1.0) is grade.referable
        # A non-referable grade with a referable probability gets the "however" advice.
        assert ("However" in recommendation_for(grade.number, True)) is not grade.referable
    probs = np.eye(5)
    assert referable_probability(probs).tolist() == [float(g.referable) for g in grades.GRADES]
    figures = referable_of([0, 1, 2, 3, 4], [False, False, True, True, True])
    assert (figures.positives, figures.negatives) == (3, 2)
    assert figures.sensitivity == figures.specificity == 1.0


def _export_card() -> dict[str, Any]:
    from model.card import build_card
    from model.config import load_config

    config = load_config(CONFIGS / "tiny.yaml")
    card = build_card(
        config, 3, [0, 1], [0.5, 1.5, 2.5, 3.5], [2, 2], None, "f" * 64, None, {"tf": "x"}
    )
    return json.loads(json.dumps(card))  # as written to model_card.json


def test_the_schema_round_trips_the_card_export_writes() -> None:
    from gateway.model_card import ModelCard as GatewayCard
    from model.config import load_config

    card = _export_card()
    assert set(EXPORT_KEYS) <= set(card)
    parsed = check_export(card)
    assert parsed.model_dump(mode="json") == card  # every key kept, none added or changed
    assert ModelCard.parse(json.dumps(card)) == parsed
    assert card["class_names"] == list(grades.CLASS_NAMES)
    assert card["referable"]["min_grade"] == grades.REFERABLE_MIN_GRADE
    assert card["outputs"] == card_outputs([2, 2])
    assert card["input"] == {"name": "image", "dtype": "uint8", "shape": [None, 64, 64, 3]}
    # The gateway's card (the same schema plus the fundus PreprocessConfig) reads it too.
    gateway_card = GatewayCard.parse(json.dumps(card))
    assert gateway_card.preprocess_config == load_config(CONFIGS / "tiny.yaml").preprocess_config
    assert gateway_card.clinical_warning == card["clinical_use_note"]


def test_the_schema_keeps_its_defaults_and_validation() -> None:
    minimal = ModelCard.parse('{"name": "x", "input_size": 64, "preprocess": {"size": 64}}')
    assert minimal.version is None and minimal.referable_threshold == 0.5
    assert minimal.class_names == list(grades.GRADE_NAMES)
    assert minimal.clinical_warning is None
    for bad in ('"input_size": 0', '"input_size": 64, "referable_threshold": 1.5'):
        with pytest.raises(ValidationError):
            ModelCard.parse(f'{{"name": "x", "preprocess": {{}}, {bad}}}')
    with pytest.raises(ValidationError):
        minimal.name = "y"  # type: ignore[misc]  # frozen
    card = _export_card()
    with pytest.raises(ValueError, match="misses"):
        check_export({k: v for k, v in card.items() if k != "decision"})
    with pytest.raises(ValueError, match="input shape"):
        check_export(card | {"input_size": 65})


def _good(size: int) -> dict[str, SignatureSpec]:
    return required_signatures(size)


def test_the_checks_pass_the_contract_itself() -> None:
    specs = _good(64)
    assert set(specs) == set(SIGNATURES)
    assert readiness_problem(specs, 64) is None
    assert card_signature_problem(specs) is None
    assert contract_problems(specs, 64) == []


def test_the_checks_name_each_break() -> None:
    specs = _good(64)
    serving = specs[SERVING_SIGNATURE]
    float_image = SignatureSpec(
        {"image": TensorSpec("float32", (None, 64, 64, 3))}, serving.outputs
    )
    broken = specs | {SERVING_SIGNATURE: float_image}
    assert readiness_problem(broken, 64) == (
        "'serving_default' image input is DT_FLOAT, expected DT_UINT8"
    )
    assert contract_problems(broken, 64) == [
        "serving_default input image: dtype DT_FLOAT, expected DT_UINT8"
    ]
    assert "the card's PreprocessConfig says [-1, 32, 32, 3]" in str(readiness_problem(specs, 32))
    no_heatmap = SignatureSpec(specs[EXPLAIN_SIGNATURE].inputs, {})
    assert readiness_problem(specs | {EXPLAIN_SIGNATURE: no_heatmap}, 64) == (
        "explain signature lacks the 'heatmap' output"
    )
    scalar = SignatureSpec({"unused": TensorSpec("int32", ())}, specs[CARD_SIGNATURE].outputs)
    assert "got []" in str(card_signature_problem(specs | {CARD_SIGNATURE: scalar}))
    assert contract_problems(specs | {CARD_SIGNATURE: scalar}, 64) == [
        "model_card input unused: shape [], expected [-1] (-1 = any)"
    ]


def test_signature_defs_read_as_plain_specs() -> None:
    pytest.importorskip("tensorflow")
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    signature = meta_graph_pb2.SignatureDef()
    image = signature.inputs["image"]
    image.dtype = types_pb2.DT_UINT8
    for dim in (-1, 64, 64, 3):
        image.tensor_shape.dim.add(size=dim)
    signature.outputs["heatmap"].dtype = types_pb2.DT_HALF
    signature.outputs["heatmap"].tensor_shape.unknown_rank = True
    specs = from_signature_defs({"explain": signature}, types_pb2.DataType.Name)
    assert specs["explain"].inputs == {"image": TensorSpec("uint8", (None, 64, 64, 3))}
    assert specs["explain"].outputs == {"heatmap": TensorSpec("DT_HALF", None)}
