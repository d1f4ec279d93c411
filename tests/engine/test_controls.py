"""Per-camera controls (faceanon.controls): validated like the config, kept over restarts, applied to the running
camera without a frame going out unmasked, over HTTP (with the token) and MQTT (Frigate-style `/set` topics, with
Home Assistant discovery of a switch, selects and numbers). Off means the camera reads and publishes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import aiohttp
import numpy as np
import paho.mqtt.client as paho
import pytest
from conftest import free_port
from faceanon import controls
from faceanon.config import CAMERA, SAMPLE_CLIP, validate
from faceanon.controls import ControlError, ControlStore, changed
from faceanon.detect.shared import Detectors
from faceanon.floors import OVERRIDE
from faceanon.leak import changed_pixels, ellipse_share
from faceanon.mask import MaskStyle, head_boxes, mask_boxes
from faceanon.service import Service
from test_pipeline import RecordingPipeline, assert_all_safe, camera, decode, verifier
from test_service import Retained, eventually

pytestmark = pytest.mark.timeout(120)
TOKEN = "controls-test-token"


# -- validation and keeping ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"style": "sketch"}, "style: value must be one of"),
    ({"target": "animal"}, "target: value must be one of"),
    ({"threshold": 1.5}, "threshold: value must be at most 0.95"),
    ({"hold_seconds": -1}, "hold_seconds: value must be at least 0"),
    ({"plan": "3x<=99999:bogus"}, "plan: pass"),
    ({"enabled": "yes"}, "enabled: expected bool"),
    ({"url": "rtsp://elsewhere/cam"}, "url: unknown control"),
    ({}, "expected a JSON object of controls"),
    (["style"], "expected a JSON object of controls"),
])
def test_changes_are_validated_like_the_config(change, message) -> None:
    with pytest.raises(ControlError, match=message):
        changed(camera(), change)


def test_a_valid_change_is_the_camera_config_with_it() -> None:
    cam = changed(camera(), {"target": "head", "threshold": "0.3", "plan": "balanced", "enabled": False})
    assert (cam["target"], cam["threshold"], cam["plan"], cam["enabled"]) == ("head", 0.3, "balanced", False)
    assert cam["url"] == str(SAMPLE_CLIP)


def test_kept_controls_survive_a_restart_and_yield_to_an_edited_config_file(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "faceanon")
    file_cam = camera()
    ControlStore(tmp_path).keep(file_cam, changed(file_cam, {"target": "person", "hold_seconds": 2.5}))
    saved = json.loads((tmp_path / controls.CONTROLS_FILE).read_text())
    assert set(saved["demo"]) == {"target", "hold_seconds"}  # only what differs from the config file
    restored = ControlStore(tmp_path).restore(file_cam)
    assert (restored["target"], restored["hold_seconds"]) == ("person", 2.5)
    # Someone edits the file's target afterwards: the file wins, the other kept control stays.
    edited = changed(file_cam, {"target": "head"})
    restored = ControlStore(tmp_path).restore(edited)
    assert (restored["target"], restored["hold_seconds"]) == ("head", 2.5)
    assert "the config file wins" in caplog.text
    (tmp_path / controls.CONTROLS_FILE).write_text("{not json")
    assert ControlStore(tmp_path).restore(file_cam)["target"] == file_cam["target"]  # unreadable: the file's


def test_the_head_target_covers_more_than_the_face_on_every_side() -> None:
    box = np.array([[100, 100, 140, 150]], np.float32)
    face = mask_boxes(box, MaskStyle(), 1000, 1000)[0]
    head = mask_boxes(box, MaskStyle(target="head"), 1000, 1000)[0]
    assert head[0] <= face[0] and head[1] < face[1] and head[2] >= face[2] and head[3] >= face[3]
    assert head[1] <= 100 - 0.6 * 50  # the crown: more than half a face above the brows
    assert np.allclose(head_boxes(box)[0], [88, 65, 152, 162.5])


# -- a running camera ------------------------------------------------------------------------------------------

async def run_until(pipeline: RecordingPipeline, frames: int, timeout: float = 60.0) -> None:
    start = len(pipeline.pairs)
    deadline = time.monotonic() + timeout
    while len(pipeline.pairs) < start + frames:
        assert time.monotonic() < deadline, f"fewer than {frames} frames in {timeout}s"
        await asyncio.sleep(0.05)


def face_brightness(pairs) -> float:
    """The output's mean brightness in the middle of the raw faces' boxes: black under a fill, the face's own
    average colours under pixelate."""
    spreads = []
    for raw, jpeg in pairs:
        out = decode(jpeg)
        faces = verifier().scan(raw)
        for x1, y1, x2, y2 in faces.boxes[faces.scores >= 0.43].astype(int):
            inner = out[y1 + (y2 - y1) // 4:y2 - (y2 - y1) // 4, x1 + (x2 - x1) // 4:x2 - (x2 - x1) // 4]
            spreads.append(float(inner.mean()))
    return float(np.mean(spreads))


async def test_style_target_plan_and_hold_change_a_running_camera_without_an_unmasked_frame() -> None:
    cam = camera(style="fill", detect_fps=10)
    pipeline = RecordingPipeline(cam, Detectors({"model": "centerface"}))
    task = asyncio.create_task(pipeline.run())
    try:
        await run_until(pipeline, 6)
        hold = pipeline.anonymizer.hold
        before = list(pipeline.pairs)
        # Pixelate is below the protection floor: no control sets it, the owner's config file may (a reload).
        cam = CAMERA({**cam, "style": "pixelate", "unsafe_settings": OVERRIDE})
        await pipeline.reconfigure(cam)
        mark = len(pipeline.pairs)
        await run_until(pipeline, 6)
        pixelated = pipeline.pairs[mark + 1:]  # the frame in flight during the change may be either style
        cam = changed(cam, {"plan": "balanced", "threshold": 0.3, "hold_seconds": 3.0, "target": "head",
                            "style": "fill"})
        await pipeline.reconfigure(cam)
        mark = len(pipeline.pairs)
        await run_until(pipeline, 6)
        head = pipeline.pairs[mark + 1:]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipeline.stop()
    # Every frame before, during and after the changes is masked (or the privacy hold), by the team's rule.
    assert_all_safe(before, MaskStyle("fill"))
    assert_all_safe(pixelated, MaskStyle("pixelate"))
    assert_all_safe(head, MaskStyle("fill"))
    assert assert_all_safe(pipeline.pairs, MaskStyle("pixelate"))["masked"] >= 18
    # The change shows in the served frames: a black fill inside the faces, then blocks of their own colours.
    assert face_brightness(before) < 20 < 60 < face_brightness(pixelated)
    # The hold's tracks carried over into the new plan's anonymizer, with the new hold time.
    assert pipeline.anonymizer.hold is hold and hold.seconds == 3.0
    assert pipeline.plan.full.name == "balanced" and pipeline.anonymizer.scanner.whole.threshold == 0.3
    assert pipeline.feed.controls == {"enabled": True, "style": "fill", "target": "head", "plan": "balanced",
                                      "threshold": 0.3, "hold_seconds": 3.0}
    # Head masks change the hair above each face too: the band of half a face above the brows.
    above = []
    for raw, jpeg in head:
        faces = verifier().scan(raw)
        for x1, y1, x2, y2 in faces.boxes[faces.scores >= 0.43]:
            h = y2 - y1
            above.append(ellipse_share(changed_pixels(raw, decode(jpeg)), [x1, y1 - 0.5 * h, x2 - x1, 0.5 * h]))
    assert above and min(a for a in above if a is not None) >= 0.8


# -- the service: HTTP, MQTT, restarts -------------------------------------------------------------------------

def service_config(mqtt_port: int, state: Path, http_port: int, commands: bool = True) -> dict:
    return validate({
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "commands": commands},
        "http": {"host": "127.0.0.1", "port": http_port, "token": TOKEN},
        "rtsp": {"enabled": False},
        "state_dir": str(state),
        "log_level": "debug",
        "cameras": [{"name": "demo", "url": str(SAMPLE_CLIP), "detect_fps": 5},
                    {"name": "spare", "url": str(SAMPLE_CLIP), "detect_fps": 2, "enabled": False}],
    })


async def put_controls(http: aiohttp.ClientSession, port: int, camera: str, body, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.put(f"http://127.0.0.1:{port}/api/{camera}/controls", json=body, headers=headers) as response:
        return response.status, await response.json()


async def latest_status(http: aiohttp.ClientSession, port: int, camera: str) -> int:
    async with http.get(f"http://127.0.0.1:{port}/api/{camera}/latest.jpg",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        await response.read()
        return response.status


def publish(port: int, topic: str, payload: str) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"controls-test-{time.time_ns()}")
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_controls_over_http_and_mqtt_are_kept_and_off_publishes_nothing(mosquitto, tmp_path: Path) -> None:
    http_port = free_port()
    cfg = service_config(mosquitto.port, tmp_path / "state", http_port)
    sub = Retained(mosquitto.port, "#")
    service = Service(cfg)
    await service.start()
    try:
        demo, spare = service.feed_of["demo"], service.feed_of["spare"]
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: demo.latest_jpeg is not None, 60, "the first anonymized frame")
            # A camera off in the config is listed (so Home Assistant keeps its device) and serves nothing.
            assert spare.status()["enabled"] is False and spare.latest_jpeg is None
            assert await latest_status(http, http_port, "spare") == 503
            # HTTP: the token is required; values are validated; the answer is the controls as they act.
            assert (await put_controls(http, http_port, "demo", {"target": "head"}, token=None))[0] == 401
            status, body = await put_controls(http, http_port, "demo", {"style": "sketch"})
            assert status == 400 and body["error"].startswith("style: value must be one of")
            assert (await put_controls(http, http_port, "nope", {"target": "head"}))[0] == 404
            # Below the protection floor: refused with the reason, nothing changed.
            for weak, key in (({"style": "blur"}, "style"), ({"threshold": 0.9}, "threshold"),
                              ({"hold_seconds": 0}, "hold_seconds"), ({"plan": "1<=16"}, "plan")):
                status, body = await put_controls(http, http_port, "demo", weak)
                assert status == 400 and body["error"].startswith(f"{key}: "), body
                assert "protection floor" in body["error"], body
            status, body = await put_controls(http, http_port, "demo", {"target": "head", "threshold": 0.4})
            assert status == 200 and body["values"]["target"] == "head" and body["values"]["threshold"] == 0.4
            assert body["options"]["style"] == ["fill"] and body["options"]["threshold"]["max"] == 0.4
            async with http.get(f"http://127.0.0.1:{http_port}/api/cameras",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                listed = {c["name"]: c for c in (await response.json())["cameras"]}
            assert listed["demo"]["controls"]["target"] == "head"
            await eventually(lambda: sub.get("faceanon/demo/target/state") == b"head", 10, "the MQTT target state")
            # Who changed what: the audit list of /api/service (refusals included).
            async with http.get(f"http://127.0.0.1:{http_port}/api/service",
                                headers={"Authorization": f"Bearer {TOKEN}", "X-Faceanon-Client": "a test"}) as r:
                audit = (await r.json())["audit"]
            assert audit[-1]["changes"] == {"target": "head", "threshold": 0.4}
            assert audit[-1]["result"] == "accepted" and audit[-1]["source"].startswith("http (token) from 127.0.0.1")
            assert sum(e["result"].startswith("refused") for e in audit) >= 5
            # MQTT: turn the camera off; it reads and publishes nothing, and says so.
            publish(mosquitto.port, "faceanon/demo/enabled/set", "OFF")
            await eventually(lambda: not demo.enabled, 10, "the camera to turn off")
            assert demo.latest_jpeg is None and "demo" not in service.running
            assert await latest_status(http, http_port, "demo") == 503
            await eventually(lambda: sub.get("faceanon/demo/available") == b"offline", 10, "demo offline")
            await eventually(lambda: sub.get("faceanon/demo/enabled/state") == b"OFF", 10, "the switch state OFF")
            snapshot = sub.get("faceanon/demo/snapshot")
            await asyncio.sleep(1.5)
            assert sub.get("faceanon/demo/snapshot") == snapshot  # no snapshot while off
            # A refused MQTT value changes nothing.
            publish(mosquitto.port, "faceanon/demo/hold_seconds/set", "forever")
            publish(mosquitto.port, "faceanon/demo/hold_seconds/set", "99")
            publish(mosquitto.port, "faceanon/demo/hold_seconds/set", "0")  # below the floor
            publish(mosquitto.port, "faceanon/demo/hold_seconds/set", "2.5")
            await eventually(lambda: service.cameras["demo"]["hold_seconds"] == 2.5, 10, "hold time 2.5")
            assert any(e["source"] == "mqtt" and e["result"].startswith("refused: hold_seconds") for e in service.audit)
            publish(mosquitto.port, "faceanon/spare/enabled/set", "ON")
            await eventually(lambda: spare.latest_jpeg is not None, 60, "the spare camera's first frame")
        # Discovery: a switch, selects and numbers per camera; controls stay available while the camera is off.
        config = json.loads(sub.get("homeassistant/switch/faceanon/demo_enabled/config"))
        assert config["command_topic"] == "faceanon/demo/enabled/set"
        assert config["availability"] == [{"topic": "faceanon/available"}]
        select = json.loads(sub.get("homeassistant/select/faceanon/demo_style/config"))
        assert select["options"] == ["fill"] and select["entity_category"] == "config"
        number = json.loads(sub.get("homeassistant/number/faceanon/demo_threshold/config"))
        assert (number["min"], number["max"], number["step"]) == (0.05, 0.4, 0.05)  # within the floor
        latency = json.loads(sub.get("homeassistant/sensor/faceanon/demo_detect_ms_p95/config"))
        assert latency["value_template"] == "{{ value_json.detect_ms_p95 }}" and latency["unit_of_measurement"] == "ms"
    finally:
        await service.stop()
        sub.close()
    # A restart keeps what the controls set: demo off with the head target, hold 2.5 s; spare on.
    service = Service(service_config(mosquitto.port, tmp_path / "state", free_port()))
    await service.start()
    try:
        assert service.cameras["demo"]["enabled"] is False and service.cameras["demo"]["target"] == "head"
        assert service.cameras["demo"]["hold_seconds"] == 2.5 and service.cameras["demo"]["threshold"] == 0.4
        assert "demo" not in service.running and "spare" in service.running
        assert service.feed_of["demo"].status()["controls"]["enabled"] is False
    finally:
        await service.stop()


def test_the_plan_options_keep_the_configured_plan_after_a_change() -> None:
    """A camera whose plan a control changed still offers the one its config gives it (to set it back)."""
    plans = controls.options("balanced", "0.75x<=1920>=640")["plan"]
    assert "0.75x<=1920>=640" in plans and "balanced" in plans and len(plans) == len(set(plans))
    assert controls.options("1+2x<=2048", "0.75x<=1920>=640")["plan"][-2:] == ["1+2x<=2048", "0.75x<=1920>=640"]
