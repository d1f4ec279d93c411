"""`faceanon bench privacy`: the team's leak rule on video, for the live and video presets, next to deface.

Walkers clips (bench/walkers.py: labelled faces of faces-dev carried over real footage, exact boxes in every frame)
are made, or taken with `--clips`; each preset anonymizes them exactly as `faceanon video --preset P` does
(faceanon/videojob.py), and so do deface 1.5.0's settings (faceanon/baseline.py, every frame) through the same
reader and writer, in the same run. Scored per (face, frame) with faceanon.leak (the rule of the team's
videoleak.py): frame leak, walkers unmasked in at least 1 and 3 frames, leak by face size, collateral; and fps of
the whole file job (decode, detect, mask, H.264 encode) with its ratio to deface's.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from faceanon import defaults
from faceanon.bench import SHARED_DATA
from faceanon.bench.sheets import write_sheet
from faceanon.leak import ExtentTally, TrackTally, changed_pixels
from faceanon.mask import TARGETS, MaskStyle, parse_color

BACKGROUNDS = ("vtest.avi", "intel-sample-videos/one-by-one-person-detection.mp4")


def say(message: str) -> None:
    print(f"faceanon: {message}", file=sys.stderr, flush=True)


def score(truth: Path, original: Path, anonymized: Path, fresh: set[int] | None = None) -> dict:
    """The team's video rule over one clip: frames aligned by index; a missing or resized frame leaks every face.
    Also how far the masks reach (faceanon.leak.ExtentTally), on the `fresh` frames (those the anonymizer ran on; a
    live replay repeats its last output in between, whose difference to the new frame is motion, not mask; None:
    every frame)."""
    gt = json.loads(truth.read_text())
    tally, extent = TrackTally(), ExtentTally()
    a, b = cv2.VideoCapture(str(original)), cv2.VideoCapture(str(anonymized))
    try:
        for frame in gt["frames"]:
            ok, raw = a.read()
            if not ok:
                raise ValueError(f"{original} ends before frame {frame['index']}")
            ok, out = b.read()
            missing = not ok or out.shape != raw.shape
            changed = changed_pixels(raw, None if missing else out)
            faces = [(f["track"], f["box"]) for f in frame["faces"]]
            tally.add(changed, faces, missing=missing)
            if fresh is None or frame["index"] in fresh:
                extent.add(changed, [box for _, box in faces])
    finally:
        a.release()
        b.release()
    return tally.as_dict() | extent.as_dict() | {"extent": extent.ratios, "extent_frames": [extent.frames,
                                                                                          extent.merged]}


@dataclass
class Run:
    clip: str
    label: str
    seconds: float
    frames: int
    result: dict
    cpu_s: float = 0.0  # process CPU seconds (every thread) the run took
    clip_s: float = 0.0  # the clip's own length in seconds

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)

    @property
    def cpu_share(self) -> float:
        """Cores this run would keep busy to keep up with the clip in real time (1.0 = a core): the live figure a
        camera costs, and a file job's cost per second of video."""
        return self.cpu_s / max(self.clip_s, 1e-9)


@dataclass
class Timed:
    seconds: float
    frames: int
    cpu_s: float
    fresh: set[int] | None  # the frames the anonymizer ran on (None: every one)


def run_preset(name: str, clip: Path, out: Path, args: argparse.Namespace) -> Timed:
    from faceanon.anonymizer import StreamAnonymizer, models_for, people_look
    from faceanon.detect import load_models
    from faceanon.videojob import anonymize_video

    preset = defaults.PRESETS[name]
    stream = preset.stream(plan=args.plan, full_every=args.detect_every)
    detectors = load_models(models_for(stream, args.target), None, "cpu", args.threads)
    anonymizer = StreamAnonymizer(detectors, stream, preset.hold(args.hold), args.threshold,
                                  people_look(detectors, args.target))
    fps = args.fps if name == "live" else preset.fps
    margin = preset.margin if args.margin is None else args.margin
    style = MaskStyle(args.style, margin=margin, fill_color=parse_color(args.fill_color), target=args.target)
    cpu = time.process_time()
    result = anonymize_video(clip, out, anonymizer, style, fps, fail_closed=fps is not None)
    return Timed(result.seconds, result.frames, time.process_time() - cpu, set(result.taken_at))


def run_deface(clip: Path, out: Path, args: argparse.Namespace) -> Timed:
    from faceanon.baseline import MODEL, DefaceLike
    from faceanon.detect import load_detector
    from faceanon.publish.video import VideoWriter
    from faceanon.source.video import VideoReader

    deface = DefaceLike(load_detector(MODEL, None, "cpu", args.threads))
    started, cpu = time.monotonic(), time.process_time()
    frames = 0
    with VideoReader(clip) as reader:
        writer = VideoWriter(out, reader.fps, reader.width, reader.height)
        try:
            for item in reader.items():
                assert item.frame is not None
                deface.anonymize(item.frame, args.style)
                writer.write(item.frame)
                frames += 1
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return Timed(time.monotonic() - started, frames, time.process_time() - cpu, None)


