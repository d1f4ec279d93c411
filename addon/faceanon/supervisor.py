"""Home Assistant app (add-on) entry point: the Supervisor's options and MQTT service become a service config.

The s6 run script starts `python3 -m faceanon.supervisor`. Anything wrong before the service starts (a bad options
file, no MQTT service, a broker that refuses the credentials) ends in ONE error line naming the thing and the reason,
and exit status 1, which the s6 finish script turns into a stopped app with that line on top of its log.

Environment (the defaults are what the Supervisor provides; tests override them):
  FACEANON_OPTIONS   options file (default /data/options.json); the generated HTTP token is kept beside it
  SUPERVISOR_URL     Supervisor API (default http://supervisor)
  SUPERVISOR_TOKEN   bearer token for the Supervisor API (set by the Supervisor)
  FACEANON_HTTP_PORT HTTP port (default 8099 = ingress_port in config.yaml; only tests change it)
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import voluptuous as vol
import yaml

import faceanon
from faceanon import defaults
from faceanon.config import CAMERA_NAME
from faceanon.identity import service_id

log = logging.getLogger("faceanon.supervisor")

RTSP_PORT = 8554  # the restream's port inside the container (ports in config.yaml)
INGRESS_PORT = 8099  # must equal ingress_port in addon/config.yaml (checked by tests/addon)
DISCOVERY_SERVICE = "faceanon"  # listed under `discovery` in config.yaml; the HA integration's async_step_hassio
DEMO_URL = "demo"  # camera url that plays the bundled sample clip, so a fresh install shows something at once
DEMO_CLIP = Path(faceanon.__file__).parent / "samples" / "face-demographics-walking.gif"

# The Supervisor's log levels (the convention of every app) onto Python's.
LOG_LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "notice": "info", "warning": "warning",
              "error": "error", "fatal": "critical"}

# Defaults: the same values as `options` in config.yaml (tests/addon checks they agree).
DEFAULTS: dict[str, Any] = {
    "model": defaults.STREAM_MODEL,
    "threads": 0,
    "snapshot_interval": 10,
    "shape": defaults.DEFAULT_SHAPE,
    "margin": defaults.LIVE_MARGIN,  # the app's cameras run the live preset
    "hold_seconds": defaults.HOLD_SECONDS,
    "topic_prefix": "faceanon",
    "mqtt_discovery": True,
    "mqtt_commands": False,
    "rtsp": True,
    "snapshot_jobs": False,
    "log_level": "info",
}
DEFAULT_CAMERAS = [{"name": "demo", "url": DEMO_URL, "detect_fps": 5.0, "style": "fill"}]
DEFAULT_DETECT_FPS = 5.0
# Option names of earlier versions -> the service's own keys (one vocabulary); read once with a log line.
RENAMED = {"mask_shape": "shape", "mask_margin": "margin"}
RENAMED_CAMERA = {"fps": "detect_fps"}


def _int(lo: int, hi: int) -> vol.All:
    return vol.All(int, vol.Range(min=lo, max=hi))


def _float(lo: float, hi: float) -> vol.All:
    return vol.All(vol.Coerce(float), vol.Range(min=lo, max=hi))


# Mirrors `schema` in config.yaml. The Supervisor validates before it starts us; this catches a hand-edited or
# truncated file and turns it into a message naming the option.
CAMERA_OPTIONS = vol.Schema({
    vol.Required("name"): vol.Match(CAMERA_NAME, msg="must be 1-64 of a-z, 0-9, _"),
    vol.Required("url"): vol.All(str, vol.Length(min=1)),
    vol.Optional("detect_fps"): _float(0.1, 30),
    vol.Optional("fps"): _float(0.1, 30),  # the earlier name of detect_fps
    vol.Required("style"): vol.In(["blur", "pixelate", "fill"]),
    vol.Optional("target"): vol.In(["face", "head", "person"]),
    vol.Optional("enabled"): bool,
    vol.Optional("detect_size"): _int(0, 4096),
    vol.Optional("tile"): _int(0, 2048),
    vol.Optional("snapshot_interval"): _int(1, 3600),
    vol.Optional("restream"): vol.All(str, vol.Match(r"^rtsps?://\S+$", msg="expected rtsp://host:port/path")),
    vol.Optional("unsafe_settings"): str,  # the owner's sentence to run below the protection floor (faceanon.floors)
})
OPTIONS = vol.Schema({
    vol.Required("cameras"): vol.All([CAMERA_OPTIONS], vol.Length(min=1, msg="needs at least one camera")),
    vol.Optional("model", default=DEFAULTS["model"]): vol.All(str, vol.Length(min=1)),
    vol.Optional("threads", default=DEFAULTS["threads"]): _int(0, 16),
    vol.Optional("detector_url"): vol.All(str, vol.Match(r"^grpcs?://\S+$", msg="expected grpc://host:8001")),
    vol.Optional("snapshot_interval", default=DEFAULTS["snapshot_interval"]): _int(1, 3600),
    vol.Optional("shape", default=DEFAULTS["shape"]): vol.In(["ellipse", "box"]),
    vol.Optional("margin", default=DEFAULTS["margin"]): _float(0, 1),
    vol.Optional("mask_shape"): vol.In(["ellipse", "box"]),  # earlier names of shape and margin
    vol.Optional("mask_margin"): _float(0, 1),
    vol.Optional("hold_seconds", default=DEFAULTS["hold_seconds"]): _float(0, 10),
    vol.Optional("topic_prefix", default=DEFAULTS["topic_prefix"]): vol.Match(r"^[A-Za-z0-9_-]{1,64}$"),
    vol.Optional("mqtt_discovery", default=DEFAULTS["mqtt_discovery"]): bool,
    vol.Optional("mqtt_commands", default=DEFAULTS["mqtt_commands"]): bool,
    vol.Optional("rtsp", default=DEFAULTS["rtsp"]): bool,
    vol.Optional("snapshot_jobs", default=DEFAULTS["snapshot_jobs"]): bool,
    vol.Optional("http_token"): str,
    vol.Optional("log_level", default=DEFAULTS["log_level"]): vol.In(list(LOG_LEVELS)),
})


class AddonError(Exception):
    """A start-up failure; its message is the one log line the user sees."""


def read_options(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = "is this running under the Home Assistant Supervisor?"
        raise AddonError(f"options file {path}: missing ({hint})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AddonError(f"options file {path}: unreadable ({err})") from None
    except json.JSONDecodeError as err:
        raise AddonError(f"options file {path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise AddonError(f"options file {path}: expected a JSON object, got {type(raw).__name__}")
    try:
        options = OPTIONS(raw)
    except vol.MultipleInvalid as err:
        first = err.errors[0]
        where = ".".join(str(p) for p in first.path) or "options"
        raise AddonError(f"option {where}: {first.msg} (got {_value_at(raw, first.path)!r})") from None
    options = migrate(options)
    names = [cam["name"] for cam in options["cameras"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AddonError(f"option cameras: camera name {dupes[0]!r} is used more than once; names must be unique")
    return options


def migrate(options: dict[str, Any]) -> dict[str, Any]:
    """Options saved under an earlier name take the service's key (the user's value wins over the new default),
    with one log line each saying what to rename."""
    options = dict(options)
    for old, new in RENAMED.items():
        if old in options:
            options[new] = options.pop(old)
            log.warning("app option %s is now %s (read as %s: %r); rename it in the app's configuration", old, new,
                        new, options[new])
    cameras = []
    for cam in options["cameras"]:
        cam = dict(cam)
        for old, new in RENAMED_CAMERA.items():
            if old in cam:
                value = cam.pop(old)
                if new not in cam:
                    cam[new] = value
                log.warning("%s: app option cameras.%s is now cameras.%s; rename it in the app's configuration",
                            cam["name"], old, new)
        cam.setdefault("detect_fps", DEFAULT_DETECT_FPS)
        cameras.append(cam)
    options["cameras"] = cameras
    return options


def _value_at(data: Any, path: list[Any]) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    if path and path[-1] == "http_token":
        return "***"
    return data


def fetch_mqtt_service(base_url: str, token: str | None, timeout: float = 10.0, attempts: int = 3) -> dict[str, Any]:
    """GET /services/mqtt from the Supervisor: {host, port, ssl, username, password, protocol}."""
    if not token:
        raise AddonError("SUPERVISOR_TOKEN is not set: the MQTT credentials come from the Home Assistant Supervisor")
    url = f"{base_url.rstrip('/')}/services/mqtt"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.load(response)
            break
        except urllib.error.HTTPError as err:
            hint = ("the Supervisor refused this app's token" if err.code in (401, 403) else
                    "install and start the Mosquitto broker app (Settings > Apps), then restart faceanon")
            message = f"MQTT service from the Supervisor ({url}): {_supervisor_message(err)}; {hint}"
            raise AddonError(message) from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as err:
            if attempt == attempts:
                raise AddonError(f"MQTT service from the Supervisor ({url}): unreachable ({_reason(err)})") from None
            time.sleep(1.0)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not data.get("host") or not data.get("port"):
        raise AddonError(f"MQTT service from the Supervisor ({url}): answer without host/port")
    return data


def _supervisor_message(err: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(err.read().decode("utf-8", "replace")).get("message")
    except (ValueError, AttributeError, OSError):
        message = None
    return f"HTTP {err.code} {message or err.reason}"


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", None) or err)


def check_broker(service: dict[str, Any], timeout: float = 10.0) -> None:
    """Connect once with the Supervisor's credentials: a refused login can't heal by retrying, so it stops the app
    with a clear line; an unreachable broker only warns (the service reconnects when it comes back)."""
    host, port, user = str(service["host"]), int(service["port"]), service.get("username")
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        result["reason"] = reason
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"faceanon-check-{secrets.token_hex(4)}")
    if user:
        client.username_pw_set(user, service.get("password"))
    if service.get("ssl"):
        client.tls_set()
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except (OSError, ValueError) as err:
        log.warning("MQTT broker %s:%d: unreachable now (%s); faceanon keeps retrying", host, port, err)
        return
    client.loop_start()
    try:
        if not done.wait(timeout):
            log.warning("MQTT broker %s:%d: no answer in %.0f s; faceanon keeps retrying", host, port, timeout)
            return
        reason = result["reason"]
        if reason.is_failure:
            raise AddonError(f"MQTT broker {host}:{port} refused user {user!r}: {reason} (the login comes from the "
                             "Supervisor's MQTT service; restart the Mosquitto broker app)")
    finally:
        client.disconnect()
        client.loop_stop()


def http_token(options: dict[str, Any], data_dir: Path) -> str:
    """The configured token, or one generated once and kept in /data: direct access to port 8099 always needs a
    token; ingress doesn't, and the HA integration receives it through Supervisor discovery."""
    if options.get("http_token"):
        return options["http_token"]
    path = data_dir / "http_token"
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except OSError:
        kept = ""
    if kept:
        return kept
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
    except OSError as err:
        log.warning("HTTP token: could not keep it in %s (%s); a new one is made at every start", path, err)
    return token


