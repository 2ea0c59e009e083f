"""Validate an exported SavedModel version before it is released to TF Serving.

    python deploy/validate_model.py export/dr_grader/7 [--reference-images DIR]

Checks, in the order a failed release would hurt:
1. layout: ``<root>/<model_name>/<integer version>/saved_model.pb``;
2. ``assets.extra/model_card.json`` parses as the contract's ModelCard with a valid fundus
   PreprocessConfig (name, version, sizes), as the gateway parses it;
3. the SignatureDefs TF Serving will serve pass the gateway's own readiness check
   (``contract.signature_checks.readiness_problem``), plus every input and output of the
   contract with its dtype and shape (``contract_problems``: the ``model_card`` signature takes
   ``unused`` int32 [N] and answers ``model_card`` string [N]), and TF Serving's batching
   rules (``--enable_batching`` batches every signature): every input and output has rank >= 1
   with a shared -1 batch dimension (deploy/validate_batching.py);
4. ``assets.extra/tf_serving_warmup_requests`` is a TFRecord of PredictionLog protos whose
   requests fit the signatures (TF Serving replays at most 1000 of them at load), that every
   batching config (``--batching-config``, default the k8s ones) accepts, covering every
   signature at every batch size the configs allow;
5. ``tf.saved_model.load`` works, the ``model_card`` signature returns the card file, and
   ``serving_default`` on reference images (preprocessed by ``fundus`` with the card's
   PreprocessConfig; synthetic photographs when no directory is given) gives probabilities
   that sum to 1, grades in 0..4 equal to their argmax and referable_probability = P(grade>=2)
   (contract.grades.REFERABLE_MIN_GRADE);
   ``explain`` gives the same probabilities and heatmaps in [0, 1]; every signature called at
   batch sizes 1 and 2 answers outputs with that 0th dimension.

Every problem is reported; the exit code is 1 when there is any (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python deploy/validate_model.py`
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from contract.grades import NUM_GRADES, REFERABLE_MIN_GRADE  # noqa: E402
from contract.model_card import CARD_PATH, ModelCard  # noqa: E402
from contract.signature_checks import (  # noqa: E402
    contract_problems,
    from_signature_defs,
    readiness_problem,
)
from contract.signatures import (  # noqa: E402
    CARD_INPUT,
    CARD_OUTPUT,
    CARD_SIGNATURE,
    EXPLAIN_SIGNATURE,
    GRADE,
    HEATMAP,
    IMAGE_INPUT,
    PROBABILITIES,
    REFERABLE_PROBABILITY,
    SERVING_SIGNATURE,
    SIGNATURES,
)
from deploy.card import parse_card  # noqa: E402
from deploy.validate_batching import (  # noqa: E402
    BatchingError,
    call_problems,
    load_configs,
    static_problems,
    warmup_problems,
)
from fundus import FundusError, PreprocessConfig, load_and_preprocess  # noqa: E402
from model.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dcm"}
TOLERANCE = 1e-3


class ValidationFailed(Exception):
    """A check that makes the rest meaningless (e.g. the model does not load)."""


@dataclass
class Report:
    """What was checked and what failed."""

    version_dir: Path
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        """Record a problem."""
        self.problems.append(message)

    def ok(self, message: str) -> None:
        """Record a passed check."""
        self.checked.append(message)


def _dtype_name(dtype: int) -> str:
    from tensorflow.core.framework import types_pb2

    return str(types_pb2.DataType.Name(dtype))


def _dims(tensor_info: Any) -> list[int] | None:
    if tensor_info.tensor_shape.unknown_rank:
        return None
    return [int(d.size) for d in tensor_info.tensor_shape.dim]


def check_layout(report: Report, model_name: str | None) -> int:
    """The directory must be ``<model_name>/<integer version>`` holding saved_model.pb."""
    path = report.version_dir
    if not path.is_dir():
        raise ValidationFailed(f"{path} is not a directory")
    if not path.name.isdigit() or int(path.name) < 1:
        raise ValidationFailed(
            f"{path}: TF Serving needs the version directory to be a positive integer"
        )
    if model_name and path.parent.name != model_name:
        report.fail(f"{path}: parent directory is {path.parent.name!r}, expected {model_name!r}")
    if not (path / "saved_model.pb").is_file():
        raise ValidationFailed(f"{path}: no saved_model.pb")
    report.ok("layout")
    return int(path.name)


def check_card(
    report: Report, version: int, model_name: str | None
) -> tuple[ModelCard, PreprocessConfig]:
    """The card parses as the gateway parses it and agrees with the directory."""
    path = report.version_dir / CARD_PATH
    if not path.is_file():
        raise ValidationFailed(f"{path} is missing")
    try:
        card, config = parse_card(path.read_text())
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ValidationFailed(f"{path}: {error}") from None
    if model_name and card.name != model_name:
        report.fail(f"model card name {card.name!r} != {model_name!r}")
    if card.version is not None and card.version != version:
        report.fail(f"model card version {card.version} != directory version {version}")
    if len(card.class_names) != NUM_GRADES:
        report.fail(f"model card has {len(card.class_names)} class names, expected {NUM_GRADES}")
    report.ok(f"model card (input size {config.size})")
    return card, config


def load_signature_defs(version_dir: Path) -> dict[str, Any]:
    """SignatureDefs of the serve meta graph: exactly what TF Serving reports and runs."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValidationFailed("saved_model.pb has no meta graph tagged 'serve'")


