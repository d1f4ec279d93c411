"""Config validation: defaults as documented, and every error names the key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from faceanon.config import SAMPLE_CLIP, ConfigError, load_config, validate


def cam(**kw) -> dict:
    return {"name": "lobby", "url": "rtsp://nvr:8554/lobby", **kw}


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        validate(data)
    return str(info.value)


def test_defaults_are_the_documented_ones() -> None:
    cfg = validate({"cameras": [cam()]})
    assert "mqtt" not in cfg  # absent: the service runs its embedded broker
    assert cfg["http"] == {"host": "127.0.0.1", "port": 8099, "token": None, "ingress_only": False,
                           "allowed_hosts": []}
    assert cfg["detector"] == {"model": "centerface-int8", "family": None, "provider": "cpu", "threads": None,
                               "threshold": None}
    assert cfg["log_level"] == "info"
    c = cfg["cameras"][0]
    assert {k: c[k] for k in ("enabled", "detect_fps", "preset", "plan", "regions", "detect_every", "detect_size",
                              "tile", "snapshot_interval", "style", "shape", "margin", "fill_color", "hold_seconds",
                              "deadline_ms", "model")} == {
        "enabled": True, "detect_fps": 5, "preset": "live", "plan": None, "regions": None, "detect_every": None,
        "detect_size": None, "tile": 0, "snapshot_interval": 10, "style": "fill", "shape": "ellipse", "margin": None,
        "fill_color": "auto", "hold_seconds": 1.0, "deadline_ms": 2000, "model": None}


def test_mqtt_section_gets_defaults() -> None:
    mqtt = validate({"cameras": [cam()], "mqtt": {"host": "core-mosquitto", "username": "addons",
                                                   "password": 1234}})["mqtt"]
    assert mqtt["port"] == 1883 and mqtt["topic_prefix"] == "faceanon" and mqtt["discovery_prefix"] == "homeassistant"
    assert mqtt["password"] == "1234" and mqtt["client_id"] is None and mqtt["discovery"] is True


def test_no_path_gives_the_demo_camera() -> None:
    cfg = load_config(None)
    assert [c["name"] for c in cfg["cameras"]] == ["demo"]
    assert Path(cfg["cameras"][0]["url"]) == SAMPLE_CLIP and SAMPLE_CLIP.is_file()
    assert "mqtt" not in cfg


@pytest.mark.parametrize(("cameras", "expected"), [
    ([cam(), cam(name="door", url="ftp://x")],
     "cameras[1].url: expected rtsp://, http(s)://, frigate:// or an existing file"),
    ([cam(url="/no/such/file.mp4")], "cameras[0].url: expected rtsp://"),
    ([cam(url="frigate://")], "cameras[0].url: expected frigate://<camera>"),
    ([cam(name="Front Door")], "cameras[0].name: expected 1-64 characters of a-z, 0-9 and _"),
    ([cam(name="x" * 65)], "cameras[0].name: expected 1-64"),
    ([cam(), cam(url="rtsp://other/1")], "cameras[1].name: duplicate camera name 'lobby'"),
    ([cam(style="swirl")], "cameras[0].style: value must be one of"),
    ([cam(detect_size=50)], "cameras[0].detect_size: expected 0 (off) or an integer from 128 to 4096"),
    ([cam(detect_fps=0)], "cameras[0].detect_fps: value must be at least 0.1"),
    ([cam(deadline_ms="soon")], "cameras[0].deadline_ms: expected int"),
    ([cam(colour="red")], "cameras[0].colour: unknown key"),
    ([{"url": "rtsp://x/1"}], "cameras[0].name: required key is missing"),
    ([], "cameras: at least one camera is needed"),
])
def test_camera_errors_name_the_key(cameras: list, expected: str) -> None:
    assert expected in error_of({"cameras": cameras})


def test_section_errors_name_the_key() -> None:
    msg = error_of({"cameras": [cam()], "mqtt": {"port": 70000}, "http": {"token": ["x"]},
                    "detector": {"threshold": 2}, "log_level": "loud", "extra": 1})
    for part in ("mqtt.port: expected a port number 1-65535, got 70000", "http.token: empty token",
                 "detector.threshold: value must be at most 1.0", "log_level: value must be one of",
                 "extra: unknown key"):
        assert part in msg
    assert error_of({}) == "cameras: at least one camera is needed (or jobs.enabled: a snapshot worker)"
    assert error_of(["not", "a", "mapping"]).startswith("config: expected a mapping")


def test_file_source_path_and_frigate_url_are_accepted(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    cfg = validate({"cameras": [cam(url=str(clip)), cam(name="drive", url="frigate://driveway/person"),
                                cam(name="snap", url="https://cam.local/snapshot.jpg")]})
    assert [c["url"] for c in cfg["cameras"]] == [str(clip), "frigate://driveway/person",
                                                  "https://cam.local/snapshot.jpg"]


def test_load_config_file_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("http:\ncameras:\n  - name: lobby\n    url: rtsp://nvr/lobby\n    detect_every: 2\n")
    cfg = load_config(good)
    assert cfg["cameras"][0]["detect_every"] == 2 and cfg["http"]["port"] == 8099
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - name: lobby\n    url: [rtsp://nvr\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML at line"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("cameras:\n  - name: lobby\n    url: rtsp://nvr/lobby\n    margin: -1\n")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: cameras\[0\]\.margin: value must be at least 0"):
        load_config(wrong)
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the config file"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(empty)


def test_rtsp_section_and_restream_push_url() -> None:
    cfg = validate({"http": {"host": "127.0.0.1"}, "cameras": [
        {"name": "lobby", "url": "rtsp://cam/1", "restream": "rtsp://frigate:8554/lobby_anonymized"}]})
    assert cfg["rtsp"] == {"enabled": True, "host": "127.0.0.1", "port": 8554, "keyframe_seconds": 2.0}
    assert cfg["cameras"][0]["restream"] == "rtsp://frigate:8554/lobby_anonymized"
    for bad, key in (({"rtsp": {"port": 70000}}, "rtsp.port"), ({"rtsp": {"keyframe_seconds": 0}},
                                                                  "rtsp.keyframe_seconds"),
                     ({"rtsp": {"codec": "h265"}}, "rtsp.codec")):
        with pytest.raises(ConfigError, match=key):
            validate({**bad, "cameras": [{"name": "a", "url": "rtsp://cam/1"}]})
    with pytest.raises(ConfigError, match=r"cameras\[0\].restream: expected rtsp://host:port/path"):
        validate({"cameras": [{"name": "a", "url": "rtsp://cam/1", "restream": "http://x/y"}]})


@pytest.mark.parametrize(("config", "message"), [
    ({"http": {"port": True}}, "http.port: expected a port number 1-65535, got True"),
    ({"http": {"port": 18190.7}}, "http.port: expected a port number 1-65535, got 18190.7"),
    ({"http": {"port": "8099"}}, "http.port: expected a port number"),
    ({"rtsp": {"port": 0.5}}, "rtsp.port"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: expected a port number 1-65535, got 70000"),
    ({"http": {"token": ""}}, "http.token: empty token"),
    ({"http": {"token": "   "}}, "http.token: empty token"),
    ({"mqtt": {"password": "secret"}}, "mqtt.username: a password without a username is never sent"),
])
def test_values_with_a_wrong_meaning_are_refused(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate({**config, "cameras": [{"name": "a", "url": "rtsp://cam/1"}]})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    (b"http:\n  port: 8099\n  port: 8100\ncameras: []\n", "not valid YAML at line 3, column 3 (duplicate key 'port')"),
    (b"cameras:\n  - name: caf\xe9\n    url: rtsp://x/y\n", "not UTF-8 text (byte 22); save the file as UTF-8"),
])
def test_config_files_that_do_not_say_one_thing(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "faceanon.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_remote_detector_is_a_kserve_provider_with_a_grpc_url() -> None:
    cfg = validate({"detector": {"provider": "kserve", "url": "grpc://triton:8001", "model": "centerface"},
                    "cameras": [cam()]})
    assert cfg["detector"]["provider"] == "grpc://triton:8001"  # what the loaders take
    assert validate({"detector": {"provider": "grpcs://gpu.lan"}, "cameras": [cam()]})["detector"]["provider"] \
        == "grpcs://gpu.lan"


@pytest.mark.parametrize(("detector", "message"), [
    ({"provider": "kserve"}, "detector.url: provider kserve needs url: grpc://<server>:8001"),
    ({"provider": "cpu", "url": "grpc://triton:8001"}, "detector.url: url is only read with provider: kserve"),
    ({"provider": "kserve", "url": "http://triton:8000"}, "detector.url: detector url 'http://triton:8000': use "
                                                          "grpc://host:port"),
    ({"provider": "kserve", "url": "grpc://triton:99999"}, "detector.url: detector url"),
])
def test_remote_detector_mistakes_are_named(detector: dict, message: str) -> None:
    assert message in error_of({"detector": detector, "cameras": [cam()]})


def test_a_snapshot_worker_needs_no_camera_but_a_broker() -> None:
    cfg = validate({"mqtt": {"host": "broker"}, "jobs": {"enabled": True}})
    assert cfg["cameras"] == [] and cfg["jobs"]["group"] == "faceanon" and cfg["jobs"]["frigate_prefix"] == "frigate"
    assert "jobs: snapshot jobs need an MQTT 5 broker" in error_of({"jobs": {"enabled": True}})
    assert "jobs.group: expected 1-64 of" in error_of({"mqtt": {}, "jobs": {"group": "a/b"}, "cameras": [cam()]})
    assert "cameras: at least one camera is needed" in error_of({"mqtt": {"host": "broker"}})


def test_a_camera_without_a_margin_or_plan_of_its_own_gets_its_presets() -> None:
    """The camera's stream plan and mask come from its preset unless it sets them: a plan rebuilt field by field once
    dropped what the preset added later (its doubt), and a margin fixed in the schema would hide the preset's."""
    from faceanon import defaults
    from faceanon.pipeline import mask_style, stream_plan

    cameras = [cam(), cam(name="door", preset="video", detect_size=1920), cam(name="yard", margin=0.55)]
    cfg = validate({"cameras": cameras})
    live, video, yard = cfg["cameras"]
    assert stream_plan(live, cfg["detector"]) == defaults.PRESETS["live"].stream(model="centerface-int8")
    assert stream_plan(video, cfg["detector"]).doubt == defaults.PRESETS["video"].doubt
    assert stream_plan(video, cfg["detector"]).full.passes != defaults.PRESETS["video"].stream().full.passes
    assert mask_style(live).margin == defaults.LIVE_MARGIN == 0.7
    assert mask_style(video).margin == defaults.DEFAULT_MARGIN == 0.5
    assert mask_style(yard).margin == 0.55


