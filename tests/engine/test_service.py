"""The service: cameras from the config, one broken camera never stops the others, the embedded broker when the
config has no mqtt section, a clean shutdown on SIGTERM (publishers announce offline)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from conftest import ROOT, free_port, wait_port
from faceanon.config import SAMPLE_CLIP, validate
from faceanon.service import Service, main
from test_pipeline import decode, is_privacy_hold

pytestmark = pytest.mark.timeout(90)


class Retained:
    """A paho subscriber keeping the last payload per topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"svc-test-{port}-{time.time_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.last[msg.topic] = bytes(msg.payload)

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.last.get(topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def eventually(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def config(mqtt_port: int | None, **extra) -> dict:
    cams = [
        {"name": "dead_rtsp", "url": f"rtsp://127.0.0.1:{free_port()}/cam"},
        {"name": "demo", "url": str(SAMPLE_CLIP)},
        {"name": "dead_http", "url": f"http://127.0.0.1:{free_port()}/video.mjpeg"},
        {"name": "off", "url": str(SAMPLE_CLIP), "enabled": False},
    ]
    cfg = {"cameras": cams, "http": {"host": "127.0.0.1", "port": free_port()}, "log_level": "debug", **extra}
    if mqtt_port is not None:
        cfg["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port}
    return validate(cfg)


async def test_broken_cameras_do_not_stop_the_others(mosquitto) -> None:
    cfg = config(mosquitto.port)
    service = Service(cfg)
    sub = Retained(mosquitto.port, "faceanon/#")
    await service.start()
    try:
        feeds = {f.name: f for f in service.feeds}
        # The camera off in the config is listed (Home Assistant keeps its device) but not run.
        assert sorted(feeds) == ["dead_http", "dead_rtsp", "demo", "off"]
        assert sorted(service.running) == ["dead_http", "dead_rtsp", "demo"]
        assert not feeds["off"].enabled and feeds["off"].latest_jpeg is None
        seq = 0
        for _ in range(4):
            seq = await feeds["demo"].wait_frame(seq, 10)
        assert seq >= 4 and feeds["demo"].status()["online"]
        for name in ("dead_rtsp", "dead_http"):
            status = feeds[name].status()
            assert not status["online"] and feeds[name].latest_jpeg is None
            # Its status says why, in words, and when the source tries again (the web page shows both).
            await eventually(lambda n=name: feeds[n].status()["state"] == "offline", 20, f"{name} offline")
            status = feeds[name].status()
            assert "unreachable" in status["reason"] and status["retry_in_s"] is not None
        assert feeds["demo"].status()["state"] == "live" and feeds["off"].status()["state"] == "off"
        # what the publishers send out is the anonymized frame
        if service.publishers:
            await eventually(lambda: sub.get("faceanon/demo/snapshot") is not None, 10, "the MQTT snapshot")
            snapshot = decode(sub.get("faceanon/demo/snapshot"))
            assert snapshot.shape == (270, 480, 3) and not is_privacy_hold(snapshot)
            assert sub.get("faceanon/available") == b"online"
    finally:
        await service.stop()
    assert all(task.done() for _pipeline, task in service.running.values())
    if service.publishers:
        await eventually(lambda: sub.get("faceanon/available") == b"offline", 5, "offline")
    sub.close()


async def test_no_mqtt_section_starts_the_embedded_broker() -> None:
    port = free_port()
    cfg = validate({"cameras": [{"name": "demo", "url": str(SAMPLE_CLIP)}],
                    "http": {"host": "127.0.0.1", "port": free_port()}})
    service = Service(cfg, broker_port=port)
    await service.start()
    sub = None
    try:
        assert service.broker is not None and service.mqtt_cfg["port"] == port
        wait_port(port, 15)
        sub = Retained(port, "faceanon/#")
        await service.feeds[0].wait_frame(0, 30)
        if service.publishers:
            await eventually(lambda: sub.get("faceanon/demo/snapshot") is not None, 30, "a snapshot via amqtt")
    finally:
        if sub:
            sub.close()
        await service.stop()


async def test_the_demo_never_publishes_into_a_broker_it_was_not_given(mosquitto, caplog) -> None:
    """A broker the user runs already holds the demo's port: the embedded broker takes a free port and says so in
    one line; nothing of the demo reaches the user's broker."""
    caplog.set_level("INFO", logger="faceanon.service")
    theirs = Retained(mosquitto.port, "#")
    cfg = validate({"cameras": [{"name": "demo", "url": str(SAMPLE_CLIP)}],
                    "http": {"host": "127.0.0.1", "port": free_port()}})
    service = Service(cfg, broker_port=mosquitto.port)
    await service.start()
    ours = None
    try:
        assert service.broker is not None and service.mqtt_cfg["port"] != mosquitto.port
        assert f"port {mosquitto.port} on 127.0.0.1 is taken" in caplog.text
        ours = Retained(service.mqtt_cfg["port"], "faceanon/#")
        if service.publishers:
            await eventually(lambda: ours.get("faceanon/demo/snapshot") is not None, 30, "the demo's snapshot")
        assert theirs.last == {}
    finally:
        for sub in (theirs, ours):
            if sub:
                sub.close()
        await service.stop()


def test_the_embedded_broker_sends_a_retained_message_to_matching_subscriptions_only() -> None:
    from faceanon.service import EmbeddedBroker

    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port)
    broker.start()
    subs = {}
    try:
        pub = Retained(port, "faceanon/demo/snapshot")
        for topic in ("faceanon/demo/snapshot", "faceanon/demo/info", "homeassistant/camera/faceanon/x/config"):
            pub.client.publish(topic, b"1", qos=1, retain=True).wait_for_publish(5)
        pub.close()
        filters = {"nomatch/#": 0, "faceanon/+/info": 1, "+/demo/#": 2, "faceanon": 0, "homeassistant/+/x/#": 0,
                   "#": 3, "faceanon/demo/snapshot/#": 1, "$SYS/#": 0}
        subs = {f: Retained(port, f) for f in filters}
        # a subscription made after them sees all three: the others have had theirs by then
        probe = Retained(port, "#")
        deadline = time.monotonic() + 15
        while len(probe.last) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        probe.close()
        time.sleep(0.5)  # retained messages are sent at the subscription; a wrong one would have come by now
        assert {f: len(sub.last) for f, sub in subs.items()} == filters
    finally:
        for sub in subs.values():
            sub.close()
        broker.stop()


def test_main_rejects_a_bad_config_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "faceanon.yaml"
    bad.write_text("cameras:\n  - name: Lobby Cam\n    url: rtsp://nvr/lobby\n")
    assert main(str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("faceanon: invalid configuration: ") and "cameras[0].name: expected 1-64" in err


def test_sigterm_shuts_down_cleanly(tmp_path: Path, mosquitto) -> None:
    http_port = free_port()
    cfg = tmp_path / "faceanon.yaml"
    cfg.write_text(f"mqtt:\n  host: 127.0.0.1\n  port: {mosquitto.port}\nhttp:\n  host: 127.0.0.1\n"
                   f"  port: {http_port}\ncameras:\n  - name: demo\n    url: {SAMPLE_CLIP}\n"
                   f"  - name: gone\n    url: rtsp://127.0.0.1:{free_port()}/x\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "addon")}
    proc = subprocess.Popen([sys.executable, "-m", "faceanon.service", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        got = None
        while time.monotonic() < deadline and got is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/demo/latest.jpg", timeout=2) as r:
                    got = r.read()
            except OSError:
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "demo: reading" in out and "gone: rtsp stream lost or unreachable" in out
    assert "shutting down" in out and out.rstrip().endswith("stopped")
    if "HTTP server unavailable" not in out:
        assert got is not None
        image = decode(got)
        assert image.shape == (270, 480, 3) and not is_privacy_hold(image)


@pytest.mark.parametrize("output", ["http", "rtsp"])
def test_an_output_that_cannot_start_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            output: str) -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    ports = {"http": free_port(), "rtsp": free_port(), output: port}
    cfg = tmp_path / "faceanon.yaml"
    cfg.write_text(f"mqtt: {{host: 127.0.0.1, port: {free_port()}}}\n"
                   f"http: {{host: 127.0.0.1, port: {ports['http']}}}\nrtsp: {{port: {ports['rtsp']}}}\n"
                   f"cameras:\n  - name: demo\n    url: {SAMPLE_CLIP}\n")
    try:
        if output == "rtsp":
            pytest.importorskip("gi", reason="the built-in RTSP server needs PyGObject")
        assert main(str(cfg)) == 2
    finally:
        busy.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"faceanon: {output.upper()} output cannot start (")


def test_the_service_id_is_kept_in_the_state_dir(tmp_path: Path) -> None:
    from faceanon.identity import service_id

    first = service_id(str(tmp_path / "state"))
    assert len(first) == 32 and service_id(str(tmp_path / "state")) == first  # the same after a restart
    assert service_id(str(tmp_path / "other")) != first  # another installation
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    derived = service_id(str(blocked / "state"), 8099)
    assert derived == service_id(str(blocked / "state"), 8099) and derived != service_id(str(blocked / "x"), 8100)


def test_the_start_up_line_names_addresses_a_browser_can_open() -> None:
    import socket

    from faceanon.service import page_urls

    assert page_urls("0.0.0.0", 8099) == [f"http://{socket.gethostname()}:8099/", "http://127.0.0.1:8099/"]
    assert page_urls("192.168.1.5", 80) == ["http://192.168.1.5:80/"]
    assert page_urls("::1", 8099) == ["http://[::1]:8099/"]
