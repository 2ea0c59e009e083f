"""Build the lean protocol package: TF Serving's generated modules without the TF runtime.

    python -m gateway.lean_protos --out build/lean-protos

Copies the ``*_pb2.py`` / ``*_pb2_grpc.py`` files of tensorflow_serving/ and of the few
tensorflow/ proto directories they import from an installed tensorflow-serving-api (found
without importing tensorflow), and writes empty ``__init__.py`` files. Put the output first on
PYTHONPATH: ``import tensorflow.core.framework.tensor_pb2`` then resolves to the copy and the
TF runtime is never loaded. Used by Dockerfile.gateway's builder stage and by the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
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
    return copied


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/lean-protos"))
    args = parser.parse_args(argv)
    count = build(args.out)
    print(f"copied {count} generated modules into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
