"""Clinical gate before a model release: the candidate refers no worse than the stable version.

    python -m deploy.clinical_gate export/dr_grader/8 --stable models/dr_grader/7 \\
        --reference-images reference --reference-labels reference/labels.csv

Two comparisons of referable DR (grade >= 2) sensitivity and specificity, both required:
1. the model cards' own evaluation (``metrics.test``, else ``metrics.oof``: the numbers training
   measured on its held-out data); the candidate must have them;
2. a re-run on a held-out reference set with known grades (``labels.csv``: ``file,grade``):
   both versions' ``serving_default`` on the same images, referable = referable_probability >=
   the card's threshold. Identical images, so a drop is the model's, not the sample's.

The candidate fails when either figure is lower than stable's by more than ``max_drop`` (0 by
default: "no worse"), when the reference set has fewer than ``min_positives`` referable or
``min_negatives`` non-referable images (no evidence, no promotion), or when an image cannot be
graded. deploy/validate_model.py calls ``gate_problems`` with ``--reference-labels``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.grades import REFERABLE_MIN_GRADE, is_grade
from contract.model_card import CARD_PATH
from contract.signatures import IMAGE_INPUT, REFERABLE_PROBABILITY, SERVING_SIGNATURE
from deploy.card import read_card
from model.metrics import binary_stats

METRIC_SPLITS = ("test", "oof")


@dataclass(frozen=True)
class Referable:
    """Referable-DR sensitivity and specificity, with the counts behind them (0 = unknown)."""

    sensitivity: float
    specificity: float
    positives: int = 0
    negatives: int = 0


@dataclass(frozen=True)
class Limits:
    """How much worse than stable a candidate may be, and how much evidence is needed."""

    max_drop: float = 0.0
    min_positives: int = 20
    min_negatives: int = 20


def referable_of(grades: Sequence[int], flagged: Sequence[bool]) -> Referable:
    """Sensitivity/specificity of ``flagged`` against the true grades (nan when undefined)."""
    if len(grades) != len(flagged):
        raise ValueError("grades and flags differ in length")
    truth = np.asarray(grades) >= REFERABLE_MIN_GRADE
    stats = binary_stats(truth, np.asarray(flagged, dtype=bool))
    positives = int(truth.sum())
    return Referable(
        sensitivity=stats["sensitivity"],
        specificity=stats["specificity"],
        positives=positives,
        negatives=len(truth) - positives,
    )


def card_referable(card: dict[str, Any]) -> tuple[str, Referable] | None:
    """(split, figures) from a model card's ``metrics``; None when it was not evaluated."""
    metrics = card.get("metrics") or {}
    for split in METRIC_SPLITS:
        values = metrics.get(split) or {}
        sens, spec = values.get("referable_sensitivity"), values.get("referable_specificity")
        if isinstance(sens, int | float) and isinstance(spec, int | float):
            return split, Referable(float(sens), float(spec), int(values.get("n") or 0))
    return None


def compare(candidate: Referable, stable: Referable, limits: Limits, where: str) -> list[str]:
    """Problems when the candidate is worse than stable beyond ``limits.max_drop``."""
    problems = []
    for name in ("sensitivity", "specificity"):
        new, old = getattr(candidate, name), getattr(stable, name)
        if math.isnan(new) or (not math.isnan(old) and new < old - limits.max_drop - 1e-12):
            problems.append(
                f"clinical gate ({where}): referable {name} {new:.3f} < stable {old:.3f}"
                + (f" - {limits.max_drop:.3f}" if limits.max_drop else "")
            )
    return problems


def compare_cards(candidate: dict[str, Any], stable: dict[str, Any], limits: Limits) -> list[str]:
    """The model cards' metrics: the candidate must have them; same split as stable's."""
    new = card_referable(candidate)
    if new is None:
        return ["clinical gate (model card): the candidate card has no referable metrics"]
    old = card_referable(stable)
    if old is None:
        return []  # nothing recorded for stable: the re-run below still compares both
    if new[0] != old[0]:
        return [f"clinical gate (model card): candidate has {new[0]} metrics, stable {old[0]}"]
    return compare(new[1], old[1], limits, f"model card {new[0]}")


