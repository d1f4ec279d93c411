"""A stand-in for the parts of the Supervisor API an app uses: GET /services/mqtt and POST /discovery.

Real aiohttp server on 127.0.0.1 in its own thread; it checks the bearer token like the Supervisor does and
records every request for the test to inspect.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web
from conftest import free_port


class FakeSupervisor:
    def __init__(self, token: str, mqtt_service: dict[str, Any] | None) -> None:
        self.token = token
        self.mqtt_service = mqtt_service  # None: no broker app, the Supervisor answers "Service not enabled"
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.discovery: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-supervisor", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        self.requests.append((request.method, request.path, header))
        return header == f"Bearer {self.token}"

    async def _services_mqtt(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        if self.mqtt_service is None:
            return web.json_response({"result": "error", "message": "Service not enabled"}, status=400)
        return web.json_response({"result": "ok", "data": self.mqtt_service})

    async def _discovery(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        body = await request.json()
        if set(body) != {"service", "config"} or not isinstance(body["config"], dict):
            return web.json_response({"result": "error", "message": "bad discovery message"}, status=400)
        self.discovery.append(body)
        return web.json_response({"result": "ok", "data": {"uuid": "0123456789abcdef0123456789abcdef"}})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/services/mqtt", self._services_mqtt)
        app.router.add_post("/discovery", self._discovery)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
