"""The Home Assistant Supervisor's rules for an app's config.yaml, rebuilt for tests (no Supervisor package here).

Sources: home-assistant/supervisor `supervisor/addons/validate.py` (config keys), `supervisor/addons/options.py`
(the options mini-language: RE_SCHEMA_ELEMENT and `_single_validate`), developers.home-assistant
`docs/apps/configuration.md` (2026: arch is aarch64/amd64 only).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import voluptuous as vol

ARCHES = ("aarch64", "amd64")
STARTUP = ("initialize", "system", "services", "application", "once")
BOOT = ("auto", "manual", "manual_only")
STAGES = ("stable", "experimental", "deprecated")
RE_SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
RE_SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
RE_VOLUME = re.compile(r"^(data|config|ssl|addons|backup|share|media|homeassistant_config|all_addon_configs|"
                       r"addon_config)(?::(rw|ro))?$")
RE_PORT_KEY = re.compile(r"^\d{1,5}/(tcp|udp)$")
RE_WATCHDOG = re.compile(r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$")
RE_VERSION = re.compile(r"^[\w.+\-]+$")

# supervisor/addons/options.py, verbatim.
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)


def _port(value: Any) -> int:
    port = vol.Coerce(int)(value)
    if not 1 <= port <= 65535:
        raise vol.Invalid(f"port {port} out of range")
    return port


def _ports(value: Any) -> dict:
    if not isinstance(value, dict):
        raise vol.Invalid("ports must be a mapping")
    for key, host in value.items():
        if not RE_PORT_KEY.match(str(key)):
            raise vol.Invalid(f"port key {key!r} is not NNNN/tcp or NNNN/udp")
        if host is not None:
            _port(host)
    return value


def _url(value: Any) -> str:
    parts = urlparse(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise vol.Invalid(f"{value!r} is not an http(s) URL")
    return str(value)


def _schema_element(value: Any) -> Any:
    """A schema value: a type string, a dict of them, or a one-element list of either (no list in a list)."""
    if isinstance(value, str):
        if not RE_SCHEMA_ELEMENT.match(value):
            raise vol.Invalid(f"unknown schema type {value!r}")
        return value
    if isinstance(value, dict):
        return {str(k): _schema_element(v) for k, v in value.items()}
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], list):
        return [_schema_element(value[0])]
    raise vol.Invalid(f"bad schema element {value!r}")


# The keys faceanon uses (and their neighbours), with the Supervisor's types. PREVENT_EXTRA here, although the
# Supervisor drops unknown keys silently: a misspelt key (`ingres: true`) would otherwise just vanish.
CONFIG_SCHEMA = vol.Schema({
    vol.Required("name"): str,
    vol.Required("version"): vol.All(str, vol.Match(RE_VERSION)),
    vol.Required("slug"): vol.Match(RE_SLUG),
    vol.Required("description"): str,
    vol.Required("arch"): vol.All([vol.In(ARCHES)], vol.Length(min=1), vol.Unique()),
    vol.Optional("url"): _url,
    vol.Optional("startup"): vol.In(STARTUP),
    vol.Optional("boot"): vol.In(BOOT),
    vol.Optional("init"): bool,
    vol.Optional("stage"): vol.In(STAGES),
    vol.Optional("services"): [vol.Match(RE_SERVICE)],
    vol.Optional("discovery"): [str],
    vol.Optional("hassio_api"): bool,
    vol.Optional("homeassistant_api"): bool,
    vol.Optional("ingress"): bool,
    vol.Optional("ingress_port"): vol.Any(_port, vol.Equal(0)),
    vol.Optional("ingress_entry"): str,
    vol.Optional("ingress_stream"): bool,
    vol.Optional("panel_icon"): vol.Match(r"^mdi:[a-z0-9-]+$"),
    vol.Optional("panel_title"): str,
    vol.Optional("panel_admin"): bool,
    vol.Optional("watchdog"): vol.Match(RE_WATCHDOG),
    vol.Optional("ports"): _ports,
    vol.Optional("ports_description"): {str: str},
    vol.Optional("map"): [vol.Match(RE_VOLUME)],
    vol.Optional("homeassistant"): str,
    vol.Optional("image"): str,
    vol.Optional("timeout"): vol.All(int, vol.Range(min=10, max=300)),
    vol.Optional("options"): dict,
    vol.Optional("schema"): vol.Any(vol.Schema({str: _schema_element}), False),
}, extra=vol.PREVENT_EXTRA)


class OptionsError(ValueError):
    """An options value the Supervisor would refuse."""


def validate_options(schema: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Validate options as the Supervisor does before it starts an app (AddonOptions.__call__), except that an
    unknown option is an error here (the Supervisor drops it with a warning: a mistake either way)."""
    return _validate_dict(schema, options, "root")


