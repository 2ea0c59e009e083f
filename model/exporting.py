"""Export a finished run as ONE SavedModel for TF Serving, then verify it.

``<export.root>/<export.model_name>/<version>/`` (written to a hidden temp dir first and renamed,
so TF Serving never sees a half-written version) with ``assets.extra/model_card.json`` and
``assets.extra/tf_serving_warmup_requests``. Verification reloads it with
``tf.saved_model.load``, runs both signatures on real preprocessed images from the run's data,
compares with the Keras ensemble (max |diff| <= 1e-4), checks signature dtypes/shapes and that
every SignatureDef is batchable (TF Serving runs with ``--enable_batching``), runs
``saved_model_cli show`` and parses the warmup file (one record per signature and warmup batch
size). Always runs with the TF backend.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from contract.grades import REFERABLE_MIN_GRADE
from contract.model_card import CARD_FILE
from contract.signature_checks import contract_problems, from_signature_defs
from contract.signatures import (
    CARD_INPUT,
    CARD_OUTPUT,
    CARD_SIGNATURE,
    GRADE,
    HEATMAP,
    IMAGE_INPUT,
    IMAGE_SIGNATURES,
    PROBABILITIES,
    REFERABLE_PROBABILITY,
    SIGNATURES,
    required_signatures,
)
from model.batches import predict_probs
from model.card import build_card, validate_card
from model.config import Config
from model.data import prepare_data
from model.decision import DEFAULT_THRESHOLDS, predict_grade
from model.distill import DISTILL_FILE
from model.ensemble import load_fold_models, load_run_config, selected_folds
from model.evaluation import headline
from model.network import backbone_of
from model.serving import save_serving_model
from model.tfserving_batching import default_warmup_batch_sizes, signature_problems
from model.warmup import WARMUP_FILE, read_warmup, write_warmup

log = logging.getLogger(__name__)
TOLERANCE = 1e-4


@dataclass
class ExportResult:
    path: Path
    card: dict[str, Any]
    verification: dict[str, Any] | None


def next_version(model_root: Path) -> int:
    """One more than the highest integer version directory (1 when none)."""
    versions = [
        int(p.name) for p in model_root.glob("*") if p.is_dir() and re.fullmatch(r"\d+", p.name)
    ]
    return max(versions, default=0) + 1


def _framework() -> dict[str, str]:
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }


def _metrics(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "eval" / "metrics.json"
    if not path.exists():
        log.warning(
            "no %s: the model card will carry metrics=null (run model.evaluate first)", path
        )
        return None
    full = json.loads(path.read_text())
    out: dict[str, Any] = {
        split: headline(full[split]) | {"n": full[split]["n"]}
        for split in ("oof", "test")
        if split in full
    }
    out["tta"] = full.get("tta")
    return out


def _distillation(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / DISTILL_FILE
    return json.loads(path.read_text()) if path.exists() else None


def verify_export(
    path: Path,
    models: list[keras.Model],
    images: NDArray[np.uint8],
    config: Config,
    thresholds: list[float],
    warmup_batch_sizes: list[int],
) -> dict[str, Any]:
    """Reload and check the SavedModel against the Keras ensemble; raises AssertionError."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    size = config.image_size
    loaded = tf.saved_model.load(str(path))
    found = sorted(loaded.signatures.keys())
    assert set(IMAGE_SIGNATURES) <= set(found), f"signatures {found}"
    checks: dict[str, Any] = {"signatures": found, "images": len(images)}
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    problems = contract_problems(from_signature_defs(defs, types_pb2.DataType.Name), size)
    assert not problems, f"signatures break the contract: {problems}"

    batch = tf.constant(images)
    serve, explain = (loaded.signatures[name] for name in IMAGE_SIGNATURES)
    served = {k: v.numpy() for k, v in serve(**{IMAGE_INPUT: batch}).items()}
    explained = {k: v.numpy() for k, v in explain(**{IMAGE_INPUT: batch}).items()}
    e = config.eval
    reference = predict_probs(models, images, np.arange(len(images)), len(images), e.tta)
    diff = float(np.abs(served[PROBABILITIES] - reference).max())
    assert diff <= TOLERANCE, f"SavedModel vs Keras ensemble: max |diff| {diff} > {TOLERANCE}"
    expected_grade = predict_grade(served[PROBABILITIES], e.decision, thresholds)
    assert np.array_equal(served[GRADE], expected_grade), "grade does not follow the decision rule"
    referable = reference[:, REFERABLE_MIN_GRADE:].sum(1)
    ref_diff = float(np.abs(served[REFERABLE_PROBABILITY] - referable).max())
    assert ref_diff <= TOLERANCE, f"referable_probability diff {ref_diff}"
    explain_diff = float(np.abs(explained[PROBABILITIES] - served[PROBABILITIES]).max())
    assert explain_diff <= TOLERANCE, f"explain vs serving probabilities diff {explain_diff}"
    heatmap = explained[HEATMAP]
    assert heatmap.dtype == np.float32 and heatmap.ndim == 3 and len(heatmap) == len(images)
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    checks.update(
        max_abs_diff_probabilities=diff,
        max_abs_diff_referable=ref_diff,
        max_abs_diff_explain_vs_serving=explain_diff,
        grades=served[GRADE].tolist(),
        heatmap_shape=list(heatmap.shape),
    )

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "show",
            "--dir",
            str(path),
            "--all",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    for name in IMAGE_SIGNATURES:
        assert f"signature_def['{name}']" in cli.stdout, f"saved_model_cli does not list {name}"
    checks["saved_model_cli"] = "lists " + ", ".join(IMAGE_SIGNATURES)

    problems = [p for name in SIGNATURES for p in signature_problems(name, defs[name])]
    assert not problems, f"not servable with TF Serving batching: {problems}"
    checks["batching"] = "every signature has a shared batch dimension"

    logs = read_warmup(path / "assets.extra" / WARMUP_FILE)
    seen = set()
    contract = required_signatures(size)
    for record in logs:
        request = record.predict_log.request  # type: ignore[attr-defined]
        name = request.model_spec.signature_name
        ((key, spec),) = contract[name].inputs.items()
        tensor = request.inputs[key]
        dims = [d.size for d in tensor.tensor_shape.dim]
        dtype = tf.as_dtype(spec.dtype).as_datatype_enum
        assert tensor.dtype == dtype and dims[1:] == list((spec.shape or ())[1:]), (name, dims)
        seen.add((name, dims[0]))
    wanted = {(name, b) for name in SIGNATURES for b in warmup_batch_sizes}
    assert seen == wanted and len(logs) == len(wanted), f"warmup covers {sorted(seen)}"
    checks["warmup_records"] = len(logs)
    checks["warmup_batch_sizes"] = list(warmup_batch_sizes)
    card_text = (path / "assets.extra" / CARD_FILE).read_text()
    card = json.loads(card_text)
    validate_card(card)
    for batch in (1, 2):
        served = loaded.signatures[CARD_SIGNATURE](**{CARD_INPUT: tf.zeros([batch], tf.int32)})
        rows = [row.decode() for row in served[CARD_OUTPUT].numpy()]
        assert rows == [card_text] * batch, "model_card signature differs from the file"
    checks["model_card"] = "valid; the model_card signature returns the file"
    return checks


