"""HTTP publisher (aiohttp): health, camera status, latest snapshot, MJPEG stream, Prometheus metrics, web page.

Images come only from `feed.latest_jpeg` (masked or safe frames). Everything but /api/health needs the bearer
token when one is configured; with `ingress_only` the Supervisor's ingress proxy is the only peer let in without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from aiohttp import web

from faceanon import controls, defaults
from faceanon.publish import CameraFeed, guard, hosts, json_default, json_error, read_json, valid_camera_name
from faceanon.publish.events import EventStream
from faceanon.publish.guard import GuardCounts, GuardedSite
from faceanon.publish.webpage import OPEN_PATHS, WebPage
from faceanon.source.base import ScrubSecrets

if TYPE_CHECKING:
    from faceanon.claim import IntegrationClaim

log = logging.getLogger(__name__)
# aiohttp logs a request it refuses (an 8 KB request line, a bad header) with its request line and a traceback:
# that line may carry ?token=. Its loggers get the same redaction as ours, and one line instead of the traceback.
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")


def scrub_aiohttp_logs() -> None:
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubSecrets) for f in logger.filters):
            logger.addFilter(ScrubSecrets())

INGRESS_PEER = "172.30.32.2"  # the Home Assistant Supervisor's ingress proxy
STREAM_KEEPALIVE = 5.0  # resend the newest frame this often when none arrives, so dead clients are noticed
STREAM_WRITE_TIMEOUT = 20.0  # a client that takes longer than this to take one frame is dropped
MAX_STREAMS = 32
MAX_HEIGHT = 4320
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # tokens may travel in ?token=
    "X-Frame-Options": "SAMEORIGIN",  # Home Assistant's ingress panel frames the page from the same origin
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Change a camera's controls: (camera, {control: value}) -> its controls now; ControlError, KeyError (no camera).
SetControls = Callable[..., Awaitable[dict[str, Any]]]  # (camera, changes, source=...)


def scale_jpeg(jpeg: bytes, height: int) -> bytes:
    """The JPEG shrunk to `height` pixels (aspect kept); unchanged when it is not taller than that."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[0] <= height:
        return jpeg
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else jpeg


OPEN_WARNING = ("listening on {host} without a token: anyone who can reach this port can watch the anonymized "
                "cameras and change their controls; set http.token")


