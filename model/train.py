"""Train: ``python -m model.train --config model/configs/retinamnist.yaml [key=value ...]``.

Overrides use dotted keys, e.g. ``train.epochs=5 data.npz_path=/data/retinamnist.npz``;
``run_dir=runs/x`` resumes (or continues) that run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model.config import load_config
from model.training import run_training


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    run_dir = run_training(config, progress=not args.no_progress)
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