def check_signature_defs(report: Report, defs: dict[str, Any], size: int) -> None:
    """The gateway's readiness check, then the parts of the contract it does not look at."""
    missing = [name for name in SIGNATURES if name not in defs]
    if missing:
        raise ValidationFailed(f"missing signatures {missing} (have {sorted(defs)})")
    specs = from_signature_defs(defs, _dtype_name)
    problem = readiness_problem(specs, size)
    if problem is not None:
        report.fail(f"gateway signature check: {problem}")
    for problem in contract_problems(specs, size):
        report.fail(problem)
    batching = static_problems(defs)
    for problem in batching:
        report.fail(f"batching: {problem}")
    report.ok("signatures")
    if not batching:
        report.ok("signatures batchable (rank >= 1, shared -1 batch dimension)")


def check_warmup(report: Report, defs: dict[str, Any], configs: list[Any] | None = None) -> int:
    """Every warmup record is a PredictionLog whose request TF Serving could run."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = report.version_dir / "assets.extra" / WARMUP_FILE
    if not path.is_file():
        report.fail(f"{path} is missing: the first requests after every load would be slow")
        return 0
    count = 0
    logs = []
    try:
        for count, record in enumerate(tf.data.TFRecordDataset(str(path)), start=1):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record.numpy())
            _check_warmup_record(report, count, log, defs)
            logs.append(log)
    except tf.errors.DataLossError as error:
        report.fail(f"warmup file is not a valid TFRecord: {error.message}")
        return count
    if count == 0:
        report.fail("warmup file holds no records")
    elif count > MAX_WARMUP_RECORDS:
        report.fail(f"warmup file holds {count} records; TF Serving refuses more than 1000")
    else:
        report.ok(f"warmup ({count} records)")
    for problem in warmup_problems(
        logs, configs if configs is not None else load_configs(), SIGNATURES
    ):
        report.fail(problem)
    return count


def _check_warmup_record(report: Report, number: int, log: Any, defs: dict[str, Any]) -> None:
    from tensorflow.core.framework import types_pb2

    kind = log.WhichOneof("log_type")
    if kind != "predict_log":
        report.fail(f"warmup record {number}: {kind or 'empty'} log, expected predict_log")
        return
    request = log.predict_log.request
    name = request.model_spec.signature_name or SERVING_SIGNATURE
    signature = defs.get(name)
    if signature is None:
        report.fail(f"warmup record {number}: unknown signature {name!r}")
        return
    if set(request.inputs) != set(signature.inputs):
        report.fail(
            f"warmup record {number}: inputs {sorted(request.inputs)} != "
            f"{name} inputs {sorted(signature.inputs)}"
        )
        return
    for key, tensor in request.inputs.items():
        expected = signature.inputs[key]
        if tensor.dtype != expected.dtype:
            report.fail(
                f"warmup record {number}: {key} is {types_pb2.DataType.Name(tensor.dtype)}, "
                f"{name} wants {_dtype_name(expected.dtype)}"
            )
        dims = [int(d.size) for d in tensor.tensor_shape.dim]
        wanted = _dims(expected)
        if wanted is not None and (
            len(dims) != len(wanted)
            or any(w not in (-1, d) for d, w in zip(dims, wanted, strict=True))
        ):
            report.fail(f"warmup record {number}: {key} shape {dims} does not fit {wanted}")


def reference_images(directory: Path | None) -> list[tuple[str, bytes]]:
    """(name, encoded bytes): files from ``directory``, or one synthetic photograph per grade."""
    if directory is not None:
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValidationFailed(
                f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}"
            )
        return [(p.name, p.read_bytes()) for p in files]
    from synthetic import encode_jpeg, synthesize_fundus

    return [
        (f"synthetic-grade{grade}.jpg", encode_jpeg(synthesize_fundus(grade, seed=100 + grade)))
        for grade in range(NUM_GRADES)
    ]


def check_predictions(
    report: Report, config: PreprocessConfig, images: list[tuple[str, bytes]]
) -> dict[str, Any]:
    """Load with TensorFlow and run every signature on the reference images."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(report.version_dir))
    except Exception as error:  # any load failure means TF Serving would fail too
        raise ValidationFailed(f"tf.saved_model.load failed: {error}") from None
    functions = {name: loaded.signatures[name] for name in SIGNATURES if name in loaded.signatures}
    if len(functions) != len(SIGNATURES):
        raise ValidationFailed(f"loaded model lacks signatures {set(SIGNATURES) - set(functions)}")

    served_card = functions[CARD_SIGNATURE](**{CARD_INPUT: tf.zeros([1], tf.int32)})[CARD_OUTPUT]
    file_card = json.loads((report.version_dir / CARD_PATH).read_text())
    if json.loads(np.asarray(served_card.numpy()).reshape(-1)[0].decode()) != file_card:
        report.fail("the model_card signature does not return assets.extra/model_card.json")
    else:
        report.ok("model_card signature")

    batch, names = [], []
    for name, data in images:
        try:
            batch.append(load_and_preprocess(data, config).image)
            names.append(name)
        except FundusError as error:
            report.fail(f"reference image {name}: preprocessing failed ({error.code})")
    if not batch:
        raise ValidationFailed("no reference image could be preprocessed")
    pixels = tf.constant(np.stack(batch), dtype=tf.uint8)
    calls = call_problems(functions, np.concatenate([np.stack(batch)] * 2))
    for problem in calls:
        report.fail(f"batching: {problem}")
    if not calls:
        report.ok("every signature at batch sizes 1 and 2")
    outputs = _run(functions[SERVING_SIGNATURE], SERVING_SIGNATURE, pixels)
    _check_outputs(report, outputs, len(batch))
    explained = _run(functions[EXPLAIN_SIGNATURE], EXPLAIN_SIGNATURE, pixels[:1])
    _check_explain(report, explained, outputs)
    grades = [int(g) for g in np.asarray(outputs.get(GRADE, [])).reshape(-1)]
    return {"images": names, "grades": grades}