def clip_seconds(clip: Path) -> float:
    capture = cv2.VideoCapture(str(clip))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
        return float(capture.get(cv2.CAP_PROP_FRAME_COUNT)) / fps
    finally:
        capture.release()


def make_clips(args: argparse.Namespace, folder: Path) -> list[tuple[Path, Path]]:
    from faceanon.bench.walkers import make_clip

    gt = Path(args.faces) if args.faces else SHARED_DATA / "faces-dev" / "annotations.json"
    if not gt.is_file():
        raise SystemExit(f"faceanon bench privacy: {gt} is absent: give --faces GT.json (a labelled face set) "
                         "or --clips made by walkers.py")
    backgrounds = [Path(b) for b in args.backgrounds.split(",")] if args.backgrounds else [
        SHARED_DATA / "video" / b for b in BACKGROUNDS]
    clips = []
    for background in backgrounds:
        if not background.is_file():
            raise SystemExit(f"faceanon bench privacy: background clip {background} is absent")
        for seed in args.seeds:
            out = folder / f"walkers-{background.stem}-{seed}.mp4"
            say(f"making {out.name}: {args.walkers} walkers over {background.name}, seed {seed}")
            truth = make_clip(gt, gt.parent, background, out, walkers=args.walkers, frames=args.frames, seed=seed)
            clips.append((out, truth))
    return clips


def given_clips(paths: list[str]) -> list[tuple[Path, Path]]:
    clips = []
    for text in paths:
        clip = Path(text)
        truth = clip.with_suffix(".json")
        if not clip.is_file() or not truth.is_file():
            raise SystemExit(f"faceanon bench privacy: {clip} needs its ground truth {truth} beside it")
        clips.append((clip, truth))
    return clips


def total(runs: list[Run]) -> dict:
    """Clips pooled: frame leak over all pairs, walkers over all tracks, mask extent over all masked faces."""
    import numpy as np

    pairs = sum(r.result["pairs"] for r in runs)
    extent = np.asarray([x for r in runs for x in r.result["extent"]], np.float64)
    two = sum(r.result["extent_frames"][0] for r in runs)
    tracks = sum(r.result["tracks"] for r in runs)
    exposed = sum(r.result["tracks_exposed"] for r in runs)
    leaked3 = sum(round(r.result["track_leak3"] * r.result["tracks"]) for r in runs)
    return {"pairs": pairs, "frame_leak": sum(r.result["frame_leak"] * r.result["pairs"] for r in runs) / pairs,
            "tracks": tracks, "tracks_exposed": exposed, "track_leak": exposed / tracks,
            "track_leak3": leaked3 / tracks,
            "collateral": sum(r.result["collateral"] for r in runs) / len(runs),
            "fps": sum(r.frames for r in runs) / sum(r.seconds for r in runs),
            "cpu_share": sum(r.cpu_s for r in runs) / sum(r.clip_s for r in runs),
            "mask_per_face_median": float(np.median(extent)) if len(extent) else float("nan"),
            "mask_per_face_p95": float(np.percentile(extent, 95)) if len(extent) else float("nan"),
            "merged_frames": sum(r.result["extent_frames"][1] for r in runs) / two if two else 0.0,
            "frame_leak_by_size": {k: sum((r.result["frame_leak_by_size"][k] or 0) for r in runs) / len(runs)
                                   for k in runs[0].result["frame_leak_by_size"]}}


HEADER = (f"{'frame leak':>10} {'walkers >=1':>12} {'>=3':>5} {'collat.':>8} {'mask/face':>9} {'p95':>6} "
          f"{'merged':>7} {'CPU':>6} {'10-24':>7} {'24-64':>7} {'>=64':>7} {'fps':>6}")


