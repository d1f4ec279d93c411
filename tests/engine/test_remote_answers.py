"""FAIL CLOSED on a remote detector that goes bad after it loaded: a KServe v2 server (tests/engine/kserve_fake.py,
a real gRPC server) passes the load-time canary, then answers all-zero tensors, a 1x1 heat map, NaN, an output short
or a transposed map. Every such answer is a ModelError on the frame it comes for, so the camera publishes the
privacy-hold frame from that frame on, on every output path (the feed, latest.jpg, MJPEG, the MQTT snapshot and the
RTSP restream), says privacy_degraded, and comes back when the server answers properly again. A healthy model's
answers on black, white and noise frames are never taken for a broken one."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, free_port
from faceanon.config import SAMPLE_CLIP, validate
from faceanon.detect import ModelError, bundled_manifests, load_detector
from faceanon.detect.shared import Detectors
from faceanon.service import Service
from test_failclosed import STRICT, Timeline, recovered
from test_pipeline import assert_all_safe, camera, clip_frames, decode, is_privacy_hold, run_for

pytest.importorskip("tritonclient.grpc", reason="the remote detector needs tritonclient: pip install '.[remote]'")
from kserve_fake import FakeKServe  # needs tritonclient, checked above

pytestmark = pytest.mark.timeout(180)
MODELS = ROOT / "addon" / "faceanon" / "models"
SERVED = {"centerface-int8": MODELS / "centerface_int8.onnx", "yunet": MODELS / "yunet_n.onnx"}
BAD = ("zeros", "tiny", "nan", "missing", "reshaped")


@pytest.fixture
def server():
    fake = FakeKServe(SERVED)
    fake.start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("model", sorted(SERVED))
def test_every_bad_answer_after_load_is_a_model_error(server: FakeKServe, model: str) -> None:
    detector = load_detector(model, provider=server.url)  # the canary passes: the server is healthy at load
    frame = cv2.resize(clip_frames()[0], None, fx=2, fy=2)
    assert len(detector.infer(frame, detector.manifest.threshold)) >= 2
    for mode in BAD:
        server.set_mode(mode)
        with pytest.raises(ModelError) as err:
            detector.infer(frame, detector.manifest.threshold)
        message = str(err.value)
        assert message.startswith(f"model {model}") and "\n" not in message, (mode, message)
    server.set_mode("ok")
    assert len(detector.infer(frame, detector.manifest.threshold)) >= 2


@pytest.mark.parametrize("name", ["centerface", "centerface-int8", "yunet", "retinaface", "fasterrcnn",
                                  "nanodet-person"])
def test_a_healthy_model_is_never_taken_for_a_broken_one(name: str) -> None:
    """Black, white, grey and noise frames of several sizes: a real network's answer is never all zeros or out of
    shape, so the check costs no false privacy hold."""
    assert name in bundled_manifests()
    detector = load_detector(name)
    rng = np.random.default_rng(1)
    for width, height in ((640, 360), (1280, 720), (333, 177)):
        for image in (np.zeros((height, width, 3), np.uint8), np.full((height, width, 3), 255, np.uint8),
                      np.full((height, width, 3), 128, np.uint8),
                      rng.integers(0, 256, (height, width, 3), dtype=np.uint8)):
            detector.infer(image, detector.manifest.threshold)  # raises ModelError on a false alarm


@pytest.mark.parametrize("mode", ["zeros", "tiny"])
async def test_a_server_that_turns_bad_mid_stream_holds_privacy_from_the_next_frame(server: FakeKServe,
                                                                                     mode: str) -> None:
    p = Timeline(camera(**STRICT, deadline_ms=5000), Detectors({"model": "centerface-int8", "provider": server.url}))
    phase: dict[str, int] = {}

    async def chaos() -> None:
        while sum(not is_privacy_hold(decode(j)) for _, j in p.pairs) < 4:
            await asyncio.sleep(0.02)
        phase["calls"] = server.calls
        server.set_mode(mode)
        phase["bad_from"] = len(p.pairs)
        while len(p.pairs) < phase["bad_from"] + 5:
            await asyncio.sleep(0.02)
        phase["reason"] = p.feed.status()["reason"] or ""
        phase["degraded"] = p.feed.status()["privacy_degraded"]
        server.set_mode("ok")
        phase["good_from"] = len(p.pairs)

    task = asyncio.create_task(chaos())
    try:
        await run_for(p, 120, until=lambda: "good_from" in phase and recovered(p, masked_after=4))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "good_from" in phase, phase
    # The frame in flight when the server turned may still be masked from its good answer; every later one is held.
    held = [is_privacy_hold(decode(j)) for _, j in p.pairs[phase["bad_from"] + 1:phase["good_from"]]]
    assert held and all(held), held
    assert phase["degraded"] is True and "centerface-int8" in phase["reason"], phase
    kinds = assert_all_safe(p.pairs, p.style)  # nothing raw, ever
    assert kinds["hold"] >= 4 and kinds["masked"] >= 8, kinds
    assert not p.feed.status()["privacy_degraded"]


FFMPEG = shutil.which("ffmpeg")


def rtsp_frame(url: str, out: Path) -> np.ndarray | None:
    if FFMPEG is None:
        return None
    subprocess.run([FFMPEG, "-v", "error", "-y", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1", str(out)],
                   capture_output=True, timeout=30)
    return cv2.imread(str(out)) if out.exists() else None


def first_event(url: str) -> bytes:
    """The server-sent event stream up to its first event's data line."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        lines = []
        while not lines or not lines[-1].startswith(b"data:"):
            lines.append(resp.readline())
    return b"".join(lines)


