"""Schemathesis against the running gateway's /openapi.json (reliability/openapi_fuzz.py): no server
error, statuses, content types, headers and bodies as documented, schema-invalid input refused,
undeclared methods answered 405 with ``Allow``. Seeded; the larger run is
``python -m reliability.openapi_fuzz --max-examples 1000``. One documented answer is let through by
the ``no_server_error`` check: 503 ``model_unavailable`` for ``?version=N`` naming a version the
model server does not serve (tests/integration/test_gateway_api.py asserts it; see
reliability/openapi_fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.gateway_stack import Stack
from reliability.malformed.wire import KEYS
from reliability.openapi_fuzz import run

MAX_EXAMPLES = 100
SEED = 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    stack: Stack, tmp_path: Path
) -> None:
    code, output, _ = run(
        stack.gateway.url,
        KEYS.both,
        tmp_path,
        max_examples=MAX_EXAMPLES,
        seed=SEED,
        capture=True,
    )
    assert code == 0, output[-6000:]
    # Every operation the gateway documents was tested (GET /v1/grading-scale made it 8).
    paths = httpx.get(stack.gateway.url + "/openapi.json", timeout=10).json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    assert operations >= 8
    assert " passed" in output and f"Tested: {operations}" in output, output[-3000:]
