"""A connection guard in front of the HTTP server (aiohttp has no request-head timeout of its own).

A client must send a complete request head within HEADER_TIMEOUT_S of connecting; at most MAX_WAITING_PER_PEER
connections from one address, and MAX_WAITING in all, may be waiting for theirs at once: further ones are closed
as they arrive. So a slowloris client or 2,000 half-open connections from one host cannot exhaust the service's
file descriptors or memory, nor lock others out, while clients that talk (browsers, Home Assistant, MJPEG viewers,
however long they stream) are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger("faceanon.http")

HEADER_TIMEOUT_S = 10.0
MAX_WAITING = 256
MAX_WAITING_PER_PEER = 16


@dataclass
class GuardCounts:
    waiting: int = 0  # connected, request head not complete yet
    timed_out: int = 0
    refused: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)  # waiting connections per remote address


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's RequestHandler; closes the connection when its first request head does not
    arrive in time, or refuses it when too many are already waiting."""

    def __init__(self, inner: Any, counts: GuardCounts, timeout_s: float, max_waiting: int,
                 max_per_peer: int) -> None:
        self.inner = inner
        self.counts = counts
        self.timeout_s, self.max_waiting, self.max_per_peer = timeout_s, max_waiting, max_per_peer
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._waiting = False
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        counts = self.counts
        if counts.waiting >= self.max_waiting or counts.by_peer.get(self.peer, 0) >= self.max_per_peer:
            self._refused = True
            self.counts.refused += 1
            if self.counts.refused in (1, 100) or self.counts.refused % 10000 == 0:
                log.warning("http: %d connections wait for their request; refusing more (%d so far)",
                            self.counts.waiting, self.counts.refused)
            transport.abort()
            return
        self._waiting = True
        counts.waiting += 1
        counts.by_peer[self.peer] = counts.by_peer.get(self.peer, 0) + 1
        self._timer = asyncio.get_running_loop().call_later(self.timeout_s, self._expire)
        self.inner.connection_made(transport)

    def _head_done(self) -> None:
        if self._waiting:
            self._waiting = False
            counts = self.counts
            counts.waiting -= 1
            left = counts.by_peer.get(self.peer, 1) - 1
            if left > 0:
                counts.by_peer[self.peer] = left
            else:
                counts.by_peer.pop(self.peer, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        if self._waiting and self.transport is not None:
            self.counts.timed_out += 1
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)
        if self._waiting and getattr(self.inner, "_request_count", 0) > 0:  # a whole request head was parsed
            self._head_done()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if not self._refused:
            self.inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite with every connection behind a GuardedProtocol."""

    __slots__ = ("counts", "max_per_peer", "max_waiting", "timeout_s")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, timeout_s: float = HEADER_TIMEOUT_S,
                 max_waiting: int = MAX_WAITING, max_per_peer: int = MAX_WAITING_PER_PEER) -> None:
        super().__init__(runner, host, port)
        self.counts = GuardCounts()
        self.timeout_s, self.max_waiting, self.max_per_peer = timeout_s, max_waiting, max_per_peer

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner (stopped by runner.cleanup())
        server = self._runner.server
        assert server is not None

        def make() -> GuardedProtocol:
            return GuardedProtocol(server(), self.counts, self.timeout_s, self.max_waiting, self.max_per_peer)

        self._server = await asyncio.get_running_loop().create_server(make, self._host, self._port,
                                                                      backlog=self._backlog)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
