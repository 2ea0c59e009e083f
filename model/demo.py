"""Build the demo model for ``make demo`` unless one is already exported.

    python -m model.demo [--npz PATH] [--out export]

Uses RetinaMNIST (``--npz``, else ../shared/data/retinamnist/retinamnist.npz) and falls back to
synthetic photographs from ``synthetic`` when neither exists. Trains
``model/configs/demo.yaml`` and exports ``<out>/dr_grader/1``. The demo model is NOT for
clinical use: it says so, and so does its model card (the gateway repeats it in every answer).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from demo.quiet import quiet_tensorflow

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
SHARED_NPZ = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "retinamnist" / "retinamnist.npz"
)


def exported(out: Path) -> Path | None:
    """An existing version directory under ``out/dr_grader``, if any."""
    root = out / "dr_grader"
    versions = sorted(
        p for p in root.glob("*") if p.name.isdigit() and (p / "saved_model.pb").exists()
    )
    return versions[-1] if versions else None


def main(argv: Sequence[str] | None = None) -> int:
    """Train and export the demo model when none exists."""
    parser = argparse.ArgumentParser(prog="python -m model.demo", description=__doc__)
    parser.add_argument("--npz", type=Path, default=None, help="RetinaMNIST npz file")
    parser.add_argument("--out", type=Path, default=Path("export"))
    args = parser.parse_args(argv)
    existing = exported(args.out)
    if existing is not None:
        print(f"demo model present: {existing} (delete it to rebuild)")
        return 0
    quiet_tensorflow()  # before TensorFlow loads: the demo shows progress, not start-up logs
    # Imported here so that an existing export is found without loading TensorFlow.
    from model.config import load_config
    from model.exporting import export_run
    from model.training import run_training, setup_logging

    setup_logging()
    npz = args.npz or (SHARED_NPZ if SHARED_NPZ.exists() else None)
    if npz is not None and npz.exists():
        overrides = [f"data.npz_path={npz}"]
        source = f"RetinaMNIST (MedMNIST v2, CC BY 4.0) from {npz}"
    else:
        overrides = ["data.source=synthetic", "data.npz_path=null"]
        source = "synthetic fundus photographs (synthetic); RetinaMNIST not found"
    print(f"building the demo model from {source} (a few minutes on 2 cores)", flush=True)
    config = load_config(DEMO_CONFIG, overrides)
    run_dir = run_training(config, progress=False)
    result = export_run(run_dir, [f"export.root={args.out}", "export.version=1"])
    print(f"demo model exported to {result.path}; trained on {source}.")
    print("The demo model is NOT for clinical use.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
