"""Reliability fixtures: the gateway of ``reliability.malformed`` (PACS intake on, 1 MiB uploads) in
front of the TF Serving stand-in serving the tiny model, shared by the bad-input and OpenAPI
fuzz tests of this package (started once: the stand-in imports TensorFlow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.gateway_stack import Stack
from reliability.malformed.stack import serving_stack


@pytest.fixture(scope="package")
def stack(
    model_root: Path, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stand-in and the gateway, ready; stopped after the package's tests."""
    with serving_stack(model_root, tmp_path_factory.mktemp("reliability"), lean_protos) as running:
        yield running
