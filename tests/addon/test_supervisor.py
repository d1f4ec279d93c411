"""faceanon.supervisor in-process: options -> service config, the Supervisor's MQTT service, the broker check."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import Mosquitto
from faceanon import config as service_config
from faceanon import supervisor
from fake_supervisor import FakeSupervisor

OPTIONS = {
    "cameras": [
        {"name": "demo", "url": "demo", "detect_fps": 5, "style": "fill"},
        {"name": "front_door", "url": "rtsp://frigate:8554/front_door", "detect_fps": 2.5, "style": "pixelate",
         "detect_size": 1280, "tile": 640, "snapshot_interval": 30, "enabled": False, "target": "head",
         "restream": "rtsp://ccab4aaf-frigate:8554/front_door_anonymized",
         "unsafe_settings": "I accept that faces may be shown"},
    ],
    "model": "centerface", "threads": 0, "snapshot_interval": 10, "shape": "box", "margin": 0.6,
    "hold_seconds": 2.0, "topic_prefix": "faceanon", "log_level": "notice",
}
SERVICE = {"addon": "core_mosquitto", "host": "core-mosquitto", "port": 1883, "ssl": False, "username": "addons",
           "password": "pw", "protocol": "3.1.1"}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "options.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_options_become_a_valid_service_config(tmp_path: Path) -> None:
    options = supervisor.read_options(write(tmp_path, OPTIONS))
    cfg = supervisor.validate_config(supervisor.build_config(options, SERVICE, "tok", 8099))
    demo, door = cfg["cameras"]
    assert demo["url"] == str(service_config.SAMPLE_CLIP) == str(supervisor.DEMO_CLIP)
    assert demo["snapshot_interval"] == 10 and demo["detect_size"] is None  # the service's default: the preset's
    assert (door["detect_fps"], door["detect_size"], door["tile"], door["snapshot_interval"]) == (2.5, 1280, 640, 30)
    assert door["target"] == "head"
    assert door["enabled"] is False and door["style"] == "pixelate"
    assert door["unsafe_settings"] == "I accept that faces may be shown" and demo["unsafe_settings"] is None
    assert cfg["mqtt"]["commands"] is False  # the app's default: MQTT clients change nothing
    assert (door["shape"], door["margin"], door["hold_seconds"]) == ("box", 0.6, 2.0)
    assert cfg["http"] == {"host": "0.0.0.0", "port": 8099, "token": "tok", "ingress_only": True, "allowed_hosts": []}
    assert cfg["rtsp"] == {"enabled": True, "host": "0.0.0.0", "port": 8554, "keyframe_seconds": 2.0}
    assert door["restream"] == "rtsp://ccab4aaf-frigate:8554/front_door_anonymized" and demo["restream"] is None
    assert cfg["mqtt"]["host"] == "core-mosquitto" and cfg["mqtt"]["username"] == "addons"
    assert cfg["mqtt"]["password"] == "pw" and cfg["mqtt"]["tls"] is False
    assert cfg["detector"]["threads"] is None and cfg["detector"]["model"] == "centerface"
    assert cfg["log_level"] == "info"  # notice -> info


def test_log_levels_all_map_to_the_service(tmp_path: Path) -> None:
    for level in supervisor.LOG_LEVELS:
        options = supervisor.read_options(write(tmp_path, {**OPTIONS, "log_level": level}))
        supervisor.validate_config(supervisor.build_config(options, SERVICE, "t", 8099))


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ({**OPTIONS, "cameras": []}, "option cameras: needs at least one camera"),
    ({**OPTIONS, "cameras": [{"name": "Front Door", "url": "x", "detect_fps": 5, "style": "blur"}]},
     "option cameras.0.name: must be 1-64 of a-z, 0-9, _ (got 'Front Door')"),
    ({**OPTIONS, "cameras": [OPTIONS["cameras"][0], OPTIONS["cameras"][0]]}, "'demo' is used more than once"),
    ({**OPTIONS, "threads": 99}, "option threads"),
    ({k: v for k, v in OPTIONS.items() if k != "cameras"}, "option cameras: required key not provided"),
    ({**OPTIONS, "http_token": 5}, "option http_token: expected str (got '***')"),
])
def test_bad_options_give_one_line_naming_the_option(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(supervisor.AddonError) as err:
        supervisor.read_options(write(tmp_path, data))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_options_file(tmp_path: Path) -> None:
    with pytest.raises(supervisor.AddonError, match=r"options file .*: missing"):
        supervisor.read_options(tmp_path / "nope.json")


def test_service_schema_errors_are_reported_as_app_options(tmp_path: Path) -> None:
    options = supervisor.read_options(write(tmp_path, {**OPTIONS, "cameras": [
        {"name": "cam", "url": "/media/missing.mp4", "detect_fps": 5, "style": "blur", "detect_size": 64}]}))
    with pytest.raises(supervisor.AddonError, match=r"app options: .*cameras\[0\]\.detect_size"):
        supervisor.validate_config(supervisor.build_config(options, SERVICE, "t", 8099))


def test_http_token_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = supervisor.http_token({}, tmp_path)
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "http_token").stat().st_mode) == 0o600
    assert supervisor.http_token({}, tmp_path) == first
    assert supervisor.http_token({"http_token": "mine"}, tmp_path) == "mine"


def test_fetch_mqtt_service_sends_the_token() -> None:
    fake = FakeSupervisor("sup-token", SERVICE)
    try:
        assert supervisor.fetch_mqtt_service(fake.url, "sup-token") == SERVICE
        assert fake.requests == [("GET", "/services/mqtt", "Bearer sup-token")]
        with pytest.raises(supervisor.AddonError, match="HTTP 401 Unauthorized"):
            supervisor.fetch_mqtt_service(fake.url, "wrong")
        with pytest.raises(supervisor.AddonError, match="SUPERVISOR_TOKEN is not set"):
            supervisor.fetch_mqtt_service(fake.url, None)
        fake.mqtt_service = None
        with pytest.raises(supervisor.AddonError, match="HTTP 400 Service not enabled; install and start the "
                                                        "Mosquitto broker app"):
            supervisor.fetch_mqtt_service(fake.url, "sup-token")
    finally:
        fake.stop()


def test_unreachable_supervisor_is_one_line() -> None:
    from conftest import free_port

    with pytest.raises(supervisor.AddonError, match="unreachable"):
        supervisor.fetch_mqtt_service(f"http://127.0.0.1:{free_port()}", "t", timeout=1, attempts=2)


def test_broker_check_with_real_mosquitto(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = Mosquitto(tmp_path, users={"addons": "right"})
    try:
        service = {"host": "127.0.0.1", "port": broker.port, "username": "addons", "password": "right"}
        supervisor.check_broker(service, timeout=5)
        with pytest.raises(supervisor.AddonError, match=rf"127.0.0.1:{broker.port} refused user 'addons'"):
            supervisor.check_broker({**service, "password": "wrong"}, timeout=5)
        broker.stop()
        supervisor.check_broker(service, timeout=2)  # down: a warning, the service will reconnect
        assert "unreachable now" in caplog.text or "no answer" in caplog.text
    finally:
        broker.stop()


def test_announce_posts_discovery_and_only_warns_on_failure(caplog: pytest.LogCaptureFixture) -> None:
    from conftest import free_port

    fake = FakeSupervisor("sup-token", SERVICE)
    payload = {"host": "a0d7b954-faceanon", "port": 8099, "token": "tok"}
    try:
        # The fake's own port stands in for the app's HTTP port: announce waits until it accepts.
        supervisor.announce(fake.url, "sup-token", payload, fake.port, wait_s=5)
        assert fake.discovery == [{"service": "faceanon", "config": payload}]
        supervisor.announce(fake.url, "wrong", payload, fake.port, wait_s=5)
        assert "Supervisor discovery: not announced (HTTP 401 Unauthorized)" in caplog.text
        supervisor.announce(fake.url, "sup-token", payload, free_port(), wait_s=1)
        assert "not up after 1 s" in caplog.text
        assert len(fake.discovery) == 1
    finally:
        fake.stop()


def test_a_remote_detector_and_snapshot_jobs_reach_the_service(tmp_path: Path) -> None:
    options = supervisor.read_options(write(tmp_path, {**OPTIONS, "detector_url": "grpc://triton.lan:8001",
                                                       "snapshot_jobs": True}))
    cfg = supervisor.validate_config(supervisor.build_config(options, SERVICE, "tok", 8099))
    assert cfg["detector"]["provider"] == "grpc://triton.lan:8001"
    assert cfg["jobs"]["enabled"] is True and cfg["jobs"]["frigate_prefix"] == "frigate"
    plain = supervisor.validate_config(supervisor.build_config(supervisor.read_options(write(tmp_path, OPTIONS)),
                                                               SERVICE, "tok", 8099))
    assert plain["detector"]["provider"] == "cpu" and plain["jobs"]["enabled"] is False
    with pytest.raises(supervisor.AddonError, match="detector_url"):
        supervisor.read_options(write(tmp_path, {**OPTIONS, "detector_url": "http://triton:8000"}))


def test_options_saved_under_their_earlier_names_are_read_with_a_log_line(tmp_path: Path, caplog) -> None:
    """One vocabulary: the app's options are the service's keys. Options saved by an earlier version (fps,
    mask_shape, mask_margin) still work, the user's value winning over the new default, and say what to rename."""
    old = {**OPTIONS, "cameras": [{"name": "door", "url": "rtsp://cam/1", "fps": 2.5, "style": "fill"},
                                  {"name": "yard", "url": "rtsp://cam/2", "style": "fill"}],
           # as the Supervisor holds them after the update: the user's old keys beside the new ones' defaults
           "mask_shape": "box", "mask_margin": 0.55, "shape": "ellipse", "margin": 0.5}
    caplog.set_level("WARNING", "faceanon.supervisor")
    options = supervisor.read_options(write(tmp_path, old))
    cfg = supervisor.validate_config(supervisor.build_config(options, SERVICE, "tok", 8099))
    door, yard = cfg["cameras"]
    assert (door["detect_fps"], door["shape"], door["margin"]) == (2.5, "box", 0.55)
    assert yard["detect_fps"] == 5.0  # neither name given: the default
    lines = [r.getMessage() for r in caplog.records]
    assert "app option mask_shape is now shape (read as shape: 'box'); rename it in the app's configuration" in lines
    assert any(line.startswith("app option mask_margin is now margin") for line in lines)
    assert "door: app option cameras.fps is now cameras.detect_fps; rename it in the app's configuration" in lines
