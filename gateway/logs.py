"""JSON-lines logging with the request id; never patient data or image bytes.

Only fields the gateway itself sets are written: ids, routes, statuses, durations, codes and
model versions. Messages from libraries go through the same formatter.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_EXTRA_FIELDS = (
    "route",
    "method",
    "status",
    "duration_ms",
    "error_code",
    "model_version",
    "client",
    "peer",
    "forwarded_for",
    "images",
    "gradable",
    "event",
    "outcomes",
    "refusals",
    "kind",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Type and place only: exception messages from parsers can quote input data.
            entry["exception"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:
                entry["where"] = f"{frames[-1].filename}:{frames[-1].lineno}"
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(level: str) -> None:
    """Route every logger (uvicorn's too) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the gateway logs each request itself


def peer_fields(scope: Mapping[str, Any], headers: Mapping[bytes, bytes]) -> dict[str, str]:
    """``peer`` (the TCP client) and ``forwarded_for`` (the last X-Forwarded-For entry, the one
    the ALB appends), each only when it is a valid IP address: never free text from a client."""
    fields: dict[str, str] = {}
    client = scope.get("client")
    if client and _is_ip(str(client[0])):
        fields["peer"] = str(client[0])
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1").rsplit(",", 1)[-1].strip()
    if _is_ip(forwarded):
        fields["forwarded_for"] = forwarded
    return fields


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
