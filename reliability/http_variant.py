"""``python -m reliability.http_variant {limited,httptools,h11}``: the gateway (``python -m
gateway``'s settings and app) served by one of three HTTP protocols, for
``reliability.http_abuse --throughput``.

``limited`` is what the gateway runs (gateway/http_limits.py); ``httptools`` is uvicorn's default
protocol as the gateway used it before (no header limit); ``h11`` is uvicorn's pure-Python
protocol with its header bound (``h11_max_incomplete_event_size`` = DRG_MAX_HEADER_BYTES).
"""

from __future__ import annotations

import sys

import uvicorn

from gateway.__main__ import server_config
from gateway.logs import configure_logging
from gateway.settings import Settings

VARIANTS = ("limited", "httptools", "h11")


def main(argv: list[str]) -> int:
    """Serve the gateway with the protocol named in ``argv[0]``."""
    variant = argv[0] if argv else "limited"
    if variant not in VARIANTS:
        print(f"variant must be one of {VARIANTS}", file=sys.stderr)
        return 2
    settings = Settings()
    configure_logging(settings.log_level)
    config = server_config(settings)
    if variant == "httptools":
        config.http = "httptools"
    elif variant == "h11":
        config.http = "h11"
        config.h11_max_incomplete_event_size = settings.max_header_bytes
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
