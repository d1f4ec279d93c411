"""The service configuration: a YAML file (or the add-on's options as a dict), validated by voluptuous.

Every error names the key path and the reason, e.g. `cameras[1].url: expected rtsp://, http(s)://, frigate:// or an
existing file`. The schema and its defaults are documented in docs/architecture.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from faceanon import defaults
from faceanon.detect.manifest import ModelError
from faceanon.detect.remote import is_remote, target_of
from faceanon.mask import SHAPES, STYLES, TARGETS, parse_color

SAMPLE_CLIP = Path(__file__).resolve().parent / "samples" / "face-demographics-walking.gif"
CAMERA_NAME = re.compile(r"[a-z0-9_]{1,64}\Z")  # the one rule for names in topics, URLs and the add-on
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "frigate://")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key path and the reason."""


def camera_name(value: Any) -> str:
    if not isinstance(value, str) or not CAMERA_NAME.match(value):
        raise vol.Invalid("expected 1-64 characters of a-z, 0-9 and _ (used in topics and URLs)")
    return value


def camera_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("expected rtsp://, http(s)://, frigate:// or an existing file")
    value = value.strip()
    lower = value.lower()
    if lower.startswith("frigate://"):
        if not re.match(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)?$", value[len("frigate://"):]):
            raise vol.Invalid("expected frigate://<camera> or frigate://<camera>/<object>")
        return value
    if lower.startswith(URL_SCHEMES):
        if len(value.split("://", 1)[1]) == 0:
            raise vol.Invalid("the URL has no host")
        return value
    if Path(value).expanduser().is_file():
        return str(Path(value).expanduser())
    raise vol.Invalid("expected rtsp://, http(s)://, frigate:// or an existing file")


def port(value: Any) -> int:
    """A whole number 1-65535, as written: `true` (which Python counts as 1) or 18190.7 are mistakes, not ports."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid(f"expected a port number 1-65535, got {value!r}")
    if not 1 <= value <= 65535:
        raise vol.Invalid(f"expected a port number 1-65535, got {value}")
    return value


def token(value: Any) -> str | None:
    """An HTTP token: absent (null) means no auth; an empty or blank one is a mistake that would disable it."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("empty token: remove the key for no token, or give one")
    return value


def optional_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # YAML reads a numeric password as a number
    if not isinstance(value, str):
        raise vol.Invalid("expected a string")
    return value


def plan_spec(value: Any) -> str:
    """A named plan or passes like 1+2x<=2048 (faceanon.detect.plans)."""
    from faceanon.detect.plans import PlanError, resolve_plan

    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("expected a plan name or passes like 1+2x<=2048")
    try:
        resolve_plan(value)
    except PlanError as err:
        raise vol.Invalid(str(err)) from None
    return value.strip()