@pytest.mark.parametrize(("change", "key"), [
    ({"threshold": 0.9}, "threshold"), ({"style": "blur"}, "style"), ({"style": "pixelate"}, "style"),
    ({"hold_seconds": 0}, "hold_seconds"), ({"detect_fps": 1}, "detect_fps"), ({"margin": 0.2}, "margin"),
    ({"plan": "0.05x"}, "plan"), ({"model": "yunet"}, "model"), ({"detect_size": 320}, "detect_size"),
    ({"detect_every": 10}, "detect_every"), ({"regions": "0.5x"}, "regions"),
])
def test_a_camera_below_the_protection_floor_needs_the_owners_sentence(change: dict, key: str) -> None:
    """Every key that changes what is found or how it is hidden has a floor (faceanon.floors); below it the config
    is refused with the reason and the way out, which is the exact sentence in unsafe_settings."""
    from faceanon.floors import OVERRIDE

    message = error_of({"cameras": [cam(**change)]})
    assert message.startswith(f"cameras[0].{key}: ") and "unsafe_settings" in message and OVERRIDE in message
    assert validate({"cameras": [cam(**change, unsafe_settings=OVERRIDE)]})["cameras"][0]["unsafe_settings"] == OVERRIDE
    assert "write exactly" in error_of({"cameras": [cam(**change, unsafe_settings="yes")]})
    # The detector section's threshold counts for the cameras that set none.
    assert "cameras[0].threshold" in error_of({"detector": {"threshold": 0.8}, "cameras": [cam()]})


