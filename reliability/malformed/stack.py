"""The gateway under test: the TF Serving stand-in and a lean gateway with the PACS intake on
and a 1 MiB upload limit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.gateway_stack import Stack, running_stack
from reliability.malformed.wire import KEYS, UPLOAD_LIMIT


def gateway_fields(workdir: Path) -> dict[str, str]:
    """Settings of the gateway under test: PACS intake on (no delivery), 1 MiB uploads."""
    return {
        "max_upload_bytes": str(UPLOAD_LIMIT),
        "pacs_enabled": "true",
        "database_url": f"sqlite:///{workdir / 'drg.sqlite3'}",
        "backend_timeout_s": "15",
        "request_timeout_s": "30",
    }


@contextmanager
def serving_stack(
    model_root: Path, workdir: Path, lean_protos: Path | None = None
) -> Iterator[Stack]:
    """Start the TF Serving stand-in and the gateway (lean, ``KEYS``) in ``workdir``; stop both
    after."""
    with running_stack(
        model_root,
        workdir,
        server_args=("--labels", "stable=1"),
        lean_protos=lean_protos,
        keys_file=KEYS.write(workdir / "keys.txt"),
        **gateway_fields(workdir),
    ) as stack:
        yield stack
