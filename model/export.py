"""Export: ``python -m model.export --run runs/<run> [export.root=export export.version=3 ...]``.

Writes ``<export.root>/<export.model_name>/<version>/`` (SavedModel + assets.extra) and verifies
it (reload, both signatures, 1e-4 equality with Keras, saved_model_cli, warmup parse).
Always the TF backend: a run trained under JAX is exported from its saved weights.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from model.exporting import export_run
from model.training import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.export", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="finished run directory")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (export.*)")
    args = parser.parse_args(argv)
    setup_logging()
    result = export_run(args.run, args.overrides)
    print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