def mjpeg_frame(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data = b""
        while data.count(b"\xff\xd9") < 2:  # the second frame: the first may be the one in flight
            chunk = resp.read(65536)
            assert chunk, "the MJPEG stream ended"
            data += chunk
    start = data.index(b"\xff\xd8", data.index(b"\xff\xd9"))
    return decode(data[start:data.index(b"\xff\xd9", start) + 2])


async def test_every_output_path_holds_privacy_when_the_server_turns_bad(server: FakeKServe, mosquitto,
                                                                         tmp_path: Path) -> None:
    from test_service import Retained, eventually

    http_port = free_port()
    # Credentials in the server's URL (a user's, or a proxy's) never show: not in the APIs, events or MQTT.
    url = server.url.replace("grpc://", "grpc://triton:s3cret@")
    cfg = validate({"cameras": [{"name": "lobby", "url": str(SAMPLE_CLIP), "snapshot_interval": 1}],
                    "detector": {"model": "centerface-int8", "provider": "kserve", "url": url},
                    "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                    "http": {"host": "127.0.0.1", "port": http_port}, "rtsp": {"port": free_port()}})
    service = Service(cfg)
    sub = Retained(mosquitto.port, "faceanon/#")
    await service.start()
    feed = service.feeds[0]
    base = f"http://127.0.0.1:{http_port}/api/lobby"
    try:
        await eventually(lambda: feed.latest_jpeg is not None and not feed.latest_is_hold, 60, "a live frame")
        await eventually(lambda: sub.get("faceanon/lobby/info") is not None, 30, "the camera's info topic")
        api = f"http://127.0.0.1:{http_port}/api"
        for path in ("/cameras", "/service"):
            text = await asyncio.to_thread(lambda p=path: urllib.request.urlopen(api + p, timeout=10).read())
            assert b"s3cret" not in text and b"triton:***@" in text, path
        events = await asyncio.to_thread(first_event, api + "/events")
        assert b"event: cameras" in events and b"triton:***@" in events and b"s3cret" not in events
        with sub.lock:
            retained = dict(sub.last)
        assert retained and not any(b"s3cret" in payload for payload in retained.values())
        server.set_mode("zeros")
        switched = feed.seq
        await eventually(lambda: feed.seq >= switched + 2, 30, "two frames after the server turned bad")
        assert feed.latest_is_hold and feed.status()["privacy_degraded"]
        since = time.monotonic()
        await eventually(lambda: (sub.get("faceanon/lobby/snapshot") is not None
                                  and is_privacy_hold(decode(sub.get("faceanon/lobby/snapshot") or b""))),
                         30, "the MQTT snapshot to be the privacy-hold frame")
        latest = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/latest.jpg", timeout=10).read())
        assert is_privacy_hold(decode(latest))
        assert is_privacy_hold(await asyncio.to_thread(mjpeg_frame, f"{base}/stream.mjpeg"))
        if feed.rtsp_port is not None and FFMPEG is not None:  # the restream runs where gst-rtsp-server is installed
            frame = await asyncio.to_thread(rtsp_frame, f"rtsp://127.0.0.1:{feed.rtsp_port}/lobby", tmp_path / "r.png")
            assert frame is not None and is_privacy_hold(frame)
        assert time.monotonic() - since < 30
        # Nothing the service published since the switch is raw: every output was the hold frame.
        assert feed.status()["fail_closed_frames"] >= 2
    finally:
        server.set_mode("ok")
        sub.close()
        await service.stop()
