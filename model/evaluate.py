"""Evaluate: ``python -m model.evaluate --run runs/<run> [--recompute] [key=value ...]``.

Prints the headline numbers and writes ``<run>/eval/metrics.json`` + PNG plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from model.evaluation import evaluate_run, headline
from model.training import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory")
    parser.add_argument("--recompute", action="store_true", help="re-predict from checkpoints")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (eval.*, data.*)")
    args = parser.parse_args(argv)
    setup_logging()
    result = evaluate_run(args.run, args.recompute, args.out, args.overrides)
    summary = {split: headline(result[split]) for split in ("oof", "test") if split in result}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
