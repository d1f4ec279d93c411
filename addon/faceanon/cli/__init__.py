"""`faceanon` command line: anonymize images and videos, detect faces to JSON, list models, evaluate, benchmark, serve.

Exit status: 0 when everything worked; 1 when some input could not be processed (the rest still was); 2 when the run
could not start (bad options, model, output folder); 130 on Ctrl-C. Errors are one line on stderr:
`faceanon: <file>: <reason>`. Outputs are written to a temp file beside the target and renamed on success.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import faceanon
from faceanon import defaults
from faceanon.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    add_detector_options,
    add_mask_options,
    check_options,
    say,
)
from faceanon.cli.evaluation import cmd_eval
from faceanon.cli.images import cmd_detect, cmd_image, cmd_models
from faceanon.cli.video import cmd_video


def cmd_bench(args: argparse.Namespace) -> int:
    from faceanon.bench.stages import run_bench

    return run_bench(args)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from faceanon.service import main as serve
    except ImportError as err:
        say(f"the live service is not available in this install ({err})")
        return EXIT_USAGE
    return int(serve(args.config) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Anonymize faces in images, videos and camera streams.",
        epilog="Exit status: 0 ok, 1 some input failed, 2 could not start, 130 interrupted. "
               "Run `faceanon COMMAND -h` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {faceanon.version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("image", help="anonymize image files or folders (mirrored under -o)",
                       description="Anonymize images. A folder is walked recursively and its layout mirrored under "
                                   "OUT_DIR; names and formats are kept.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder (created if needed)")
    add_mask_options(p)
    add_detector_options(p, defaults.IMAGE_PLAN, defaults.IMAGE_MODEL)
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("video", help="anonymize a video file (H.264 out; --preset live replays a camera)",
                       description="Anonymize a video file. --preset video looks at every frame; --preset live "
                                   "replays the live service's per-camera pipeline at the camera's --fps, writing a "
                                   "frame the camera would not take as the last published one. Every frame is "
                                   "written (frames align with the input), as H.264 (.mp4/.m4v/.mov/.mkv/.avi).")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--preset", choices=sorted(defaults.PRESETS), default="video",
                   help="video: every frame (default); live: the camera pipeline of `faceanon serve`")
    p.add_argument("--fps", type=float, metavar="N",
                   help=f"camera frames per second for --preset live (default {defaults.PRESETS['live'].fps:g})")
    p.add_argument("--keep-audio", action="store_true", help="copy the input's audio (re-encoded to AAC when the "
                                                             "output container cannot hold it as it is)")
    p.add_argument("--detect-every", type=int, metavar="N",
                   help="look at the whole frame on every N-th taken frame; moving regions and tracked faces are "
                        "looked at on every frame (default: the preset's)")
    p.add_argument("--hold", type=float, metavar="SECONDS",
                   help=f"keep a mask this long after its face was last seen (default {defaults.HOLD_SECONDS})")
    add_mask_options(p)
    add_detector_options(p, None, None)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("detect", help="detect faces and write their boxes to JSON",
                       description="Write {\"images\": [{\"file\", \"width\", \"height\", \"faces\": [{\"box\": "
                                   "[x, y, w, h], \"score\"}]}]} with boxes in pixels.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    p.add_argument("--json", required=True, metavar="OUT.json", help="output file (- for stdout)")
    add_detector_options(p, defaults.IMAGE_PLAN, defaults.IMAGE_MODEL)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("models", help="list the bundled models, the named plans and the execution providers")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "eval", help="the team's leak rule, AP and recall against annotated faces (deface beside it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Anonymize the images of a face annotation file ({\"images\": [{\"file\", \"faces\": "
                    "[[x,y,w,h]...], \"ignore\": [...]}]}) as `faceanon image` does, and measure the files written.\n\n"
                    "Leak (the team's rule): a labelled face of at least 10 px (shorter side) is masked when at least "
                    "80 % of the pixels in the ellipse inscribed in its box changed by more than 24 in some channel "
                    "between the original and the written output (format kept, JPEG re-encoding included). Leak is "
                    "the share of those faces not masked; collateral the share of pixels outside every labelled "
                    "and ignored box that changed.\nSize buckets (shorter side): <10, 10-24, 24-64, >=64 px.\n"
                    "AP@0.5: VOC all-point interpolated; recall at the plan's thresholds.")
    p.add_argument("gt", metavar="GT.json")
    p.add_argument("--images-root", metavar="DIR", help="folder the annotation's file names are relative to "
                                                        "(default: the annotation file's folder)")
    p.add_argument("--output", metavar="DIR", help="keep the anonymized files here (faceanon/, deface/)")
    p.add_argument("--compare-deface", action="store_true",
                   help="also run deface 1.5.0's default settings in the same run (CenterFace stretched to "
                        "multiples of 32, threshold 0.2, mask scale 1.3; solid boxes for --style fill)")
    p.add_argument("--json", metavar="OUT.json", help="also write the figures (and every unmasked face) as JSON")
    add_mask_options(p)
    add_detector_options(p, defaults.IMAGE_PLAN, defaults.IMAGE_MODEL)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="per-stage and per-plan timings; `bench service ...` for live cameras, "
                                     "`bench privacy ...` for the leak rule on video")
    from faceanon.bench.stages import add_bench_options

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
    from faceanon.bench import SUBCOMMANDS

    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in SUBCOMMANDS:
        from faceanon.bench import main as bench

        return bench(argv[1], argv[2:])
    args = build_parser().parse_args(argv)
    if args.func is not cmd_serve:
        # SIGTERM (a `kill`, a container stopping, a CI timeout) and SIGHUP (a closed terminal) end a file job the
        # way Ctrl-C does: no half-written output, no hidden temp file. The service handles its own signals.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.default_int_handler)
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
