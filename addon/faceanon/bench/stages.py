"""`faceanon bench`: where the time of one video frame goes, next to a ceiling measured in the same run.

Per size (640x360, 1280x720, 1920x1080 by default) a real clip is re-encoded at that size, then frames go through
decode -> detect -> hold -> mask -> JPEG encode (the pipeline) and through decode -> JPEG encode alone (the baseline:
nothing can run faster than that). Pipeline and baseline take turns in short rounds, in alternating order, and the
medians are reported, so a noisy shared machine hurts both alike. Then every model's detector alone is timed at
native resolution at each size, models interleaved the same way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from faceanon import defaults
from faceanon.bench import SAMPLE_CLIP, SHARED_DATA

SAMPLE_GIF = SAMPLE_CLIP
SHARED_CLIP = SHARED_DATA / "video" / "vtest.avi"
SIZES = ((640, 360), (1280, 720), (1920, 1080))
STAGES = ("decode", "detect", "hold", "mask", "encode")
ROUND_FRAMES = 4  # frames per turn; short turns interleave finely
CLIP_FRAMES = 48  # frames re-encoded per size (looped while measuring)


def add_bench_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip", metavar="PATH", help="video to measure with (default: the shared vtest.avi if present, "
                                                  "else the bundled sample GIF)")
    p.add_argument("--seconds", type=float, default=30.0, metavar="S",
                   help="rough time budget, split between the stage and the model measurements (default 30)")
    p.add_argument("--models", metavar="A,B,C", help="models for the detector comparison (default: every bundled)")
    p.add_argument("--plans", metavar="A,B,C", help="named plans to time (default: every named plan)")
    p.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), metavar="WxH,...",
                   help="frame sizes (default 640x360,1280x720,1920x1080)")
    p.add_argument("--model", default=defaults.VIDEO_MODEL, metavar="NAME",
                   help=f"model of the pipeline run (default {defaults.VIDEO_MODEL}, as `faceanon video`)")
    p.add_argument("--provider", default="cpu", metavar="P", help="onnxruntime execution provider (default cpu)")
    p.add_argument("--threads", type=int, metavar="N", help="detector threads (default: cores, at most 4)")
    p.add_argument("--remote", metavar="grpc://HOST:PORT",
                   help="also time each model on this KServe v2 server (Triton, OpenVINO Model Server), "
                        "interleaved with the local runs, and print the round trip's overhead")
    p.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")


def say(message: str) -> None:
    print(f"faceanon: {message}", file=sys.stderr, flush=True)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, _, h = part.strip().lower().partition("x")
        if not (w.isdigit() and h.isdigit()) or int(w) < 16 or int(h) < 16:
            raise ValueError(f"--sizes: {part!r} is not WIDTHxHEIGHT")
        out.append((int(w), int(h)))
    return out


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` frames of a video (all of them when None), as OpenCV decodes them."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def encode_clip(frames: list[np.ndarray], size: tuple[int, int], folder: Path) -> tuple[Path, str]:
    """The frames at `size` as H.264 (ffmpeg, as cameras send) or, without ffmpeg, MPEG-4 part 2 (OpenCV)."""
    w, h = size
    resized = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    if shutil.which("ffmpeg"):
        out = folder / f"clip{w}x{h}.mp4"
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{w}x{h}", "-r", "10", "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
               "-pix_fmt", "yuv420p", "-g", "10", str(out)]
        proc = subprocess.run(cmd, input=b"".join(f.tobytes() for f in resized), capture_output=True, timeout=300)
        if proc.returncode == 0:
            return out, "h264"
    out = folder / f"clip{w}x{h}.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 10, size)
    for f in resized:
        writer.write(f)
    writer.release()
    return out, "mjpeg"


class LoopingClip:
    """Decodes a clip over and over (reopening at the end), timing each decode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(str(path))

    def read(self) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(str(self.path))
            ok, frame = self.cap.read()
            if not ok:
                raise RuntimeError(f"{self.path}: cannot decode")
        return frame, time.perf_counter() - t0


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else float("nan")


