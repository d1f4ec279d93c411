"""No control may weaken protection (faceanon.floors): every control at the extremes it accepts still masks a still
face that appears after the change, by the team's rule on the camera's outputs; MQTT commands change nothing unless
the owner turned them on; a camera the owner runs below the floor, or whose settings find no face in the canary
image, reads as privacy degraded."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from conftest import FIXTURES, free_port
from faceanon import controls, floors
from faceanon.config import CAMERA, ConfigError, validate
from faceanon.detect.shared import Detectors
from faceanon.leak import changed_pixels, ellipse_share
from faceanon.service import Service
from test_pipeline import RecordingPipeline, decode, is_privacy_hold, run_for
from test_service import Retained, eventually

pytestmark = pytest.mark.timeout(180)
ASTRONAUT_FACE = (181, 58, 88, 120)  # x, y, w, h in astronaut.jpg (NASA, public domain)


def wall_clip(tmp_path: Path, face_px: int = 40, empty: int = 20, still: int = 40) -> tuple[Path, list[float]]:
    """A grey wall (640x360, 10 fps) that a frontal face of `face_px` appears on after `empty` frames and stays,
    still; returns the clip and the face's x, y, w, h."""
    photo = cv2.imread(str(FIXTURES / "astronaut.jpg"))
    x, y, w, h = ASTRONAUT_FACE
    s = face_px / h
    x0, y0 = max(0, x - w), max(0, y - h)
    patch = cv2.resize(photo[y0:y + 2 * h, x0:x + 2 * w], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    wall = np.full((360, 640, 3), 128, np.uint8)
    with_face = wall.copy()
    px, py = 300, 120
    with_face[py:py + patch.shape[0], px:px + patch.shape[1]] = patch
    path = tmp_path / "wall.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 360))
    for i in range(empty + still):
        writer.write(wall if i < empty else with_face)
    writer.release()
    return path, [px + (x - x0) * s, py + (y - y0) * s, w * s, h * s]


def unmasked(pairs: list[tuple[np.ndarray, bytes]], face: list[float]) -> tuple[int, int]:
    """(frames showing the face, of them unmasked by the rule): a frame shows the face when the raw frame differs
    from the wall there."""
    shown = leaked = 0
    x, y, w, h = (int(v) for v in face)
    for raw, jpeg in pairs:
        if raw[y:y + h, x:x + w].std() < 5:  # the wall: no face yet
            continue
        out = decode(jpeg)
        if is_privacy_hold(out):
            continue
        shown += 1
        leaked += (ellipse_share(changed_pixels(raw, out), face) or 0) < 0.8
    return shown, leaked


@pytest.mark.parametrize("extreme", [
    {"threshold": floors.MAX_THRESHOLD},
    {"hold_seconds": floors.MIN_HOLD_S},
    {"plan": "fast"},
    {"target": "face", "threshold": floors.MAX_THRESHOLD, "hold_seconds": floors.MIN_HOLD_S},
])
async def test_every_control_at_its_extreme_still_masks_a_still_face_that_appears_after_it(tmp_path, extreme):
    """The still-face test of the attack run (a frontal ~40 px face on a grey wall, appearing after the change):
    at the edge of every range the controls accept, the face is masked in every frame that shows it."""
    clip, face = wall_clip(tmp_path)
    cam = CAMERA({"name": "wall", "url": str(clip), "detect_fps": 10})
    cam = controls.changed(cam, extreme)  # accepted: it is within the floor
    p = RecordingPipeline(cam, Detectors({"model": "centerface-int8"}))
    await run_for(p, 60, until=lambda: unmasked(p.pairs, face)[0] >= 15)
    shown, leaked = unmasked(p.pairs, face)
    assert shown >= 15 and leaked == 0, (extreme, shown, leaked)


def test_just_past_each_extreme_is_refused_with_the_reason() -> None:
    cam = CAMERA({"name": "wall", "url": str(FIXTURES / "astronaut.jpg")})
    for change in ({"threshold": floors.MAX_THRESHOLD + 0.05}, {"hold_seconds": floors.MIN_HOLD_S - 0.5},
                   {"style": "blur"}, {"style": "pixelate"}, {"plan": "1<=640"}, {"plan": "yunet@1"}):
        with pytest.raises(controls.ControlError, match="protection floor"):
            controls.changed(cam, change)
    # A camera the owner runs below the floor may still be brought back up by a control: only its changes count.
    weak = CAMERA({**cam, "style": "blur", "unsafe_settings": floors.OVERRIDE})
    assert controls.changed(weak, {"style": "fill"})["style"] == "fill"
    assert controls.changed(weak, {"target": "head"})["target"] == "head"


def test_the_margin_floor_is_the_cameras_and_the_still_images_own() -> None:
    """Cameras and videos keep masks at least 0.5 of the face wider than the box (live at 0.4 let 1.54x the
    default's face-frames of the walkers clips through); snapshot jobs, like stills, 0.4 (their default)."""
    cam = {"name": "lobby", "url": "rtsp://127.0.0.1/lobby"}
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.margin: 0.45 is under the protection floor \(0.5\)"):
        validate({"cameras": [{**cam, "margin": 0.45}]})
    assert validate({"cameras": [{**cam, "margin": 0.5}]})["cameras"][0]["margin"] == 0.5
    assert floors.below({"margin": 0.4}, ("margin",), still=True) == {}
    assert "margin" in floors.below({"margin": 0.35}, ("margin",), still=True)


async def test_a_camera_run_below_the_floor_reads_privacy_degraded_and_says_why(tmp_path, caplog) -> None:
    """The owner's override is honoured and visible: the camera masks with blur and reports privacy degraded; one
    whose threshold finds no face in the canary image is flagged too, with a log line."""
    caplog.set_level(logging.ERROR, "faceanon")
    clip, _ = wall_clip(tmp_path, empty=2, still=10)
    for settings, reason in (({"style": "blur"}, "unsafe_settings (style)"),
                             ({"threshold": 0.95}, "find no face in the canary image")):
        cam = validate({"cameras": [{"name": "wall", "url": str(clip), **settings,
                                     "unsafe_settings": floors.OVERRIDE}]})["cameras"][0]
        p = RecordingPipeline(cam, Detectors({"model": "centerface-int8"}))
        await run_for(p, 60, until=lambda p=p: len(p.pairs) >= 3 and p.feed.weakened is not None)
        status = p.feed.status()
        assert status["privacy_degraded"] is True and status["state"] == "degraded", status
        assert reason in status["reason"], status["reason"]
    assert any("canary image" in r.getMessage() for r in caplog.records)
    # Within the floor nothing is flagged.
    p = RecordingPipeline(CAMERA({"name": "wall", "url": str(clip)}), Detectors({"model": "centerface-int8"}))
    await run_for(p, 60, until=lambda: len(p.pairs) >= 3)
    assert p.feed.weakened is None and p.feed.status()["privacy_degraded"] is False


async def test_mqtt_commands_change_nothing_unless_the_owner_turned_them_on(mosquitto, tmp_path, caplog) -> None:
    """Any client of a home broker could send `<camera>/<control>/set`: by default they change nothing, the log
    says why once, and the MQTT devices offer no controls. The HTTP controls (with the token) are unaffected."""
    from test_controls import publish

    caplog.set_level(logging.WARNING, "faceanon")
    http_port = free_port()
    cfg = validate({"mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                    "http": {"host": "127.0.0.1", "port": http_port, "token": "tok"}, "rtsp": {"enabled": False},
                    "state_dir": str(tmp_path), "cameras": [{"name": "demo", "url": str(wall_clip(tmp_path)[0])}]})
    assert cfg["mqtt"]["commands"] is False
    sub = Retained(mosquitto.port, "#")
    service = Service(cfg)
    await service.start()
    try:
        await eventually(lambda: sub.get("homeassistant/camera/faceanon/demo_snapshot/config") is not None, 30,
                         "discovery")
        assert sub.get("homeassistant/switch/faceanon/demo_enabled/config") is None  # no control entities
        for _ in range(3):
            publish(mosquitto.port, "faceanon/demo/target/set", "person")
        await eventually(lambda: any("MQTT commands are off" in r.getMessage() for r in caplog.records), 10,
                         "the refusal in the log")
        await asyncio.sleep(1.0)
        assert service.cameras["demo"]["target"] == "face"
        assert sum("MQTT commands are off" in r.getMessage() for r in caplog.records) == 1  # once, not per message
        async with aiohttp.ClientSession() as http, http.put(
                f"http://127.0.0.1:{http_port}/api/demo/controls", json={"target": "person"},
                headers={"Authorization": "Bearer tok", "X-Faceanon-Client": "Home Assistant (Ann)"}) as r:
            assert r.status == 200
        entry = service.audit[-1]
        assert entry["source"] == "Home Assistant (Ann) via http (token) from 127.0.0.1"
        assert entry["result"] == "accepted"
        assert entry["at"].endswith("+00:00") and json.dumps(service.info()["audit"])  # ISO 8601, UTC
    finally:
        await service.stop()
        sub.close()


def test_people_in_view_and_no_face_for_minutes_is_a_health_warning() -> None:
    """The detection health check: the person detector sees people look after look and no face is found."""
    from faceanon import defaults
    from faceanon.feed import CameraFeed

    feed = CameraFeed("yard")
    feed.note_blind(0, 2, 100.0)
    feed.note_blind(0, 3, 100.0 + defaults.BLIND_WARN_S)
    assert feed.blind_for(100.0 + defaults.BLIND_WARN_S + 1) >= defaults.BLIND_WARN_S
    feed.note_blind(1, 3, 500.0)  # a face found: healthy again
    assert feed.blind_for(600.0) == 0.0
    feed.note_blind(0, None, 700.0)  # no person detector (target face): nothing to compare with
    assert feed.blind_since is None