def _validate_element(typ: Any, value: Any, key: str) -> Any:
    if isinstance(typ, list):
        if not isinstance(value, list):
            raise OptionsError(f"option {key!r}: expected a list, got {value!r}")
        return [_validate_element(typ[0], item, key) for item in value]
    if isinstance(typ, dict):
        if not isinstance(value, dict):
            raise OptionsError(f"option {key!r}: expected a mapping, got {value!r}")
        return _validate_dict(typ, value, key)
    return _validate_single(typ, value, key)


def _validate_dict(schema: dict[str, Any], data: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if key not in schema:
            raise OptionsError(f"option {key!r} in {where} has no schema entry")
        out[key] = _validate_element(schema[key], value, key)
    for key in set(schema) - set(out):
        typ = schema[key]
        if isinstance(typ, list) and typ:
            typ = typ[0]
        if not (isinstance(typ, str) and typ.endswith("?")):
            raise OptionsError(f"missing required option {key!r} in {where}")
    return out


def _validate_single(typ: str, value: Any, key: str) -> Any:
    if value is None:
        raise OptionsError(f"missing required option {key!r}")
    match = RE_SCHEMA_ELEMENT.match(typ)
    if not match:
        raise OptionsError(f"option {key!r}: unknown type {typ!r}")
    bounds = {name[2:]: float(match.group(name)) for name in
              ("i_min", "i_max", "f_min", "f_max", "s_min", "s_max", "p_min", "p_max") if match.group(name)}
    base = typ.rstrip("?")
    try:
        if base.startswith(("str", "password")):
            # The Supervisor's `vol.All(str(value), ...)` only passes a value that already is that string.
            if not isinstance(value, str):
                raise OptionsError(f"option {key!r}: expected a string, got {value!r}")
            _check_range(len(value), bounds, key, "length")
            return value
        if base.startswith("int"):
            number = vol.Coerce(int)(value)
            _check_range(number, bounds, key, "value")
            return number
        if base.startswith("float"):
            number = vol.Coerce(float)(value)
            _check_range(number, bounds, key, "value")
            return number
        if base == "bool":
            return vol.Boolean()(value)
        if base == "email":
            return vol.Email()(value)
        if base == "url":
            return vol.Url()(value)
        if base == "port":
            return _port(value)
        if base.startswith("match"):
            return vol.Match(match.group("match"))(str(value))
        if base.startswith("list"):
            return vol.In(match.group("list").split("|"))(str(value))
    except vol.Invalid as err:
        raise OptionsError(f"option {key!r}: {err} (got {value!r} for {typ})") from None
    raise OptionsError(f"option {key!r}: type {typ!r} is not supported by this check")


def _check_range(number: float, bounds: dict[str, float], key: str, what: str) -> None:
    if "min" in bounds and number < bounds["min"]:
        raise OptionsError(f"option {key!r}: {what} {number} below {bounds['min']}")
    if "max" in bounds and number > bounds["max"]:
        raise OptionsError(f"option {key!r}: {what} {number} above {bounds['max']}")