def measure_stages(clips: dict[tuple[int, int], Path], scanner_for, budget_s: float) -> dict:
    """Interleaved pipeline and baseline turns per size until the budget is spent (at least one round)."""
    from faceanon.hold import Hold
    from faceanon.mask import MaskStyle, apply_masks

    style = MaskStyle(defaults.DEFAULT_STYLE, defaults.DEFAULT_SHAPE, defaults.DEFAULT_MARGIN)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 90]
    state = {size: {"clip": LoopingClip(path), "scanner": scanner_for(), "hold": Hold(defaults.HOLD_SECONDS),
                    "t": 0.0, "pipe": {s: [] for s in (*STAGES, "total")}, "base": {"decode": [], "encode": [],
                                                                                     "total": []}}
             for size, path in clips.items()}
    for st in state.values():  # warm-up: first inference per input shape is slow
        st["scanner"].scan(st["clip"].read()[0])
    deadline = time.monotonic() + budget_s
    rounds = 0
    while rounds < 1 or time.monotonic() < deadline:
        for st in state.values():
            order = ("pipe", "base") if rounds % 2 == 0 else ("base", "pipe")
            for mode in order:
                for _ in range(ROUND_FRAMES):
                    frame, t_dec = st["clip"].read()
                    if mode == "base":
                        t0 = time.perf_counter()
                        cv2.imencode(".jpg", frame, jpeg)
                        t_enc = time.perf_counter() - t0
                        for k, v in (("decode", t_dec), ("encode", t_enc), ("total", t_dec + t_enc)):
                            st["base"][k].append(v)
                        continue
                    st["t"] += 0.1
                    t0 = time.perf_counter()
                    found = st["scanner"].scan(frame)
                    t1 = time.perf_counter()
                    boxes = st["hold"].update(found.boxes, st["t"])
                    t2 = time.perf_counter()
                    apply_masks(frame, boxes, style)
                    t3 = time.perf_counter()
                    cv2.imencode(".jpg", frame, jpeg)
                    t4 = time.perf_counter()
                    times = {"decode": t_dec, "detect": t1 - t0, "hold": t2 - t1, "mask": t3 - t2, "encode": t4 - t3}
                    times["total"] = sum(times.values())
                    for k, v in times.items():
                        st["pipe"][k].append(v)
        rounds += 1
    out = {}
    for (w, h), st in state.items():
        pipe = {k: median_ms(v) for k, v in st["pipe"].items()}
        base = {k: median_ms(v) for k, v in st["base"].items()}
        out[f"{w}x{h}"] = {"frames": len(st["pipe"]["total"]), "pipeline_ms": pipe, "baseline_ms": base,
                           "pipeline_fps": 1000 / pipe["total"], "baseline_fps": 1000 / base["total"],
                           "ratio": base["total"] / pipe["total"]}
    return out


def measure_lookers(lookers: dict[str, object], frames: dict[tuple[int, int], np.ndarray], budget_s: float,
                    give_up: float = float("inf"), every_pair: bool = True) -> dict:
    """Median ms of each looker (a detector's own inference, or a whole plan) per frame size; lookers and sizes
    interleaved in rounds, who goes first rotating, until the budget is spent (at least one round). Past
    `give_up` (a monotonic time: the whole bench's limit) each pair still gets one timed call in the first round
    and nothing more, or, without `every_pair`, none (left unmeasured: NaN), so the bench keeps near the budget
    it states however slow a plan is."""
    samples: dict[tuple[str, tuple[int, int]], list[float]] = {(n, s): [] for n in lookers for s in frames}
    deadline = time.monotonic() + budget_s
    rounds = 0
    while lookers and (rounds < 1 or time.monotonic() < min(deadline, give_up)):
        order = list(lookers)
        order = order[rounds % len(order):] + order[:rounds % len(order)]
        for size, frame in frames.items():
            for name in order:
                if (rounds or not every_pair) and time.monotonic() > give_up:
                    continue
                # A camera keeps its size; onnxruntime re-plans its buffers when the input shape changes, so the
                # first call after a switch (the first of all: the warm-up) is not timed.
                lookers[name](frame)
                for i in range(ROUND_FRAMES):
                    if i and time.monotonic() > give_up:  # past the limit: one timed call is all it gets
                        break
                    t0 = time.perf_counter()
                    lookers[name](frame)
                    samples[(name, size)].append(time.perf_counter() - t0)
        rounds += 1
    return {name: {**{f"{w}x{h}": median_ms(samples[(name, (w, h))]) for (w, h) in frames}, "runs": rounds}
            for name in lookers}


