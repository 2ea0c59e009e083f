"""The package layering of issue 15, checked on the source: who may import whom, and module size
(what the shipped packages may import is in test_shipped_packages.py).

Each rule names the packages it guards; the check parses every module with ``ast`` (imports inside
functions count too), so a lazy import cannot slip past it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 500
GENERATED = ("_pb2.py", "_pb2_grpc.py")


def modules(package: str) -> Iterator[Path]:
    """Every Python file of a top-level package (none when the package does not exist)."""
    root = REPO_ROOT / package
    yield from sorted(path for path in root.rglob("*.py") if ".venv" not in path.parts)


def imported_names(source: str, package: tuple[str, ...]) -> set[str]:
    """Dotted names of every module ``source`` imports, anywhere in the file (relative imports
    resolved against ``package``, the parts of the file's package)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def violations(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for package in packages:
        for path in modules(package):
            package_parts = path.relative_to(REPO_ROOT).parent.parts
            for name in sorted(imported_names(path.read_text(), package_parts)):
                if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                    found.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    return found


RULES = {
    "benches and harness never import tests": (("bench", "reliability", "harness"), ("tests",)),
    "deploy never imports the gateway": (("deploy",), ("gateway",)),
    "the PACS dataplane never imports the HTTP layer": (("gateway/pacs",), ("gateway.api",)),
    "the FHIR builder never imports the HTTP layer": (("gateway/fhir",), ("gateway.api",)),
    "the contract imports no runtime and no part": (
        ("contract",),
        ("tensorflow", "keras", "gateway", "model", "deploy", "fundus", "bench", "harness"),
    ),
    "the gateway never imports TensorFlow at module level through fundus": (
        ("fundus",),
        ("tensorflow", "keras"),
    ),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_layering(rule: str) -> None:
    packages, forbidden = RULES[rule]
    assert any(any(True for _ in modules(p)) for p in packages), f"{packages}: no modules found"
    assert violations(packages, forbidden) == []


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    source = "def f():\n    from tests.support import x\n\nfrom ..api import responses\n"
    names = imported_names(source, ("gateway", "pacs"))
    assert {"tests.support", "tests.support.x", "gateway.api", "gateway.api.responses"} <= names


def test_no_module_outside_tests_is_over_500_lines() -> None:
    too_long = []
    for top in sorted(p for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if top.name in {"tests", "export", "var", "runs", "cache", "node_modules"}:
            continue
        for path in top.rglob("*.py"):
            if path.name.endswith(GENERATED) or "node_modules" in path.parts:
                continue
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                too_long.append(f"{path.relative_to(REPO_ROOT)}: {lines}")
    assert too_long == []
