"""The RTSP restream against real parts: the built-in gst-rtsp-server read by Debian's ffprobe/ffmpeg (two clients at
once, token auth), YuNet as an independent judge of the decoded frames, privacy-hold frames when the source stops,
and the push to a real RTSP server (`ffmpeg -rtsp_flags listen`) that reconnects after that server restarts."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import free_port
from faceanon.config import SAMPLE_CLIP, validate
from faceanon.detect import load_detector
from faceanon.service import Service
from test_pipeline import clip_frames, is_privacy_hold

pytestmark = pytest.mark.timeout(120)
FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
if not (FFMPEG and FFPROBE):
    pytest.skip("Debian's ffmpeg is not installed (apt-get install ffmpeg; .ci/run does this)", allow_module_level=True)


def need_gst() -> None:
    try:
        from faceanon.publish.rtsp_server import _gst

        _gst()
    except Exception as err:
        pytest.skip(f"the built-in RTSP server cannot run here: {err}")


def config(tmp_path: Path, **extra) -> dict:
    cam = {"name": "lobby", "url": str(SAMPLE_CLIP), "style": "fill", **extra.pop("camera", {})}
    return validate({"cameras": [cam], "http": {"host": "127.0.0.1", "port": free_port(), **extra.pop("http", {})},
                     "rtsp": {"port": free_port(), **extra.pop("rtsp", {})}, **extra})


async def started(cfg: dict) -> Service:
    service = Service(cfg, broker_port=free_port())
    await service.start()
    await service.feeds[0].wait_frame(0, 30)
    return service


def probe(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                           "stream=codec_name,width,height", "-of", "json", url],
                          capture_output=True, text=True, timeout=30)


def grab(url: str, out: Path, frames: int, listen: bool = False) -> subprocess.Popen:
    """ffmpeg decoding `frames` frames of `url` into PNGs (as a listening RTSP server when `listen`)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [FFMPEG, "-v", "error", "-y"]
    cmd += ["-rtsp_flags", "listen", "-timeout", "30"] if listen else ["-rtsp_transport", "tcp"]
    cmd += ["-i", url, "-frames:v", str(frames), str(out / "f%03d.png")]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def finished(proc: subprocess.Popen, timeout: float = 45) -> None:
    rc = await asyncio.to_thread(proc.wait, timeout)
    assert rc == 0, proc.stdout.read() if proc.stdout else rc


def frames_in(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))]


def faces_seen(judge, frame: np.ndarray) -> int:
    """Faces YuNet finds at 0.6 on the frame enlarged 2x (the clip's faces are 20-40 px)."""
    return len(judge.infer(cv2.resize(frame, None, fx=2, fy=2), 0.6))


async def test_built_in_server_serves_anonymized_h264_to_two_clients(tmp_path: Path) -> None:
    need_gst()
    cfg = config(tmp_path)
    service = await started(cfg)
    url = f"rtsp://127.0.0.1:{cfg['rtsp']['port']}/lobby"
    try:
        info = await asyncio.to_thread(probe, url)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["streams"][0] == {"codec_name": "h264", "width": 480, "height": 270}
        clients = [grab(url, tmp_path / name, 8) for name in ("a", "b")]  # both at once
        for client in clients:
            await finished(client)
        api_url = f"http://127.0.0.1:{cfg['http']['port']}/api/cameras"
        api = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(api_url, timeout=5).read()))
        assert api["rtsp"] == {"port": cfg["rtsp"]["port"], "auth": False}
    finally:
        await service.stop()
    judge = load_detector("yunet")  # not the engine's detector: an independent look at what left the process
    raw_faces = sum(faces_seen(judge, frame) for frame in clip_frames()[:8])
    assert raw_faces >= 8  # the judge does see the clip's faces before anonymization
    raw = clip_frames()
    for name in ("a", "b"):
        decoded = frames_in(tmp_path / name)
        assert len(decoded) == 8 and decoded[0].shape == (270, 480, 3)
        assert sum(faces_seen(judge, frame) for frame in decoded) == 0
        for frame in decoded:  # the scene itself comes through intact (a broken stream would smear it)
            assert not is_privacy_hold(frame)
            assert min(float(np.median(cv2.absdiff(frame, r))) for r in raw) < 6


