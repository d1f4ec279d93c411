"""addon/config.yaml against the Supervisor's rules; options, schema, translations and the entry point agree."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from faceanon import supervisor
from supervisor_schema import CONFIG_SCHEMA, RE_SCHEMA_ELEMENT, OptionsError, validate_options

ADDON = ROOT / "addon"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def translations() -> dict:
    return yaml.safe_load((ADDON / "translations" / "en.yaml").read_text(encoding="utf-8"))


def test_config_passes_the_supervisor_schema(config: dict) -> None:
    CONFIG_SCHEMA(config)
    assert config["slug"] == "faceanon"
    assert set(config["arch"]) == {"aarch64", "amd64"}
    assert config["init"] is False, "the s6-overlay v3 base image must run as PID 1"
    assert config["startup"] == "application" and config["boot"] == "auto"
    assert "mqtt:need" in config["services"]
    assert config["discovery"] == [supervisor.DISCOVERY_SERVICE]
    assert config["ingress"] is True
    assert config["ingress_port"] == supervisor.INGRESS_PORT
    assert f"[PORT:{supervisor.INGRESS_PORT}]/api/health" in config["watchdog"]
    assert config["ports"] == {f"{supervisor.INGRESS_PORT}/tcp": None, f"{supervisor.RTSP_PORT}/tcp": None}, \
        "direct access stays off by default"


@pytest.mark.parametrize("change", [
    {"arch": ["armv7", "amd64"]},
    {"slug": "face anon"},
    {"startup": "after"},
    {"boot": "always"},
    {"services": ["mqtt:require"]},
    {"ingres": True},
    {"schema": {"threads": "integer"}},
    {"schema": {"cameras": [["str"]]}},
    {"ports": {"8099": None}},
    {"watchdog": "http://localhost:8099/api/health"},
])
def test_config_schema_check_can_fail(config: dict, change: dict) -> None:
    broken = {**copy.deepcopy(config), **change}
    with pytest.raises(Exception):  # noqa: B017 - voluptuous raises Invalid or MultipleInvalid
        CONFIG_SCHEMA(broken)


def test_required_key_missing_fails(config: dict) -> None:
    for key in ("name", "version", "slug", "description", "arch"):
        broken = {k: v for k, v in config.items() if k != key}
        with pytest.raises(Exception):  # noqa: B017
            CONFIG_SCHEMA(broken)


def test_every_schema_type_is_known(config: dict) -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            walk(node[0])
        else:
            assert RE_SCHEMA_ELEMENT.match(node), node

    walk(config["schema"])


def test_default_options_validate_against_the_schema(config: dict) -> None:
    assert validate_options(config["schema"], config["options"])


def test_options_and_schema_have_the_same_keys(config: dict) -> None:
    options, schema = config["options"], config["schema"]
    assert set(options) <= set(schema)
    required = {k for k, v in schema.items() if not (isinstance(v, str) and v.endswith("?"))}
    assert required <= set(options), f"required options without a default: {required - set(options)}"
    # An optional key with a default would become required: the Supervisor's documented rule.
    assert not {k for k in options if isinstance(schema[k], str) and schema[k].endswith("?")}
    camera_schema = schema["cameras"][0]
    for camera in options["cameras"]:
        assert set(camera) <= set(camera_schema)


@pytest.mark.parametrize(("path", "value"), [
    (("cameras", 0, "name"), "Front Door"),
    (("cameras", 0, "detect_fps"), 0),
    (("cameras", 0, "detect_fps"), "fast"),
    (("cameras", 0, "style"), "smudge"),
    (("cameras", 0, "url"), 554),
    (("cameras", 0, "tile"), 5000),
    (("cameras", 0, "enabled"), "perhaps"),
    (("threads",), 64),
    (("margin",), 1.5),
    (("log_level",), "verbose"),
    (("topic_prefix",), "a/b"),
    (("cameras",), {"name": "x"}),
    (("cameras", 0, "name"), None),
])
def test_options_validator_can_fail(config: dict, path: tuple, value: object) -> None:
    options = copy.deepcopy(config["options"])
    node = options
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(OptionsError):
        validate_options(config["schema"], options)


def test_options_validator_catches_missing_and_unknown(config: dict) -> None:
    options = copy.deepcopy(config["options"])
    del options["cameras"][0]["url"]
    with pytest.raises(OptionsError, match="url"):
        validate_options(config["schema"], options)
    with pytest.raises(OptionsError, match="colour"):
        validate_options(config["schema"], {**config["options"], "colour": "red"})
    # Optional keys may be left out and set.
    options = copy.deepcopy(config["options"])
    options["cameras"][0].update(tile=640, detect_size=1280, enabled=False, snapshot_interval=30)
    options["http_token"] = "s3cret"
    validate_options(config["schema"], options)


def test_entry_point_schema_mirrors_config_yaml(config: dict) -> None:
    """faceanon.supervisor re-validates options.json: same keys, same defaults, same accepted values."""
    assert {str(k) for k in supervisor.OPTIONS.schema} == set(config["schema"])
    assert {str(k) for k in supervisor.CAMERA_OPTIONS.schema} == set(config["schema"]["cameras"][0])
    options = config["options"]
    assert {k: options[k] for k in supervisor.DEFAULTS} == supervisor.DEFAULTS
    assert options["cameras"] == supervisor.DEFAULT_CAMERAS
    assert supervisor.OPTIONS(copy.deepcopy(options))
    levels = re.fullmatch(r"list\((.*)\)", config["schema"]["log_level"]).group(1).split("|")
    assert levels == list(supervisor.LOG_LEVELS)
    styles = re.fullmatch(r"list\((.*)\)", config["schema"]["cameras"][0]["style"]).group(1).split("|")
    for style in styles:
        supervisor.CAMERA_OPTIONS({**options["cameras"][0], "style": style})


def test_the_default_camera_plays_the_bundled_clip(config: dict) -> None:
    assert config["options"]["cameras"][0]["url"] == supervisor.DEMO_URL
    assert supervisor.DEMO_CLIP.is_file()
    assert supervisor.DEMO_CLIP.is_relative_to(ADDON), "the clip must be inside the build context"


def test_every_option_is_translated(config: dict, translations: dict) -> None:
    texts = translations["configuration"]
    for key, typ in config["schema"].items():
        assert texts.get(key, {}).get("name") and texts[key].get("description"), key
        if isinstance(typ, list) and isinstance(typ[0], dict):
            for field in typ[0]:
                entry = texts[key].get("fields", {}).get(field, {})
                assert entry.get("name") and entry.get("description"), f"{key}.{field}"
    assert set(texts) == set(config["schema"]), "translations for options that don't exist"
    assert set(translations["network"]) == set(config["ports"])


def test_version_matches_the_changelog(config: dict) -> None:
    text = (ADDON / "CHANGELOG.md").read_text(encoding="utf-8")
    top = re.search(r"^##\s+\[?v?(\d[\w.\-]*)", text, re.MULTILINE)
    assert top, "CHANGELOG.md has no '## <version>' entry"
    assert top.group(1) == config["version"]


def test_repository_yaml(config: dict) -> None:
    repo = yaml.safe_load((ROOT / "repository.yaml").read_text(encoding="utf-8"))
    assert repo["name"] and repo["maintainer"]
    assert repo["url"] == "https://github.com/faceanon/faceanon"
    assert config["url"].startswith(repo["url"])


def test_only_one_app_config_in_the_repository() -> None:
    """The Supervisor searches the whole repository for config.yaml/.yml/.json: a second one is a second app."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != ".git" and not d.startswith((".venv", "node_modules"))]
        found += [Path(folder, f).relative_to(ROOT).as_posix() for f in files
                  if f in ("config.yaml", "config.yml", "config.json")]
    assert found == ["addon/config.yaml"]


def test_docs_exist() -> None:
    for name in ("DOCS.md", "README.md", "CHANGELOG.md"):
        assert len((ADDON / name).read_text(encoding="utf-8")) > 200, name
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    for needle in ("https://github.com/faceanon/faceanon", "rtsp://", "frigate://", "8554", "fail"):
        assert needle in docs, needle