def _run(function: Any, name: str, pixels: Any) -> dict[str, Any]:
    """Call a signature the way TF Serving would feed it (uint8 images)."""
    import tensorflow as tf

    try:
        return {key: value.numpy() for key, value in function(**{IMAGE_INPUT: pixels}).items()}
    except (tf.errors.OpError, TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0][:300]
        raise ValidationFailed(f"{name} failed on uint8 reference images: {first_line}") from None


def _check_outputs(report: Report, outputs: dict[str, Any], count: int) -> None:
    probabilities = np.asarray(outputs.get(PROBABILITIES), dtype=np.float64)
    if probabilities.shape != (count, NUM_GRADES):
        report.fail(
            f"serving_default probabilities have shape {probabilities.shape}, "
            f"expected ({count}, {NUM_GRADES})"
        )
        return
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0 or probabilities.max() > 1:
        report.fail("serving_default probabilities are not all finite and in [0, 1]")
    sums = probabilities.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > TOLERANCE):
        report.fail(f"serving_default probabilities do not sum to 1: {np.round(sums, 4).tolist()}")
    grades = np.asarray(outputs.get(GRADE)).reshape(-1)
    if grades.shape != (count,):
        report.fail(f"serving_default grade has shape {grades.shape}, expected ({count},)")
    elif np.any((grades < 0) | (grades >= NUM_GRADES)):
        report.fail(f"serving_default grades outside 0..4: {grades.tolist()}")
    elif np.any(grades != probabilities.argmax(axis=1)):
        report.fail("serving_default grade is not the argmax of probabilities")
    referable = np.asarray(outputs.get(REFERABLE_PROBABILITY), dtype=np.float64).reshape(-1)
    if referable.shape != (count,) or np.any(
        np.abs(referable - probabilities[:, REFERABLE_MIN_GRADE:].sum(axis=1)) > TOLERANCE
    ):
        report.fail(
            f"serving_default referable_probability is not P(grade >= {REFERABLE_MIN_GRADE})"
        )
    report.ok(f"serving_default on {count} reference images")


