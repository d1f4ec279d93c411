"""A small typed client for the faceanon service's HTTP API (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import quote

import aiohttp
from yarl import URL

REQUEST_TIMEOUT = 10
# Silence on the event stream this long is a dead or frozen service: services that say how often they send a
# keep-alive (`: keepalive <s>`, the first line) get three of those and 2 s; older ones (every 15 s) 45 s.
EVENTS_IDLE_TIMEOUT = 45.0
RTSP_USER = "faceanon"  # the service's RTSP server takes this user with the token as password


class FaceanonError(Exception):
    """The service answered something this client cannot use."""


class FaceanonConnectionError(FaceanonError):
    """The service cannot be reached (refused, timed out, reset)."""


class FaceanonStalledError(FaceanonConnectionError):
    """The service holds the connection open and sends nothing: frozen (SIGSTOP, a hung host) or cut off."""


class FaceanonAuthError(FaceanonError):
    """The service refused the token (HTTP 401/403)."""


@dataclass(frozen=True, slots=True)
class Health:
    """`GET /api/health`."""

    status: str
    version: str
    cameras: int
    degraded: list[str]
    id: str | None = None  # the installation's stable id (services before it have none)


@dataclass(frozen=True, slots=True)
class Controls:
    """A camera's controls as they act now (the service's `controls` of a camera)."""

    enabled: bool
    style: str
    target: str
    plan: str
    threshold: float | None
    hold_seconds: float

    @classmethod
    def from_dict(cls, data: Any) -> Controls | None:
        """None for a service too old to have controls."""
        if not isinstance(data, dict) or "style" not in data:
            return None
        threshold = data.get("threshold")
        return cls(
            bool(data.get("enabled", True)),
            str(data["style"]),
            str(data.get("target") or "face"),
            str(data.get("plan") or ""),
            None if threshold is None else float(threshold),
            float(data.get("hold_seconds") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """One entry of `GET /api/cameras` (the service's CameraStatus)."""

    name: str
    online: bool
    privacy_degraded: bool
    faces: int
    fps: float
    detect_ms_p50: float
    detect_ms_p95: float
    dropped_frames: int
    fail_closed_frames: int
    masks_held: int
    model: str
    provider: str
    width: int
    height: int
    last_frame_age_s: float | None
    enabled: bool = True  # False: the camera is off (it reads and publishes nothing)
    people: int | None = None  # people in view, with the head and person targets (their person detector)
    controls: Controls | None = None
    configured_plan: str | None = None  # the plan the camera's config gives it: always among the plan options

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        # Unknown keys are ignored so that a newer service does not break an older integration.
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        values["enabled"] = bool(data.get("enabled", True))
        values["controls"] = Controls.from_dict(data.get("controls"))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ServiceState:
    """`GET /api/cameras`: the service version and its cameras by name."""

    version: str
    cameras: dict[str, CameraStatus]
    rtsp_port: int | None = None  # the service's built-in RTSP restream, when it runs
    # What the controls take: {"style": [...], "target": [...], "plan": [...], "threshold": {"min", "max", "step"},
    # "hold_seconds": {...}}; empty for a service without controls.
    control_options: dict[str, Any] = field(default_factory=dict)

    def with_controls(self, camera: str, controls: Controls) -> ServiceState:
        """This state with one camera's controls replaced (the service's answer to a change)."""
        status = replace(self.cameras[camera], controls=controls, enabled=controls.enabled)
        return replace(self, cameras={**self.cameras, camera: status})


def _service_state(data: dict[str, Any]) -> ServiceState:
    cameras = [CameraStatus.from_dict(item) for item in data["cameras"]]
    rtsp = data.get("rtsp")
    port = int(rtsp["port"]) if isinstance(rtsp, dict) and rtsp.get("port") else None
    options = data.get("controls")
    return ServiceState(data["version"], {camera.name: camera for camera in cameras}, port,
                        options if isinstance(options, dict) else {})


class FaceanonClient:
    """Talks to one faceanon service; the session is Home Assistant's shared one."""

    def __init__(self, session: aiohttp.ClientSession, host: str, port: int, token: str | None = None) -> None:
        self._session = session
        self.host = host
        self.port = port
        self._token = token
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = URL.build(scheme="http", host=host, port=port)

    async def health(self) -> Health:
        data = await self._get_json("/api/health")
        service_id = data.get("id")
        try:
            return Health(str(data["status"]), str(data["version"]), int(data["cameras"]),
                          list(data.get("degraded", [])), str(service_id) if service_id else None)
        except (KeyError, TypeError, ValueError) as err:  # some other service's health check
            raise FaceanonError(f"{self.url}/api/health: not the faceanon API ({err!r})") from err

    async def cameras(self) -> ServiceState:
        return _service_state(await self._get_json("/api/cameras"))

    async def events(self) -> AsyncIterator[ServiceState]:
        """`GET /api/events`: the cameras' status each time the service pushes it (a change, or every 30 s),
        until the stream ends. Raises FaceanonConnectionError when it cannot be opened or breaks, and
        FaceanonStalledError when it stays silent past the keep-alives the service announced."""
        idle = EVENTS_IDLE_TIMEOUT
        try:
            async with self._session.get(
                self.url / "api" / "events",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT),
            ) as response:
                self._raise_for_status(response)
                event = ""
                while True:
                    async with asyncio.timeout(idle):
                        raw = await response.content.readline()
                    if not raw:
                        raise FaceanonConnectionError(f"{self.url}/api/events: the service closed the stream")
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith(": keepalive "):
                        with contextlib.suppress(ValueError):
                            idle = min(EVENTS_IDLE_TIMEOUT, 3 * float(line[12:]) + 2.0)
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "cameras":
                        data = json.loads(line[5:])
                        if isinstance(data, dict):
                            yield _service_state(data)
        except TimeoutError as err:
            raise FaceanonStalledError(f"{self.url}/api/events: nothing for {idle:g} s") from err
        except (aiohttp.ClientError, ValueError) as err:
            raise FaceanonConnectionError(f"{self.url}/api/events: {str(err) or type(err).__name__}") from err

    def rtsp_url(self, camera: str, port: int) -> str:
        """The camera's anonymized RTSP restream; with a token, RTSP basic auth (user `faceanon`)."""
        url = URL.build(scheme="rtsp", host=self.host, port=port, path=f"/{camera}")
        if self._token:
            url = url.with_user(RTSP_USER).with_password(self._token)
        return str(url)

    async def latest_jpeg(self, camera: str, height: int | None = None) -> bytes | None:
        """The newest anonymized JPEG, or None before the service has one (HTTP 503)."""
        query = {"h": str(height)} if height else {}
        url = (self.url / "api" / camera / "latest.jpg").with_query(query)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with self._session.get(url, headers=self._headers) as response:
                    if response.status == HTTPStatus.SERVICE_UNAVAILABLE:
                        return None
                    self._raise_for_status(response)
                    return await response.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise FaceanonConnectionError(f"{self.url}: {str(err) or type(err).__name__}") from err

    def open_stream(self, camera: str) -> Awaitable[aiohttp.ClientResponse]:
        """Start `GET /api/<camera>/stream.mjpeg`; the caller proxies and closes the response."""
        # No total timeout: the stream is endless. The proxy helper bounds connecting and each read.
        # An error status raises (a ClientError), so that an error page is never proxied as the stream.
        return self._session.get(
            self.url / "api" / camera / "stream.mjpeg",
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT),
            raise_for_status=True,
        )

    async def claim(self, claimed: bool) -> bool:
        """Tell the service this integration has it (or lets go): while it does, the service withdraws its own MQTT
        discovery of the cameras, so each camera is one device. False when the service is too old to know."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with self._session.put(
                    self.url / "api" / "integration", json={"claimed": claimed}, headers=self._headers
                ) as response:
                    if response.status in (HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED):
                        return False
                    self._raise_for_status(response)
                    return True
        except (TimeoutError, aiohttp.ClientError) as err:
            raise FaceanonConnectionError(f"{self.url}: {str(err) or type(err).__name__}") from err

    async def set_controls(self, camera: str, changes: dict[str, Any], by: str | None = None) -> Controls:
        """`PUT /api/<camera>/controls`: change the camera's controls; the service validates and keeps them, and
        writes who asked (`by`) to its audit list. FaceanonError with the service's reason when it refuses a
        value (a value below its protection floor among them)."""
        client = "Home Assistant" + (f" ({quote(by, safe=' ')})" if by else "")
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with self._session.put(
                    self.url / "api" / camera / "controls",
                    json=changes,
                    headers={**self._headers, "X-Faceanon-Client": client},
                ) as response:
                    if response.status == HTTPStatus.BAD_REQUEST:
                        raise FaceanonError(await self._reason(response))
                    self._raise_for_status(response)
                    data = await response.json()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise FaceanonConnectionError(f"{self.url}: {str(err) or type(err).__name__}") from err
        controls = Controls.from_dict(data.get("values") if isinstance(data, dict) else None)
        if controls is None:
            raise FaceanonError(f"{self.url}: the service answered no controls for {camera}")
        return controls

    @staticmethod
    async def _reason(response: aiohttp.ClientResponse) -> str:
        try:
            body = await response.json(content_type=None)
        except (ValueError, aiohttp.ClientError):
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        return str(error) if error else f"HTTP {response.status}"

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with self._session.get(self.url.with_path(path), headers=self._headers) as response:
                    self._raise_for_status(response)
                    data = await response.json(content_type=None)
        except ValueError as err:  # an answer, but not JSON: a router's page, another web application
            raise FaceanonError(f"{self.url}{path}: not the faceanon API (no JSON)") from err
        except (TimeoutError, aiohttp.ClientError) as err:
            raise FaceanonConnectionError(f"{self.url}: {str(err) or type(err).__name__}") from err
        if not isinstance(data, dict):
            raise FaceanonError(f"{self.url}{path}: expected a JSON object, got {type(data).__name__}")
        return data

    def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        if response.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise FaceanonAuthError(f"{self.url}: the service refused the token (HTTP {response.status})")
        if response.status != HTTPStatus.OK:
            raise FaceanonError(f"{response.url.with_query(None)}: HTTP {response.status}")
