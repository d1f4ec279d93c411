"""The protection floor: no setting may let more faces through than the defaults do, without the owner's say-so.

Fail closed covers faults; a setting that leaves faces unmasked is a fault of its own. Each key that changes what
is found or how it is hidden has a floor, set by measurement under the team's rule (a still face, the sample clip's
faces standing still, walkers clips; models/README.md): no value at or above its floor lets more than 1.5x the
defaults' share of faces through. Controls (HTTP, MQTT, Home Assistant) never go below a floor. The config file
may, for one camera, with `unsafe_settings` set to the exact sentence OVERRIDE; that camera then reports
privacy degraded for as long as it runs so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faceanon import defaults
from faceanon.detect.plans import PlanError, resolve_plan, sized

OVERRIDE = "I accept that faces may be shown"
# Whole-frame models whose recall on faces-dev is measured near the default's (models/README.md): other models
# (yunet: 5.7 % leaked on faces-dev where centerface leaves 0.75 %; the small Faster R-CNN: AP 14 %) are below.
FACE_MODELS = ("centerface", "centerface-int8")
# The highest score threshold a camera's whole-frame look may use: a still face at 0.9 went unmasked (the attack
# run); measured per threshold on still faces and walkers (models/README.md).
MAX_THRESHOLD = 0.4
MIN_HOLD_S = 0.5  # a missed face's mask outlives its last detection at least this long
MIN_FPS = 2.0  # frames taken per second: fewer let a walking face cross its own size between looks
# Of the face's size. Cameras and videos (the presets use 0.7 live, 0.5 for files): 0.4 reached or passed the 1.5x
# bar on walkers clips (models/README.md, the protection floor). Snapshot jobs and stills: their default.
MIN_MARGIN = 0.5
MIN_STILL_MARGIN = 0.4
MAX_DETECT_EVERY = 3  # frames between whole-frame looks: the presets' own cadence
STYLE = "fill"  # the only style whose every face pixel changes (blur and pixelate keep the face's colours)
REFERENCE = (1920, 1080)  # a plan's whole-frame look is judged at this camera size


def smallest_face(plan: Any) -> float:
    return float(plan.smallest_face(*REFERENCE))


def preset_look(cam: Mapping[str, Any]) -> float:
    """The smallest still face (px at REFERENCE) the camera's preset resolves at its defaults."""
    preset = defaults.PRESETS[cam.get("preset") or "live"]
    return smallest_face(resolve_plan(preset.plan, preset.model))


def below(cam: Mapping[str, Any], keys: tuple[str, ...] | None = None, still: bool = False) -> dict[str, str]:
    """{key: why} for every key of the camera config (or of `keys`) whose value is below its floor; `still`: the
    settings of still images (snapshot jobs), whose margin floor is theirs."""
    out: dict[str, str] = {}
    want = (lambda key: True) if keys is None else (lambda key: key in keys)
    threshold = cam.get("threshold")
    if want("threshold") and threshold is not None and threshold > MAX_THRESHOLD:
        out["threshold"] = (f"{threshold:g} is above the protection floor ({MAX_THRESHOLD:g}): a higher threshold "
                            "leaves faces the detector is less sure of unmasked")
    hold = cam.get("hold_seconds")
    if want("hold_seconds") and hold is not None and hold < MIN_HOLD_S:
        out["hold_seconds"] = (f"{hold:g} s is under the protection floor ({MIN_HOLD_S:g} s): a face the detector "
                               "misses for a moment would be shown")
    fps = cam.get("detect_fps")
    if want("detect_fps") and fps is not None and fps < MIN_FPS:
        out["detect_fps"] = f"{fps:g} is under the protection floor ({MIN_FPS:g}): faces move past their masks"
    margin, least = cam.get("margin"), MIN_STILL_MARGIN if still else MIN_MARGIN
    if want("margin") and margin is not None and margin < least:
        out["margin"] = (f"{margin:g} is under the protection floor ({least:g}): a mask must cover the whole "
                         "face, not the detector's tighter box")
    style = cam.get("style")
    if want("style") and style is not None and style != STYLE:
        out["style"] = (f"{style} is below the protection floor: it keeps the face's colours, and the rule counts "
                        "31 % (blur) to 96 % (pixelate) of faces as shown; only fill hides every face pixel")
    every = cam.get("detect_every")
    if want("detect_every") and every is not None and every > MAX_DETECT_EVERY:
        out["detect_every"] = (f"{every} is over the protection floor ({MAX_DETECT_EVERY}): still faces would be "
                               "looked for less often")
    if want("regions") and cam.get("regions") is not None:
        out["regions"] = "a region plan of one's own is not measured against the protection floor"
    if want("plan") or want("detect_size") or want("model"):
        why = plan_below(cam)
        if why:
            out["plan" if cam.get("plan") is not None or not (want("detect_size") or want("model")) else
                "detect_size" if cam.get("detect_size") is not None else "model"] = why
    return out


def plan_below(cam: Mapping[str, Any]) -> str | None:
    """Why the camera's whole-frame look (its plan, model and detect_size) is below the preset's; None when not."""
    preset = defaults.PRESETS[cam.get("preset") or "live"]
    model = cam.get("model") or preset.model
    try:
        plan = resolve_plan(cam.get("plan") or preset.plan, model)
    except PlanError as err:
        return str(err)
    if cam.get("detect_size") is not None:
        plan = sized(plan, cam["detect_size"])
    weak = [m for m in plan.models if m not in FACE_MODELS]
    if weak:
        return (f"model {weak[0]} is below the protection floor: not among the measured face models "
                f"({', '.join(FACE_MODELS)}), it finds fewer faces")
    mine, floor = smallest_face(plan), preset_look(cam)
    if mine > floor * 1.05:
        return (f"below the protection floor: its whole-frame look resolves still faces from {mine:.0f} px on a "
                f"1080p camera, the preset's from {floor:.0f} px, and smaller faces would be shown")
    return None


def allowed(cam: Mapping[str, Any]) -> bool:
    """The owner allowed this camera below the floors (the config file only)."""
    return cam.get("unsafe_settings") == OVERRIDE


NO_FACE = ("its settings find no face in the canary image (two clear faces): check its plan, model and threshold; "
           "faces may be shown")


def override_reason(cam: Mapping[str, Any], detector: Mapping[str, Any]) -> str | None:
    """Why the camera reads as privacy degraded for the owner's override, or None."""
    from faceanon.config import acting

    if not allowed(cam):
        return None
    weak = below(acting(dict(cam), dict(detector)))
    return f"runs below the protection floor by the owner's unsafe_settings ({', '.join(weak)})" if weak else None


def finds_canary(scanner: Any) -> bool:
    """The camera's whole-frame look, as set now, still finds a face in the canary image (the settings check
    that runs after every load and change of plan, model, threshold or target)."""
    from faceanon.detect.canary import canary_image

    return len(scanner.scan(canary_image())) > 0
