"""Per-camera controls that change while the service runs: camera on/off, mask style and target, detection plan,
threshold and hold time (HTTP `PUT /api/<camera>/controls`, MQTT `<prefix>/<camera>/<control>/set`).

A change is validated by the config's own camera schema (the same messages as a bad config file), then kept in the
state folder, so it survives restarts; at start the kept values are laid over the config file's. When the config
file itself has changed a value since a control set it, the file wins (someone edited it on purpose), with a log
line. No control turns anonymization off (a camera that is off reads nothing and publishes nothing), and none goes
below the protection floor (faceanon.floors).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import voluptuous as vol

from faceanon import floors
from faceanon.config import CAMERA, key_path, reason
from faceanon.detect.plans import PLANS
from faceanon.mask import TARGETS
from faceanon.media import MediaError, write_atomic

log = logging.getLogger("faceanon.service")

CONTROLS_FILE = "controls.json"
CONTROL_KEYS = ("enabled", "style", "target", "plan", "threshold", "hold_seconds")
# The numbers' ranges: the camera schema's (config.CAMERA) within the protection floor (faceanon.floors), with the
# step a slider moves by.
NUMBERS = {"threshold": {"min": 0.05, "max": floors.MAX_THRESHOLD, "step": 0.05},
           "hold_seconds": {"min": floors.MIN_HOLD_S, "max": 30.0, "step": 0.5}}


class ControlError(ValueError):
    """A change the camera schema refuses; the message names the control and the reason."""


def options(*own: str | None) -> dict[str, Any]:
    """What each control takes: the selects' options and the numbers' ranges, all within the protection floor. A
    camera's own plans (the one it runs and the one its config gives it, which may be specs such as `1+2x<=2048` or
    the live preset's `0.75x<=1920>=640`) are among the plan options too, so a changed plan can be set back."""
    plans = [name for name in PLANS if floors.plan_below({"plan": name}) is None]
    plans += [plan for plan in dict.fromkeys(own) if plan and plan not in plans]
    return {"style": [floors.STYLE], "target": list(TARGETS), "plan": plans, **NUMBERS}


def values(cam: dict, default_plan: str, default_threshold: float | None) -> dict[str, Any]:
    """A camera's controls as they act now: its plan and threshold when it sets none are the defaults it runs."""
    out = {key: cam.get(key) for key in CONTROL_KEYS}
    out["plan"] = out["plan"] or default_plan
    out["threshold"] = out["threshold"] if out["threshold"] is not None else default_threshold
    return out


def changed(cam: dict, changes: Any) -> dict:
    """The camera config with `changes` applied, validated like the config file; ControlError otherwise."""
    if not isinstance(changes, dict) or not changes:
        raise ControlError(f"expected a JSON object of controls ({', '.join(CONTROL_KEYS)})")
    unknown = sorted(str(key) for key in changes if key not in CONTROL_KEYS)
    if unknown:
        raise ControlError(f"{unknown[0]}: unknown control (controls: {', '.join(CONTROL_KEYS)})")
    try:
        new = CAMERA({**cam, **changes})
    except vol.MultipleInvalid as errs:
        raise ControlError("; ".join(sorted({f"{key_path(e.path)}: {reason(e)}" for e in errs.errors}))) from None
    # No control goes below the protection floor, whatever the config file allows (faceanon.floors): the owner's
    # override is the file's alone.
    weak = floors.below(new, tuple(key for key, value in changes.items() if cam.get(key) != value))
    if weak:
        raise ControlError("; ".join(f"{key}: {why}" for key, why in weak.items()))
    return new


class ControlStore:
    """The controls' values kept in `<state dir>/controls.json`: {camera: {control: {"value", "config"}}}, where
    `config` is what the config file said when the control was set."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else directory / CONTROLS_FILE
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, dict[str, Any]]] = {}
        if self.path is None:
            return
        try:
            kept = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("controls: %s unreadable (%s); starting from the config file's values", self.path, err)
            return
        if isinstance(kept, dict):
            self._kept = {cam: entries for cam, entries in kept.items() if isinstance(entries, dict)}

    def restore(self, cam: dict) -> dict:
        """The camera config with its kept controls laid over it (each one the schema still takes)."""
        name = cam["name"]
        for key, entry in list(self._kept.get(name, {}).items()):
            if key not in CONTROL_KEYS or not isinstance(entry, dict) or "value" not in entry:
                continue
            if entry.get("config") != cam.get(key):
                log.info("%s: the config file changed %s to %r since it was set to %r; the config file wins",
                         name, key, cam.get(key), entry["value"])
                continue
            try:
                cam = changed(cam, {key: entry["value"]})
            except ControlError as err:
                log.warning("%s: kept control no longer valid, ignored (%s)", name, err)
        return cam

    def keep(self, file_cam: dict, cam: dict) -> None:
        """Keep the camera's control values that differ from its config file's (`file_cam`)."""
        name = cam["name"]
        with self._lock:
            entries = {key: {"value": cam.get(key), "config": file_cam.get(key)}
                       for key in CONTROL_KEYS if cam.get(key) != file_cam.get(key)}
            if entries:
                self._kept[name] = entries
            else:
                self._kept.pop(name, None)
            if self.path is None:
                return
            try:
                write_atomic(self.path, json.dumps(self._kept, indent=1, sort_keys=True).encode())
            except MediaError as err:
                log.warning("%s: controls not kept (%s); they hold until the service restarts", name, err.line())
