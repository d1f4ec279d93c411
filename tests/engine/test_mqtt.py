"""MqttPublisher against a real mosquitto broker on 127.0.0.1, fed with real anonymized frames."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
from conftest import ROOT, FrameFeed, Mosquitto, free_port, wait_port
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from faceanon.publish.mqtt import MqttConfigError, MqttPublisher
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.timeout(60)
VERSION = "9.8.7"


class Listener:
    """A plain paho subscriber recording every message (payload, retain flag) per topic."""

    def __init__(self, port: int, topic: str = "#", username: str | None = None, password: str | None = None):
        self.messages: dict[str, list[tuple[bytes, bool]]] = {}
        self.lock = threading.Lock()
        self.topic = topic
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append((bytes(msg.payload), bool(msg.retain)))

    def all(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for p, _ in self.messages.get(topic, [])]

    def last(self, topic: str) -> tuple[bytes, bool] | None:
        with self.lock:
            got = self.messages.get(topic)
            return got[-1] if got else None

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    async def until(self, topic: str, accept: Callable[[bytes], bool] = lambda _p: True,
                    timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.last(topic)
            if got is not None and accept(got[0]):
                return got[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no accepted message on {topic} within {timeout}s (last: {self.last(topic)!r:.80})")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def config(broker: Mosquitto, **extra) -> dict:
    return {"host": "127.0.0.1", "port": broker.port, "topic_prefix": "faceanon", "discovery_prefix": "homeassistant",
            "discovery": True, "client_id": f"faceanon-{uuid.uuid4().hex[:6]}", **extra}


@pytest.fixture
async def listener(mosquitto: Mosquitto):
    sub = Listener(mosquitto.port)
    yield sub
    await asyncio.to_thread(sub.close)


def faces_left(jpeg: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the snapshot does not decode as a JPEG"
    return len(Scanner(load_detector(), DetectPlan()).scan(image).boxes)


async def test_snapshot_faces_state_and_privacy_flag(mosquitto, listener, anonymized_frames):
    frame = next(f for f in anonymized_frames if f.faces >= 2)
    feed = FrameFeed("lobby")
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION)
    await publisher.start()
    try:
        assert await listener.until("faceanon/available") == b"online"
        feed.push(frame)
        snapshot = await listener.until("faceanon/lobby/snapshot")
        assert snapshot == frame.jpeg
        assert faces_left(snapshot) == 0  # the engine's own detector finds no face in what left the process
        expected = str(frame.faces).encode()
        assert await listener.until("faceanon/lobby/faces", lambda p: p == expected, timeout=5) == expected
        state = json.loads(await listener.until("faceanon/lobby/state",
                                                lambda p: json.loads(p)["faces"] == frame.faces, timeout=5))
        assert state["faces"] == frame.faces and state["model"] == "centerface" and state["online"] is True
        assert await listener.until("faceanon/lobby/privacy_degraded") == b"OFF"

        feed.privacy_degraded = True
        assert await listener.until("faceanon/lobby/privacy_degraded", lambda p: p == b"ON", timeout=5) == b"ON"
        feed.push(anonymized_frames[0], faces=0)
        assert await listener.until("faceanon/lobby/faces", lambda p: p == b"0", timeout=5) == b"0"
    finally:
        await publisher.stop()

    # Everything is retained: a newcomer (Home Assistant after a restart) gets the last values at once.
    late = Listener(mosquitto.port, "faceanon/#")
    try:
        assert await late.until("faceanon/lobby/snapshot") in {f.jpeg for f in anonymized_frames}
        assert await late.until("faceanon/lobby/privacy_degraded") == b"ON"
        assert await late.until("faceanon/available") == b"offline"  # published by stop()
        assert all(retained for msgs in late.messages.values() for _, retained in msgs)
    finally:
        await asyncio.to_thread(late.close)


async def test_snapshot_interval_and_face_count_change(mosquitto, listener, anonymized_frames):
    two = next(f for f in anonymized_frames if f.faces == 2)
    slow, fast = FrameFeed("slow", snapshot_interval=30), FrameFeed("fast", snapshot_interval=0.3)
    publisher = MqttPublisher(config(mosquitto), [slow, fast], VERSION)
    await publisher.start()
    try:
        await listener.until("faceanon/available", lambda p: p == b"online")
        for _ in range(12):  # 2.4 s of frames with an unchanged face count
            slow.push(two)
            fast.push(two)
            await asyncio.sleep(0.2)
        assert len(listener.all("faceanon/slow/snapshot")) == 1  # the first frame only, then every 30 s
        assert len(listener.all("faceanon/fast/snapshot")) >= 4  # every 0.3 s
        slow.push(anonymized_frames[0], faces=0)  # the face count changes: a snapshot now, not in 30 s
        await listener.until("faceanon/slow/faces", lambda p: p == b"0", timeout=5)
        deadline = time.monotonic() + 5
        while len(listener.all("faceanon/slow/snapshot")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert listener.all("faceanon/slow/snapshot")[-1] == anonymized_frames[0].jpeg
    finally:
        await publisher.stop()


async def test_each_camera_has_its_own_availability(mosquitto, listener, anonymized_frames):
    live, dead = FrameFeed("lobby"), FrameFeed("garage")  # the garage camera never sends a frame
    publisher = MqttPublisher(config(mosquitto), [live, dead], VERSION)
    await publisher.start()
    try:
        live.push(anonymized_frames[0])
        assert await listener.until("faceanon/lobby/available", lambda p: p == b"online") == b"online"
        assert await listener.until("faceanon/garage/available") == b"offline"
        assert listener.all("faceanon/available")[-1] == b"online"  # the service itself is up
        dead.push(anonymized_frames[0])  # the garage camera comes back
        assert await listener.until("faceanon/garage/available", lambda p: p == b"online") == b"online"
    finally:
        await publisher.stop()


async def test_retained_topics_of_a_removed_camera_are_cleared(mosquitto, listener, anonymized_frames):
    """A camera an earlier release published (its info carries no service id) is cleared, discovery included;
    tests/engine/test_mqtt_shared.py has the service ids."""
    old = paho.Client(CallbackAPIVersion.VERSION2, client_id="old-service")
    old.connect("127.0.0.1", mosquitto.port)
    old.loop_start()
    stale = "homeassistant/sensor/faceanon/garage_faces/config"
    for topic, payload in (*((f"faceanon/garage/{sub}", payload) for sub, payload in (
            ("snapshot", anonymized_frames[0].jpeg), ("available", b"online"), ("faces", b"2"), ("state", b"{}"),
            ("info", b'{"model": "centerface"}'))),
            (stale, json.dumps({"state_topic": "faceanon/garage/faces"}).encode())):
        old.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    old.loop_stop()
    old.disconnect()
    await listener.until("faceanon/garage/snapshot")
    feed = FrameFeed("lobby")
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION)
    await publisher.start()
    try:
        for topic in (*(f"faceanon/garage/{sub}" for sub in ("snapshot", "available", "faces", "state", "info")),
                      stale):
            assert await listener.until(topic, lambda p: p == b"") == b""
        feed.push(anonymized_frames[0])
        assert await listener.until("faceanon/lobby/snapshot") == anonymized_frames[0].jpeg  # its own stay
    finally:
        await publisher.stop()


CONTROL_ENTITIES = (("switch", "enabled"), ("select", "style"), ("select", "target"), ("select", "plan"),
                    ("number", "threshold"), ("number", "hold_seconds"))


async def test_home_assistant_discovery(mosquitto, listener):
    # A retained config of one of its cameras' entities that it no longer publishes: the publisher clears it.
    stale = "homeassistant/sensor/faceanon/lobby_old_faces/config"
    old = paho.Client(CallbackAPIVersion.VERSION2, client_id="old")
    old.connect("127.0.0.1", mosquitto.port)
    old.loop_start()
    old.publish(stale, json.dumps({"state_topic": "faceanon/lobby/faces", "unique_id": "faceanon_lobby_old_faces"}),
                qos=1, retain=True).wait_for_publish(5)
    await listener.until(stale)

    feeds = [FrameFeed("lobby"), FrameFeed("back_door")]
    publisher = MqttPublisher(config(mosquitto, commands=True), feeds, VERSION)  # the controls' entities too
    await publisher.start()
    try:
        expected = {f"homeassistant/{component}/faceanon/{cam}_{key}/config"
                    for cam in ("lobby", "back_door")
                    for component, key in (("camera", "snapshot"), ("sensor", "faces"), ("sensor", "fps"),
                                           ("binary_sensor", "privacy_degraded"), ("sensor", "detect_ms_p95"),
                                           ("binary_sensor", "occupancy"),
                                           ("sensor", "fail_closed_frames"), ("sensor", "people"),
                                           *CONTROL_ENTITIES)}
        configs = {t: json.loads(await listener.until(t)) for t in sorted(expected)}
        assert await listener.until(stale, lambda p: p == b"") == b""

        unique_ids = [c["unique_id"] for c in configs.values()]
        assert len(set(unique_ids)) == len(unique_ids) == 28
        for topic, cfg in configs.items():
            cam = next(c for c in ("back_door", "lobby") if topic.split("/")[3].startswith(c))
            if "command_topic" in cfg:  # a control works while its camera is off (to turn it on)
                assert cfg["availability"] == [{"topic": "faceanon/available"}]
                assert cfg["entity_category"] == "config"
                key = topic.split("/")[3][len(cam) + 1:]
                assert cfg["command_topic"] == f"faceanon/{cam}/{key}/set"
                assert cfg["state_topic"] == f"faceanon/{cam}/{key}/state"
            else:
                assert cfg["availability"] == [{"topic": "faceanon/available"},
                                               {"topic": f"faceanon/{cam}/available"}]
            assert cfg["availability_mode"] == "all"
            assert cfg["unique_id"].startswith(f"faceanon_{cam}_")
            device = cfg["device"]
            assert device["identifiers"] == [f"faceanon_{cam}"]
            assert device["manufacturer"] == "faceanon" and device["sw_version"] == VERSION
            assert device["name"] and device["model"]
            assert cfg["origin"]["name"] == "faceanon"
        lobby = "homeassistant/{}/faceanon/lobby_{}/config"
        camera = configs[lobby.format("camera", "snapshot")]
        assert camera["topic"] == "faceanon/lobby/snapshot" and camera["name"] is None
        assert "image_encoding" not in camera  # raw JPEG bytes
        faces = configs[lobby.format("sensor", "faces")]
        assert faces["state_topic"] == "faceanon/lobby/faces" and faces["state_class"] == "measurement"
        degraded = configs[lobby.format("binary_sensor", "privacy_degraded")]
        assert degraded["device_class"] == "problem"
        assert (degraded["state_topic"], degraded["payload_on"], degraded["payload_off"]) == (
            "faceanon/lobby/privacy_degraded", "ON", "OFF")
        # The same names, units and figures as the integration's entities (p95 latency, not p50).
        for key, name, unit in (("fps", "Frame rate", "fps"), ("detect_ms_p95", "Detection latency (p95)", "ms"),
                                ("fail_closed_frames", "Fail-closed frames", "frames")):
            sensor = configs[lobby.format("sensor", key)]
            assert sensor["entity_category"] == "diagnostic" and sensor["state_topic"] == "faceanon/lobby/state"
            assert sensor["value_template"] == f"{{{{ value_json.{key} }}}}"
            assert (sensor["name"], sensor["unit_of_measurement"]) == (name, unit)
        assert configs[lobby.format("sensor", "faces")]["unit_of_measurement"] == "faces"
        hold = configs[lobby.format("number", "hold_seconds")]
        assert (hold["min"], hold["max"], hold["step"], hold["unit_of_measurement"]) == (0.5, 30.0, 0.5, "s")
        assert configs[lobby.format("select", "target")]["options"] == ["face", "head", "person"]

        # Home Assistant restarts (and say its broker lost the retained configs): `online` brings them back.
        for topic in expected:
            old.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        await listener.until(lobby.format("camera", "snapshot"), lambda p: p == b"")
        old.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        again = json.loads(await listener.until(lobby.format("camera", "snapshot"), lambda p: p != b""))
        assert again == camera
    finally:
        await publisher.stop()
        old.disconnect()
        await asyncio.to_thread(old.loop_stop)


async def test_no_discovery_when_disabled(mosquitto, listener):
    feed = FrameFeed("lobby")
    publisher = MqttPublisher(config(mosquitto, discovery=False), [feed], VERSION)
    await publisher.start()
    try:
        await listener.until("faceanon/available", lambda p: p == b"online")
        feed.push(b"\xff\xd8not-a-real-jpeg\xff\xd9", faces=0)
        await listener.until("faceanon/lobby/snapshot")
        assert not [t for t in listener.messages if t.startswith("homeassistant/")]
    finally:
        await publisher.stop()


PUBLISHER_PROCESS = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[3])
    from conftest import FrameFeed
    from faceanon.publish.mqtt import MqttPublisher

    async def main():
        feed = FrameFeed("lobby")
        feed.push(open(sys.argv[2], "rb").read(), faces=1)
        cfg = {"host": "127.0.0.1", "port": int(sys.argv[1]), "client_id": "killed"}
        await MqttPublisher(cfg, [feed], "0").start()
        print("STARTED", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def test_last_will_when_the_process_dies(mosquitto, listener, anonymized_frames, tmp_path: Path):
    jpeg = tmp_path / "frame.jpg"
    jpeg.write_bytes(anonymized_frames[0].jpeg)
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER_PROCESS)
    proc = subprocess.Popen([sys.executable, str(script), str(mosquitto.port), str(jpeg), str(ROOT / "tests")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert await listener.until("faceanon/available", lambda p: p == b"online", timeout=20) == b"online"
        assert await listener.until("faceanon/lobby/snapshot") == anonymized_frames[0].jpeg
        proc.kill()  # no DISCONNECT: the broker sends the last will
        proc.wait(5)
        assert await listener.until("faceanon/available", lambda p: p == b"offline", timeout=10) == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
    late = Listener(mosquitto.port, "faceanon/available")
    try:
        assert await late.until("faceanon/available") == b"offline"  # the will is retained
    finally:
        await asyncio.to_thread(late.close)


async def test_survives_a_broker_restart(mosquitto, listener, anonymized_frames):
    feed = FrameFeed("lobby")
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION)
    await publisher.start()
    stop_feeding = asyncio.Event()

    async def camera() -> None:
        i = 0
        while not stop_feeding.is_set():
            feed.push(anonymized_frames[i % len(anonymized_frames)])
            i += 1
            await asyncio.sleep(0.2)

    feeding = asyncio.create_task(camera())
    try:
        await listener.until("faceanon/lobby/snapshot")
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(1.0)
        assert not publisher.connected
        await asyncio.to_thread(mosquitto.start)  # same port, no persistence: every retained message is gone
        listener.clear()
        # Nothing restarted on our side: the publisher reconnects and republishes availability, discovery, state.
        assert await listener.until("faceanon/available", lambda p: p == b"online", timeout=20) == b"online"
        assert await listener.until("faceanon/lobby/snapshot", timeout=15) in {f.jpeg for f in anonymized_frames}
        await listener.until("homeassistant/camera/faceanon/lobby_snapshot/config", timeout=5)
        await listener.until("faceanon/lobby/faces", timeout=5)
        await listener.until("faceanon/lobby/state", timeout=5)
    finally:
        stop_feeding.set()
        await feeding
        await publisher.stop()


async def test_password_file_auth(tmp_path: Path, anonymized_frames):
    broker = Mosquitto(tmp_path, users={"faceanon": "s3cret pass"})
    try:
        sub = Listener(broker.port, "faceanon/#", "faceanon", "s3cret pass")
        good_feed, bad_feed = FrameFeed("lobby"), FrameFeed("lobby")
        good = MqttPublisher(config(broker, username="faceanon", password="s3cret pass"), [good_feed], VERSION)
        bad = MqttPublisher(config(broker, username="faceanon", password="wrong", topic_prefix="intruder"),
                            [bad_feed], VERSION)
        await good.start()
        await bad.start()
        try:
            good_feed.push(anonymized_frames[1])
            bad_feed.push(anonymized_frames[1])
            assert await sub.until("faceanon/available", lambda p: p == b"online") == b"online"
            assert await sub.until("faceanon/lobby/snapshot") == anonymized_frames[1].jpeg
            await asyncio.sleep(1.0)
            assert good.connected and not bad.connected
        finally:
            await good.stop()
            await bad.stop()  # a publisher that never got in still stops cleanly and quickly
            await asyncio.to_thread(sub.close)
        spy = Listener(broker.port, "#", "faceanon", "s3cret pass")
        try:
            await spy.until("faceanon/available")
            assert not [t for t in spy.messages if t.startswith("intruder/")]
        finally:
            await asyncio.to_thread(spy.close)
    finally:
        broker.stop()


async def test_with_the_pipeline_camera_feed(mosquitto, listener, anonymized_frames):
    """The pipeline's own CameraFeed (the real contract), fed through its only door for frames."""
    from faceanon.feed import CameraFeed, anonymize
    from faceanon.mask import MaskStyle

    feed = CameraFeed("lobby", model="centerface", provider="cpu")
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION)
    await publisher.start()
    try:
        state = json.loads(await listener.until("faceanon/lobby/state"))
        assert state["name"] == "lobby" and state["model"] == "centerface"
        assert listener.last("faceanon/lobby/snapshot") is None  # nothing before the first anonymized frame
        frame = cv2.imdecode(np.frombuffer(anonymized_frames[1].jpeg, np.uint8), cv2.IMREAD_COLOR)
        feed.count_faces(2)
        feed._publish(anonymize(frame, np.array(anonymized_frames[1].boxes, np.float32), MaskStyle("fill")))
        assert await listener.until("faceanon/lobby/snapshot") == feed.latest_jpeg
        assert await listener.until("faceanon/lobby/faces", lambda p: p == b"2", timeout=5) == b"2"
    finally:
        await publisher.stop()