async def test_a_stopped_source_gives_privacy_hold_frames_not_a_dead_stream(tmp_path: Path) -> None:
    need_gst()
    cfg = config(tmp_path)
    service = await started(cfg)
    try:
        pipeline = service.pipelines[0]
        await asyncio.to_thread(pipeline.source.stop)
        for _ in range(150):
            if pipeline.feed.latest_is_hold:
                break
            await asyncio.sleep(0.1)
        assert pipeline.feed.latest_is_hold and not pipeline.feed.status()["online"]
        client = grab(f"rtsp://127.0.0.1:{cfg['rtsp']['port']}/lobby", tmp_path / "held", 5)
        await finished(client)
    finally:
        await service.stop()
    decoded = frames_in(tmp_path / "held")
    assert len(decoded) == 5 and all(is_privacy_hold(frame) for frame in decoded)


async def test_the_token_protects_the_rtsp_server(tmp_path: Path) -> None:
    need_gst()
    cfg = config(tmp_path, http={"token": "s3cret-token"})
    service = await started(cfg)
    port = cfg["rtsp"]["port"]
    try:
        refused = await asyncio.to_thread(probe, f"rtsp://127.0.0.1:{port}/lobby")
        assert refused.returncode != 0 and "401" in refused.stderr
        wrong = await asyncio.to_thread(probe, f"rtsp://faceanon:nope@127.0.0.1:{port}/lobby")
        assert wrong.returncode != 0
        allowed = await asyncio.to_thread(probe, f"rtsp://faceanon:s3cret-token@127.0.0.1:{port}/lobby")
        assert allowed.returncode == 0 and '"h264"' in allowed.stdout
    finally:
        await service.stop()


async def test_push_reaches_a_real_rtsp_server_and_reconnects_after_it_restarts(tmp_path: Path) -> None:
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live/lobby_anonymized"
    first = grab(url, tmp_path / "first", 10, listen=True)
    await asyncio.sleep(0.5)  # let the listener bind before the service's first try
    cfg = config(tmp_path, rtsp={"enabled": False}, camera={"restream": url})
    service = await started(cfg)
    try:
        await finished(first)  # 10 frames received, then this "server" goes away
        second = grab(url, tmp_path / "second", 10, listen=True)  # the server is back on the same port
        await finished(second, timeout=60)
    finally:
        await service.stop()
    judge = load_detector("yunet")
    for name in ("first", "second"):
        decoded = frames_in(tmp_path / name)
        assert len(decoded) == 10 and decoded[0].shape == (270, 480, 3)
        assert sum(faces_seen(judge, frame) for frame in decoded) == 0


def test_a_camera_bigger_than_4k_is_streamed_at_4k() -> None:
    """H.264 levels stop near 8.9 MP a picture: a bigger camera's stream would play nowhere and libx264 would hold
    several of its frames. It is scaled down to 4K's pixels, aspect kept; smaller cameras stream as they are."""
    import av
    from faceanon.publish.h264 import MAX_STREAM_PIXELS, H264Encoder, stream_size

    assert stream_size(1280, 720) == (1280, 720) and stream_size(1281, 721) == (1280, 720)
    assert stream_size(3840, 2160) == (3840, 2160)
    w, h = stream_size(7600, 5066)
    assert w * h <= MAX_STREAM_PIXELS and w % 2 == h % 2 == 0 and abs(w / h - 7600 / 5066) < 0.01
    encoder = H264Encoder(7600, 5066, fps=5)
    big = cv2.resize(clip_frames()[0], (7600, 5066))
    units = encoder.encode(big) + encoder.encode(big)
    codec = av.CodecContext.create("h264", "r")
    pictures = [f for unit in units for packet in codec.parse(unit) for f in codec.decode(packet)]
    assert pictures and (pictures[0].width, pictures[0].height) == (w, h)
