"""``python -m gateway``: validate settings, configure JSON logs, serve with one uvicorn worker.

In tfserving mode the lean protos go first on ``sys.path`` before anything imports a protocol
module (``gateway.lean_protos.ensure``), so the process never loads the TensorFlow runtime.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from gateway import lean_protos
from gateway.http_limits import HttpLimits, protocol_class
from gateway.logs import configure_logging
from gateway.settings import Settings

logger = logging.getLogger("gateway")


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn's graceful drain: exit 0, not 143 (Kubernetes shows "Completed")."""
    raise SystemExit(0)


def server_config(settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration: the limited httptools protocol and the connection timeouts."""
    from gateway.main import create_app  # after lean_protos.ensure(): see the module docstring

    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        header_read_timeout_s=settings.header_read_timeout_s,
        max_connections=settings.max_connections,
    )
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=protocol_class(limits),
        workers=1,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        server_header=False,
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as the host says)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def sockets(settings: Settings) -> list[socket.socket]:
    """The API port and, when set, the metrics port (gateway/main.py routes by local port)."""
    bound = [listen(settings.host, settings.port)]
    if settings.metrics_port is not None:
        bound.append(listen(settings.host, settings.metrics_port))
    return bound


def main() -> int:
    """Start the gateway; bad settings stop it with exit code 2 and the reasons."""
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"invalid gateway settings (DRG_*):\n{error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.backend == "tfserving":
        lean_protos.ensure()
    # uvicorn handles SIGTERM itself while serving (stop accepting, drain, lifespan shutdown),
    # then re-raises it to the handler that was installed before: this one.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        bound = sockets(settings)
    except OSError as error:
        print(f"cannot listen: {error}", file=sys.stderr)
        return 1
    ports = ", ".join(str(s.getsockname()[1]) for s in bound)
    logger.info("listening on %s port(s) %s", settings.host, ports, extra={"event": "listening"})
    uvicorn.Server(server_config(settings)).run(sockets=bound)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
