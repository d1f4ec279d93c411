"""The RTSP restream publisher: every camera's anonymized frames as H.264 at the camera's fps, served by the
built-in RTSP server (publish/rtsp_server.py) and/or pushed to an RTSP server the user runs (`restream:` on a
camera: go2rtc, mediamtx, Frigate's bundled go2rtc), reconnecting with backoff.

It reads `feed.latest_image`, which only ever holds an `Anonymized` frame's pixels (masked, or the privacy-hold
frame), and repeats the newest one at a constant rate: when the camera stalls the stream carries the privacy-hold
frame the pipeline published, it does not stop. The built-in server encodes only while a client watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import av
import numpy as np

from faceanon.publish import CameraFeed
from faceanon.publish.h264 import H264Encoder, live_x264, picture_of, stream_size
from faceanon.source.base import one_line, redact

log = logging.getLogger("faceanon.rtsp")
PUSH_BACKOFF_S = (1.0, 30.0)


class RtspPush:
    """One camera pushed to `url` (RTSP ANNOUNCE/RECORD over TCP, PyAV's rtsp muxer with libx264)."""

    def __init__(self, camera: str, url: str, fps: float, keyframe_seconds: float) -> None:
        self.camera, self.url, self.fps, self.keyframe_seconds = camera, url, fps, keyframe_seconds
        self.out: Any = None
        self.stream: Any = None
        self.size = (0, 0)  # the pictures' (publish/h264.stream_size), set when the stream opens
        self.frames = 0
        self.connected = False
        self.retry_at = 0.0
        self.delay = PUSH_BACKOFF_S[0]
        self._failing = False
        self.encode_ms = 0.0

    def _open(self, width: int, height: int) -> None:
        out = av.open(self.url, mode="w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=5.0)
        try:
            rate, _gop, options = live_x264(self.fps, self.keyframe_seconds)
            stream = out.add_stream("libx264", rate=rate)
            self.size = stream_size(width, height)
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p"
            stream.options = options
        except Exception:
            out.close()
            raise
        self.out, self.stream, self.frames = out, stream, 0

    def send(self, image: np.ndarray) -> None:
        """Encode and push one frame; on any failure drop the connection and retry later (never raises)."""
        now = time.monotonic()
        if self.out is None:
            if now < self.retry_at:
                return
            try:
                self._open(image.shape[1], image.shape[0])
            except (av.FFmpegError, OSError, ValueError) as err:
                self._lost(err, now)
                return
        try:
            start = time.perf_counter()
            picture = picture_of(image, self.size)
            picture.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(picture):
                self.out.mux(packet)
            self.encode_ms += (time.perf_counter() - start) * 1000
        except (av.FFmpegError, OSError, ValueError) as err:
            self._lost(err, now)
            return
        if not self.connected:
            self.connected = True
            log.info("%s: pushing the anonymized stream to %s", self.camera, redact(self.url))
        self._failing = False
        self.delay = PUSH_BACKOFF_S[0]

    def _lost(self, err: Exception, now: float) -> None:
        if not self._failing:
            log.error("%s: cannot push to %s (%s); retrying with backoff", self.camera, redact(self.url),
                      one_line(err))
        self._failing = True
        self.connected = False
        self.close()
        self.retry_at = now + self.delay
        self.delay = min(self.delay * 2, PUSH_BACKOFF_S[1])

    def close(self) -> None:
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.close()
        self.out = self.stream = None


class CameraRestream:
    """One camera's restream loop: the newest anonymized frame at a constant rate to the server and the push."""

    def __init__(self, feed: CameraFeed, fps: float, keyframe_seconds: float, mount: Any = None,
                 push: RtspPush | None = None) -> None:
        self.feed, self.fps, self.keyframe_seconds = feed, fps, keyframe_seconds
        self.mount, self.push = mount, push
        self.encoder: H264Encoder | None = None
        self._keyframe_wanted = False
        if mount is not None:
            mount.on_client = self.want_keyframe

    def want_keyframe(self) -> None:  # from the server thread: a client joined, give it a keyframe soon
        self._keyframe_wanted = True

    @property
    def encode_ms(self) -> float:
        return (self.encoder.encode_ms if self.encoder else 0.0) + (self.push.encode_ms if self.push else 0.0)

    def step(self, image: np.ndarray) -> None:
        """Encode one frame for whoever wants it (runs in a worker thread)."""
        if self.mount is not None and self.mount.watched:
            h, w = image.shape[:2]
            if self.encoder is None or (self.encoder.height, self.encoder.width) != (h, w):
                self.encoder = H264Encoder(w, h, self.fps, self.keyframe_seconds)
            if self._keyframe_wanted:
                self._keyframe_wanted = False
                self.encoder.force_keyframe()
            for unit in self.encoder.encode(image):
                self.mount.push(unit)
        elif self.encoder is not None:
            self.encoder = None  # nobody watches: stop encoding; the next client starts on a fresh keyframe
        if self.push is not None:
            self.push.send(image)

    async def run(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        try:
            while True:
                due += period
                wait = due - time.monotonic()
                if wait < -period:  # fell behind (a slow encode): skip ahead instead of bursting
                    due = time.monotonic()
                await asyncio.sleep(max(0.0, wait))
                image = self.feed.latest_image
                if image is None:
                    continue
                try:
                    await asyncio.to_thread(self.step, image)
                except Exception as err:  # an encoder failure costs this camera's stream, never the service
                    log.error("%s: restream encoder failed (%s); restarting it", self.feed.name, one_line(err))
                    self.encoder = None
        finally:
            if self.push is not None:
                self.push.close()


class Restream:
    """Publisher: the built-in RTSP server (when `rtsp.enabled`) and the per-camera pushes (`restream:`)."""

    def __init__(self, rtsp_cfg: dict, token: str | None, feeds: list, cameras: dict[str, dict]) -> None:
        self.cfg, self.token, self.feeds, self.cameras = rtsp_cfg, token, feeds, cameras
        self.server: Any = None
        self.streams: list[CameraRestream] = []
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if self.cfg["enabled"]:
            from faceanon.publish.rtsp_server import RtspServer, RtspUnavailable

            try:
                self.server = RtspServer(self.cfg["host"], self.cfg["port"], self.token)
            except RtspUnavailable as err:  # a pip install without [rtsp]: the pushes and other outputs still go
                log.warning("RTSP server off (%s)", one_line(err))
            else:
                self.server.start()
        for feed in self.feeds:
            cam = self.cameras.get(feed.name, {})
            fps = float(cam.get("detect_fps", 5.0))
            mount = self.server.mount(feed.name) if self.server is not None else None
            url = cam.get("restream")
            push = RtspPush(feed.name, url, fps, self.cfg["keyframe_seconds"]) if url else None
            if mount is None and push is None:
                continue
            stream = CameraRestream(feed, fps, self.cfg["keyframe_seconds"], mount, push)
            self.streams.append(stream)
            self._tasks.append(asyncio.create_task(stream.run(), name=f"restream-{feed.name}"))

    @property
    def port(self) -> int | None:
        return None if self.server is None else self.server.bound_port

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