def test_services_from_two_config_files_keep_two_state_folders(tmp_path: Path, monkeypatch) -> None:
    """Two services on one machine, neither naming a state_dir, never share an id (Home Assistant would take them
    for one), controls or claim; the config file that starts first keeps the default folder, and with it the id an
    earlier release made there."""
    from faceanon.identity import service_id

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    legacy = tmp_path / "state" / "faceanon"
    legacy.mkdir(parents=True)
    (legacy / "service_id").write_text("kept-from-before\n")
    files = []
    for name in ("a", "b"):
        path = tmp_path / name / "faceanon.yaml"
        path.parent.mkdir()
        path.write_text(f"cameras:\n  - name: {name}\n    url: rtsp://127.0.0.1/{name}\n")
        files.append(path)
    a, b = (load_config(path)["state_dir"] for path in files)
    assert a == str(legacy) and b != a
    assert service_id(a) == "kept-from-before" and service_id(b) not in ("kept-from-before", service_id(a))
    assert [load_config(path)["state_dir"] for path in files] == [a, b]  # the same folders at every start
    named = tmp_path / "named.yaml"
    named.write_text("state_dir: /srv/faceanon\ncameras:\n  - name: c\n    url: rtsp://127.0.0.1/c\n")
    assert load_config(named)["state_dir"] == "/srv/faceanon"
