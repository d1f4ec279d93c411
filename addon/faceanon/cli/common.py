"""What every command shares: one-line messages, progress bars, exit codes and the detector and mask options."""

from __future__ import annotations

import argparse
import sys

from faceanon import defaults
from faceanon.detect import FAMILIES, FaceDetector, ModelError, load_detector, load_models
from faceanon.detect.people import PeopleLook
from faceanon.detect.plan import DetectPlan, Pass, Scanner
from faceanon.detect.plans import PLANS, PlanError, capped, resolve_plan
from faceanon.mask import SHAPES, STYLES, TARGETS, MaskStyle, parse_color

PROG = "faceanon"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def say(message: str) -> None:
    """One line on stderr, without breaking a running progress bar."""
    from tqdm import tqdm

    tqdm.write(f"{PROG}: {message}", file=sys.stderr)


LOG_EVERY_S = 10.0  # not on a terminal: a progress line this often


def progress(iterable=None, **kw):
    """A progress bar with the total, the rate and the time left on a terminal; elsewhere (a pipe, a log, a CI job)
    one plain line every LOG_EVERY_S seconds and one at the end, as ffmpeg and deface users expect."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kw)
    return PlainProgress(iterable, **kw)


class PlainProgress:
    """tqdm's small API (iterate, update, close) as a line every LOG_EVERY_S seconds on stderr."""

    def __init__(self, iterable=None, desc: str = "", unit: str = "it", total: int | None = None, **_kw) -> None:
        import time

        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = 0
        self._clock = time.monotonic
        self.started = self._last = self._clock()

    def __iter__(self):
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._clock() - self._last >= LOG_EVERY_S:
            self._line()

    def _line(self) -> None:
        self._last = self._clock()
        took = max(self._last - self.started, 1e-9)
        rate = self.n / took
        done = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)" if self.total else \
            f"{self.n} {self.unit}"
        left = f", {(self.total - self.n) / rate:.0f} s left" if self.total and rate > 0 else ""
        print(f"{PROG}: {self.desc}: {done}, {rate:.1f} {self.unit}/s{left}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n:  # the final figures, once
            self._line()


def add_detector_options(p: argparse.ArgumentParser, plan: str | None, model: str | None) -> None:
    """Detector options; plan/model None: the command's preset decides (and says so in --help)."""
    g = p.add_argument_group("detector")
    preset = "the preset's"
    g.add_argument("--plan", default=plan, metavar="NAME|PASSES",
                   help=f"detection plan (whole frame): {', '.join(PLANS)} or passes like 1+2x<=2048 (see "
                        f"`faceanon models`; default {plan or preset})")
    g.add_argument("--model", default=model, metavar="NAME|FILE",
                   help=f"the plan's model: a bundled name (`faceanon models`; default {model or preset}), an .onnx "
                        "file (with --family) or a model manifest .json")
    g.add_argument("--family", choices=sorted(FAMILIES), help="decoder family of an .onnx file")
    g.add_argument("--threshold", type=float, metavar="T",
                   help="score threshold of the plan's model (default: the model's; other models keep theirs)")
    g.add_argument("--detect-size", type=int, metavar="N",
                   help="cap every pass at N px on the long side, for speed on big frames (0 = no cap)")
    g.add_argument("--tile", type=int, metavar="N",
                   help="also scan native-resolution tiles of about N px (faces of 10-24 px in big frames)")
    g.add_argument("--provider", default="cpu", metavar="P",
                   help="onnxruntime execution provider: cpu, cuda, openvino, ..., or grpc://host:8001 for a "
                        "KServe v2 server (Triton, OpenVINO Model Server) serving the model (default cpu)")
    g.add_argument("--threads", type=int, metavar="N", help="detector threads (default: cores, at most 4)")


def add_mask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask")
    g.add_argument("--style", choices=STYLES, default=defaults.DEFAULT_STYLE,
                   help="how faces are hidden (default %(default)s; fill is the only style that changes every "
                        "face pixel, see models/README.md)")
    g.add_argument("--target", choices=TARGETS, default="face",
                   help="what is masked: faces; every head (faces grown over hair and ears, and the heads of people "
                        "a person detector finds with no face seen); or every person whole (default %(default)s)")
    g.add_argument("--shape", choices=SHAPES, default=defaults.DEFAULT_SHAPE, help="mask shape (default %(default)s)")
    g.add_argument("--margin", type=float, default=None, metavar="M",
                   help=f"grow each face box by this fraction of its size (default: {defaults.IMAGE_MARGIN} for "
                        f"images, {defaults.DEFAULT_MARGIN} for video, {defaults.LIVE_MARGIN} with video --preset "
                        "live; "
                        f"faces under {defaults.SMALL_FACE} px get up to {defaults.SMALL_MARGIN} more)")
    g.add_argument("--fill-color", default="auto", metavar="auto|#RRGGBB",
                   help="colour of the fill style (default auto: black, or navy where the face or what its mask "
                        "covers is already near black, so the cover stays visible)")


def plan_from(args: argparse.Namespace) -> DetectPlan:
    """The plan the options ask for; PlanError when it cannot be read."""
    plan = resolve_plan(args.plan, args.model)
    if args.tile:
        plan = DetectPlan((*plan.passes, Pass(1.0, tile=args.tile)), plan.model, plan.name + f"+tile{args.tile}")
    return capped(plan, args.detect_size or 0)


def mask_style_from(args: argparse.Namespace, margin: float = defaults.IMAGE_MARGIN) -> MaskStyle:
    """The mask options; `margin` where --margin is not given (the still images' default, or a preset's)."""
    return MaskStyle(style=args.style, shape=args.shape, margin=margin if args.margin is None else args.margin,
                     small_margin=defaults.SMALL_MARGIN, small_face=defaults.SMALL_FACE,
                     fill_color=parse_color(args.fill_color), target=args.target)


def check_options(args: argparse.Namespace) -> str | None:
    """A reason the options are unusable, or None."""
    for name in ("detect_size", "tile"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            return f"--{name.replace('_', '-')} must be 0 or more, not {value}"
    tile = getattr(args, "tile", None)
    if tile and tile < 64:
        return f"--tile must be 0 (off) or at least 64 px, not {tile}"
    threshold = getattr(args, "threshold", None)
    if threshold is not None and not 0 <= threshold <= 1:
        return f"--threshold must be between 0 and 1, not {threshold}"
    margin = getattr(args, "margin", None)
    if margin is not None and not 0 <= margin <= 5:
        return f"--margin must be between 0 and 5, not {margin}"
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        return f"--threads must be 1 or more, not {threads}"
    if getattr(args, "fill_color", None) is not None:
        try:
            parse_color(args.fill_color)
        except ValueError as err:
            return f"--fill-color: {err}"
    if getattr(args, "plan", None) is not None:
        try:
            resolve_plan(args.plan)
        except PlanError as err:
            return f"--plan: {err}"
    return None


def load_plan(plan: DetectPlan, family: str | None = None, provider: str = "cpu",
              threads: int | None = None) -> dict[str, FaceDetector]:
    """Every model the plan needs, loaded; ModelError (naming the model) on the first that cannot load."""
    return load_models(plan.models, family, provider, threads)


def build_people(args: argparse.Namespace) -> PeopleLook | None:
    """The person detector's look for targets head and person (ModelError on failure); None for target face."""
    if getattr(args, "target", "face") == "face":
        return None
    return PeopleLook(load_detector(defaults.PERSON_MODEL, None, args.provider, args.threads), args.target)


def build_scanner(args: argparse.Namespace, floor: float | None = None) -> Scanner:
    """Load the plan's detectors (ModelError on failure) and wrap them in a Scanner."""
    plan = plan_from(args)
    detectors = load_plan(plan, args.family, args.provider, args.threads)
    return Scanner(detectors, plan, args.threshold if floor is None else floor)


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "PROG", "ModelError", "add_detector_options",
           "add_mask_options", "build_people", "build_scanner", "check_options", "load_plan", "mask_style_from",
           "plan_from", "progress", "say"]
