"""Connection-level limits uvicorn's httptools protocol lacks: header size and count, a header
read timeout, lingering close, and a cap on idle connections.

uvicorn picks httptools when it is installed (uvicorn[standard]) and httptools buffers a header of
any size: one 50 MB header was accepted and 50 MB of short lines cost 760 MB of RSS (issue 14,
finding 3). h11 bounds headers (``h11_max_incomplete_event_size``) but is slower and, like
httptools, has no header read timeout, so ``LimitedHttpToolsProtocol`` keeps httptools and adds:

- at most ``max_header_bytes`` of request line + headers and ``max_header_count`` header lines,
  else 431 ``headers_too_large``; raw bytes are counted while headers are incomplete, so at most
  one socket read (256 KiB) beyond the limit is ever buffered;
- a request's headers must be complete within ``header_read_timeout_s`` from its first byte (or
  from the connection's opening), else 408 ``header_read_timeout`` (or a silent close when not
  one byte came); the keep-alive timeout between requests stays uvicorn's (``timeout_keep_alive``);
- a response sent before its request body has arrived (401 on an upload) closes the connection
  after at most ``LINGER_S`` of discarding the rest, instead of reading a trickled body forever;
- past ``max_connections`` open connections, a new one closes the connection idle for longest
  (between requests or still sending headers). Busy connections are never evicted and no
  request is refused with 503, so probes keep answering under a connection flood.

Errors written here bypass the ASGI app; their codes and statuses come from ``gateway/errors.py``
and each is logged as one line (event ``http_rejected``) with the peer address.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.errors import ApiError

logger = logging.getLogger("gateway.http")

LINGER_S = 5.0
"""How long a connection that must close keeps discarding input before it closes, so the client
reads its answer instead of a TCP reset (nginx's ``lingering_timeout`` is also 5 s)."""
_HEADER_LINE_OVERHEAD = 4
"""': ' and CRLF around each header name and value."""


@dataclass(frozen=True)
class HttpLimits:
    """The limits one gateway process applies to every connection."""

    max_header_bytes: int
    max_header_count: int
    header_read_timeout_s: float
    max_connections: int


class _Phase(Enum):
    IDLE = "idle"  # no byte of the next request yet (fresh or between requests)
    HEADERS = "headers"  # request line or headers incomplete
    REQUEST = "request"  # headers complete: body and/or the app running


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing at once."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``HttpLimits`` (see the module doc)."""

    limits: HttpLimits  # set on the subclass made by ``protocol_class``

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = _Phase.IDLE
        self._raw_header_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._message_complete = True
        self._read_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._discarding = False
        self._too_large = False
        self._idle_since = self.loop.time()

    # --- connection lifetime ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A new connection must deliver its first request's headers in time, like any request.
        self._arm_read_timer()
        if len(self.connections) > self.limits.max_connections:
            self._evict_longest_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, except that a header limit answers 431, not 400.
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._too_large:
                self._reject("headers_too_large", "request headers exceed the limit")
                return
            raise
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._phase is _Phase.HEADERS:
            # httptools buffers an incomplete header line in full before any callback sees it:
            # count raw bytes too. A chunk that also ends the previous request (pipelining) is
            # counted whole, erring on the safe side by at most one read.
            self._raw_header_bytes += len(data)
            if self._raw_header_bytes > self.limits.max_header_bytes:
                self._reject("headers_too_large", "request headers exceed the limit")

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _Phase.HEADERS
        self._raw_header_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._message_complete = False
        if self._read_timer is None:
            self._arm_read_timer()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + _HEADER_LINE_OVERHEAD
        if (
            self._header_count > self.limits.max_header_count
            or self._header_bytes > self.limits.max_header_bytes
        ):
            self._too_large = True
            raise _HeadersTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = _Phase.REQUEST
        self._cancel_read_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._message_complete = True
        if (
            self._phase is _Phase.REQUEST
            and self.cycle is not None
            and self.cycle.response_complete
        ):
            # The answer went out before the body had fully arrived; now it has: reuse the
            # connection (uvicorn cancelled its keep-alive timer on each chunk, re-arm it).
            self._cancel_linger()
            self._to_idle()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._phase is not _Phase.REQUEST or self.cycle is None:
            return  # a pipelined request has begun: it owns the connection now
        if not self.cycle.response_complete:
            return
        if self._message_complete:
            self._to_idle()
        elif self._linger_timer is None:
            # Answered before the body arrived (401, 413, 415): drain briefly, then close.
            self._linger_timer = self.loop.call_later(LINGER_S, self._close)

    # --- helpers ---------------------------------------------------------------------------

    def _to_idle(self) -> None:
        self._phase = _Phase.IDLE
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None and not self.pipeline:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(
            self.limits.header_read_timeout_s, self._on_read_timeout
        )

    def _on_read_timeout(self) -> None:
        self._read_timer = None
        if self._phase is _Phase.HEADERS:
            self._reject("header_read_timeout", "the request headers did not arrive in time")
        elif self._phase is _Phase.IDLE and self.cycle is None:
            self._close()  # connected, but never sent a byte

    def _reject(self, code: str, message: str) -> None:
        """Answer ``code`` from the error table, half-close, discard input, close soon."""
        error = ApiError(code, message)
        body = json.dumps(error.body()).encode()
        head = (
            f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        peer = self.client[0] if self.client else None
        logger.warning(
            "request rejected before the app",
            extra={
                "event": "http_rejected",
                "error_code": code,
                "status": error.status,
                "peer": peer,
            },
        )
        self._discarding = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_S, self._close)

    def _evict_longest_idle(self) -> None:
        candidates = [
            c
            for c in self.connections
            if isinstance(c, LimitedHttpToolsProtocol)
            and c is not self
            and not c.transport.is_closing()
            and c._evictable()
        ]
        if not candidates:
            return  # every connection carries a request: keep them; the limiter sheds load
        oldest = min(candidates, key=lambda c: c._idle_since)
        peer = oldest.client[0] if oldest.client else None
        logger.warning(
            "connection limit reached: closing the longest idle connection",
            extra={"event": "connection_evicted", "peer": peer},
        )
        oldest._close()

    def _evictable(self) -> bool:
        return self._phase is not _Phase.REQUEST and (
            self.cycle is None or self.cycle.response_complete
        )

    def _close(self) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _cancel_linger(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_read_timer()
        self._cancel_linger()


def protocol_class(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A ``LimitedHttpToolsProtocol`` subclass bound to ``limits`` (uvicorn's ``http=``)."""
    return type("GatewayHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


__all__ = ["LINGER_S", "HttpLimits", "LimitedHttpToolsProtocol", "protocol_class"]