def export_run(run_dir: Path, overrides: list[str] | None = None) -> ExportResult:
    """Build, write and (by default) verify the SavedModel of a finished run."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("export needs KERAS_BACKEND=tensorflow")
    config = load_run_config(run_dir, overrides)
    x = config.export
    folds = selected_folds(config, run_dir)
    models = load_fold_models(config, run_dir, folds)
    saved = (
        json.loads((run_dir / "thresholds.json").read_text())
        if (run_dir / "thresholds.json").exists()
        else {}
    )
    thresholds = list(saved.get("thresholds") or DEFAULT_THRESHOLDS)
    data = prepare_data(config, None, progress=False)
    rows = data.test_rows if len(data.test_rows) else data.cv_rows
    sample = np.asarray(data.images[np.sort(rows[:4])], np.uint8)

    model_root = Path(x.root) / x.model_name
    model_root.mkdir(parents=True, exist_ok=True)
    version = x.version if x.version is not None else next_version(model_root)
    final = model_root / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; pick another export.version")
    staging = model_root / f".tmp-{version}"
    shutil.rmtree(staging, ignore_errors=True)

    heatmap_shape = [int(d) for d in backbone_of(models[0]).output.shape[1:3]]
    card = build_card(
        config,
        version,
        folds,
        thresholds,
        heatmap_shape,
        _metrics(run_dir),
        data.fingerprint,
        data.counts,
        _framework(),
        _distillation(run_dir),
    )
    card_json = json.dumps(card, indent=2)
    save_serving_model(
        models,
        config.image_size,
        config.eval.tta,
        config.eval.decision,
        thresholds,
        str(staging),
        card_json,
    )
    extra = staging / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / CARD_FILE).write_text(card_json)
    # One place for the batch sizes: the TF Serving batching configs in k8s/, unless the
    # export config names them (export.warmup_batch_sizes).
    batch_sizes = list(x.warmup_batch_sizes or default_warmup_batch_sizes())
    write_warmup(extra / WARMUP_FILE, x.model_name, config.image_size, batch_sizes, SIGNATURES)
    staging.rename(final)
    log.info("exported %s (folds %s)", final, folds)

    verification = None
    if x.verify:
        verification = verify_export(final, models, sample, config, thresholds, batch_sizes)
        verification["path"] = str(final)
        (run_dir / "export_verification.json").write_text(json.dumps(verification, indent=2))
        log.info("verified %s: %s", final, verification)
    return ExportResult(final, card, verification)