def load_labels(path: Path) -> dict[str, int]:
    """``file,grade`` rows (header optional) -> {file name: grade 0..4}."""
    labels: dict[str, int] = {}
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].strip().lower() in ("file", "image", "filename"):
                continue
            name, grade = row[0].strip(), int(row[1])
            if not is_grade(grade):
                raise ValueError(f"{path}: grade {grade} of {name} is not 0..4")
            labels[name] = grade
    return labels


def predict_flags(version_dir: Path, images: list[tuple[str, bytes]]) -> list[bool]:
    """Referable flags of ``serving_default`` on ``images``, preprocessed with the card's config."""
    import tensorflow as tf

    from fundus import load_and_preprocess

    card, config = read_card(version_dir)
    pixels = np.stack([load_and_preprocess(data, config).image for _, data in images])
    serve = tf.saved_model.load(str(version_dir)).signatures[SERVING_SIGNATURE]
    flags: list[bool] = []
    for start in range(0, len(pixels), 8):
        out = serve(**{IMAGE_INPUT: tf.constant(pixels[start : start + 8], tf.uint8)})
        flags += [bool(p >= card.referable_threshold) for p in out[REFERABLE_PROBABILITY].numpy()]
    return flags


def gate_problems(
    candidate_dir: Path,
    stable_dir: Path | None,
    images_dir: Path,
    labels_path: Path,
    limits: Limits | None = None,
) -> list[str]:
    """Everything that stops the candidate (empty = it may be promoted)."""
    limits = limits or Limits()
    labels = load_labels(labels_path)
    missing = sorted(name for name in labels if not (images_dir / name).is_file())
    if missing:
        return [f"clinical gate: reference images missing: {missing[:5]}"]
    images = [(name, (images_dir / name).read_bytes()) for name in sorted(labels)]
    grades = [labels[name] for name, _ in images]
    evidence = referable_of(grades, [False] * len(grades))
    if evidence.positives < limits.min_positives or evidence.negatives < limits.min_negatives:
        return [
            f"clinical gate: reference set has {evidence.positives} referable and "
            f"{evidence.negatives} non-referable images (need {limits.min_positives} and "
            f"{limits.min_negatives})"
        ]
    card_path = CARD_PATH
    candidate_card = json.loads((candidate_dir / card_path).read_text())
    try:
        candidate = referable_of(grades, predict_flags(candidate_dir, images))
    except Exception as error:  # any failure to grade the reference set stops the release
        return [f"clinical gate: the candidate failed on the reference set: {error}"]
    if stable_dir is None:  # first release: nothing to be worse than; the card must exist
        return compare_cards(candidate_card, {}, limits)
    problems = compare_cards(
        candidate_card, json.loads((stable_dir / card_path).read_text()), limits
    )
    stable = referable_of(grades, predict_flags(stable_dir, images))
    problems += compare(candidate, stable, limits, f"re-run on {len(grades)} reference images")
    return problems


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: exit 1 when the gate refuses the candidate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path, help="<root>/dr_grader/<version>")
    parser.add_argument("--stable", type=Path, help="the stable version directory")
    parser.add_argument("--reference-images", type=Path, required=True)
    parser.add_argument("--reference-labels", type=Path, required=True)
    parser.add_argument("--max-drop", type=float, default=0.0)
    parser.add_argument("--min-positives", type=int, default=20)
    parser.add_argument("--min-negatives", type=int, default=20)
    args = parser.parse_args(argv)
    limits = Limits(args.max_drop, args.min_positives, args.min_negatives)
    problems = gate_problems(
        args.candidate, args.stable, args.reference_images, args.reference_labels, limits
    )
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print("clinical gate: " + ("REFUSED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
