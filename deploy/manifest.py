"""The sha256 manifest of a model version: written at release, checked at every pod start.

    python -m deploy.manifest write export/dr_grader/7     # -> export/dr_grader/7/MANIFEST.sha256
    python -m deploy.manifest verify export/dr_grader/7

``MANIFEST.sha256`` is in ``sha256sum`` format (``<64 hex>  <relative path>``, sorted), so the
model-sync init container (k8s/base/tfserving/sync-models.sh) checks it with ``sha256sum -c``
and installs only the files it lists. Paths are restricted to ``[A-Za-z0-9._/-]`` with no ``..``
component, so a manifest can never name a file outside the version directory.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

MANIFEST = "MANIFEST.sha256"
_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")
_LINE = re.compile(r"^(?P<digest>[0-9a-f]{64})  (?P<path>\S+)$")


class ManifestError(ValueError):
    """The manifest is missing, malformed, or does not match the files."""


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _safe(relative: str) -> bool:
    return bool(_PATH.match(relative)) and ".." not in relative.split("/")


def build(version_dir: Path) -> str:
    """The manifest text for every file under ``version_dir`` (except a manifest)."""
    lines = []
    for path in sorted(p for p in version_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(version_dir).as_posix()
        if relative == MANIFEST:
            continue
        if not _safe(relative):
            raise ManifestError(f"{relative!r}: only [A-Za-z0-9._/-] names can be released")
        lines.append(f"{_digest(path)}  {relative}\n")
    if not any(line.endswith("  saved_model.pb\n") for line in lines):
        raise ManifestError(f"{version_dir} holds no saved_model.pb")
    return "".join(lines)


def write(version_dir: Path) -> Path:
    """Write ``MANIFEST.sha256`` into ``version_dir``."""
    target = version_dir / MANIFEST
    target.write_text(build(version_dir))
    return target


def verify(version_dir: Path) -> None:
    """Raise ManifestError unless the files are exactly those the manifest lists, unchanged."""
    manifest = version_dir / MANIFEST
    if not manifest.is_file():
        raise ManifestError(f"{version_dir} has no {MANIFEST}")
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        match = _LINE.match(line)
        if not match or not _safe(match["path"]):
            raise ManifestError(f"{MANIFEST} line {number} is malformed: {line[:80]!r}")
        listed[match["path"]] = match["digest"]
    present = {
        p.relative_to(version_dir).as_posix()
        for p in version_dir.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    if present != set(listed):
        raise ManifestError(
            f"files not in the manifest {sorted(present - set(listed))}, "
            f"listed but missing {sorted(set(listed) - present)}"
        )
    changed = sorted(p for p, d in listed.items() if _digest(version_dir / p) != d)
    if changed:
        raise ManifestError(f"sha256 mismatch: {changed}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("write", "verify"))
    parser.add_argument("version_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            print(f"wrote {write(args.version_dir)}")
        else:
            verify(args.version_dir)
            print(f"{args.version_dir}: matches {MANIFEST}")
    except ManifestError as error:
        print(f"manifest: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