def model_lookers(names: list[str], provider: str, threads: int | None, out: dict, suffix: str = "") -> dict:
    """Each model's own inference at the frame's native size; a model that cannot load goes into `out` as an error."""
    from faceanon.detect import ModelError, load_detector

    lookers = {}
    for name in names:
        try:
            det = load_detector(name, None, provider, threads)
        except ModelError as err:
            say(str(err))
            out[name + suffix] = {"error": str(err)}
            continue
        lookers[name + suffix] = (lambda d: lambda frame: d.infer(frame, d.manifest.threshold))(det)
    return lookers


REMOTE_SUFFIX = "@remote"


def print_remote_overhead(models: dict, labels: list[str], url: str) -> None:
    """Remote minus local median ms per size, and their ratio: what the network and the server add."""
    print(f"\nremote detector {url}: round trip over local inference (same rounds), ms added and ratio")
    for name, remote in models.items():
        local = models.get(name.removesuffix(REMOTE_SUFFIX))
        if not name.endswith(REMOTE_SUFFIX) or "error" in remote or not local or "error" in local:
            continue
        cells = "".join(f"{remote[s] - local[s]:+9.1f} {remote[s] / max(local[s], 1e-6):4.2f}x" for s in labels)
        print(f"{name.removesuffix(REMOTE_SUFFIX):<16}{cells}")


def plan_lookers(names: list[str], provider: str, threads: int | None, out: dict) -> dict:
    """Each named plan's whole scan (every pass, the merge) with the plan's own models."""
    from faceanon.detect import ModelError, load_models
    from faceanon.detect.plan import Scanner
    from faceanon.detect.plans import resolve_plan

    lookers = {}
    for name in names:
        plan = resolve_plan(name)
        try:
            scanner = Scanner(load_models(plan.models, None, provider, threads), plan)
        except ModelError as err:
            say(str(err))
            out[name] = {"error": str(err)}
            continue
        lookers[name] = scanner.scan
    return lookers


