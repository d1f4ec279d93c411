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
from faceanon.leak import TrackTally, changed_pixels
from faceanon.mask import TARGETS, MaskStyle, parse_color

BACKGROUNDS = ("vtest.avi", "intel-sample-videos/one-by-one-person-detection.mp4")


def say(message: str) -> None:
    print(f"faceanon: {message}", file=sys.stderr, flush=True)


def score(truth: Path, original: Path, anonymized: Path) -> dict:
    """The team's video rule over one clip: frames aligned by index; a missing or resized frame leaks every face."""
    gt = json.loads(truth.read_text())
    tally = TrackTally()
    a, b = cv2.VideoCapture(str(original)), cv2.VideoCapture(str(anonymized))
    try:
        for frame in gt["frames"]:
            ok, raw = a.read()
            if not ok:
                raise ValueError(f"{original} ends before frame {frame['index']}")
            ok, out = b.read()
            missing = not ok or out.shape != raw.shape
            tally.add(changed_pixels(raw, None if missing else out),
                      [(f["track"], f["box"]) for f in frame["faces"]], missing=missing)
    finally:
        a.release()
        b.release()
    return tally.as_dict()


@dataclass
class Run:
    clip: str
    label: str
    seconds: float
    frames: int
    result: dict

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def run_preset(name: str, clip: Path, out: Path, args: argparse.Namespace) -> tuple[float, int]:
    from faceanon.anonymizer import StreamAnonymizer, models_for, people_look
    from faceanon.detect import load_models
    from faceanon.videojob import anonymize_video

    preset = defaults.PRESETS[name]
    stream = preset.stream(plan=args.plan, full_every=args.detect_every)
    detectors = load_models(models_for(stream, args.target), None, "cpu", args.threads)
    anonymizer = StreamAnonymizer(detectors, stream, preset.hold(), None, people_look(detectors, args.target))
    fps = args.fps if name == "live" else preset.fps
    style = MaskStyle(args.style, margin=preset.margin, fill_color=parse_color(args.fill_color), target=args.target)
    result = anonymize_video(clip, out, anonymizer, style, fps, fail_closed=fps is not None)
    return result.seconds, result.frames


def run_deface(clip: Path, out: Path, args: argparse.Namespace) -> tuple[float, int]:
    from faceanon.baseline import MODEL, DefaceLike
    from faceanon.detect import load_detector
    from faceanon.publish.video import VideoWriter
    from faceanon.source.video import VideoReader

    deface = DefaceLike(load_detector(MODEL, None, "cpu", args.threads))
    started = time.monotonic()
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
    return time.monotonic() - started, frames


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
    """Clips pooled: frame leak over all pairs, walkers over all tracks."""
    pairs = sum(r.result["pairs"] for r in runs)
    tracks = sum(r.result["tracks"] for r in runs)
    exposed = sum(r.result["tracks_exposed"] for r in runs)
    leaked3 = sum(round(r.result["track_leak3"] * r.result["tracks"]) for r in runs)
    return {"pairs": pairs, "frame_leak": sum(r.result["frame_leak"] * r.result["pairs"] for r in runs) / pairs,
            "tracks": tracks, "tracks_exposed": exposed, "track_leak": exposed / tracks,
            "track_leak3": leaked3 / tracks,
            "collateral": sum(r.result["collateral"] for r in runs) / len(runs),
            "fps": sum(r.frames for r in runs) / sum(r.seconds for r in runs),
            "frame_leak_by_size": {k: sum((r.result["frame_leak_by_size"][k] or 0) for r in runs) / len(runs)
                                   for k in runs[0].result["frame_leak_by_size"]}}


def print_table(runs: list[Run], labels: list[str]) -> dict:
    print(f"\n{'clip':<42} {'run':<8} {'frame leak':>10} {'walkers >=1':>12} {'>=3':>6} {'10-24':>7} {'24-64':>7} "
          f"{'>=64':>7} {'collat.':>8} {'fps':>7}")
    for r in runs:
        d = r.result
        size = d["frame_leak_by_size"]
        print(f"{r.clip:<42} {r.label:<8} {100 * d['frame_leak']:9.1f}% {d['tracks_exposed']:>5} of {d['tracks']:<4} "
              f"{100 * d['track_leak3']:5.0f}% " + "".join(f"{100 * (size.get(k) or 0):6.1f}%" for k in
                                                        ("10-24", "24-64", ">=64"))
              + f" {100 * d['collateral']:7.1f}% {r.fps:7.1f}")
    totals = {label: total([r for r in runs if r.label == label]) for label in labels}
    print("all clips pooled:")
    for label, t in totals.items():
        size = t["frame_leak_by_size"]
        print(f"{'':<42} {label:<8} {100 * t['frame_leak']:9.1f}% {t['tracks_exposed']:>5} of {t['tracks']:<4} "
              f"{100 * t['track_leak3']:5.0f}% " + "".join(f"{100 * size[k]:6.1f}%" for k in ("10-24", "24-64", ">=64"))
              + f" {100 * t['collateral']:7.1f}% {t['fps']:7.1f}")
    if "deface" in totals:
        base = totals["deface"]
        for label, t in totals.items():
            if label != "deface":
                print(f"{label} / deface, same run: frame leak {t['frame_leak'] / max(base['frame_leak'], 1e-9):.2f}x, "
                      f"walkers exposed {t['tracks_exposed']} vs {base['tracks_exposed']}, fps "
                      f"{t['fps'] / base['fps']:.1f}x")
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
    parser.add_argument("--style", default="fill", choices=("fill", "blur", "pixelate"))
    parser.add_argument("--target", default="face", choices=TARGETS,
                        help="what the presets mask (head and person run the person detector too)")
    parser.add_argument("--fill-color", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-deface", action="store_true", help="skip the deface baseline")
    parser.add_argument("--keep", metavar="DIR", help="keep the clips and outputs here")
    parser.add_argument("--json", metavar="OUT.json", help="also write every figure as JSON")
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
                seconds, frames = (run_deface(clip, out, args) if label == "deface"
                                   else run_preset(label, clip, out, args))
                runs.append(Run(clip.name, label, seconds, frames, score(truth, clip, out)))
                say(f"{clip.name} {label}: frame leak {100 * runs[-1].result['frame_leak']:.1f} %, "
                    f"{runs[-1].result['tracks_exposed']} walkers exposed, {runs[-1].fps:.1f} fps")
        print(f"\nfaceanon bench privacy: {len(clips)} walkers clips, style {args.style}; live at {args.fps:g} fps; "
              "deface = deface 1.5.0's settings on every frame")
        for name in presets:
            preset = defaults.PRESETS[name]
            print(f"  {name}: {preset.stream(plan=args.plan, full_every=args.detect_every).describe()}")
        totals = print_table(runs, labels)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": [r.__dict__ for r in runs], "totals": totals}, indent=1,
                                              default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
