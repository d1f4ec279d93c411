"""addon/Dockerfile and rootfs/: what the Supervisor builds with addon/ as the context must be there and sound."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from faceanon import supervisor

ADDON = ROOT / "addon"
S6 = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buffer = [], ""
    for line in text.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buffer and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        buffer += line
        word, _, rest = buffer.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued line"
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ADDON / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))


def test_parser_joins_continuations() -> None:
    parsed = instructions("FROM a:1\n# c\nRUN x \\\n  # inner\n  && y\nCOPY a b\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x    && y"), ("COPY", "a b")]


def test_from_is_an_explicit_pinned_debian_base(dockerfile: list) -> None:
    froms = [args for word, args in dockerfile if word == "FROM"]
    assert len(froms) == 1, froms
    image = froms[0].split()[0]
    assert "$" not in image, "the Supervisor no longer passes BUILD_FROM: name the base image"
    assert not any(word == "ARG" and args.startswith("BUILD_FROM") for word, args in dockerfile)
    assert image.startswith("ghcr.io/home-assistant/") and "base-debian" in image, \
        "onnxruntime/OpenCV have no musl wheels: the Debian base is needed"
    name, _, digest = image.partition("@")
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
    assert digest.startswith("sha256:") or (tag and tag != "latest" and re.search(r"\d", tag)), \
        f"{image}: pin a dated tag or a digest"
    assert not (ADDON / "build.yaml").exists(), "build.yaml is no longer read; keep everything in the Dockerfile"


def _copy_sources(args: str) -> list[str]:
    parts = [p for p in shlex.split(args) if not p.startswith("--")]
    assert not any(p.startswith("--from") for p in shlex.split(args)), "no files from other images or stages"
    return parts[:-1]


def test_every_copy_source_is_inside_the_build_context(dockerfile: list) -> None:
    sources = []
    for word, args in dockerfile:
        if word in ("COPY", "ADD"):
            assert "://" not in args, f"{word} {args}: no downloads at build time besides pip/apt"
            sources += _copy_sources(args)
    assert sources
    context = ADDON.resolve()
    for source in sources:
        path = (ADDON / source).resolve()
        assert path.is_relative_to(context), f"{source} lies outside addon/"
        assert path.exists(), f"COPY {source}: missing from addon/"
    for needed in ("requirements.txt", "faceanon", "rootfs"):
        assert needed in sources, f"{needed} is not copied into the image"


def test_requirements_are_what_gets_installed(dockerfile: list) -> None:
    copies = {}
    for word, args in dockerfile:
        if word == "COPY":
            *srcs, dest = [p for p in shlex.split(args) if not p.startswith("--")]
            for src in srcs:
                copies[src] = dest
    dest = copies["requirements.txt"]
    runs = " ".join(args for word, args in dockerfile if word == "RUN")
    assert re.search(rf"pip3? install [^&]*-r {re.escape(dest)}", runs), "pip must install the copied requirements"
    # The engine's import names match the requirement list: nothing imported is missing from it.
    names = {re.split(r"[<>=!~\[; ]", line.strip())[0].lower() for line in
             (ADDON / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for needed in ("paho-mqtt", "voluptuous", "pyyaml", "aiohttp", "onnxruntime", "opencv-python-headless"):
        assert needed in names, needed
    # Installed at the pinned versions CI tests (addon/constraints.txt, tools/deps/constraints.py): every
    # requirement is pinned there, and pip installs with it.
    assert re.search(rf"pip3? install -c {re.escape(copies['constraints.txt'])}", runs), "pip must use the pins"
    pins = {line.split("==")[0].lower() for line in (ADDON / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    remote = {re.split(r"[<>=!~\[; ]", line.strip())[0].lower() for line in
              (ADDON / "requirements-remote.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert names | remote <= pins, sorted((names | remote) - pins)
    env = " ".join(args for word, args in dockerfile if word == "ENV")
    assert "/opt/venv/bin" in env, "python3 in the run script must be the venv's"
    assert "/usr/src/faceanon" in env and copies["faceanon"].rstrip("/") == "/usr/src/faceanon/faceanon"


def test_healthcheck_hits_the_health_endpoint(dockerfile: list) -> None:
    checks = [args for word, args in dockerfile if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "curl" in checks[0]
    assert f"http://127.0.0.1:{supervisor.INGRESS_PORT}/api/health" in checks[0]


def test_labels(dockerfile: list, config: dict) -> None:
    labels = " ".join(args for word, args in dockerfile if word == "LABEL")
    assert 'io.hass.type="app"' in labels
    arch = re.search(r'io\.hass\.arch="([^"]+)"', labels).group(1).split("|")
    assert set(arch) == set(config["arch"])
    assert 'io.hass.version="${BUILD_VERSION}"' in labels
    default = [args for word, args in dockerfile if word == "ARG" and args.startswith("BUILD_VERSION=")]
    assert default == [f"BUILD_VERSION={config['version']}"]


def test_one_version_for_the_package_the_app_and_the_running_image(dockerfile: list, config: dict,
                                                                   monkeypatch) -> None:
    """pyproject's version is the app's (config.yaml); the image, whose code has no package metadata, reports the
    version the Supervisor builds it with (BUILD_VERSION) instead of 0+unknown."""
    import importlib.metadata
    import tomllib

    import faceanon

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == config["version"]
    envs = " ".join(args for word, args in dockerfile if word == "ENV")
    assert 'FACEANON_VERSION="${BUILD_VERSION}"' in envs

    def not_installed(_name: str) -> str:
        raise importlib.metadata.PackageNotFoundError("faceanon")

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setenv("FACEANON_VERSION", config["version"])
    assert faceanon.version() == config["version"]
    monkeypatch.delenv("FACEANON_VERSION")
    assert faceanon.version() == "0+unknown"


def test_s6_service_layout() -> None:
    service = S6 / "faceanon"
    assert (service / "type").read_text().strip() == "longrun"
    assert (service / "dependencies.d" / "base").exists()
    assert (S6 / "user" / "contents.d" / "faceanon").exists()
    run = (service / "run").read_text()
    assert run.startswith("#!/command/with-contenv bashio\n")
    assert re.search(r"^exec python3 -m faceanon\.supervisor\s*$", run, re.MULTILINE)
    assert (ADDON / "faceanon" / "supervisor.py").exists()
    finish = (service / "finish").read_text()
    assert finish.startswith("#!/command/with-contenv bashio\n")
    assert "/run/s6/basedir/bin/halt" in finish, "a failed start must stop the container, not loop"


@pytest.mark.parametrize("name", ["run", "finish"])
def test_s6_scripts_are_executable_and_parse(name: str) -> None:
    path = S6 / "faceanon" / name
    assert os.access(path, os.X_OK), f"{path}: chmod +x (and commit it with the executable bit)"
    bash = shutil.which("bash")
    if bash:
        subprocess.run([bash, "-n", str(path)], check=True, timeout=10)
    if shutil.which("git") and (ROOT / ".git").exists():
        rel = path.relative_to(ROOT).as_posix()
        staged = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s", rel], capture_output=True, text=True,
                                timeout=10).stdout.split()
        if staged:  # tracked: the executable bit must be in the index, since that is what the Supervisor clones
            assert staged[0] == "100755", f"{rel} is tracked as {staged[0]}: git update-index --chmod=+x {rel}"


def test_dockerignore_keeps_caches_out() -> None:
    text = (ADDON / ".dockerignore").read_text()
    assert "__pycache__" in text and "egg-info" in text


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_icon_and_logo() -> None:
    assert _png_size(ADDON / "icon.png") == (128, 128)
    width, height = _png_size(ADDON / "logo.png")
    assert 200 <= width <= 300 and 80 <= height <= 120


def test_the_shipped_package_holds_no_model_building_scripts() -> None:
    """Scripts that convert, quantise or train models are tools (tools/models/), not runtime code in the image; every
    model file the package ships has a manifest with its licence and origin, and a licence text."""
    models = ADDON / "faceanon" / "models"
    assert not list(models.glob("*.py")), "model tools belong in tools/models/, outside the add-on build context"
    assert {p.name for p in (ROOT / "tools" / "models").glob("*.py")} >= {
        "vendor_models.py", "quantize_centerface.py", "train_fasterrcnn.py", "export_fasterrcnn.py"}
    import json

    named = {json.loads(p.read_text())["file"]: json.loads(p.read_text()) for p in models.glob("*.json")}
    assert set(named) == {p.name for p in models.glob("*.onnx")}
    notice = (models / "NOTICE").read_text()
    for file, manifest in named.items():
        assert manifest["license"] and manifest["origin"] and file in notice
        if "license_file" in manifest:
            assert (models / manifest["license_file"]).is_file()
