"""The built-in RTSP server: `rtsp://<host>:8554/<camera>` for NVRs, Frigate's `record` input and Home Assistant's
`stream_source`, through GStreamer's gst-rtsp-server (PyGObject; Debian's gir1.2-gst-rtsp-server-1.0).

Each camera is one shared media: `appsrc ! h264parse ! rtph264pay`, fed with the access units of the camera's one
encoder (publish/restream.py), so ten clients cost one encode. The server only ever receives H.264 of `Anonymized`
frames. With `http.token` set, clients authenticate with RTSP basic auth (user `faceanon`, password the token).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("faceanon.rtsp")
USER = "faceanon"
LAUNCH = ("( appsrc name=src is-live=true format=time do-timestamp=true min-latency=0 "
          "caps=video/x-h264,stream-format=byte-stream,alignment=au "
          "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )")


class RtspUnavailable(RuntimeError):
    """GStreamer's RTSP server (or PyGObject) is not installed here."""


def _gst():  # imported lazily: the rest of the service runs without GStreamer
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as err:
        raise RtspUnavailable("the RTSP server needs PyGObject and GStreamer's gst-rtsp-server (Debian: "
                              "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad)") from err
    Gst.init(None)
    return GLib, Gst, GstRtspServer


class Mount:
    """One camera's path on the server: the live appsrc elements (one per prepared shared media)."""

    def __init__(self, gst) -> None:
        self._gst = gst
        self._sources: list = []
        self._lock = threading.Lock()
        self.on_client: Callable[[], None] = lambda: None  # a client starts: its camera's encoder sets this

    @property
    def watched(self) -> bool:
        with self._lock:
            return bool(self._sources)

    def add(self, appsrc) -> None:
        with self._lock:
            self._sources.append(appsrc)
        self.on_client()

    def remove(self, appsrc) -> None:
        with self._lock:
            if appsrc in self._sources:
                self._sources.remove(appsrc)

    def push(self, data: bytes) -> None:
        sources = self.sources()
        if not sources:
            return
        # A copy into GStreamer's own memory: new_wrapped() on Python bytes can outlive them (PyGObject).
        buffer = self._gst.Buffer.new_allocate(None, len(data), None)
        buffer.fill(0, data)
        for appsrc in sources:
            appsrc.emit("push-buffer", buffer)

    def sources(self) -> list:
        with self._lock:
            return list(self._sources)


class RtspServer:
    """gst-rtsp-server on its own GLib main loop thread; `mount(name)` adds a camera path."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        glib, self._gst_module, rtsp = _gst()
        self._rtsp = rtsp
        self.host, self.port, self.token = host, port, token
        self.context = glib.MainContext.new()
        self.loop = glib.MainLoop.new(self.context, False)
        self.server = rtsp.RTSPServer.new()
        self.server.set_address(host)
        self.server.set_service(str(port))
        if token:
            self._protect(rtsp, token)
        self.mounts: dict[str, Mount] = {}
        self.server.connect("client-connected", self._client_connected)
        self._thread = threading.Thread(target=self.loop.run, name="rtsp-server", daemon=True)
        self._source_id: int | None = None

    def _protect(self, rtsp, token: str) -> None:
        auth = rtsp.RTSPAuth.new()
        role = rtsp.RTSPToken()
        role.set_string(rtsp.RTSP_TOKEN_MEDIA_FACTORY_ROLE, USER)
        auth.add_basic(rtsp.RTSPAuth.make_basic(USER, token), role)
        self.server.set_auth(auth)

    def mount(self, name: str) -> Mount:
        rtsp = self._rtsp
        mount = Mount(self._gst_module)
        factory = rtsp.RTSPMediaFactory.new()
        factory.set_launch(LAUNCH)
        factory.set_shared(True)
        if self.token:
            permissions = rtsp.RTSPPermissions.new()
            permissions.add_permission_for_role(USER, rtsp.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
            permissions.add_permission_for_role(USER, rtsp.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
            factory.set_permissions(permissions)

        def configure(_factory, media) -> None:
            appsrc = media.get_element().get_child_by_name("src")
            media.connect("unprepared", lambda _m: mount.remove(appsrc))
            mount.add(appsrc)

        factory.connect("media-configure", configure)
        self.server.get_mount_points().add_factory(f"/{name}", factory)
        self.mounts[name] = mount
        return mount

    def _client_connected(self, _server, client) -> None:
        client.connect("play-request", self._play_request)

    def _play_request(self, _client, context) -> None:
        """A client starts playing: its camera's next frame is a keyframe, so its picture starts at once (packets
        before PLAY never reach it, and waiting for the next regular keyframe would show a broken picture)."""
        path = ""  # no URL in this context: every camera gives a keyframe
        with contextlib.suppress(AttributeError):
            path = context.uri.abspath.strip("/")
        for name, mount in self.mounts.items():
            if not path or path == name:
                mount.on_client()

    def start(self) -> None:
        """Listen (raises OSError-like RuntimeError when the port cannot be bound)."""
        self._source_id = self.server.attach(self.context)
        if not self._source_id:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}")
        self._thread.start()
        log.info("RTSP restream on rtsp://%s:%d/<camera>", self.host, self.server.get_bound_port())

    @property
    def bound_port(self) -> int:
        return int(self.server.get_bound_port())

    def stop(self) -> None:
        """Stop listening and quit the loop; never blocks for long (clients see the connection close)."""
        if self._source_id:
            source = self.context.find_source_by_id(self._source_id)
            if source is not None:
                source.destroy()
        self.loop.quit()
        self._thread.join(3)
