"""Named detection plans, and the short syntax users write their own in.

A plan is written as passes joined by `+`; a pass is `[MODEL@]SCALE[x][<=MAX][>=MIN][:flip][:tileN][:tT]`:
`centerface@1+2x<=2048` looks at the frame at native size and enlarged twice (at most 2048 px on the long side);
`yunet@2x:flip` is YuNet on the frame doubled and mirrored; `1:tile640` is native-resolution tiles of 640 px;
`:t0.3` sets that pass's score threshold. A pass without a model uses the plan's model.

Each named plan's leak, collateral and cost are measured in models/README.md (`faceanon eval`, `faceanon bench`).
"""

from __future__ import annotations

import re
from dataclasses import replace

from faceanon.detect.plan import DetectPlan, Pass

# fast: one native look. balanced: plus an enlarged look for faces of 10-20 px. max: plus a shrunk look for
# large, blurry or upscaled faces; the image default (it leaked least at every image size tried).
PLANS: dict[str, DetectPlan] = {
    "fast": DetectPlan((Pass(1.0),), name="fast"),
    "balanced": DetectPlan((Pass(1.0), Pass(2.0, max_side=2048)), name="balanced"),
    "max": DetectPlan((Pass(0.5), Pass(1.0), Pass(2.0, max_side=3072)), name="max"),
}

_PASS = re.compile(r"""^(?:(?P<model>[^@:+]+)@)?(?P<scale>\d+(?:\.\d+)?)x?
                       (?:<=(?P<max>\d+)(?:px)?)?(?:>=(?P<min>\d+)(?:px)?)?
                       (?P<opts>(?::[a-z]+[\d.]*)*)$""", re.X)


class PlanError(ValueError):
    """A plan name or spec that cannot be used; the message says why."""


def parse_pass(text: str) -> Pass:
    m = _PASS.match(text.strip())
    if not m:
        raise PlanError(f"cannot read pass {text!r} (expected [MODEL@]SCALE[x][<=MAX][>=MIN][:flip][:tileN][:tT])")
    scale = float(m["scale"])
    if not 0.05 <= scale <= 8:
        raise PlanError(f"pass {text!r}: scale must be from 0.05 to 8")
    flip, tile, threshold = False, 0, None
    for opt in filter(None, (m["opts"] or "").split(":")):
        if opt == "flip":
            flip = True
        elif opt.startswith("tile") and opt[4:].isdigit() and int(opt[4:]) >= 64:
            tile = int(opt[4:])
        elif opt.startswith("t") and re.fullmatch(r"t(0(\.\d+)?|1(\.0+)?)", opt):
            threshold = float(opt[1:])
        else:
            raise PlanError(f"pass {text!r}: unknown option :{opt} (flip, tileN with N >= 64, tT with 0 <= T <= 1)")
    return Pass(scale=scale, max_side=int(m["max"] or 0), min_side=int(m["min"] or 0),
                model=(m["model"] or None), flip=flip, tile=tile, threshold=threshold)


def resolve_plan(spec: str | DetectPlan, model: str | None = None, merge: str | None = None) -> DetectPlan:
    """A named plan or a spec (`centerface@1+2x<=2048`); `model` replaces the default model of the plan."""
    if isinstance(spec, DetectPlan):
        plan = spec
    elif spec.strip() in PLANS:
        plan = PLANS[spec.strip()]
    else:
        parts = [p for p in spec.split("+")]
        if not spec.strip() or any(not p.strip() for p in parts):
            raise PlanError(f"unknown plan {spec!r}: use one of {', '.join(PLANS)} or passes like 1+2x<=2048")
        try:
            passes = tuple(parse_pass(p) for p in parts)
        except PlanError as err:
            if len(parts) == 1 and not re.match(r"^[\w.-]*@?\d", spec.strip()):
                raise PlanError(f"unknown plan {spec!r}: use one of {', '.join(PLANS)} or passes like "
                                "1+2x<=2048") from None
            raise err
        plan = DetectPlan(passes, name=spec.strip())
    plan = plan.with_model(model) if model else plan
    return replace(plan, merge=merge) if merge else plan


def sized(plan: DetectPlan, max_side: int) -> DetectPlan:
    """The plan with every pass's long-side cap set to `max_side` px (0: no cap, the native size): a camera's
    `detect_size`, which may raise the preset's cap as well as lower it. A shrinking pass with a floor (the live
    preset's `0.75x<=1920>=640`) becomes a native one, so the look is `max_side` px (or native) as asked."""
    passes = tuple(Pass(1.0 if p.scale < 1 and p.min_side else p.scale, max_side,
                        min(p.min_side, max_side) if max_side else p.min_side, p.model, p.flip, p.tile, p.threshold)
                   for p in plan.passes)
    return DetectPlan(passes, plan.model, plan.name, plan.tile_overlap, plan.tiles_per_call)


def capped(plan: DetectPlan, max_side: int) -> DetectPlan:
    """The plan with every pass's long side capped at `max_side` px (0: unchanged)."""
    if max_side <= 0:
        return plan
    passes = tuple(Pass(p.scale, min(p.max_side or max_side, max_side), min(p.min_side, max_side), p.model, p.flip,
                        p.tile, p.threshold) for p in plan.passes)
    return DetectPlan(passes, plan.model, plan.name, plan.tile_overlap, plan.tiles_per_call)