def run_bench(args: argparse.Namespace) -> int:
    from faceanon.detect import ModelError, bundled_manifests, load_detector
    from faceanon.detect.plan import Scanner
    from faceanon.detect.plans import PLANS, resolve_plan

    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as err:
        say(str(err))
        return 2
    # Past this, each look is timed once and no more, rather than stretch the stated budget (model loading and the
    # clip's encoding count too).
    give_up = time.monotonic() + args.seconds * 1.3
    if args.seconds <= 0:
        say(f"--seconds must be more than 0, not {args.seconds}")
        return 2
    clip = Path(args.clip) if args.clip else (SHARED_CLIP if SHARED_CLIP.is_file() else SAMPLE_GIF)
    frames = read_frames(clip, CLIP_FRAMES)
    if not frames:
        say(f"{clip}: no frame could be decoded (missing, corrupt or not a video)")
        return 1
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else list(bundled_manifests())
    plan_names = [n.strip() for n in args.plans.split(",") if n.strip()] if args.plans else list(PLANS)
    unknown = [n for n in plan_names if n not in PLANS]
    if unknown:
        say(f"--plans: unknown plan {unknown[0]!r} (named plans: {', '.join(PLANS)})")
        return 2
    try:
        detector = load_detector(args.model, None, args.provider, args.threads)
    except ModelError as err:
        say(str(err))
        return 2
    print(f"clip {clip} ({len(frames)} frames used, {frames[0].shape[1]}x{frames[0].shape[0]}); pipeline model "
          f"{detector.manifest.name}, plan {defaults.VIDEO_PLAN}, provider {detector.provider}; budget "
          f"{args.seconds:g} s")
    with tempfile.TemporaryDirectory(prefix="faceanon-bench-") as tmp:
        clips, codec = {}, ""
        for size in sizes:
            clips[size], codec = encode_clip(frames, size, Path(tmp))
        stages = measure_stages(clips, lambda: Scanner(detector, resolve_plan(defaults.VIDEO_PLAN)),
                                args.seconds * 0.5)
    still = {size: cv2.resize(frames[len(frames) // 2], size, interpolation=cv2.INTER_AREA) for size in sizes}
    models: dict = {}
    lookers = model_lookers(names, args.provider, args.threads, models)
    if args.remote:  # the same models on the server, timed in the same rounds as the local ones
        remote = model_lookers(names, args.remote, None, models, suffix=REMOTE_SUFFIX)
        lookers = {**lookers, **remote}
    models.update(measure_lookers(lookers, still, args.seconds * 0.2, give_up))
    plans: dict = {}
    plans.update(measure_lookers(plan_lookers(plan_names, args.provider, args.threads, plans), still,
                                 args.seconds * 0.3, give_up, every_pair=False))

    print(f"\nper-stage median ms per frame (decode = {codec}; baseline = decode + JPEG encode, the ceiling)")
    head = f"{'size':>10} {'frames':>6} " + "".join(f"{s:>8}" for s in STAGES)
    print(head + f"{'total':>8}{'fps':>8}{'base ms':>9}{'base fps':>9}{'of ceiling':>11}")
    for size, r in stages.items():
        p = r["pipeline_ms"]
        print(f"{size:>10} {r['frames']:>6} " + "".join(f"{p[s]:8.1f}" for s in STAGES)
              + f"{p['total']:8.1f}{r['pipeline_fps']:8.1f}{r['baseline_ms']['total']:9.1f}"
              f"{r['baseline_fps']:9.1f}{100 * r['ratio']:10.0f}%")
    labels = [f"{w}x{h}" for w, h in sizes]
    print_table("detector inference alone at native size, median ms (models interleaved)", "model", models, labels)
    if args.remote:
        print_remote_overhead(models, labels, args.remote)
    print_table("each named plan's whole scan (every pass and the merge), median ms per frame (plans interleaved)",
                "plan", plans, labels, {n: resolve_plan(n).describe() for n in plans})
    if args.json:
        from faceanon.media import MediaError, write_atomic

        doc = {"clip": str(clip), "codec": codec, "model": detector.manifest.name, "stages": stages, "models": models,
               "plans": plans}
        try:
            write_atomic(Path(args.json), (json.dumps(doc, indent=1) + "\n").encode())
        except MediaError as err:
            say(err.line())
            return 2
    return 1 if any("error" in r for r in (*models.values(), *plans.values())) else 0


def print_table(title: str, kind: str, rows: dict, labels: list[str], notes: dict[str, str] | None = None) -> None:
    print(f"\n{title}")
    width = max([5, *map(len, rows)])
    print(f"{kind:<{width}}" + "".join(f"{s:>11}" for s in labels) + f"{'runs':>6}")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:<{width}}  error: {r['error']}")
            continue
        note = f"  {notes[name]}" if notes and name in notes else ""
        print(f"{name:<{width}}" + "".join(f"{r[s]:11.1f}" for s in labels) + f"{r['runs']:>6}{note}")
    if any(r[s] != r[s] for r in rows.values() if "error" not in r for s in labels):  # NaN != NaN
        print("nan: not measured within the budget (a longer --seconds measures it)")
