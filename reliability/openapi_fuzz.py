"""Schemathesis against the gateway's own OpenAPI document: no server error, documented answers.

    python -m reliability.openapi_fuzz --model-root export [--max-examples 200] [--seed 1]

Starts the stack of ``reliability.malformed`` (TF Serving stand-in + gateway, PACS intake on) and
runs schemathesis's CLI, ``st run <gateway>/openapi.json``, with a key holding both scopes, the
phases that apply (examples, coverage, fuzzing), a fixed seed, one worker and ``CHECKS``.

This module is also schemathesis's hooks module (``SCHEMATHESIS_HOOKS=reliability.openapi_fuzz``):
it gives schemathesis serializers for the STOW-RS bodies (``application/dicom`` and
``multipart/related``) and registers ``no_server_error``, which is schemathesis's
``not_a_server_error`` minus one known finding: ``?version=N`` naming a version the model
server does not serve is answered 503 ``model_unavailable`` (TF Serving answers NOT_FOUND both
for an unknown version and for one still loading, and the gateway maps NOT_FOUND to 503). Each
such answer is appended to ``$OPENAPI_FUZZ_KNOWN_LOG`` when set, so a run can count them.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.transport import SerializationContext, register_serializer

CHECKS = (
    "no_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
)
"""Left out: positive_data_acceptance (a schema-valid ``format: binary`` body is random bytes,
not a photograph, so a 4xx is right), the auth checks (the OpenAPI document declares no security
scheme; the API key travels as a header) and the stateful ones (no links between operations)."""
KNOWN_LOG_ENV = "OPENAPI_FUZZ_KNOWN_LOG"
_UNKNOWN_VERSION = re.compile(r"Servable not found for request: Specific\([^,]+, (\d+)\)")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    data = getattr(value, "data", None)
    return data if isinstance(data, bytes) else str(value).encode()


@schemathesis.serializer("application/dicom")
def _dicom_body(ctx: SerializationContext, value: Any) -> bytes:
    """The generated binary as one raw instance."""
    return _as_bytes(value)


def _stow_body(ctx: SerializationContext, value: Any) -> dict[str, Any]:
    """The generated binary as the single part of a multipart/related STOW-RS request."""
    boundary = secrets.token_hex(12)
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + _as_bytes(value)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return {"data": body, "headers": {"Content-Type": content_type}}


register_serializer(_stow_body, 'multipart/related; type="application/dicom"')


def is_unknown_version_answer(status: int, body: str, query: dict[str, Any] | None) -> bool:
    """The known finding: 503 model_unavailable for the very version the client asked for."""
    match = _UNKNOWN_VERSION.search(body)
    requested = (query or {}).get("version")
    return (
        status == 503
        and '"model_unavailable"' in body
        and match is not None
        and requested is not None
        and str(requested) == match.group(1)
    )


@schemathesis.check
def no_server_error(ctx: schemathesis.CheckContext, response: Any, case: Any) -> bool | None:
    """not_a_server_error, except the known unknown-version finding (see the module docstring)."""
    if response.status_code < 500:
        return None
    if is_unknown_version_answer(response.status_code, response.text, case.query):
        log = os.environ.get(KNOWN_LOG_ENV)
        if log:
            with open(log, "a") as known:
                known.write(f"{case.method} {case.path} version={case.query.get('version')}\n")
        return None
    raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


def command(
    base_url: str, key: str, *, max_examples: int, seed: int, report_dir: Path
) -> list[str]:
    """The ``st run`` command line (run it with ``environment()``)."""
    return [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]


def environment(known_log: Path) -> dict[str, str]:
    """Loads this module as the hooks module; the repository root must be importable."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "reliability.openapi_fuzz",
        "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root,
        KNOWN_LOG_ENV: str(known_log),
    }


def run(
    base_url: str, key: str, workdir: Path, *, max_examples: int, seed: int, capture: bool
) -> tuple[int, str, int]:
    """(exit code, output when captured, answers of the known finding)."""
    known = workdir / "known_findings.txt"
    known.unlink(missing_ok=True)
    completed = subprocess.run(
        command(base_url, key, max_examples=max_examples, seed=seed, report_dir=workdir / "st"),
        env=environment(known),
        capture_output=capture,
        text=True,
        check=False,
    )
    hits = len(known.read_text().splitlines()) if known.exists() else 0
    return completed.returncode, (completed.stdout or "") + (completed.stderr or ""), hits


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run schemathesis, print its report; exit with its exit code."""
    from reliability.malformed.stack import serving_stack
    from reliability.malformed.wire import KEYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-openapi-fuzz-"))
    with serving_stack(args.model_root, workdir) as stack:
        code, _, hits = run(
            stack.gateway.url,
            KEYS.both,
            workdir,
            max_examples=args.max_examples,
            seed=args.seed,
            capture=False,
        )
    print(f"known finding (503 model_unavailable for an unserved ?version=N): {hits} answers")
    print(f"junit report: {workdir / 'st'}")
    print("RESULT:", "PASS" if code == 0 else f"FAIL (st exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