def row(d: dict, extent: tuple[float, float, float], cpu: float, fps: float) -> str:
    """Leak, collateral and CPU first: every privacy figure has the three."""
    size = d["frame_leak_by_size"]
    median, p95, merged = extent
    return (f"{100 * d['frame_leak']:9.1f}% {d['tracks_exposed']:>5} of {d['tracks']:<4} "
            f"{100 * d['track_leak3']:4.0f}% {100 * d['collateral']:7.1f}% {median:8.1f}x {p95:5.1f}x "
            f"{100 * merged:6.1f}% {100 * cpu:5.0f}% "
            + "".join(f"{100 * (size.get(k) or 0):6.1f}%" for k in ("10-24", "24-64", ">=64")) + f" {fps:6.1f}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("1x" if a == b else "-")


def print_table(runs: list[Run], labels: list[str]) -> dict:
    """One row per clip and run, then the clips pooled, then each run against deface's in the same run. CPU: cores
    kept busy to keep up with the clip in real time (process CPU time over the clip's length)."""
    print(f"\n{'clip':<36} {'run':<8} {HEADER}")
    for r in runs:
        d = r.result
        two = d["extent_frames"][0]
        print(f"{r.clip[:36]:<36} {r.label:<8} " + row(d, (d["mask_per_face_median"], d["mask_per_face_p95"],
                                                           d["extent_frames"][1] / two if two else 0.0),
                                                      r.cpu_share, r.fps))
    totals = {label: total([r for r in runs if r.label == label]) for label in labels}
    print("all clips pooled:")
    for label, t in totals.items():
        print(f"{'':<36} {label:<8} " + row(t, (t["mask_per_face_median"], t["mask_per_face_p95"], t["merged_frames"]),
                                            t["cpu_share"], t["fps"]))
    if "deface" in totals:
        base = totals["deface"]
        for label, t in totals.items():
            if label != "deface":
                print(f"{label} / deface, same run: frame leak {ratio(t['frame_leak'], base['frame_leak'])}, "
                      f"walkers exposed {t['tracks_exposed']} vs {base['tracks_exposed']}, collateral "
                      f"{ratio(t['collateral'], base['collateral'])}, CPU {ratio(t['cpu_share'], base['cpu_share'])}, "
                      f"fps {ratio(t['fps'], base['fps'])}")
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faceanon bench privacy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", metavar="CLIP.mp4", help="walkers clips (each with CLIP.json beside "
                                                                       "it); default: make them")
    parser.add_argument("--faces", metavar="GT.json", help="labelled faces to carry (default: ../shared faces-dev)")
    parser.add_argument("--backgrounds", metavar="A,B", help="background clips (default: the shared vtest.avi and "
                                                             "one-by-one-person-detection.mp4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="one clip per seed and background")
    parser.add_argument("--walkers", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--presets", default="live,video", help="presets to run (default live,video)")
    parser.add_argument("--fps", type=float, default=defaults.PRESETS["live"].fps, help="the live preset's camera fps")
    parser.add_argument("--plan", help="replace the presets' whole-frame plan")
    parser.add_argument("--detect-every", type=int, help="replace the presets' whole-frame cadence")
    parser.add_argument("--threshold", type=float, help="the whole-frame model's threshold (default: its own)")
    parser.add_argument("--hold", type=float, help="replace the presets' hold time (s)")
    parser.add_argument("--margin", type=float, help="replace the presets' mask margin")
    parser.add_argument("--style", default="fill", choices=("fill", "blur", "pixelate"))
    parser.add_argument("--target", default="face", choices=TARGETS,
                        help="what the presets mask (head and person run the person detector too)")
    parser.add_argument("--fill-color", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-deface", action="store_true", help="skip the deface baseline")
    parser.add_argument("--keep", metavar="DIR", help="keep the clips and outputs here")
    parser.add_argument("--json", metavar="OUT.json", help="also write every figure as JSON")
    parser.add_argument("--sheets", metavar="DIR", help="also write a contact sheet of every output (8 frames) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in defaults.PRESETS]
    if unknown:
        say(f"--presets: unknown preset {unknown[0]!r} (presets: {', '.join(defaults.PRESETS)})")
        return 2
    with tempfile.TemporaryDirectory(prefix="faceanon-privacy-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clips = given_clips(args.clips) if args.clips else make_clips(args, folder)
        labels = presets + ([] if args.no_deface else ["deface"])
        runs = []
        for clip, truth in clips:
            for label in labels:
                out = folder / f"{clip.stem}.{label}.mp4"
                timed = run_deface(clip, out, args) if label == "deface" else run_preset(label, clip, out, args)
                runs.append(Run(clip.name, label, timed.seconds, timed.frames, score(truth, clip, out, timed.fresh),
                                timed.cpu_s, clip_seconds(clip)))
                if args.sheets:
                    write_sheet(out, Path(args.sheets) / f"{clip.stem}.{label}.jpg", frames=8, columns=4, width=400)
                d = runs[-1].result
                say(f"{clip.name} {label}: frame leak {100 * d['frame_leak']:.1f} %, {d['tracks_exposed']} walkers "
                    f"exposed, collateral {100 * d['collateral']:.1f} %, CPU {100 * runs[-1].cpu_share:.0f} % of a "
                    f"core, {runs[-1].fps:.1f} fps")
        print(f"\nfaceanon bench privacy: {len(clips)} walkers clips, style {args.style}; live at {args.fps:g} fps; "
              "deface = deface 1.5.0's settings on every frame")
        for name in presets:
            preset = defaults.PRESETS[name]
            print(f"  {name}: {preset.stream(plan=args.plan, full_every=args.detect_every).describe()}")
        totals = print_table(runs, labels)
    if args.json:
        rows = [r.__dict__ | {"result": {k: v for k, v in r.result.items() if k != "extent"},
                              "cpu_share": r.cpu_share} for r in runs]
        Path(args.json).write_text(json.dumps({"runs": rows, "totals": totals}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
