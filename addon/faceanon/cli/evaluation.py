"""`faceanon eval`: the team's leak rule on the files faceanon actually writes, with AP and recall beside it, and
the same for deface's settings (`--compare-deface`) in the same run."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import cv2

from faceanon import defaults
from faceanon.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ModelError,
    build_people,
    build_scanner,
    load_plan,
    mask_style_from,
    progress,
    say,
)
from faceanon.cli.images import anonymize_file
from faceanon.evaluate import ImageRecord, as_boxes, detection_report, xyxy_to_xywh
from faceanon.leak import BUCKETS, COVER, MIN_FACE, ExtentTally, LeakTally, changed_pixels
from faceanon.media import MediaError, read_image, write_atomic, write_image


def read_annotations(path: Path) -> list[dict]:
    """The `images` list of a face annotation file; ValueError/OSError with the reason."""
    doc = json.loads(path.read_text())
    entries = doc["images"]
    if not isinstance(entries, list):
        raise TypeError("'images' is not a list")
    return entries


class Run:
    """One set of settings evaluated: it writes every output file, then the leak rule reads them back."""

    def __init__(self, label: str, out_dir: Path, describe: str) -> None:
        self.label = label
        self.out_dir = out_dir
        self.describe = describe
        self.tally = LeakTally()
        self.extent = ExtentTally()
        self.cpu_s = 0.0
        self.records: list[ImageRecord] = []
        self.leaked: list[dict] = []
        self.seconds = 0.0
        self.threshold = 0.0

    def score(self, entry: dict, original, target: Path) -> None:
        output = cv2.imread(str(target), cv2.IMREAD_COLOR)  # what is on disk, as the team's tool reads it
        missing = output is None or output.shape != original.shape
        faces, ignore = entry.get("faces", []), entry.get("ignore", [])
        changed = changed_pixels(original, output)
        for i in self.tally.add(changed, faces, ignore, missing):
            self.leaked.append({"file": entry["file"], "box": [float(v) for v in faces[i]]})
        self.extent.add(changed, faces)

    def report(self) -> dict:
        r = detection_report(self.records, self.threshold, 0.5)
        r.update(settings=self.describe, images=len(self.records), seconds=self.seconds, cpu_s=self.cpu_s,
                 leak=self.tally.as_dict() | self.extent.as_dict(), unmasked_faces=self.leaked)
        return r


def cmd_eval(args: argparse.Namespace) -> int:
    gt_path = Path(args.gt)
    try:
        entries = read_annotations(gt_path)
    except OSError as err:
        say(f"{gt_path}: cannot read ({err.strerror or err})")
        return EXIT_USAGE
    except (ValueError, KeyError, TypeError) as err:
        say(f"{gt_path}: not a face annotation file ({err})")
        return EXIT_USAGE
    root = Path(args.images_root) if args.images_root else gt_path.parent
    keep = Path(args.output) if args.output else None
    out_root = keep or Path(tempfile.mkdtemp(prefix="faceanon-eval-"))
    try:
        style = mask_style_from(args)
        try:
            scanner = build_scanner(args)
            people = build_people(args)
            deface = None
            if args.compare_deface:
                from faceanon.baseline import MODEL, DefaceLike

                deface = DefaceLike(load_plan(scanner.plan.with_model(MODEL), None, args.provider,
                                              args.threads)[MODEL])
        except ModelError as err:
            say(str(err))
            return EXIT_USAGE
        threshold = scanner.threshold_of(scanner.plan.passes[0])
        ours = Run("faceanon", out_root / "faceanon",
                   f"plan {scanner.plan.name} ({scanner.plan.describe()}), threshold {threshold:g}, style "
                   f"{style.style}/{style.shape}, margin {style.margin:g} (+{style.small_margin:g} under "
                   f"{style.small_face} px)")
        ours.threshold = threshold
        runs = [ours]
        if deface is not None:
            them = Run("deface", out_root / "deface", f"deface 1.5.0 defaults: CenterFace stretched to multiples "
                       f"of 32, threshold 0.2, mask scale 1.3, {'solid' if style.style == 'fill' else style.style}")
            them.threshold = deface.threshold
            runs.append(them)
        failed = 0
        for entry in progress(entries, desc="images", unit="img"):
            rel = Path(str(entry.get("file", "")))
            source = root / rel
            gt, ignore = as_boxes(entry.get("faces", [])), as_boxes(entry.get("ignore", []))
            for run in runs:
                target = run.out_dir / rel
                t0, cpu0 = time.perf_counter(), time.process_time()
                try:
                    if run is ours:
                        original, _, every = anonymize_file(source, target, scanner, style, defaults.EVAL_FLOOR,
                                                           people)
                    else:
                        original = read_image(source)
                        every = deface.detect(original, defaults.EVAL_FLOOR)
                        image = original.copy()
                        deface.draw(image, every.above(deface.threshold), style.style)
                        write_image(target, image)
                except MediaError as err:
                    if run is ours:
                        say(err.line())
                        failed += 1
                    continue
                run.seconds += time.perf_counter() - t0
                run.cpu_s += time.process_time() - cpu0
                run.records.append(ImageRecord(gt, ignore, xyxy_to_xywh(every.boxes), every.scores))
                run.score(entry, original, target)
        results = {run.label: run.report() for run in runs}
    finally:
        if keep is None:
            shutil.rmtree(out_root, ignore_errors=True)
    print_eval(results)
    if keep is not None:
        print(f"outputs kept under {keep}/ (faceanon/, deface/), as the team's leak.py reads them")
    if args.json:
        clean = json.loads(json.dumps(results, default=str).replace("NaN", "null"))
        try:
            write_atomic(Path(args.json), (json.dumps(clean, indent=1) + "\n").encode())
        except MediaError as err:
            say(err.line())
            return EXIT_USAGE
    return EXIT_FAILED if failed else 0


def pct(value: float | None) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:5.1f}"


def print_eval(results: dict) -> None:
    names = ["all", *(b[0] for b in BUCKETS)]
    for label, r in results.items():
        leak = r["leak"]
        ms = 1000 * r["seconds"] / max(r["images"], 1)
        print(f"== {label}: {r['settings']}; {r['images']} images, {ms:.0f} ms per image")
        print(f"{'size (short side, px)':24}" + "".join(f"{n:>8}" for n in names))
        print(f"{'faces':24}" + "".join(f"{r['buckets'][n]['faces']:>8}" for n in names))
        print(f"{'leak % (all: >= 10 px)':24}{pct(leak['leak']):>8}"
              + "".join(f"{pct(leak['buckets'][n]['leak']):>8}" for n in names[1:]))
        print(f"{'AP@0.5 %':24}" + "".join(f"{pct(r['buckets'][n]['ap']):>8}" for n in names))
        print(f"{'recall@threshold %':24}" + "".join(f"{pct(r['buckets'][n]['recall']):>8}" for n in names))
        print(f"leak: {leak['leaked']} of {leak['faces']} faces >= {MIN_FACE} px unmasked = "
              f"{pct(leak['leak']).strip()} % (masked = at least {100 * COVER:.0f} % of the face's ellipse changed "
              "by more than 24 in the written file)"
              + (f"; {leak['missing_outputs']} outputs missing" if leak["missing_outputs"] else ""))
        print(f"collateral: {pct(leak['collateral']).strip()} % of the pixels outside every labelled face changed; "
              f"a masked face's mask covers {leak['mask_per_face_median']:.1f}x its ellipse (median, "
              f"p95 {leak['mask_per_face_p95']:.1f}x); masks of two faces merge in "
              f"{pct(leak['merged_frames']).strip()} % of the images with two faces or more")
        print(f"CPU: {1000 * r['cpu_s'] / max(r['images'], 1):.0f} ms per image (process time, every thread)")
    if len(results) == 2:
        a, b = (results[k]["leak"] for k in results)
        def ratio(x: float, y: float) -> str:
            return f"{x / y:.2f}x" if y else "-"

        cpu = [results[k]["cpu_s"] for k in results]
        print(f"faceanon / deface, same run: leak {ratio(a['leak'], b['leak'])}, collateral "
              f"{ratio(a['collateral'], b['collateral'])}, CPU {ratio(cpu[0], cpu[1])}")
