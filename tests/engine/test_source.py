"""Sources against real servers on 127.0.0.1: RTSP (GStreamer), HTTP MJPEG and snapshots (aiohttp), Frigate's MQTT
snapshots (mosquitto), and files. Newest frame wins; lost streams come back; corrupt frames are skipped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
from aiohttp import web
from conftest import free_port
from faceanon.bench.stages import read_frames
from faceanon.config import SAMPLE_CLIP
from faceanon.detect.shared import Detectors
from faceanon.source import FileSource, Frame, FrigateSource, HttpSource, Mailbox, RtspSource, Source, open_source
from faceanon.source.frigate import snapshot_topic

pytestmark = pytest.mark.timeout(60)


def clip_jpegs(n: int = 12) -> list[bytes]:
    out = [cv2.imencode(".jpg", frame)[1].tobytes() for frame in read_frames(SAMPLE_CLIP, n)]
    assert len(out) == n
    return out


async def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def take(source: Source, count: int, timeout: float) -> list[Frame]:
    """Collect `count` frames from the mailbox as a pipeline would."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{source.name}: only {len(frames)}/{count} frames in {timeout}s "
                                 f"(last error: {source.last_error})")
        frame = source.mailbox.take()
        if frame is not None:
            frames.append(frame)
        await asyncio.sleep(0.02)
    return frames


async def retried(source: Source, times: int, timeout: float, what: str) -> Source:
    """Run `source` (backing off 0.2 s) until it has reconnected `times` times, then stop it."""
    source.backoff_start = 0.2
    source.start()
    try:
        await wait_for(lambda: source.reconnects >= times, timeout, what)
    finally:
        await asyncio.to_thread(source.stop)
    return source


def test_mailbox_keeps_only_the_newest_frame() -> None:
    box = Mailbox()
    calls = []
    box.notify = lambda: calls.append(1)
    img = np.zeros((2, 2, 3), np.uint8)
    for i in range(5):
        box.put(Frame(img, float(i), i))
    frame = box.take()
    assert frame is not None and frame.index == 4 and box.dropped == 4 and len(calls) == 5
    assert box.take() is None


def test_open_source_picks_the_kind() -> None:
    assert isinstance(open_source("a", "rtsp://127.0.0.1/x", 5), RtspSource)
    assert isinstance(open_source("a", "http://127.0.0.1/x.mjpeg", 5), HttpSource)
    assert isinstance(open_source("a", "frigate://front", 5), FrigateSource)
    assert isinstance(open_source("a", str(SAMPLE_CLIP), 5), FileSource)
    assert snapshot_topic("frigate://front") == "frigate/front/+/snapshot"
    assert snapshot_topic("frigate://front/person") == "frigate/front/person/snapshot"


async def test_file_source_loops_at_detect_fps_and_drops_stale_frames() -> None:
    source = FileSource("demo", str(SAMPLE_CLIP), fps=10)
    source.start()
    try:
        frames = await take(source, 30, timeout=8)  # 30 frames > the clip's 35 frames at 12.5 fps => it looped
        rate = (len(frames) - 1) / (frames[-1].captured - frames[0].captured)
        assert 7 <= rate <= 11, rate
        assert frames[0].image.shape == (270, 480, 3)
        await asyncio.sleep(1.0)  # nobody takes: the slot keeps only the newest, the rest count as dropped
        assert source.dropped >= 5
        last = source.mailbox.take()
        assert last is not None and time.monotonic() - last.captured < 0.3
    finally:
        await asyncio.to_thread(source.stop)
    assert not source._thread.is_alive()


async def test_rtsp_source_reads_and_reconnects(rtsp_server) -> None:
    source = RtspSource("lobby", rtsp_server.url, fps=5)
    source.backoff_start = 0.25
    source.start()
    try:
        frames = await take(source, 5, timeout=20)
        assert frames[-1].image.shape == (720, 1280, 3)
        rtsp_server.stop()
        await wait_for(lambda: source.reconnects >= 1 and not source.connected, 15, "the loss to be noticed")
        assert "rtsp" in (source.last_error or "") or "frame" in (source.last_error or "")
        rtsp_server.start()
        source.mailbox.take()
        frames = await take(source, 3, timeout=20)
        assert source.connected and frames[-1].image.shape == (720, 1280, 3)
    finally:
        await asyncio.to_thread(source.stop)


