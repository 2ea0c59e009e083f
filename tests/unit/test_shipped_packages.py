"""The gateway image ships fundus/ and gateway/ only: neither holds nor imports the test-data
generator (synthetic/) or the demo runner (demo/), and the Dockerfile copies neither."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("fundus", "gateway")
FORBIDDEN = ("synthetic", "demo")


def _imported_modules(path: Path, root: Path) -> set[str]:
    """Absolute names of every module ``path`` (under ``root``) imports, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parts[: len(parts) - node.level] if node.level <= len(parts) else []
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _forbidden(name: str) -> bool:
    """``synthetic``/``demo`` as a top-level package or as a module inside a shipped one."""
    segments = name.split(".")
    return segments[0] in FORBIDDEN or any(
        segments[:2] == [package, word] for package in SHIPPED for word in FORBIDDEN
    )


@pytest.mark.parametrize("package", SHIPPED)
def test_shipped_package_does_not_import_generator_or_demo(package: str) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offenders = {
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in files
        for name in _imported_modules(path, REPO_ROOT)
        if _forbidden(name)
    }
    assert sorted(offenders) == []


@pytest.mark.parametrize("package", SHIPPED)
def test_shipped_package_holds_no_generator_or_demo_module(package: str) -> None:
    for word in FORBIDDEN:
        assert not (REPO_ROOT / package / f"{word}.py").exists()
        assert not (REPO_ROOT / package / word).exists()


def test_import_scan_sees_forbidden_imports(tmp_path: Path) -> None:
    """The scan catches the spellings a regression would use (absolute, relative, lazy)."""
    package = tmp_path / "gateway"
    package.mkdir()
    probe = package / "probe.py"
    probe.write_text(
        "import synthetic\nfrom . import demo\nfrom fundus.synthetic import encode_jpeg\n"
        "def f():\n    from demo.samples import sample_inputs\n"
    )
    found = _imported_modules(probe, tmp_path)
    assert {n for n in found if _forbidden(n)} >= {
        "synthetic",
        "gateway.demo",
        "fundus.synthetic",
        "demo.samples",
    }


def test_gateway_image_copies_neither() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile.gateway").read_text()
    copies = [line for line in dockerfile.splitlines() if re.match(r"\s*COPY\b", line)]
    assert any(re.search(r"\bfundus/", line) for line in copies)  # the scan reads real COPY lines
    for line in copies:
        sources = line.split()[1:-1]
        for source in sources:
            if source.startswith("--"):
                continue
            top = source.strip("./").split("/")[0]
            assert top not in FORBIDDEN, line