async def test_broker_down_at_start(mosquitto, anonymized_frames):
    mosquitto.stop()
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[2])
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION)
    started = time.monotonic()
    await publisher.start()  # returns at once: connecting is the paho thread's job
    assert time.monotonic() - started < 0.5
    tick = time.monotonic()
    await asyncio.sleep(0.3)
    assert time.monotonic() - tick < 0.5  # the event loop keeps running
    try:
        await asyncio.to_thread(mosquitto.start)
        sub = Listener(mosquitto.port, "faceanon/#")
        try:
            assert await sub.until("faceanon/lobby/snapshot", timeout=15) == anonymized_frames[2].jpeg
            assert await sub.until("faceanon/available") == b"online"
        finally:
            await asyncio.to_thread(sub.close)
    finally:
        await publisher.stop()


def tls_broker(tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    """mosquitto with a TLS listener and a certificate from a throwaway CA (made with the openssl CLI)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    def run(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True, timeout=30)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=faceanon test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    for name in ("ca.pem", "server.pem", "server.key"):
        (tmp_path / name).chmod(0o644)  # mosquitto may drop to its own user
    port = free_port()
    conf = tmp_path / "tls.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
                    f"keyfile {tmp_path / 'server.key'}\n" + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, tmp_path / "ca.pem"


async def test_tls(tmp_path: Path, anonymized_frames):
    proc, port, ca = tls_broker(tmp_path)
    try:
        feed = FrameFeed("lobby")
        feed.push(anonymized_frames[0])
        trusted = MqttPublisher({"host": "127.0.0.1", "port": port, "tls": True, "tls_ca": str(ca),
                                 "client_id": "tls-ok"}, [feed], VERSION)
        untrusted = MqttPublisher({"host": "127.0.0.1", "port": port, "tls": True, "client_id": "tls-no",
                                   "topic_prefix": "untrusted"}, [feed], VERSION)  # system CAs: must refuse
        await trusted.start()
        await untrusted.start()
        try:
            deadline = time.monotonic() + 10
            while not trusted.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert trusted.connected, "no TLS connection with the configured CA"
            await asyncio.sleep(0.5)
            assert not untrusted.connected, "connected to a broker whose certificate it cannot verify"
        finally:
            await trusted.stop()
            await untrusted.stop()
        with pytest.raises(MqttConfigError, match="mqtt tls"):
            MqttPublisher({"tls": True, "tls_ca": str(tmp_path / "missing.pem")}, [feed], VERSION)
    finally:
        proc.terminate()
        proc.wait(5)


async def test_discovery_is_withdrawn_while_the_integration_has_the_service(mosquitto, listener, tmp_path: Path):
    """One device per camera: while Home Assistant's faceanon integration has the service (the claim, kept in the
    state folder), the retained discovery configs are cleared; they come back when it lets go. The camera's own
    topics go on either way."""
    from faceanon.claim import IntegrationClaim

    claim = IntegrationClaim(tmp_path)
    feed = FrameFeed("lobby")
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION, claimed=lambda: claim.claimed)
    claim.subscribe(publisher.claim_changed)
    topic = "homeassistant/sensor/faceanon/lobby_faces/config"
    await publisher.start()
    try:
        assert json.loads(await listener.until(topic))["unique_id"] == "faceanon_lobby_faces"
        await asyncio.to_thread(claim.set, True)
        assert await listener.until(topic, lambda p: p == b"") == b""
        assert IntegrationClaim(tmp_path).claimed  # kept for the next start
        feed.push(b"\xff\xd8not-a-real-jpeg\xff\xd9", faces=0)
        await listener.until("faceanon/lobby/snapshot")
        await asyncio.to_thread(claim.set, False)
        assert json.loads(await listener.until(topic, lambda p: p != b""))["unique_id"] == "faceanon_lobby_faces"
    finally:
        await publisher.stop()
    # A service started while claimed publishes no discovery at all.
    await asyncio.to_thread(claim.set, True)
    listener.clear()
    publisher = MqttPublisher(config(mosquitto), [feed], VERSION, claimed=lambda: claim.claimed)
    await publisher.start()
    try:
        await listener.until("faceanon/available", lambda p: p == b"online")
        await asyncio.sleep(0.5)
        assert all(p == b"" for p in listener.all(topic))
    finally:
        await publisher.stop()


async def test_a_huge_or_refused_command_is_one_short_log_line(caplog):
    """A 10 MB `plan/set` is refused unread, and a refused value is quoted cut short: a log line never carries a
    payload (the attack run wrote a 10 MB line)."""
    from conftest import FrameFeed
    from faceanon.controls import ControlError
    from faceanon.publish.mqtt import MqttPublisher

    seen: list[dict] = []

    async def set_controls(name: str, changes: dict, source: str = "") -> dict:
        seen.append(changes)
        raise ControlError(f"plan: cannot read {changes['plan']!r}")

    publisher = MqttPublisher({"host": "127.0.0.1", "port": 1, "commands": True}, [FrameFeed("lobby")], "1.0",
                              set_controls=set_controls)
    publisher._loop = asyncio.get_running_loop()
    caplog.set_level("WARNING", "faceanon")
    publisher._command("lobby", "plan", b"x" * 10_000_000)
    await publisher._apply_command("lobby", "plan", "y" * 5_000)
    lines = [r.getMessage() for r in caplog.records]
    assert seen == [{"plan": "y" * 5_000}]  # the huge one never reached the service
    assert len(lines) == 2 and all(len(line) < 400 for line in lines), [len(line) for line in lines]
    assert "a payload of 10000000 bytes" in lines[0] and "refused" in lines[1]
