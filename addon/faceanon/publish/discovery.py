"""Home Assistant MQTT discovery of the cameras (one device per camera, its sensors and its controls), and the
controls' MQTT payloads. Names, units and meanings match the integration's entities (custom_components/faceanon)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from faceanon import controls
from faceanon.publish import CameraFeed

STATE_PERIOD = 30.0  # seconds between `<camera>/state` publishes (also on a privacy or face-count change)
EXPIRE_AFTER = int(3 * STATE_PERIOD)  # state-fed sensors go unavailable when a frozen service stops sending


def node_id(topic_prefix: str) -> str:
    """Discovery node id / unique-id stem: the topic prefix with only the characters HA allows there."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", topic_prefix) or "faceanon"


def discovery_configs(feeds: Iterable[CameraFeed], topic_prefix: str, discovery_prefix: str,
                      version: str, commands: bool = True) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: {config topic: payload}, one device per camera with its entities; its
    controls (switch, selects, numbers) only when MQTT commands are on."""
    node = node_id(topic_prefix)
    origin = {"name": "faceanon", "sw_version": version}
    configs: dict[str, dict[str, Any]] = {}
    for feed in feeds:
        cam = feed.name
        base = f"{topic_prefix}/{cam}"
        device = {"identifiers": [f"{node}_{cam}"], "name": cam.replace("_", " ").title(),
                  "manufacturer": "faceanon", "model": "Face anonymizer", "sw_version": version}
        entities: list[tuple[str, str, dict[str, Any]]] = [
            # name None: the camera is the device's main feature, so HA names it after the device.
            # Attributes from `info` (model, size, RTSP port), which changes rarely: volatile figures in
            # attributes would write a recorder row each time.
            ("camera", "snapshot", {"name": None, "topic": f"{base}/snapshot", "icon": "mdi:cctv",
                                    "json_attributes_topic": f"{base}/info"}),
            # Names, units and meanings as the integration's entities (custom_components/faceanon).
            ("sensor", "faces", {"name": "Faces", "state_topic": f"{base}/faces", "state_class": "measurement",
                                 "unit_of_measurement": "faces", "icon": "mdi:face-recognition"}),
            # People in view: counted by the person detector of the head and person targets (unknown otherwise).
            ("sensor", "people", {"name": "People", "state_topic": f"{base}/people", "state_class": "measurement",
                                  "unit_of_measurement": "people", "icon": "mdi:account-group"}),
            # Someone there: a face, or a person with the head and person targets (the service's held counts).
            ("binary_sensor", "occupancy", {"name": "Occupancy", "state_topic": f"{base}/state",
                                            "value_template": "{{ 'ON' if (value_json.faces or 0) > 0 or "
                                                              "(value_json.people or 0) > 0 else 'OFF' }}",
                                            "device_class": "occupancy", "payload_on": "ON", "payload_off": "OFF"}),
            ("binary_sensor", "privacy_degraded", {"name": "Privacy degraded",
                                                   "state_topic": f"{base}/privacy_degraded",
                                                   "device_class": "problem", "payload_on": "ON",
                                                   "payload_off": "OFF"}),
            ("sensor", "fps", {"name": "Frame rate", "state_topic": f"{base}/state",
                               "value_template": "{{ value_json.fps }}",
                               "unit_of_measurement": "fps", "state_class": "measurement",
                               "suggested_display_precision": 1, "entity_category": "diagnostic",
                               "enabled_by_default": False,  # as the integration's: they fill the recorder
                               "icon": "mdi:speedometer", "expire_after": EXPIRE_AFTER}),
            ("sensor", "detect_ms_p95", {"name": "Detection latency (p95)", "state_topic": f"{base}/state",
                                         "value_template": "{{ value_json.detect_ms_p95 }}",
                                         "unit_of_measurement": "ms", "device_class": "duration",
                                         "state_class": "measurement", "suggested_display_precision": 0,
                                         "entity_category": "diagnostic", "enabled_by_default": False,
                                         "icon": "mdi:timer-outline",
                                         "expire_after": EXPIRE_AFTER}),
            ("sensor", "fail_closed_frames", {"name": "Fail-closed frames", "state_topic": f"{base}/state",
                                              "value_template": "{{ value_json.fail_closed_frames }}",
                                              "unit_of_measurement": "frames", "state_class": "total_increasing",
                                              "entity_category": "diagnostic", "icon": "mdi:shield-lock-outline",
                                              "expire_after": EXPIRE_AFTER}),
        ]
        controlled = [(component, key, {**fields, "command_topic": f"{base}/{key}/set",
                                        "state_topic": f"{base}/{key}/state", "entity_category": "config"})
                      for component, key, fields in (control_entities(feed) if commands else [])]
        for component, key, fields in entities + controlled:
            # Available while the service AND this camera are: a dead camera is unavailable, not "0 faces". A
            # control only needs the service: a camera that is off must still be switched on again.
            availability = [{"topic": f"{topic_prefix}/available"}]
            if "command_topic" not in fields:
                availability.append({"topic": f"{base}/available"})
            payload = {**fields, "unique_id": f"{node}_{cam}_{key}", "availability": availability,
                       "availability_mode": "all",
                       "payload_available": "online", "payload_not_available": "offline",
                       "device": device, "origin": origin}
            configs[f"{discovery_prefix}/{component}/{node}/{cam}_{key}/config"] = payload
    return configs


class _Removed:
    """A camera known by its name alone: one no longer configured, whose discovery is to be cleared."""

    controls = None

    def __init__(self, name: str) -> None:
        self.name = name


def camera_config_topics(camera: str, topic_prefix: str, discovery_prefix: str) -> list[str]:
    """Every discovery config topic a camera of this name has, its controls' included."""
    return list(discovery_configs([_Removed(camera)], topic_prefix, discovery_prefix, ""))  # type: ignore[list-item]


def control_entities(feed: CameraFeed) -> list[tuple[str, str, dict[str, Any]]]:
    """The camera's controls (faceanon.controls) as a switch, selects and numbers."""
    plan = (getattr(feed, "controls", None) or {}).get("plan")
    options = controls.options(plan, getattr(feed, "configured_plan", None))
    number = {"mode": "slider"}
    return [
        ("switch", "enabled", {"name": "Camera", "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:cctv"}),
        ("select", "style", {"name": "Mask style", "options": options["style"], "icon": "mdi:blur"}),
        ("select", "target", {"name": "Mask target", "options": options["target"], "icon": "mdi:account-box"}),
        ("select", "plan", {"name": "Detection plan", "options": options["plan"], "icon": "mdi:magnify-scan"}),
        ("number", "threshold", {**number, "name": "Detection threshold", **options["threshold"],
                                 "icon": "mdi:tune-vertical"}),
        ("number", "hold_seconds", {**number, "name": "Hold time", **options["hold_seconds"],
                                    "unit_of_measurement": "s", "device_class": "duration",
                                    "icon": "mdi:timer-sand"}),
    ]


def control_payload(key: str, value: Any) -> str:
    """A control's value as its MQTT state: ON/OFF, a number or an option."""
    if key == "enabled":
        return "ON" if value else "OFF"
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def control_value(key: str, payload: bytes) -> Any:
    """A `<control>/set` payload as the control's value; ValueError when it cannot be one."""
    text = payload.decode("utf-8", "strict").strip()
    if key == "enabled":
        if text.upper() not in ("ON", "OFF"):
            raise ValueError(f"expected ON or OFF, got {text[:40]!r}")
        return text.upper() == "ON"
    if key in controls.NUMBERS:
        return float(text)
    return text