def build_config(options: dict[str, Any], service: dict[str, Any], token: str, http_port: int,
                 state_dir: str | None = None) -> dict[str, Any]:
    """Translate app options into the service configuration of docs/architecture.md."""
    cameras = []
    for cam in options["cameras"]:
        entry: dict[str, Any] = {
            "name": cam["name"],
            "url": str(DEMO_CLIP) if cam["url"].strip() == DEMO_URL else cam["url"].strip(),
            "enabled": cam.get("enabled", True),
            "detect_fps": cam["detect_fps"],
            "snapshot_interval": cam.get("snapshot_interval", options["snapshot_interval"]),
            "style": cam["style"],
            "shape": options["shape"],
            "margin": options["margin"],
            "hold_seconds": options["hold_seconds"],
        }
        for key in ("target", "detect_size", "tile", "restream", "unsafe_settings"):
            if key in cam:
                entry[key] = cam[key]
        cameras.append(entry)
    return {
        "mqtt": {
            "host": str(service["host"]),
            "port": int(service["port"]),
            "username": service.get("username") or None,
            "password": service.get("password") or None,
            "tls": bool(service.get("ssl", False)),
            "topic_prefix": options["topic_prefix"],
            "discovery_prefix": "homeassistant",
            "discovery": options["mqtt_discovery"],
            "commands": options["mqtt_commands"],
            "client_id": None,  # derived per process: never a constant two services could share
        },
        "http": {"host": "0.0.0.0", "port": http_port, "token": token, "ingress_only": True},
        "rtsp": {"enabled": options["rtsp"], "host": "0.0.0.0", "port": RTSP_PORT},
        "detector": detector_section(options),
        # Frigate's snapshots anonymized by a pool of faceanon instances sharing the work (faceanon.source.jobs)
        "jobs": {"enabled": options["snapshot_jobs"]},
        "log_level": LOG_LEVELS[options["log_level"]],
        "state_dir": state_dir,  # the app's /data: the service id survives restarts and updates
        "cameras": cameras,
    }


