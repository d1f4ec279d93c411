"""`GET /api/events`: server-sent events with the cameras' status, pushed when something a user sees changes.

An event `cameras` carries the body of `GET /api/cameras`. It goes out at once on connecting; then within
CHECK_S of a change in any camera's face count, privacy state, online state, controls or set of cameras; and at
least every REFRESH_S for the figures (fps, latency) that move all the time. A comment line every KEEPALIVE_S keeps
proxies from closing an idle stream and tells a listener the service is alive: the first line, `: keepalive <s>`,
says how often, so Home Assistant takes a few seconds of silence for a frozen service (SIGSTOP, a hung host). Home
Assistant's integration listens here and polls only while it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

CHECK_S = 0.2
REFRESH_S = 30.0
KEEPALIVE_S = 2.0
MAX_LISTENERS = 16


def signature(body: dict[str, Any]) -> tuple:
    """What must reach a dashboard at once: each camera's count, privacy and online state, and its controls."""
    return tuple((c.get("name"), c.get("faces"), c.get("privacy_degraded"), c.get("online"),
                  json.dumps(c.get("controls"), sort_keys=True, default=str)) for c in body.get("cameras", []))


class EventStream:
    def __init__(self, body: Callable[[], dict[str, Any]], closing: asyncio.Event,
                 dumps: Callable[[Any], str] = json.dumps) -> None:
        self.body, self.closing, self.dumps = body, closing, dumps
        self.listeners = 0

    async def handle(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        if self.listeners >= MAX_LISTENERS:
            raise web.HTTPServiceUnavailable(reason=f"too many event streams (at most {MAX_LISTENERS})")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no", **headers})
        self.listeners += 1
        try:
            await response.prepare(request)
            await response.write(f": keepalive {KEEPALIVE_S:g}\n\n".encode())
            sent, sent_at, alive_at = None, 0.0, time.monotonic()
            while not self.closing.is_set():
                body = self.body()
                now = time.monotonic()
                if signature(body) != sent or now - sent_at >= REFRESH_S:
                    await response.write(f"event: cameras\ndata: {self.dumps(body)}\n\n".encode())
                    sent, sent_at = signature(body), now
                    alive_at = now
                elif now - alive_at >= KEEPALIVE_S:
                    await response.write(b": keep-alive\n\n")
                    alive_at = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), CHECK_S)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.listeners -= 1
        return response