class HttpServer:
    """The live service's HTTP API and web page (routes in docs/architecture.md)."""

    def __init__(self, http_config: dict[str, Any], feeds: Iterable[CameraFeed], version: str, *,
                 ingress_peer: str = INGRESS_PEER, rtsp_port: int | None = None,
                 service_id: str | None = None, claim: IntegrationClaim | None = None,
                 set_controls: SetControls | None = None,
                 service_info: Callable[[], dict[str, Any]] | None = None) -> None:
        cfg = http_config or {}
        self.host: str = cfg.get("host") or "127.0.0.1"
        self.port = int(cfg["port"]) if cfg.get("port") is not None else 8099  # 0: any free port (see .port)
        token = cfg.get("token")
        self._token = str(token).encode() if token else None
        self.ingress_only = bool(cfg.get("ingress_only"))
        self.allowed_hosts: list[str] = list(cfg.get("allowed_hosts") or [])
        self.ingress_peer = ingress_peer
        self.guard = GuardCounts()  # the connection guard's figures once started (publish/guard.py)
        self.claim = claim  # Home Assistant's integration has the service (faceanon.claim); None: not offered
        self.service_id = service_id  # stable per installation (faceanon.identity): Home Assistant's unique id
        self.set_controls = set_controls  # the service's (faceanon.service.Service.set_controls); None: read-only
        self.service_info = service_info  # MQTT connection, detectors, uptime (faceanon.service.Service.info)
        self.serves_jobs = False  # the process also runs a snapshot worker (faceanon.worker): zero cameras is fine
        self.version = version
        self.rtsp_port = rtsp_port  # the built-in RTSP server's, for clients building stream URLs
        self.feeds: dict[str, CameraFeed] = {feed.name: feed for feed in feeds}
        scrub_aiohttp_logs()
        self.page = WebPage(self._token)  # the page, its icon and its login (publish/webpage.py)
        self._closing = asyncio.Event()
        self._event_stream = EventStream(self._cameras_body, self._closing,
                                         lambda o: json.dumps(o, default=json_default))
        self._streams = 0
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers_middleware, self._origin_middleware, self._auth_middleware])
        self.page.add_routes(app)
        app.router.add_get("/api/service", self._service)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/cameras", self._cameras)
        app.router.add_get("/api/{camera}/latest.jpg", self._latest)
        app.router.add_get("/api/{camera}/stream.mjpeg", self._stream, allow_head=False)
        app.router.add_get("/api/{camera}/controls", self._controls)
        app.router.add_put("/api/{camera}/controls", self._controls)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/integration", self._integration)
        app.router.add_put("/api/integration", self._integration)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        self._closing.clear()
        # keepalive_timeout: an idle keep-alive connection closes after 75 s (nginx's default), not aiohttp's hour.
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=3.0,
                                     keepalive_timeout=75.0)
        await self._runner.setup()
        # Request heads within 10 s; at most 16 connections per address (256 in all) waiting for theirs.
        site = GuardedSite(self._runner, self.host, self.port, guard.HEADER_TIMEOUT_S, guard.MAX_WAITING,
                           guard.MAX_WAITING_PER_PEER)
        await site.start()
        self.guard = site.counts
        if self.port == 0:
            self.port = site.port
        log.info("http: serving %d camera(s) on %s:%d%s", len(self.feeds), self.host, self.port,
                 " (token required)" if self._token else "")
        if self.open_to_network:
            log.warning("http: %s", OPEN_WARNING.format(host=self.host))

    async def stop(self) -> None:
        self._closing.set()  # ends every MJPEG stream at once instead of waiting out the shutdown timeout
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()

    # middlewares ------------------------------------------------------------------------------------------

    @web.middleware
    async def _headers_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = json_error(exc.status, exc.reason)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @web.middleware
    async def _origin_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse cross-site state changes, and without a token the Host names a DNS-rebinding page would send
        (publish/hosts.py)."""
        host = request.headers.get("Host", "")
        if hosts.cross_site(request.method, request.headers.get("Origin"), host):
            return json_error(403, "refused: sent by a page of another site (its Origin is not this service)")
        if self._token is None and not (self.ingress_only and request.remote == self.ingress_peer):
            name = hosts.host_name(host)
            if not hosts.local_host(name, self.allowed_hosts):
                return json_error(403, f"host name {name[:100]!r} is not answered without a token (a DNS rebinding "
                                       "guard): use the service's IP, a local name, list it in http.allowed_hosts, "
                                       "or set http.token")
        return await handler(request)

    @property
    def open_to_network(self) -> bool:
        """Listening beyond loopback with no token and no ingress guard: anyone who reaches the port may read the
        (anonymized) cameras and change their controls."""
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host.lower() == "localhost"
        return self._token is None and not self.ingress_only and not loopback

    def _source(self, request: web.Request) -> str:
        """Who sent a change, for the audit list: the client's own name (Home Assistant's integration sends
        X-Faceanon-Client), how it was let in, and its address."""
        client = "".join(c for c in request.headers.get("X-Faceanon-Client", "") if c.isprintable())[:80]
        how = "token" if self._token_ok(request) else "session" if self.page.session_ok(request) else (
            "ingress" if self.ingress_only and request.remote == self.ingress_peer else "no token")
        return f"{client + ' via ' if client else ''}http ({how}) from {request.remote}"

    def _token_ok(self, request: web.Request) -> bool:
        if self._token is None:
            return False
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        sent = value.strip() if scheme.lower() == "bearer" else request.query.get("token", "")
        try:
            return hmac.compare_digest(sent.encode(), self._token)
        except UnicodeError:  # a header no token can match (lone surrogates from undecodable bytes)
            return False

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # The page itself holds no camera data (it asks for the token when the API wants one), so a browser opening
        # the service's address (Home Assistant's device link) gets the page, not a 401.
        page = request.path in OPEN_PATHS and not (self.ingress_only and self._token is None)
        if page or request.path == "/api/health" or self._token_ok(request) or self.page.session_ok(request):
            return await handler(request)
        if self.ingress_only:
            if request.remote == self.ingress_peer:
                return await handler(request)
            if self._token is None:
                return json_error(403, "only Home Assistant ingress may connect (ingress_only)")
        elif self._token is None:
            return await handler(request)
        return json_error(401, "a valid bearer token is required", **{"WWW-Authenticate": 'Bearer realm="faceanon"'})

    # routes -------------------------------------------------------------------------------------------------

    def _feed(self, request: web.Request) -> CameraFeed:
        name = request.match_info["camera"]
        feed = self.feeds.get(name) if valid_camera_name(name) else None
        if feed is None:
            raise web.HTTPNotFound(reason="unknown camera")
        return feed

    def _statuses(self) -> list[dict[str, Any]]:
        out = []
        for name, feed in self.feeds.items():
            try:
                out.append({**feed.status(), "name": name})
            except Exception as err:  # one broken camera must not take the API down
                log.warning("http: camera %s: status failed: %s", name, err)
                out.append({"name": name, "online": False, "privacy_degraded": True})
        return out

    async def _health(self, _request: web.Request) -> web.Response:
        statuses = self._statuses()
        degraded = [s["name"] for s in statuses if s.get("privacy_degraded")]
        running = [s for s in statuses if s.get("enabled", True)]
        offline = [s["name"] for s in running if s.get("state") == "offline"]
        if not running and not self.serves_jobs:
            state = "idle"  # every camera off or failing to set up: nothing is anonymized, which is not "ok"
        elif degraded:
            state = "degraded"
        elif any(s.get("state", "starting" if self.feeds[s["name"]].latest_jpeg is None else None) == "starting"
                 for s in running):
            state = "starting"
        elif offline:
            state = "offline"  # some camera sends no frames (past its start): its reason is in /api/cameras
        else:
            state = "ok"
        # What the cameras' plans cannot see, in words: small still faces a whole-frame look does not resolve.
        warnings = [f"{s['name']}: still faces under {s['min_face_px']} px are found only while they move"
                    for s in statuses if (s.get("min_face_px") or 0) > defaults.SMALL_FACE_WARN_PX]
        if self.open_to_network:
            warnings.append(OPEN_WARNING.format(host=self.host))
        warnings += [f"{s['name']}: {s['reason']}" for s in statuses if s.get("behind")]  # a busy box
        # The detection health check (faceanon.feed.CameraFeed.note_blind): people and no face, for minutes.
        warnings += [f"{s['name']}: people in view for {s['people_without_face_s'] / 60:.0f} min and no face found: "
                     "check the camera's settings and angle" for s in statuses
                     if (s.get("people_without_face_s") or 0) >= defaults.BLIND_WARN_S]
        body = {"status": state, "version": self.version, "cameras": len(self.feeds), "degraded": degraded,
                "offline": offline, "warnings": warnings}
        if self.service_id:
            body["id"] = self.service_id
        return web.json_response(body)

    def _cameras_body(self) -> dict[str, Any]:
        rtsp = None if self.rtsp_port is None else {"port": self.rtsp_port, "auth": self._token is not None}
        return {"version": self.version, "cameras": self._statuses(), "rtsp": rtsp, "controls": controls.options()}

    async def _cameras(self, _request: web.Request) -> web.Response:
        return web.json_response(self._cameras_body(), dumps=lambda o: json.dumps(o, default=json_default))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self._event_stream.handle(request, SECURITY_HEADERS)

    async def _latest(self, request: web.Request) -> web.Response:
        feed = self._feed(request)
        jpeg = feed.latest_jpeg
        if not getattr(feed, "enabled", True):
            return json_error(503, "the camera is off")
        if jpeg is None:
            return json_error(503, "no anonymized frame yet", **{"Retry-After": "1"})
        height = request.query.get("h")
        if height is not None:
            if not (height.isascii() and height.isdigit()) or int(height) < 1:  # "²".isdigit() is True
                return json_error(400, "h must be a height in pixels (a positive integer)")
            if int(height) < MAX_HEIGHT:  # never scaled up: a taller request gets the frame as it is
                jpeg = await asyncio.to_thread(scale_jpeg, jpeg, int(height))
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        feed = self._feed(request)
        if not getattr(feed, "enabled", True):
            return json_error(503, "the camera is off")
        if self._streams >= MAX_STREAMS:
            return json_error(503, f"too many streams (at most {MAX_STREAMS})", **{"Retry-After": "5"})
        response = web.StreamResponse(headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame", **SECURITY_HEADERS})
        self._streams += 1
        try:
            await response.prepare(request)
            sent_seq, sent_at = None, 0.0
            while not self._closing.is_set():
                seq, jpeg = feed.seq, feed.latest_jpeg
                now = time.monotonic()
                if jpeg is not None and (seq != sent_seq or now - sent_at >= STREAM_KEEPALIVE):
                    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (
                        len(jpeg), jpeg)
                    # write() waits for the socket to drain: one frame in flight per client, newer ones skipped.
                    await asyncio.wait_for(response.write(part), STREAM_WRITE_TIMEOUT)
                    sent_seq, sent_at = seq, now
                if request.transport is None or request.transport.is_closing():
                    break
                await self._next_frame(feed, seq)
        except TimeoutError:  # the client stopped reading: drop it and what its socket buffered
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the client went away
        finally:
            self._streams -= 1
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(response.write_eof(), 1.0)
        return response

    async def _next_frame(self, feed: CameraFeed, seq: int) -> None:
        frame = asyncio.ensure_future(feed.wait_frame(seq, STREAM_KEEPALIVE))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({frame, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (frame, closing):
                task.cancel()
            await asyncio.gather(frame, closing, return_exceptions=True)

    async def _controls(self, request: web.Request) -> web.Response:
        """GET: the camera's controls and what each takes; PUT {control: value, ...}: change them (validated like
        the config, kept over restarts). Answers the controls as they act afterwards."""
        feed = self._feed(request)
        if request.method == "PUT":
            if self.set_controls is None:
                return json_error(405, "this service's controls cannot be changed")
            try:
                body = await read_json(request)
            except ValueError:
                return json_error(400, "expected a JSON object of controls")
            try:
                await self.set_controls(feed.name, body, source=self._source(request))
            except controls.ControlError as err:
                return json_error(400, str(err))
        values = dict(getattr(feed, "controls", {}))
        return web.json_response({"name": feed.name, "values": values, "options": controls.options(values.get("plan"),
                                                                             getattr(feed, "configured_plan", None))})

    async def _service(self, _request: web.Request) -> web.Response:
        """The web page's service panel: version, uptime, MQTT, detectors, restream, Home Assistant."""
        body: dict[str, Any] = {"version": self.version, "id": self.service_id, "cameras": list(self.feeds),
                                "rtsp": None if self.rtsp_port is None else {"port": self.rtsp_port,
                                                                              "auth": self._token is not None},
                                "integration": bool(self.claim and self.claim.claimed)}
        if self.service_info is not None:
            body.update(self.service_info())
        return web.json_response(body, dumps=lambda o: json.dumps(o, default=json_default))

    async def _integration(self, request: web.Request) -> web.Response:
        """GET: whether Home Assistant's integration has this service; PUT {"claimed": bool}: it takes or releases
        it (the MQTT discovery of the cameras is withdrawn while it has it: one device per camera)."""
        if self.claim is None:
            return json_error(404, "this service keeps no integration claim")
        if request.method == "PUT":
            try:
                body = await read_json(request)
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("claimed"), bool):
                return json_error(400, 'expected a JSON object {"claimed": true|false}')
            await asyncio.to_thread(self.claim.set, body["claimed"])
        return web.json_response({"claimed": self.claim.claimed})

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics_text().encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def metrics_text(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        statuses = {s["name"]: s for s in self._statuses()}
        families: list[tuple[str, str, str, list[tuple[str, float]]]] = []

        def family(name: str, kind: str, help_: str, key: str | Callable[[str, dict[str, Any]], Any]) -> None:
            samples = []
            for cam, status in statuses.items():
                value = key(cam, status) if callable(key) else status.get(key)
                if value is not None:
                    samples.append((f'camera="{cam}"', float(value)))
            families.append((name, kind, help_, samples))

        family("faceanon_frames_total", "counter", "Anonymized frames published by the camera.",
               lambda cam, _s: self.feeds[cam].seq)
        family("faceanon_faces", "gauge", "Faces found in the newest frame.", "faces")
        family("faceanon_masks_held", "gauge", "Masks kept alive by the temporal hold in the newest frame.",
               "masks_held")
        family("faceanon_fail_closed_frames_total", "counter",
               "Frames replaced by a safe frame because anonymization could not be guaranteed.",
               "fail_closed_frames")
        family("faceanon_dropped_frames_total", "counter", "Source frames dropped (newest frame wins).",
               "dropped_frames")
        family("faceanon_fps", "gauge", "Output frames per second.", "fps")
        families.append(("faceanon_detect_latency_seconds", "gauge", "Detector latency quantiles per frame.", [
            (f'camera="{cam}",quantile="{q}"', float(s[key]) / 1000.0)
            for cam, s in statuses.items() for q, key in (("0.5", "detect_ms_p50"), ("0.95", "detect_ms_p95"))
            if s.get(key) is not None]))
        family("faceanon_privacy_degraded", "gauge", "1 while the camera's anonymization is degraded.",
               lambda _c, s: 1 if s.get("privacy_degraded") else 0)
        family("faceanon_camera_online", "gauge", "1 while frames arrive from the camera.",
               lambda _c, s: 1 if s.get("online") else 0)
        family("faceanon_last_frame_age_seconds", "gauge", "Seconds since the camera's newest frame.",
               "last_frame_age_s")
        version = self.version.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        families.append(("faceanon_info", "gauge", "faceanon version.", [(f'version="{version}"', 1.0)]))
        families.append(("faceanon_http_streams", "gauge", "Open MJPEG streams.", [("", float(self._streams))]))
        families.append(("faceanon_http_connections_refused_total", "counter",
                         "Connections closed by the guard: request head too slow or too many waiting.",
                         [('reason="timeout"', float(self.guard.timed_out)),
                          ('reason="too_many_waiting"', float(self.guard.refused))]))
        lines = []
        for name, kind, help_, samples in families:
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}" for labels, value in samples]
        return "\n".join(lines) + "\n"