async def test_unreachable_rtsp_backs_off_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    url = f"rtsp://user:secret@127.0.0.1:{free_port()}/cam"
    await retried(RtspSource("gate", url, fps=5), 3, 10, "three retries")
    lines = [r.getMessage() for r in caplog.records if r.name == "faceanon.source"]
    assert lines and all(line.startswith("gate: rtsp stream lost or unreachable (") for line in lines)
    assert "secret" not in " ".join(lines) and "user:***@" in lines[0]
    delays = [float(line.rsplit(" ", 1)[1].rstrip("s")) for line in lines]
    assert delays[:3] == sorted(delays[:3])  # backoff grows


class ClipServer:
    """aiohttp on 127.0.0.1 serving frames of the real sample clip: MJPEG (with and without Content-Length,
    one corrupt part) and a snapshot URL."""

    def __init__(self) -> None:
        self.jpegs = clip_jpegs()
        self.snapshots = 0
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        with_length = request.query.get("length", "1") == "1"
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        for i in range(400):  # bounded: ~40 s at most
            data = b"\x00corrupt\xff" * 50 if i == 3 else self.jpegs[i % len(self.jpegs)]
            head = b"--frame\r\nContent-Type: image/jpeg\r\n"
            if with_length:
                head += f"Content-Length: {len(data)}\r\n".encode()
            await resp.write(head + b"\r\n" + data + b"\r\n")
            await asyncio.sleep(0.1)
        return resp

    async def snapshot(self, _request: web.Request) -> web.Response:
        self.snapshots += 1
        return web.Response(body=self.jpegs[self.snapshots % len(self.jpegs)], content_type="image/jpeg")

    async def page(self, _request: web.Request) -> web.Response:
        return web.Response(text="<html>a login page</html>", content_type="text/html")

    # A camera's own login: user `admin`, password `p@ss:w/rd` (needs percent-encoding in a URL).
    USER, PASSWORD, REALM, NONCE = "admin", "p@ss:w/rd", "IP Camera", "dcd98b7102dd2f0e8b11d0f600bfb0c093"

    async def basic(self, request: web.Request) -> web.Response:
        wanted = "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != wanted:
            return web.Response(status=401, headers={"WWW-Authenticate": f'Basic realm="{self.REALM}"'})
        return await self.snapshot(request)

    async def digest(self, request: web.Request) -> web.Response:
        """RFC 7616 Digest with MD5 and qop=auth, as most IP cameras speak it."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Digest "):
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
            md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731 - the protocol's own hash
            ha1 = md5(f"{self.USER}:{self.REALM}:{self.PASSWORD}")
            ha2 = md5(f"{request.method}:{fields.get('uri')}")
            expected = md5(f"{ha1}:{self.NONCE}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
            if fields.get("username") == self.USER and fields.get("response") == expected:
                return await self.snapshot(request)
        challenge = f'Digest realm="{self.REALM}", qop="auth", nonce="{self.NONCE}", algorithm=MD5'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream.mjpeg", self.mjpeg)
        app.router.add_get("/snapshot.jpg", self.snapshot)
        app.router.add_get("/page", self.page)
        app.router.add_get("/basic/snapshot.jpg", self.basic)
        app.router.add_get("/digest/snapshot.jpg", self.digest)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def clip_server() -> AsyncIterator[ClipServer]:
    server = ClipServer()
    await server.start()
    yield server
    await server.runner.cleanup()


@pytest.mark.parametrize("length", ["1", "0"])
async def test_mjpeg_source_reads_parts_and_skips_a_corrupt_one(clip_server: ClipServer, length: str) -> None:
    source = HttpSource("porch", clip_server.url(f"/stream.mjpeg?length={length}"), fps=20)
    source.start()
    try:
        frames = await take(source, 8, timeout=10)
        assert source.kind == "mjpeg"
        assert source.corrupt_frames == 1
        assert all(f.image.shape == (270, 480, 3) for f in frames)
        assert len({f.image.tobytes() for f in frames}) > 1  # the stream moves on
    finally:
        await asyncio.to_thread(source.stop)


async def test_snapshot_source_polls_at_detect_fps(clip_server: ClipServer) -> None:
    source = HttpSource("yard", clip_server.url("/snapshot.jpg"), fps=4)
    source.start()
    try:
        frames = await take(source, 6, timeout=8)
        assert source.kind == "snapshot" and frames[0].image.shape == (270, 480, 3)
        rate = (len(frames) - 1) / (frames[-1].captured - frames[0].captured)
        assert 3 <= rate <= 5, rate
    finally:
        await asyncio.to_thread(source.stop)
    assert clip_server.snapshots <= 10  # polled at detect_fps, not as fast as possible


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_a_camera_behind_basic_or_digest_auth_is_read_with_the_url_credentials(clip_server: ClipServer,
                                                                                     scheme: str) -> None:
    url = clip_server.url(f"/{scheme}/snapshot.jpg").replace("://", "://admin:p%40ss%3Aw%2Frd@")
    source = HttpSource("gate", url, fps=4)
    source.start()
    try:
        frames = await take(source, 2, timeout=8)
        assert source.kind == "snapshot" and frames[0].image.shape == (270, 480, 3)
    finally:
        await asyncio.to_thread(source.stop)
    wrong = await retried(HttpSource("gate", url.replace("p%40ss", "guess"), fps=4), 1, 5, "the refusal")
    assert "401" in wrong.last_error and "guess" not in wrong.last_error


async def test_max_image_pixels_is_the_camera_s_own(clip_server: ClipServer) -> None:
    """A camera's `max_image_pixels` below its frames' 480x270 (129,600 px): each is refused before decoding."""
    from faceanon.config import validate
    from faceanon.pipeline import CameraPipeline

    cam = validate({"cameras": [{"name": "yard", "url": clip_server.url("/snapshot.jpg"), "detect_fps": 4,
                                 "max_image_pixels": 100_000}]})["cameras"][0]
    pipeline = CameraPipeline(cam, Detectors({"model": "centerface"}))
    source = pipeline.source
    assert source.max_pixels == 100_000
    source.start()
    try:
        await wait_for(lambda: source.corrupt_frames >= 3, 8, "refused frames")
        assert source.mailbox.take() is None
    finally:
        await asyncio.to_thread(source.stop)


async def test_http_source_rejects_a_page_that_is_no_camera(clip_server: ClipServer) -> None:
    source = await retried(HttpSource("bad", clip_server.url("/page"), fps=4), 1, 5, "the rejection")
    assert "answered text/html" in source.last_error and "expected an MJPEG stream or a JPEG snapshot" in \
        source.last_error


async def test_frigate_source_takes_snapshots_from_mqtt(mosquitto) -> None:
    source = FrigateSource("drive", "frigate://driveway", fps=10, mqtt_cfg={"host": "127.0.0.1",
                                                                           "port": mosquitto.port})
    source.start()
    jpegs = clip_jpegs(4)
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="frigate-test")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        await wait_for(lambda: source.connected or source._client is not None, 5, "the subscription")
        await asyncio.sleep(0.5)
        for i, jpeg in enumerate(jpegs):
            obj = "person" if i % 2 else "car"
            pub.publish(f"frigate/driveway/{obj}/snapshot", jpeg, qos=1).wait_for_publish(5)
            pub.publish("frigate/other/person/snapshot", jpeg, qos=1)  # another camera: ignored
            await asyncio.sleep(0.15)
        pub.publish("frigate/driveway/person/snapshot", b"not a jpeg", qos=1).wait_for_publish(5)
        await wait_for(lambda: source.corrupt_frames == 1, 5, "the corrupt snapshot")
        assert source.mailbox.take() is not None
        assert source.dropped + 1 == 4  # 4 good snapshots, newest wins
    finally:
        pub.loop_stop()
        pub.disconnect()
        await asyncio.to_thread(source.stop)


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:p@ssX@cam:554/s", "rtsp://admin:***@cam:554/s"),  # an '@' in the password
    ("rtsp://admin:pa/ss@cam/s", "rtsp://admin:***@cam/s"),
    ("rtsp://admin:a?b@cam/s", "rtsp://admin:***@cam/s"),
    ("http://cam/snap.jpg?usr=admin&pwd=X", "http://cam/snap.jpg?usr=admin&pwd=***"),
    ("rtsp://cam/live?channel=1&password=X&token=Y", "rtsp://cam/live?channel=1&password=***&token=***"),
    ("http://cam/videostream.cgi?loginuse=admin&loginpas=X", "http://cam/videostream.cgi?loginuse=admin&loginpas=***"),
    ("http://cam/snap.cgi?user=admin&pw=X&res=1", "http://cam/snap.cgi?user=admin&pw=***&res=1"),
    ("http://cam/a.cgi?psw=X", "http://cam/a.cgi?psw=***"),
    ("grpc://triton:s3cret@infer:8001", "grpc://triton:***@infer:8001"),
    ("rtsp://viewer@cam/s", "rtsp://viewer@cam/s"),
    ("http://cam:8080/video.mjpeg", "http://cam:8080/video.mjpeg"),
    ("/media/clip.mp4", "/media/clip.mp4"),
])
def test_redact_hides_every_credential(url: str, shown: str) -> None:
    from faceanon.source.base import one_line, redact

    assert redact(url) == shown
    assert one_line(OSError(f"cannot open {url} (refused)")) == f"cannot open {shown} (refused)"


def bomb_jpeg(width: int, height: int) -> bytes:
    """A valid tiny JPEG whose start-of-frame declares width x height (an 83 KB one of 20000x20000 took 2.4 GB)."""
    import struct

    _, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_declared_size_is_checked_before_decoding() -> None:
    import resource

    from faceanon.source.http import declared_pixels, decode_jpeg

    good = clip_jpegs(1)[0]
    assert declared_pixels(good) == 480 * 270 and decode_jpeg(good).shape == (270, 480, 3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for size in ((20000, 20000), (30000, 30000), (65535, 65535)):
        assert declared_pixels(bomb_jpeg(*size)) == size[0] * size[1]
        assert decode_jpeg(bomb_jpeg(*size)) is None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB: nothing was allocated
    _, png = cv2.imencode(".png", np.zeros((40, 30, 3), np.uint8))
    assert declared_pixels(png.tobytes()) == 1200
    for junk in (b"", b"not a jpeg", b"\xff\xd8\xff", good[:40]):
        assert decode_jpeg(junk) is None


async def test_a_hostile_frigate_payload_does_not_end_the_subscription(mosquitto) -> None:
    source = FrigateSource("drive", "frigate://driveway", fps=10, mqtt_cfg={"host": "127.0.0.1",
                                                                           "port": mosquitto.port})
    source.start()
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="frigate-hostile")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        await wait_for(lambda: source._client is not None, 5, "the subscription")
        await asyncio.sleep(0.5)
        for payload in (bomb_jpeg(20000, 20000), b"\xff\xd8" + b"\x00" * 1000):
            pub.publish("frigate/driveway/person/snapshot", payload, qos=1).wait_for_publish(5)
            await asyncio.sleep(0.15)
        await wait_for(lambda: source.corrupt_frames == 2, 5, "both refused")
        pub.publish("frigate/driveway/person/snapshot", clip_jpegs(1)[0], qos=1).wait_for_publish(5)
        await wait_for(lambda: source.mailbox.take() is not None, 5, "the next good snapshot")
    finally:
        pub.loop_stop()
        pub.disconnect()
        await asyncio.to_thread(source.stop)


def test_a_legal_but_huge_frame_is_read_at_a_working_size() -> None:
    """A 38.5 MP camera JPEG (under the 40 MP bomb limit) is decoded at half its sides (9.6 MP) directly, and any
    frame a source hands over beyond WORK_PIXELS (an RTSP or file camera's) is scaled down to fit, said once."""
    import logging

    from faceanon.source.base import WORK_PIXELS
    from faceanon.source.http import decode_jpeg

    big = cv2.resize(read_frames(SAMPLE_CLIP, 1)[0], (7600, 5066))
    jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    assert decode_jpeg(jpeg).shape == (2533, 3800, 3)
    assert decode_jpeg(jpeg, work_pixels=100_000_000).shape == (5066, 7600, 3)
    small = cv2.imencode(".jpg", big[:720, :1280])[1].tobytes()
    assert decode_jpeg(small).shape == (720, 1280, 3)  # at or under the working size: untouched
    source = FileSource("yard", str(SAMPLE_CLIP), fps=100)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("faceanon.source").addHandler(handler)
    try:
        for _ in range(2):
            assert source._offer(big)
            frame = source.mailbox.take()
            assert frame is not None and frame.image.shape[0] * frame.image.shape[1] <= WORK_PIXELS
            assert abs(frame.image.shape[1] / frame.image.shape[0] - 7600 / 5066) < 0.01
            source.cadence.next_take = 0.0
    finally:
        logging.getLogger("faceanon.source").removeHandler(handler)
    said = [r.getMessage() for r in records if "published at" in r.getMessage()]
    assert len(said) == 1 and "7600x5066 (38.5 MP)" in said[0]