def colour(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected auto or a colour like #000000")
    try:
        parse_color(value)
    except ValueError as err:
        raise vol.Invalid(str(err)) from None
    return value


def unsafe_sentence(value: Any) -> str:
    from faceanon.floors import OVERRIDE

    if value != OVERRIDE:
        raise vol.Invalid(f"to run below the protection floor, write exactly {OVERRIDE!r} (or remove the key)")
    return value


def zero_or(low: int, high: int):
    """0 (off) or an int in [low, high]."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or low <= value <= high):
            raise vol.Invalid(f"expected 0 (off) or an integer from {low} to {high}")
        return value
    return check


def nullable(validator):
    """None, or whatever `validator` accepts (with its own error message, which vol.Any would hide)."""
    def check(value: Any) -> Any:
        return None if value is None else validator(value)
    return check


def section(schema: vol.Schema):
    """A mapping section that may be left empty in YAML (`http:` reads as None)."""
    def check(value: Any) -> dict:
        return schema({} if value is None else value)
    return check


MQTT_FIELDS = vol.Schema({
    vol.Optional("host", default="127.0.0.1"): vol.All(str, vol.Length(min=1)),
    vol.Optional("port", default=1883): port,
    vol.Optional("username", default=None): optional_str,
    vol.Optional("password", default=None): optional_str,
    vol.Optional("tls", default=False): bool,
    vol.Optional("tls_ca", default=None): optional_str,
    vol.Optional("tls_insecure", default=False): bool,
    vol.Optional("topic_prefix", default="faceanon"): vol.All(str, vol.Match(r"^[^#+\s]+$",
                                                                              msg="no spaces, # or + in a topic")),
    # `<camera>/<control>/set` commands: off unless the owner opts in, since any client of the broker could send
    # them (a home broker has many); when on, they stay within the protection floor like every control.
    vol.Optional("commands", default=False): bool,
    vol.Optional("discovery_prefix", default="homeassistant"): vol.All(str, vol.Match(r"^[^#+\s]+$",
                                                                                       msg="no spaces, # or + in a "
                                                                                           "topic")),
    vol.Optional("discovery", default=True): bool,
    # None: <topic prefix>-<host>-<pid>, unique per process (publish/mqtt.py default_client_id)
    vol.Optional("client_id", default=None): nullable(vol.All(str, vol.Length(min=1, max=64))),
})

def password_needs_user(mqtt: dict) -> dict:
    if mqtt.get("password") and not mqtt.get("username"):
        raise vol.Invalid("a password without a username is never sent; give the username too", path=["username"])
    return mqtt


MQTT = vol.All(MQTT_FIELDS, password_needs_user)

HTTP = vol.Schema({
    # Loopback unless asked: without a token the LAN must not reach the API by accident. The add-on binds 0.0.0.0
    # behind ingress and a token.
    vol.Optional("host", default="127.0.0.1"): vol.All(str, vol.Length(min=1)),
    vol.Optional("port", default=8099): port,
    vol.Optional("token", default=None): token,
    vol.Optional("ingress_only", default=False): bool,
    # Without a token, Host names other than IPs and local names are refused (DNS rebinding, publish/hosts.py);
    # names listed here are answered too (a name of the owner's own DNS that reaches this service).
    vol.Optional("allowed_hosts", default=list): [vol.All(str, vol.Length(min=1, max=253))],
})

RTSP = vol.Schema({
    vol.Optional("enabled", default=True): bool,  # encodes only while a client watches
    vol.Optional("host", default=None): optional_str,  # None: http.host (the service's one listen address)
    vol.Optional("port", default=8554): vol.Any(0, port),  # 0: any free port (tests)
    vol.Optional("keyframe_seconds", default=2.0): vol.All(vol.Coerce(float), vol.Range(min=0.2, max=60.0)),
})

def remote_detector(detector: dict) -> dict:
    """`provider: kserve` with `url: grpc://host:port` becomes the provider `grpc://host:port` (what the loaders
    take); a url with any other provider is a mistake worth saying."""
    provider, url = detector["provider"], detector.get("url")
    if provider == "kserve":
        if not url:
            raise vol.Invalid("provider kserve needs url: grpc://<server>:8001", path=["url"])
        provider = url
    elif url:
        raise vol.Invalid("url is only read with provider: kserve", path=["url"])
    if is_remote(provider) or provider == url:
        try:
            target_of(provider)
        except ModelError as err:
            raise vol.Invalid(str(err), path=["url"]) from err
    return {**{k: v for k, v in detector.items() if k != "url"}, "provider": provider}


DETECTOR_FIELDS = vol.Schema({
    vol.Optional("model", default=defaults.STREAM_MODEL): vol.All(str, vol.Length(min=1)),
    vol.Optional("family", default=None): nullable(vol.All(str, vol.Length(min=1))),
    vol.Optional("provider", default="cpu"): vol.All(str, vol.Length(min=1)),  # cpu | cuda | ... | kserve
    vol.Optional("url", default=None): optional_str,  # provider kserve: grpc://host:8001 (KServe v2 over gRPC)
    vol.Optional("threads", default=None): nullable(vol.All(int, vol.Range(min=1, max=64))),
    vol.Optional("threshold", default=None): nullable(vol.All(vol.Coerce(float),
                                                                         vol.Range(min=0.0, max=1.0))),
})

DETECTOR = vol.All(DETECTOR_FIELDS, remote_detector)

CAMERA = vol.Schema({
    vol.Required("name"): camera_name,
    vol.Required("url"): camera_url,
    vol.Optional("enabled", default=True): bool,
    vol.Optional("detect_fps", default=5.0): vol.All(vol.Coerce(float), vol.Range(min=0.1, max=60)),
    vol.Optional("preset", default="live"): vol.In(tuple(defaults.PRESETS)),
    vol.Optional("plan", default=None): nullable(plan_spec),  # whole-frame plan; None: the preset's
    vol.Optional("regions", default=None): nullable(plan_spec),  # the look at moving regions; None: the preset's
    vol.Optional("detect_every", default=None): nullable(vol.All(int, vol.Range(min=1, max=30))),
    vol.Optional("detect_size", default=None): nullable(zero_or(128, 4096)),
    vol.Optional("tile", default=0): zero_or(128, 2048),
    vol.Optional("snapshot_interval", default=10.0): vol.All(vol.Coerce(float), vol.Range(min=0.5, max=86400)),
    vol.Optional("style", default=defaults.DEFAULT_STYLE): vol.In(STYLES),
    vol.Optional("shape", default=defaults.DEFAULT_SHAPE): vol.In(SHAPES),
    vol.Optional("target", default="face"): vol.In(TARGETS),  # face | head | person (faceanon.detect.people)
    vol.Optional("person_model", default=None): nullable(vol.All(str, vol.Length(min=1))),  # None: nanodet-person
    vol.Optional("fill_color", default="auto"): colour,
    # None: the preset's (defaults.Preset.margin)
    vol.Optional("margin", default=None): nullable(vol.All(vol.Coerce(float), vol.Range(min=0.0, max=2.0))),
    vol.Optional("hold_seconds", default=defaults.HOLD_SECONDS): vol.All(vol.Coerce(float),
                                                                        vol.Range(min=0.0, max=30.0)),
    vol.Optional("count_hold_seconds", default=defaults.FACE_COUNT_HOLD_S): vol.All(vol.Coerce(float),
                                                                                   vol.Range(min=0.0, max=600.0)),
    # the camera's detector score threshold; None: detector.threshold, else each model's own (its manifest)
    vol.Optional("threshold", default=None): nullable(vol.All(vol.Coerce(float), vol.Range(min=0.05, max=0.95))),
    vol.Optional("deadline_ms", default=2000): vol.All(int, vol.Range(min=50, max=60000)),
    # JPEGs declaring more pixels are refused before decoding (a decompression bomb cannot exhaust the box)
    vol.Optional("max_image_pixels", default=defaults.MAX_IMAGE_PIXELS): vol.All(int, vol.Range(min=100_000,
                                                                                              max=200_000_000)),
    vol.Optional("model", default=None): nullable(vol.All(str, vol.Length(min=1))),
    vol.Optional("restream", default=None): nullable(vol.All(str, vol.Match(r"^rtsps?://\S+$",
                                                                             msg="expected rtsp://host:port/path"))),
    # The owner's say-so to run this camera below the protection floor (faceanon.floors): only this exact sentence.
    vol.Optional("unsafe_settings", default=None): nullable(unsafe_sentence),
})


def unique_names(cameras: list[dict]) -> list[dict]:
    seen: set[str] = set()
    for i, cam in enumerate(cameras):
        if cam["name"] in seen:
            raise vol.Invalid(f"duplicate camera name {cam['name']!r}", path=[i, "name"])
        seen.add(cam["name"])
    return cameras


TOPIC_LEVEL = r"^[A-Za-z0-9_-]{1,64}$"
JOBS = vol.Schema({
    # Snapshot jobs shared by every faceanon of `group` (MQTT 5 shared subscription; faceanon.source.jobs)
    vol.Optional("enabled", default=False): bool,
    vol.Optional("group", default="faceanon"): vol.All(str, vol.Match(TOPIC_LEVEL, msg="expected 1-64 of "
                                                                                        "A-Z a-z 0-9 _ -")),
    vol.Optional("worker", default=None): nullable(vol.All(str, vol.Match(TOPIC_LEVEL, msg="expected 1-64 of "
                                                                                           "A-Z a-z 0-9 _ -"))),
    vol.Optional("frigate_prefix", default="frigate"): nullable(vol.All(str, vol.Match(TOPIC_LEVEL))),
    vol.Optional("model", default=None): nullable(vol.All(str, vol.Length(min=1))),
    vol.Optional("plan", default=None): nullable(plan_spec),  # None: `faceanon image`'s (stills)
    vol.Optional("style", default=defaults.DEFAULT_STYLE): vol.In(STYLES),
    vol.Optional("shape", default=defaults.DEFAULT_SHAPE): vol.In(SHAPES),
    vol.Optional("margin", default=defaults.IMAGE_MARGIN): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=2.0)),
    vol.Optional("unsafe_settings", default=None): nullable(unsafe_sentence),  # faceanon.floors
})

SCHEMA = vol.Schema({
    vol.Optional("mqtt"): nullable(MQTT),
    vol.Optional("http", default={}): section(HTTP),
    vol.Optional("rtsp", default={}): section(RTSP),
    vol.Optional("detector", default={}): section(DETECTOR),
    vol.Optional("log_level", default="info"): vol.All(str, vol.Lower, vol.In(LOG_LEVELS)),
    # What must survive restarts (the service id): null = $XDG_STATE_HOME/faceanon; the add-on: /data
    vol.Optional("state_dir", default=None): optional_str,
    vol.Optional("jobs", default={}): section(JOBS),
    vol.Optional("cameras", default=[]): nullable(vol.All([CAMERA], unique_names)),
})


def key_path(path: list) -> str:
    """['cameras', 1, 'url'] -> 'cameras[1].url'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def reason(err: vol.Invalid) -> str:
    msg = err.error_message or str(err)
    if msg == "extra keys not allowed":
        return "unknown key"
    if msg == "required key not provided":
        return "required key is missing"
    return msg


def validate(data: Any) -> dict:
    """Validate a config dict; fill defaults; raise ConfigError naming the key path(s) and the reason(s)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of keys, got {type(data).__name__}")
    try:
        cfg = SCHEMA(data)
    except vol.MultipleInvalid as errs:
        lines = sorted({f"{key_path(e.path)}: {reason(e)}" for e in errs.errors})
        raise ConfigError("; ".join(lines)) from None
    cfg["cameras"] = cfg["cameras"] or []
    if not cfg["cameras"] and not cfg["jobs"]["enabled"]:
        raise ConfigError("cameras: at least one camera is needed (or jobs.enabled: a snapshot worker)")
    if cfg["jobs"]["enabled"] and cfg.get("mqtt") is None:
        raise ConfigError("jobs: snapshot jobs need an MQTT 5 broker (mosquitto, EMQX): give the mqtt section")
    if cfg.get("mqtt") is None:
        cfg.pop("mqtt", None)  # absent or empty: the service runs its embedded broker
    if cfg["rtsp"]["host"] is None:
        cfg["rtsp"]["host"] = cfg["http"]["host"]
    check_floors(cfg)
    return cfg


def acting(cam: dict, detector: dict) -> dict:
    """The camera config with the detector section's model and threshold where the camera sets none."""
    return {**cam, "model": cam.get("model") or detector.get("model"),
            "threshold": cam["threshold"] if cam.get("threshold") is not None else detector.get("threshold")}


def check_floors(cfg: dict) -> None:
    """ConfigError for the first camera (or the snapshot jobs) set below the protection floor without the owner's
    sentence (faceanon.floors)."""
    from faceanon import floors

    for i, cam in enumerate(cfg["cameras"]):
        weak = floors.below(acting(cam, cfg["detector"]))
        if weak and not floors.allowed(cam):
            key, why = next(iter(weak.items()))
            raise ConfigError(f"cameras[{i}].{key}: {why}; to run this camera so anyway, set cameras[{i}]."
                              f"unsafe_settings to {floors.OVERRIDE!r} (it then reports privacy degraded)")
    jobs = cfg["jobs"]
    weak = floors.below({"style": jobs["style"], "margin": jobs["margin"]}, ("style", "margin"), still=True)
    if jobs["enabled"] and weak and not floors.allowed(jobs):
        key, why = next(iter(weak.items()))
        raise ConfigError(f"jobs.{key}: {why}; to run the jobs so anyway, set jobs.unsafe_settings to "
                          f"{floors.OVERRIDE!r}")


def default_config() -> dict:
    """With no file: one demo camera on the bundled sample clip, looped; no mqtt section (embedded broker)."""
    return with_state_dir(validate({"cameras": [{"name": "demo", "url": str(SAMPLE_CLIP)}]}), None)


def with_state_dir(cfg: dict, path: str | Path | None) -> dict:
    """The config with its state folder: its own `state_dir`, else one of this config file's own
    (identity.instance_state_dir)."""
    if not cfg.get("state_dir"):
        from faceanon.identity import instance_state_dir

        cfg["state_dir"] = str(instance_state_dir(path))
    return cfg


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None = None) -> dict:
    """Read and validate a YAML config file; with no path, the embedded default."""
    if path is None:
        return default_config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # UniqueKeyLoader is a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (at least one camera is needed)")
    try:
        return with_state_dir(validate(data), path)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