def _check_explain(report: Report, explained: dict[str, Any], outputs: dict[str, Any]) -> None:
    heatmap = np.asarray(explained.get(HEATMAP), dtype=np.float64)
    if heatmap.ndim != 3 or heatmap.shape[0] != 1:
        report.fail(f"explain heatmap has shape {heatmap.shape}, expected (1, h, w)")
    elif not np.all(np.isfinite(heatmap)) or heatmap.min() < 0 or heatmap.max() > 1:
        report.fail("explain heatmap values are not all in [0, 1]")
    probabilities = np.asarray(explained.get(PROBABILITIES), dtype=np.float64)
    reference = np.asarray(outputs.get(PROBABILITIES), dtype=np.float64)[:1]
    if probabilities.shape != reference.shape or np.any(
        np.abs(probabilities - reference) > TOLERANCE
    ):
        report.fail("explain probabilities differ from serving_default's for the same image")
    report.ok("explain")


def validate(
    version_dir: Path,
    reference_dir: Path | None = None,
    model_name: str | None = "dr_grader",
    batching_configs: list[Path] | None = None,
) -> tuple[Report, dict[str, Any]]:
    """Run every check; the report lists the problems (empty = releasable)."""
    report = Report(version_dir)
    summary: dict[str, Any] = {}
    try:
        version = check_layout(report, model_name)
        _, config = check_card(report, version, model_name)
        defs = load_signature_defs(version_dir)
        check_signature_defs(report, defs, config.size)
        try:
            configs = load_configs(batching_configs) if batching_configs else load_configs()
        except (OSError, ValueError, BatchingError) as error:
            raise ValidationFailed(f"TF Serving batching config: {error}") from None
        summary["warmup_records"] = check_warmup(report, defs, configs)
        summary.update(check_predictions(report, config, reference_images(reference_dir)))
        summary.update(version=version, input_size=config.size)
    except ValidationFailed as error:
        report.fail(str(error))
    return report, summary


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dir", type=Path, help="<root>/<model_name>/<version>")
    parser.add_argument("--reference-images", type=Path, help="default: synthetic photographs")
    parser.add_argument("--model-name", default="dr_grader")
    parser.add_argument(
        "--reference-labels",
        type=Path,
        help="file,grade CSV of --reference-images: the clinical gate (deploy/clinical_gate.py)",
    )
    parser.add_argument("--gate-against", type=Path, help="stable version dir for the gate")
    parser.add_argument(
        "--batching-config",
        type=Path,
        action="append",
        help="TF Serving --batching_parameters_file (repeatable; default: the k8s ones)",
    )
    args = parser.parse_args(argv)
    if args.reference_images is not None and not args.reference_images.is_dir():
        parser.error(f"--reference-images {args.reference_images} is not a directory")
    report, summary = validate(
        args.version_dir, args.reference_images, args.model_name, args.batching_config
    )
    if args.reference_labels is not None:  # candidate refers no worse than stable
        from deploy.clinical_gate import gate_problems

        if args.reference_images is None:
            parser.error("--reference-labels needs --reference-images")
        report.problems += gate_problems(
            args.version_dir, args.gate_against, args.reference_images, args.reference_labels
        )
    for line in report.checked:
        print(f"ok: {line}")
    if report.problems:
        for problem in report.problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        print(
            f"{args.version_dir}: NOT releasable ({len(report.problems)} problems)", file=sys.stderr
        )
        return 1
    print(json.dumps({"version_dir": str(args.version_dir), **summary}))
    print(f"{args.version_dir}: releasable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
