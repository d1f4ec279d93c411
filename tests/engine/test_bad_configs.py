"""The bad-config table: `faceanon serve --config` on 64 broken configuration files (types, ranges, unknown keys,
duplicates, names with slashes, unicode or `../`, empty files, YAML errors, missing files). Each gives exit 2 and
exactly one line on stderr naming the key (or the file) and the reason; nothing starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from faceanon.cli import main

CAM = "cameras:\n  - name: lobby\n    url: rtsp://nvr/lobby\n"


def cam(**kw: str) -> str:
    """One camera with extra keys, each value as YAML text."""
    return CAM + "".join(f"    {k}: {v}\n" for k, v in kw.items())


TABLE: list[tuple[str, str | bytes | None, str]] = [
    # --- the file itself
    ("missing file", None, "cannot read the config file"),
    ("empty file", "", "the config file is empty"),
    ("only a comment", "# nothing\n", "the config file is empty"),
    ("a list, not a mapping", "- a\n- b\n", "config: expected a mapping of keys, got list"),
    ("a bare string", "hello\n", "config: expected a mapping of keys, got str"),
    ("not UTF-8", b"cameras:\n  - name: caf\xe9\n", "not UTF-8 text"),
    ("tab indentation", "cameras:\n\t- name: a\n", "not valid YAML"),
    ("unclosed bracket", "cameras: [\n", "not valid YAML"),
    ("unclosed quote", 'cameras:\n  - name: "lobby\n', "not valid YAML"),
    ("bad indentation", "cameras:\n  - name: a\n   url: rtsp://x/y\n", "not valid YAML"),
    ("duplicate top-level key", CAM + CAM, "duplicate key 'cameras'"),
    ("duplicate camera key", CAM + "    name: other\n", "duplicate key 'name'"),
    ("duplicate token", "http:\n  token: a\n  token: b\n" + CAM, "duplicate key 'token'"),
    ("a python tag", "cameras: !!python/object:os.system ls\n", "not valid YAML"),
    # --- top level
    ("unknown top-level key", "camera:\n  - name: a\n", "camera: unknown key"),
    ("no cameras", "log_level: info\n", "cameras: at least one camera is needed"),
    ("cameras is a mapping", "cameras:\n  name: a\n", "cameras: expected a list"),
    ("cameras is a string", "cameras: lobby\n", "cameras: expected a list"),
    ("log level unknown", "log_level: loud\n" + CAM, "log_level: value must be one of"),
    ("log level a number", "log_level: 3\n" + CAM, "log_level: expected str"),
    # --- camera names
    ("name with a slash", cam().replace("lobby\n", "a/b\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name with ../", cam().replace("lobby\n", "../etc\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name with unicode", cam().replace("lobby\n", "café\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name with spaces", cam().replace("lobby\n", "front door\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name upper case", cam().replace("lobby\n", "Lobby\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name too long", cam().replace("lobby\n", "x" * 65 + "\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("name empty", cam().replace("lobby\n", '""\n', 1), "cameras[0].name: expected 1-64 characters"),
    ("name a number", cam().replace("lobby\n", "12\n", 1), "cameras[0].name: expected 1-64 characters"),
    ("duplicate camera names", CAM + "  - name: lobby\n    url: rtsp://nvr/2\n",
     "cameras[1].name: duplicate camera name 'lobby'"),
    ("camera without name", "cameras:\n  - url: rtsp://nvr/x\n", "cameras[0].name: required key is missing"),
    ("camera without url", "cameras:\n  - name: a\n", "cameras[0].url: required key is missing"),
    # --- camera urls
    ("url scheme unknown", cam().replace("rtsp://nvr/lobby", "ftp://nvr/x"), "cameras[0].url: expected rtsp://"),
    ("url without host", cam().replace("rtsp://nvr/lobby", "rtsp://"), "cameras[0].url: the URL has no host"),
    ("url missing file", cam().replace("rtsp://nvr/lobby", "/nonexistent/clip.mp4"),
     "cameras[0].url: expected rtsp://, http(s)://, frigate:// or an existing file"),
    ("url a number", cam().replace("rtsp://nvr/lobby", "554"), "cameras[0].url: expected rtsp://"),
    ("frigate url without camera", cam().replace("rtsp://nvr/lobby", "frigate://"),
     "cameras[0].url: expected frigate://<camera>"),
    ("frigate url with ../", cam().replace("rtsp://nvr/lobby", "frigate://../x"),
     "cameras[0].url: expected frigate://<camera>"),
    ("restream not rtsp", cam(restream="http://x/y"), "cameras[0].restream: expected rtsp://host:port/path"),
    # --- camera values: types and ranges
    ("fps zero", cam(detect_fps="0"), "cameras[0].detect_fps: value must be at least 0.1"),
    ("fps too high", cam(detect_fps="120"), "cameras[0].detect_fps: value must be at most 60"),
    ("fps a word", cam(detect_fps="fast"), "cameras[0].detect_fps: expected float"),
    ("style unknown", cam(style="swirl"), "cameras[0].style: value must be one of"),
    ("shape unknown", cam(shape="star"), "cameras[0].shape: value must be one of"),
    ("margin negative", cam(margin="-1"), "cameras[0].margin: value must be at least 0.0"),
    ("detect_size too small", cam(detect_size="50"), "cameras[0].detect_size: expected 0 (off) or an integer"),
    ("tile too small", cam(tile="10"), "cameras[0].tile: expected 0 (off) or an integer"),
    ("detect_every zero", cam(detect_every="0"), "cameras[0].detect_every: value must be at least 1"),
    ("hold too long", cam(hold_seconds="99"), "cameras[0].hold_seconds: value must be at most 30.0"),
    ("deadline a word", cam(deadline_ms="soon"), "cameras[0].deadline_ms: expected int"),
    ("deadline too short", cam(deadline_ms="10"), "cameras[0].deadline_ms: value must be at least 50"),
    ("enabled a word", cam(enabled="maybe"), "cameras[0].enabled: expected bool"),
    ("fill colour unknown", cam(fill_color="reddish"), "cameras[0].fill_color"),
    ("unknown camera key", cam(colour="red"), "cameras[0].colour: unknown key"),
    ("plan unknown", cam(plan="ultra"), "cameras[0].plan"),
    ("preset unknown", cam(preset="turbo"), "cameras[0].preset: value must be one of"),
    # --- sections
    ("http port a bool", "http:\n  port: true\n" + CAM, "http.port: expected a port number 1-65535, got True"),
    ("http port a float", "http:\n  port: 18190.7\n" + CAM, "http.port: expected a port number 1-65535"),
    ("http port out of range", "http:\n  port: 70000\n" + CAM, "http.port: expected a port number 1-65535"),
    ("empty token", "http:\n  token: ''\n" + CAM, "http.token: empty token"),
    ("password without user", "mqtt:\n  password: pw\n" + CAM, "mqtt.username: a password without a username"),
    ("mqtt port a string", "mqtt:\n  port: '1883'\n" + CAM, "mqtt.port: expected a port number"),
    ("detector threshold over 1", "detector:\n  threshold: 2\n" + CAM, "detector.threshold: value must be at most 1.0"),
    ("kserve without url", "detector:\n  provider: kserve\n" + CAM, "detector.url: provider kserve needs url"),
    ("jobs without a broker", "jobs:\n  enabled: true\n", "jobs: snapshot jobs need an MQTT 5 broker"),
]


def test_the_table_has_64_cases() -> None:
    assert len(TABLE) == 64 and len({name for name, _, _ in TABLE}) == 64


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in TABLE], ids=[n for n, _, _ in TABLE])
def test_a_bad_config_exits_2_with_one_line_naming_the_key(tmp_path: Path, capsys, text, expected) -> None:
    path = tmp_path / "faceanon.yaml"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["serve", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"faceanon: invalid configuration: {path}: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err
