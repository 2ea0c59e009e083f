"""Train -> evaluate -> export in one call (CI, gateway test fixtures, smoke runs).

``python -m model.pipeline --config model/configs/tiny.yaml export.root=/tmp/models``
builds ``/tmp/models/dr_grader/<version>/`` from synthetic photos in a few minutes on 2 CPUs.
From Python: ``build_model_export(config_path, overrides) -> Path`` (the version directory).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from model.config import load_config
from model.evaluation import evaluate_run
from model.exporting import ExportResult, export_run
from model.training import run_training


def build_model_export(
    config_path: str | Path, overrides: Sequence[str] = (), progress: bool = False
) -> ExportResult:
    """Train every fold, evaluate, export and verify; returns the export result."""
    config = load_config(config_path, list(overrides))
    run_dir = run_training(config, progress=progress)
    evaluate_run(run_dir)
    return export_run(run_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.pipeline", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    result = build_model_export(args.config, args.overrides, progress=True)
    print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
