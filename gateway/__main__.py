"""``python -m gateway``: validate settings, configure JSON logs, serve with one uvicorn worker."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from gateway.logs import configure_logging
from gateway.main import create_app
from gateway.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn's graceful drain: exit 0, not 143 (Kubernetes shows "Completed")."""
    raise SystemExit(0)


def main() -> int:
    """Start the gateway; bad settings stop it with exit code 2 and the reasons."""
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"invalid gateway settings (DRG_*):\n{error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    # uvicorn handles SIGTERM itself while serving (stop accepting, drain, lifespan shutdown),
    # then re-raises it to the handler that was installed before: this one.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
