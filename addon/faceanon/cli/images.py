"""`faceanon image`, `faceanon detect` and `faceanon models`: still images in, anonymized files or face boxes out."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from faceanon import defaults
from faceanon.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ModelError,
    build_people,
    build_scanner,
    mask_style_from,
    progress,
    say,
)
from faceanon.detect import Faces, bundled_manifests
from faceanon.detect.people import PeopleLook
from faceanon.detect.plan import Scanner
from faceanon.detect.plans import PLANS
from faceanon.mask import MaskStyle, apply_masks
from faceanon.media import Inputs, MediaError, ensure_writable_dir, find_images, read_image, write_atomic, write_image


def reported_images(paths: list[str], exclude: Path | None = None) -> Inputs:
    """find_images, with a note for every skipped file and a line for every unusable input."""
    inputs = find_images(paths, exclude=exclude)
    for skipped in inputs.skipped:
        say(f"note: {skipped}: skipped, not an image")
    for err in inputs.errors:
        say(err.line())
    if not inputs.jobs and not inputs.errors:
        say("nothing to do: no images among the inputs")
    return inputs


def anonymize_file(source: Path, target: Path, scanner: Scanner, style: MaskStyle,
                   floor: float | None = None, people: PeopleLook | None = None) -> tuple[np.ndarray, Faces, Faces]:
    """Read `source`, mask every face the plan finds (and with `people`, the heads or the whole of the people the
    person detector finds), write `target` (format from its name, atomically). Returns (the original pixels, the
    faces masked, the faces down to `floor`); MediaError on a bad file."""
    if target.resolve() == source.resolve():
        raise MediaError(source, "the output would overwrite the input; choose another -o folder")
    image = read_image(source)
    original = image.copy()
    found, every = scanner.scan_with_floor(image, floor)
    boxes = found.boxes
    if people is not None:
        boxes = np.concatenate([boxes, people.look(image, boxes).boxes])
    write_image(target, apply_masks(image, boxes, style))
    return original, found, every


def cmd_image(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    inputs = reported_images(args.paths, exclude=out_dir)
    if not inputs.jobs:
        return EXIT_FAILED
    if out_dir.exists() and not out_dir.is_dir():
        say(f"{out_dir}: -o is an existing file; image writes into a folder (give a folder name)")
        return EXIT_USAGE
    try:
        scanner = build_scanner(args)  # before any folder is made: a model error leaves nothing behind
        people = build_people(args)
        ensure_writable_dir(out_dir)
    except MediaError as err:
        say(err.line())
        return EXIT_USAGE
    except ModelError as err:
        say(str(err))
        return EXIT_USAGE
    style = mask_style_from(args)
    failed, done, faces = len(inputs.errors), 0, 0
    started = time.monotonic()
    try:
        for job in progress(inputs.jobs, desc="images", unit="img"):
            try:
                _, found, _ = anonymize_file(job.source, out_dir / job.rel, scanner, style, people=people)
            except MediaError as err:
                say(err.line())
                failed += 1
                continue
            done += 1
            faces += len(found)
    except KeyboardInterrupt:
        say(f"interrupted after {done} images; the rest were not written")
        return EXIT_INTERRUPTED
    took = time.monotonic() - started
    print(f"{done} image{'s' * (done != 1)} anonymized ({faces} faces) into {out_dir} in {took:.1f} s"
          + (f"; {len(inputs.skipped)} non-image files skipped" if inputs.skipped else "")
          + (f"; {failed} failed" if failed else ""))
    return EXIT_FAILED if failed else 0


def faces_json(doc: dict) -> str:
    """Indented JSON with one face per line: readable, and diff-friendly between runs."""
    face = re.compile(r'\{\s*"box": \[([^\]]*)\],\s*"score": ([^\s}]+)\s*\}')
    return face.sub(lambda m: json.dumps({"box": json.loads(f"[{m[1]}]"), "score": json.loads(m[2])}),
                    json.dumps(doc, indent=1)) + "\n"


def cmd_detect(args: argparse.Namespace) -> int:
    inputs = reported_images(args.paths)
    if not inputs.jobs:
        return EXIT_FAILED
    try:
        if args.json != "-":  # find out now, not after minutes of detection
            ensure_writable_dir(Path(args.json).parent)
        scanner = build_scanner(args)
    except MediaError as err:
        say(err.line())
        return EXIT_USAGE
    except ModelError as err:
        say(str(err))
        return EXIT_USAGE
    failed = len(inputs.errors)
    images = []
    for job in progress(inputs.jobs, desc="images", unit="img"):
        try:
            image = read_image(job.source)
        except MediaError as err:
            say(err.line())
            failed += 1
            continue
        found = scanner.scan(image)
        h, w = image.shape[:2]
        images.append({
            "file": job.rel.as_posix(), "width": w, "height": h,
            "faces": [{"box": [round(float(x1), 1), round(float(y1), 1), round(float(x2 - x1), 1),
                               round(float(y2 - y1), 1)], "score": round(float(s), 4)}
                      for (x1, y1, x2, y2), s in zip(found.boxes, found.scores, strict=True)],
        })
    doc = {"model": scanner.detector.manifest.name, "plan": scanner.plan.describe(),
           "threshold": scanner.threshold_of(scanner.plan.passes[0]), "images": images}
    text = faces_json(doc)
    if args.json == "-":
        sys.stdout.write(text)
    else:
        try:
            write_atomic(Path(args.json), text.encode())
        except MediaError as err:
            say(err.line())
            return EXIT_USAGE
        n = sum(len(i["faces"]) for i in images)
        print(f"{len(images)} images, {n} faces -> {args.json}" + (f"; {failed} failed" if failed else ""))
    return EXIT_FAILED if failed else 0


def short_origin(origin: str, width: int = 48) -> str:
    text = origin.split(" as shipped")[0].split(" (")[0].strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_models(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from faceanon.detect.runtime import PROVIDERS

    try:
        manifests = bundled_manifests()
    except ModelError as err:
        say(str(err))
        return EXIT_FAILED
    rows = [("", "name", "finds", "family", "size", "threshold", "license", "origin")]
    for m in manifests.values():
        size = f"{m.file.stat().st_size / 1e6:.1f} MB" if m.file.is_file() else "missing"
        mark = "".join(sign for sign, default in (("*", defaults.IMAGE_MODEL), ("+", defaults.VIDEO_MODEL))
                       if m.name == default)
        finds = "people" if m.kind == "person" else "faces"
        rows.append((mark, m.name, finds, m.family, size, f"{m.threshold:g}", m.license, short_origin(m.origin)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"* default for images ({defaults.IMAGE_MODEL})   + default for video and live cameras "
          f"({defaults.VIDEO_MODEL})")
    print("plans (--plan NAME, or passes like 1+2x<=2048):")
    for name, plan in PLANS.items():
        print(f"  {name:<9} {plan.describe()}")
    short = {v: k for k, v in PROVIDERS.items()}
    available = [short.get(p, p) for p in ort.get_available_providers()]
    print(f"execution providers available: {', '.join(available)}; --provider picks one (default cpu)")
    return 0
