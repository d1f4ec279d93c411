"""The app's entry point started as the Supervisor starts it: `python -m faceanon.supervisor` with /data/options.json,
SUPERVISOR_TOKEN and the Supervisor API (a fake on 127.0.0.1), against a real mosquitto with a password file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT, Mosquitto, free_port
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from fake_supervisor import FakeSupervisor

CLIP = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
SUPERVISOR_TOKEN = "supervisor-token-for-faceanon"
APP_USER, APP_PASSWORD = "addons", "Mosquitto-made-this"
WATCHER, WATCHER_PASSWORD = "watcher", "w4tch"
PREFIX = "faceanon_e2e"


def options(**overrides: object) -> dict:
    return {
        "cameras": [{"name": "demo", "url": "demo", "detect_fps": 5, "style": "fill"}],
        "model": "centerface", "threads": 1, "snapshot_interval": 1, "shape": "ellipse",
        "margin": 0.6, "hold_seconds": 1.0, "topic_prefix": PREFIX, "log_level": "info", **overrides,
    }


class App:
    """The entry point as a subprocess, with its log in a file."""

    def __init__(self, tmp_path: Path, supervisor_url: str, opts: dict | str) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir(exist_ok=True)
        (self.data / "options.json").write_text(opts if isinstance(opts, str) else json.dumps(opts))
        self.port = free_port()
        self.log_path = tmp_path / "app.log"
        env = {**os.environ, "FACEANON_OPTIONS": str(self.data / "options.json"), "SUPERVISOR_URL": supervisor_url,
               "SUPERVISOR_TOKEN": SUPERVISOR_TOKEN, "FACEANON_HTTP_PORT": str(self.port),
               "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "faceanon.supervisor"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the app did not exit within {timeout} s; log:\n{self.log[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class Watcher:
    """Another MQTT user subscribed to everything faceanon publishes."""

    def __init__(self, port: int) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-watcher")
        self.client.username_pw_set(WATCHER, WATCHER_PASSWORD)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"{PREFIX}/#", 0), ("homeassistant/#", 0)])
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(msg.payload)

    def get(self, topic: str) -> list[bytes]:
        with self.lock:
            return list(self.messages.get(topic, []))

    def topics(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    (tmp_path / "broker").mkdir()
    server = Mosquitto(tmp_path / "broker", users={APP_USER: APP_PASSWORD, WATCHER: WATCHER_PASSWORD})
    yield server
    server.stop()


def mqtt_service(broker: Mosquitto, password: str = APP_PASSWORD) -> dict:
    return {"addon": "core_mosquitto", "host": "127.0.0.1", "port": broker.port, "ssl": False,
            "username": APP_USER, "password": password, "protocol": "3.1.1"}


@pytest.fixture
def fake_supervisor(broker: Mosquitto) -> Iterator[FakeSupervisor]:
    fake = FakeSupervisor(SUPERVISOR_TOKEN, mqtt_service(broker))
    yield fake
    fake.stop()


def raw_frames() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 35
    return frames


def faces_hidden(snapshot: bytes, frames: list[np.ndarray], scanner: Scanner) -> int:
    """How many clearly visible faces of the raw frame behind this snapshot it shows blacked out; raises if one is
    visible. The raw frame is found by the smallest difference to the snapshot."""
    image = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the snapshot is not a JPEG"
    assert image.shape == frames[0].shape, f"snapshot {image.shape} vs clip {frames[0].shape}"
    diffs = [float(np.mean(cv2.absdiff(image, frame))) for frame in frames]
    raw = frames[int(np.argmin(diffs))]
    faces = scanner.scan(raw)
    hidden = 0
    for box, score in zip(faces.boxes, faces.scores, strict=True):
        if score < 0.7:
            continue
        x1, y1, x2, y2 = box
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
        region = (slice(int(cy - hh), int(cy + hh) + 1), slice(int(cx - hw), int(cx + hw) + 1))
        shown, original = float(np.mean(image[region])), float(np.mean(raw[region]))
        assert shown < 35 and original > shown + 40, \
            f"face at {box.astype(int).tolist()} is visible in the snapshot ({shown:.0f} vs raw {original:.0f})"
        hidden += 1
    return hidden


def wait_for(condition, timeout: float, what: str, app: App):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if app.proc.poll() is not None:
            pytest.fail(f"the app exited with {app.proc.returncode} while waiting for {what}; log:\n{app.log[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout} s; log:\n{app.log[-3000:]}")


@pytest.mark.timeout(180)
def test_app_starts_like_under_the_supervisor(tmp_path: Path, broker: Mosquitto,
                                              fake_supervisor: FakeSupervisor) -> None:
    watcher = Watcher(broker.port)
    app = App(tmp_path, fake_supervisor.url, options())
    try:
        # It asked the Supervisor for the broker, with the Supervisor's token.
        wait_for(lambda: fake_supervisor.requests, 30, "request to the Supervisor", app)
        assert fake_supervisor.requests[0] == ("GET", "/services/mqtt", f"Bearer {SUPERVISOR_TOKEN}")

        # It logged in to the password-protected broker with those credentials: its topics arrive.
        wait_for(lambda: b"online" in watcher.get(f"{PREFIX}/available"), 60, "availability 'online'", app)
        camera_config = f"homeassistant/camera/{PREFIX}/demo_snapshot/config"
        payload = json.loads(wait_for(lambda: watcher.get(camera_config), 30, "camera discovery", app)[-1])
        assert payload["topic"] == f"{PREFIX}/demo/snapshot"
        assert payload["availability"][0] == {"topic": f"{PREFIX}/available"}
        assert any(t.startswith("homeassistant/sensor/") and t.endswith("demo_faces/config") for t in watcher.topics())

        # Anonymized snapshots: every clearly visible face of the clip's frame is blacked out ("fill").
        frames = raw_frames()
        scanner = Scanner(load_detector("centerface", threads=1), DetectPlan())
        checked, seen = 0, 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and checked < 3:
            snapshots = watcher.get(f"{PREFIX}/demo/snapshot")
            for snap in snapshots[seen:]:
                assert snap[:2] == b"\xff\xd8", "snapshot is not a JPEG"
                checked += faces_hidden(snap, frames, scanner) > 0
            seen = len(snapshots)
            if app.proc.poll() is not None:
                break
            time.sleep(0.5)
        assert checked >= 1, f"no snapshot with a visible face to check in 60 s ({seen} snapshots); log:\n" \
                             f"{app.log[-3000:]}"
        assert watcher.get(f"{PREFIX}/demo/faces"), "no face count published"

        # Supervisor discovery for the HA integration, once the HTTP API answers; the token is the kept one.
        posted = wait_for(lambda: fake_supervisor.discovery, 60, "Supervisor discovery", app)[0]
        token = (app.data / "http_token").read_text().strip()
        assert posted["service"] == "faceanon"
        assert posted["config"]["port"] == app.port and posted["config"]["token"] == token
        assert posted["config"]["host"]

        # HTTP: health is open (the HEALTHCHECK and watchdog), the rest needs the token outside ingress.
        base = f"http://127.0.0.1:{app.port}"
        with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
            health = json.load(response)
        assert health["cameras"] == 1
        # One identity, kept in /data: what the discovery announced is what the service reports.
        assert health["id"] == posted["config"]["id"] == (app.data / "service_id").read_text().strip()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/cameras", timeout=5)
        assert refused.value.code in (401, 403)
        request = urllib.request.Request(f"{base}/api/demo/latest.jpg", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            faces_hidden(response.read(), frames, scanner)

        # The Supervisor stops an app with SIGTERM: a clean exit, and availability goes offline.
        app.proc.send_signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.log[-3000:]
        wait_for(lambda: watcher.get(f"{PREFIX}/available")[-1:] == [b"offline"], 10, "'offline'", app)
        assert "Traceback" not in app.log
        assert APP_PASSWORD not in app.log and token not in app.log, "secrets must not reach the log"
    finally:
        app.stop()
        watcher.stop()


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "[ERROR]" in line]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("opts", "expected"), [
    ('{"cameras": [', "options file"),
    (options(cameras=[{"name": "Front Door", "url": "demo", "detect_fps": 5, "style": "blur"}]),
     "option cameras.0.name: must be 1-64 of a-z, 0-9, _ (got 'Front Door')"),
    (options(cameras=[]), "option cameras: needs at least one camera"),
])
def test_bad_options_stop_the_app_with_one_clear_line(tmp_path: Path, fake_supervisor: FakeSupervisor,
                                                      opts: dict | str, expected: str) -> None:
    app = App(tmp_path, fake_supervisor.url, opts)
    try:
        started = time.monotonic()
        assert app.wait(30) == 1
        assert time.monotonic() - started < 30
        errors = error_lines(app.log)
        assert len(errors) == 1 and expected in errors[0], app.log
        assert "Traceback" not in app.log
    finally:
        app.stop()


@pytest.mark.timeout(60)
def test_no_mqtt_service_stops_the_app_with_one_clear_line(tmp_path: Path, fake_supervisor: FakeSupervisor) -> None:
    fake_supervisor.mqtt_service = None
    app = App(tmp_path, fake_supervisor.url, options())
    try:
        assert app.wait(30) == 1
        errors = error_lines(app.log)
        assert len(errors) == 1, app.log
        assert "Service not enabled" in errors[0] and "Mosquitto broker app" in errors[0]
    finally:
        app.stop()


@pytest.mark.timeout(60)
def test_wrong_mqtt_credentials_stop_the_app_with_one_clear_line(tmp_path: Path, broker: Mosquitto,
                                                                 fake_supervisor: FakeSupervisor) -> None:
    fake_supervisor.mqtt_service = mqtt_service(broker, password="not-the-password")
    app = App(tmp_path, fake_supervisor.url, options())
    try:
        assert app.wait(40) == 1
        errors = error_lines(app.log)
        assert len(errors) == 1, app.log
        assert f"MQTT broker 127.0.0.1:{broker.port} refused user 'addons'" in errors[0]
        assert "not-the-password" not in app.log
    finally:
        app.stop()
