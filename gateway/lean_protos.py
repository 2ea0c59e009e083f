"""The lean protocol package: TF Serving's generated modules without the TF runtime.

    python -m gateway.lean_protos [--out DIR]      # default: <venv>/lean-protos

Copies the ``*_pb2.py`` / ``*_pb2_grpc.py`` files of tensorflow_serving/ and of the few
tensorflow/ proto directories they import from an installed tensorflow-serving-api (found
without importing tensorflow), writes empty ``__init__.py`` files and a ``LEAN_PROTOS`` marker
(the wheel version it was copied from). With the copy first on ``sys.path``,
``import tensorflow.core.framework.tensor_pb2`` resolves to it and the TF runtime is never
loaded.

``ensure()`` is how ``python -m gateway`` (tfserving mode) gets there with nothing set by hand:
a copy already first on the path (the image's ``PYTHONPATH=/opt/lean-protos``) is used as is;
otherwise ``<venv>/lean-protos`` (built by ``make setup``) is put first, built on the spot when
missing or copied from another wheel version, and start-up stops with a clear message when it
cannot be. Standard library only: Dockerfile.gateway's protos stage runs this file alone.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

PROTO_DIRS = (
    "tensorflow_serving/apis",
    "tensorflow_serving/config",
    "tensorflow_serving/core",
    "tensorflow_serving/sources/storage_path",
    "tensorflow_serving/util",
    "tensorflow/core/framework",
    "tensorflow/core/protobuf",
    "tensorflow/core/example",
    "tensorflow/compiler/xla/tsl/protobuf",
)
MARKER = "LEAN_PROTOS"
"""File at the root of a built copy; holds the tensorflow-serving-api version copied."""
WHEEL = "tensorflow-serving-api"

logger = logging.getLogger("gateway.lean_protos")


def default_dir() -> Path:
    """Where ``make setup`` builds the copy and the gateway looks for it: ``<venv>/lean-protos``."""
    return Path(sys.prefix) / "lean-protos"


def site_root() -> Path:
    """Directory holding the installed ``tensorflow`` and ``tensorflow_serving`` packages."""
    spec = importlib.util.find_spec("tensorflow_serving")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tensorflow-serving-api is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations))).parent


def build(out: Path) -> int:
    """Copy the generated modules into ``out``; return how many files were copied."""
    root = site_root()
    if out.exists():
        shutil.rmtree(out)
    copied = 0
    for relative in PROTO_DIRS:
        source = root / relative
        if not source.is_dir():
            continue
        for path in sorted(source.glob("*_pb2*.py")):
            target = out / relative / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied += 1
    for directory in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (out / MARKER).write_text(f"{wheel_version() or 'unknown'}\n")
    return copied


def wheel_version() -> str | None:
    """The installed tensorflow-serving-api version; None where it is not installed (image)."""
    try:
        return importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None


def active() -> Path | None:
    """The lean copy that ``import tensorflow`` would load now, or None (the full TF, or none).

    ``find_spec`` of a top-level package finds it without running its ``__init__``.
    """
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parents[1]
    return root if (root / MARKER).is_file() else None


def ensure(folder: Path | None = None) -> Path:
    """Put a lean copy first on ``sys.path`` (building ``folder`` when needed); return it.

    Raises SystemExit with the reason when that is impossible: never a silent full TF import.
    """
    current = active()
    if current is not None:
        return current
    if "tensorflow" in sys.modules:
        raise SystemExit("lean protos: the TensorFlow runtime was imported before start-up")
    folder = folder or default_dir()
    if not _is_fresh(folder):
        _build_in_place(folder)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    if active() != folder:
        raise SystemExit(f"lean protos: {folder} is first on sys.path but tensorflow is not it")
    return folder


def _is_fresh(folder: Path) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    installed = wheel_version()
    return installed is None or marker.read_text().strip() == installed


def _build_in_place(folder: Path) -> None:
    """Build next to ``folder`` and rename: a gateway starting at the same time sees all or none."""
    if wheel_version() is None:
        raise SystemExit(
            f"lean protos: {folder} is missing and {WHEEL} is not installed to build it; "
            f"run `make setup` or `python -m gateway.lean_protos --out {folder}`"
        )
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}")
    try:
        count = build(scratch)
        if folder.exists():
            shutil.rmtree(folder)
        scratch.rename(folder)
    except OSError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        if _is_fresh(folder):  # another process built it first
            return
        raise SystemExit(f"lean protos: cannot build {folder}: {error}") from None
    logger.info("lean protos: copied %d generated modules into %s", count, folder)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_dir())
    args = parser.parse_args(argv)
    count = build(args.out)
    print(f"copied {count} generated modules into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
