"""The fault-injection suite: cameras behind hostile MJPEG and snapshot servers on 127.0.0.1 (corrupt, truncated,
oversized, decompression-bomb, slow, hanging, dropped and mislabelled responses), all at once on one shared model,
next to a healthy camera, each camera detecting on every frame it takes. Every output frame of every camera is
judged against the faces the engine finds in the frame the camera sent: it must be the privacy-hold frame or have
each face masked by the team's rule. The run prints frames judged and leaked (0), and the healthy camera keeps its
share of the model and is never held while the others misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp import web
from conftest import free_port
from faceanon.bench.stages import read_frames
from faceanon.config import SAMPLE_CLIP
from faceanon.detect.shared import Detectors
from faceanon.leak import changed_pixels, ellipse_share
from test_failclosed import STRICT, Timeline
from test_pipeline import camera, correlation, decode, fine_detail, is_privacy_hold, run_for, verifier

pytestmark = pytest.mark.timeout(240)
RUN_S = 25.0


def bomb_jpeg(width: int = 20000, height: int = 20000) -> bytes:
    """A small JPEG whose header declares width x height (decoding it would take gigabytes)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    i = 2
    while data[i + 1] not in (0xC0, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data) + b"\x00" * 80_000


class FaultServer:
    """MJPEG streams and snapshot URLs of the real sample clip, each path with its own fault."""

    def __init__(self) -> None:
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in read_frames(SAMPLE_CLIP)]
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.served = 0
        self.requests: dict[str, int] = {}  # per snapshot path: its faults come on a schedule of its own

    def frame(self, i: int) -> bytes:
        self.served += 1
        return self.jpegs[i % len(self.jpegs)]

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        fault = request.match_info["fault"]
        boundary = "frame"
        resp = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={boundary}"})
        await resp.prepare(request)
        for i in range(int(RUN_S * 10)):  # bounded by the run
            data = self.frame(i)
            if fault == "corrupt" and i % 3 == 1:
                data = b"\xff\xd8\x00garbage" * 300
            elif fault == "truncated" and i % 3 == 1:
                data = data[: len(data) // 2]  # the lower half never comes
            elif fault == "bomb" and i % 3 == 1:
                data = bomb_jpeg()
            elif fault == "oversized" and i == 5:
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999\r\n\r\n")
                return resp  # the source refuses the part and reconnects
            elif fault == "hang" and i == 4:
                await asyncio.sleep(RUN_S)  # headers sent, then nothing: the read times out
            elif fault == "drop" and i == 6:
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n" + data[:100])
                return resp  # the server goes away mid-part
            head = f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            if fault == "slow":  # one frame in 20 pieces over a second
                for k in range(0, len(head + data), max(1, len(head + data) // 20)):
                    await resp.write((head + data)[k:k + max(1, len(head + data) // 20)])
                    await asyncio.sleep(0.05)
                await resp.write(b"\r\n")
            else:
                await resp.write(head + data + b"\r\n")
            await asyncio.sleep(0.1)
        return resp

    async def snapshot(self, request: web.Request) -> web.Response:
        fault = request.match_info["fault"]
        # Each path counts its own requests (a counter shared with the MJPEG streams made the login page answer
        # every first request of a connection in one run in ~60: the source never got past its probe).
        n = self.requests[fault] = self.requests.get(fault, 0) + 1
        if fault == "error" and n % 2:  # the 1st, 3rd, ... request: the source reconnects
            return web.Response(status=500, text="camera busy")
        if fault == "bomb" and n % 2:  # refused before decoding: a corrupt frame
            return web.Response(body=bomb_jpeg(), content_type="image/jpeg")
        if fault == "html" and n % 2 == 0:  # a JPEG first (the probe), then a login page every other poll
            return web.Response(text="<html>login</html>", content_type="text/html")
        if fault == "slow":
            await asyncio.sleep(1.5)
        return web.Response(body=self.frame(n), content_type="image/jpeg")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/mjpeg/{fault}", self.mjpeg)
        app.router.add_get("/snap/{fault}", self.snapshot)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def judge(pairs: list[tuple[np.ndarray, bytes]]) -> tuple[int, int, int]:
    """(frames judged, privacy-hold frames, faces leaked): a face the engine finds in the frame the camera sent
    (score >= 0.43: the two walkers, not the vest) leaks when less than 80 % of its ellipse changed (the team's
    rule, ../shared/tools/README.md), or when its fine detail survives in the output."""
    scan = verifier()
    held = leaked = 0
    for raw, jpeg in pairs:
        out = decode(jpeg)
        assert out.shape == raw.shape
        if is_privacy_hold(out):
            held += 1
            continue
        faces = scan.scan(raw)
        changed = changed_pixels(raw, out)
        raw_detail, out_detail = fine_detail(raw), fine_detail(out)
        for x1, y1, x2, y2 in faces.boxes[faces.scores >= 0.43]:
            region = (slice(max(int(y1), 0), int(y2)), slice(max(int(x1), 0), int(x2)))
            share = ellipse_share(changed, [x1, y1, x2 - x1, y2 - y1])
            if share is None or share < 0.8 or correlation(raw_detail[region], out_detail[region]) >= 0.75:
                leaked += 1
    return len(pairs), held, leaked


FAULTS = ["/mjpeg/ok", "/mjpeg/corrupt", "/mjpeg/truncated", "/mjpeg/bomb", "/mjpeg/oversized", "/mjpeg/hang",
          "/mjpeg/drop", "/mjpeg/slow", "/snap/error", "/snap/bomb", "/snap/html", "/snap/slow"]


async def test_hostile_cameras_never_get_a_face_out_and_never_stop_the_healthy_one(capsys) -> None:
    server = FaultServer()
    await server.start()
    detectors = Detectors({"model": "centerface"}, cameras=len(FAULTS))
    pipelines = {}
    for path in FAULTS:
        name = path.strip("/").replace("/", "_")
        # The whole frame every frame (STRICT): this suite judges the fault paths; what the live preset's cadence
        # misses between looks is the motion benchmark's (faceanon bench privacy), not a fault's.
        cam = {**camera(**STRICT, detect_fps=2), "name": name, "url": server.url(path)}
        pipeline = Timeline(cam, detectors)
        pipeline.source.backoff_start = 0.5
        pipelines[name] = pipeline
    started = time.monotonic()
    try:
        await asyncio.gather(*(run_for(p, RUN_S) for p in pipelines.values()))
    finally:
        await server.runner.cleanup()
    report, judged, leaked = [], 0, 0
    for name, p in pipelines.items():
        frames, held, faces_leaked = await asyncio.to_thread(judge, p.pairs)
        judged, leaked = judged + frames, leaked + faces_leaked
        report.append(f"{name}: {frames} judged, {held} held, {faces_leaked} leaked, {p.source.corrupt_frames} "
                      f"corrupt, {p.source.reconnects} reconnects")
    with capsys.disabled():  # the report goes to the CI log, not only on failure
        print(f"\nfault suite ({time.monotonic() - started:.0f} s): {judged} frames judged, {leaked} faces leaked"
              "\n  " + "\n  ".join(report))
    assert leaked == 0, report
    assert judged >= 60, report
    healthy = pipelines["mjpeg_ok"]
    # The healthy camera is not pushed aside by the hostile ones: never held, never degraded, and at least half the
    # frames of the busiest camera (a share, not a frame rate: this must hold on a saturated CPU too).
    assert True not in healthy.degraded and len(healthy.pairs) >= 8, report
    assert len(healthy.pairs) >= 0.5 * max(len(p.pairs) for p in pipelines.values()), report
    for name in ("mjpeg_corrupt", "mjpeg_truncated", "mjpeg_bomb", "snap_bomb", "snap_html"):
        assert pipelines[name].source.corrupt_frames >= 1, name  # refused before decoding, the stream went on
    for name in ("mjpeg_oversized", "mjpeg_drop", "snap_error"):
        assert pipelines[name].source.reconnects >= 1, name
    assert all(len(p.pairs) >= 1 for p in pipelines.values()), report  # every camera came back each time


async def test_a_camera_frozen_with_sigstop_shows_the_hold_frame_and_comes_back() -> None:
    """The camera's server process is frozen (SIGSTOP: the socket stays open, nothing arrives) for 14 s, then
    thawed: while frozen the camera publishes the privacy-hold frame (a stale camera reads as stale), nothing raw
    ever goes out, and frames flow again after SIGCONT."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mjpeg_camera.py")), str(port), "90"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        p = Timeline({**camera(**STRICT, detect_fps=2), "name": "frozen",
                      "url": f"http://127.0.0.1:{port}/stream.mjpeg"}, Detectors({"model": "centerface"}))
        p.source.backoff_start = 0.5
        seen: dict[str, object] = {}

        async def freeze_and_thaw() -> None:
            while len(p.pairs) < 4:
                await asyncio.sleep(0.1)
            os.kill(proc.pid, signal.SIGSTOP)
            frozen_at = len(p.pairs)
            await asyncio.sleep(14)
            seen["hold_while_frozen"] = p.feed.latest_is_hold
            seen["frames_while_frozen"] = len(p.pairs) - frozen_at
            os.kill(proc.pid, signal.SIGCONT)
            thawed_at = len(p.pairs)
            while len(p.pairs) < thawed_at + 4:
                await asyncio.sleep(0.1)
            seen["back"] = True

        task = asyncio.create_task(freeze_and_thaw())
        try:
            await run_for(p, 80, until=lambda: bool(seen.get("back")))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert seen.get("back"), seen
        assert seen["hold_while_frozen"] is True and seen["frames_while_frozen"] == 0, seen
        frames, _held, leaked = await asyncio.to_thread(judge, p.pairs)
        assert leaked == 0 and frames >= 8
        assert not p.feed.latest_is_hold  # live again
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def peak_rss_mb(cam_size: tuple[int, int], seconds: float, tmp: Path) -> float:
    """Peak RSS (VmHWM) of `faceanon serve` with one snapshot camera of that size at 2 fps, an RTSP client and an
    MJPEG client watching it, after `seconds`."""
    import shutil
    import threading
    import urllib.request

    jpeg = cv2.imencode(".jpg", cv2.resize(read_frames(SAMPLE_CLIP, 1)[0], cam_size),
                        [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    snap_port, http_port, rtsp_port = free_port(), free_port(), free_port()

    async def serve_snapshots(stop: asyncio.Event) -> None:
        app = web.Application()
        async def snap(_request: web.Request) -> web.Response:
            return web.Response(body=jpeg, content_type="image/jpeg")

        app.router.add_get("/snap.jpg", snap)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", snap_port).start()
        await stop.wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    server = threading.Thread(target=loop.run_until_complete, args=(serve_snapshots(stop),), daemon=True)
    server.start()
    cfg = tmp / f"big-{cam_size[0]}.yaml"
    cfg.write_text(f"cameras:\n  - name: big\n    url: http://127.0.0.1:{snap_port}/snap.jpg\n    detect_fps: 2\n"
                   f"http: {{host: 127.0.0.1, port: {http_port}}}\nrtsp: {{port: {rtsp_port}}}\n"
                   f"mqtt: {{host: 127.0.0.1, port: {free_port()}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "faceanon", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clients: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/big/latest.jpg", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the service did not publish a frame"
                time.sleep(0.5)
        if shutil.which("ffmpeg"):
            clients.append(subprocess.Popen(["ffmpeg", "-v", "quiet", "-rtsp_transport", "tcp", "-i",
                                             f"rtsp://127.0.0.1:{rtsp_port}/big", "-f", "null", "-"]))
        mjpeg = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/big/stream.mjpeg", timeout=10)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            mjpeg.read(1 << 20)
        mjpeg.close()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    finally:
        for client in clients:
            client.kill()
        proc.terminate()
        proc.wait(20)
        loop.call_soon_threadsafe(stop.set)
        server.join(10)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_a_legal_38_mp_camera_costs_what_a_4k_one_does(tmp_path: Path) -> None:
    """The attack run's 38.5 MP JPEG camera (under the 40 MP bomb limit) took the service from 715 MB to 2.3 GB of
    RAM. Frames over 16 MP are read at a working size, and streams stop at 4K: with an RTSP and an MJPEG client it
    peaks within 1.4x of the same camera at 4K (1.2x measured; the code before: 3.1x, 1,472 MB against 475)."""
    four_k = peak_rss_mb((3840, 2160), 15, tmp_path)
    huge = peak_rss_mb((7600, 5066), 15, tmp_path)
    print(f"\npeak RSS: 4K camera {four_k:.0f} MB, 38.5 MP camera {huge:.0f} MB")
    assert huge <= 1.4 * four_k, (four_k, huge)