def detector_section(options: dict[str, Any]) -> dict[str, Any]:
    """The detector: in process, or on a KServe v2 server (Triton, OpenVINO Model Server) at `detector_url`."""
    section: dict[str, Any] = {"model": options["model"], "threads": options["threads"] or None}
    if options.get("detector_url"):
        section.update(provider="kserve", url=options["detector_url"])
    return section


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Run the service's own schema now, so a value it refuses is reported before anything starts."""
    from faceanon.config import ConfigError, validate  # late: it imports the masker (OpenCV)

    try:
        return validate(config)
    except ConfigError as err:
        raise AddonError(f"app options: {err}") from None


def announce(base_url: str, token: str, discovery: dict[str, Any], port: int, wait_s: float = 300.0) -> None:
    """Tell Home Assistant where the HTTP API is (Supervisor discovery) once it answers; failure only warns."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1.0).close()
            break
        except OSError:
            time.sleep(1.0)
    else:
        log.warning("Supervisor discovery: HTTP port %d not up after %.0f s; not announced", port, wait_s)
        return
    body = json.dumps({"service": DISCOVERY_SERVICE, "config": discovery}).encode()
    request = urllib.request.Request(f"{base_url.rstrip('/')}/discovery", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        log.info("Supervisor discovery: announced %s:%d to Home Assistant", discovery["host"], discovery["port"])
    except (urllib.error.URLError, OSError) as err:
        reason = _supervisor_message(err) if isinstance(err, urllib.error.HTTPError) else _reason(err)
        log.warning("Supervisor discovery: not announced (%s); add the integration by hand", reason)


def write_config(config: dict[str, Any]) -> Path:
    """The service reads a YAML file; it holds the MQTT password and token, so only we may read it."""
    fd, name = tempfile.mkstemp(prefix="faceanon-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    return Path(name)


def prepare(environ: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options + Supervisor -> (service config, discovery payload); raises AddonError."""
    options_path = Path(environ.get("FACEANON_OPTIONS", "/data/options.json"))
    options = read_options(options_path)
    logging.getLogger().setLevel(LOG_LEVELS[options["log_level"]].upper())
    service = fetch_mqtt_service(environ.get("SUPERVISOR_URL", "http://supervisor"), environ.get("SUPERVISOR_TOKEN"))
    log.info("MQTT: broker %s:%s from the Supervisor (%s)", service["host"], service["port"],
             service.get("addon", "MQTT service"))
    check_broker(service)
    port = int(environ.get("FACEANON_HTTP_PORT", INGRESS_PORT))
    token = http_token(options, options_path.parent)
    config = validate_config(build_config(options, service, token, port, str(options_path.parent)))
    # The service id (kept in /data, the same one the service reports): Home Assistant's unique id for it.
    discovery = {"host": socket.gethostname(), "port": port, "token": token,
                 "id": service_id(str(options_path.parent), port)}
    return config, discovery


def main() -> int:
    # The service's own line format (faceanon.service.setup_logging), so the app log reads as one.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)
    environ = dict(os.environ)
    try:
        config, discovery = prepare(environ)
    except AddonError as err:
        log.error("%s", err)
        return 1
    threading.Thread(target=announce, name="discovery", daemon=True,
                     args=(environ.get("SUPERVISOR_URL", "http://supervisor"), environ.get("SUPERVISOR_TOKEN", ""),
                           discovery, discovery["port"])).start()
    from faceanon import service  # late: the engine loads onnxruntime and OpenCV, not needed to report bad options

    path = write_config(config)
    try:
        return service.main(str(path))
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
