"""`faceanon video`: anonymize a video file frame by frame, as a preset says.

`--preset video` (the default) looks at every frame. `--preset live` replays the live service's per-camera pipeline
on the file, deterministically: frames are taken at the camera's fps (`--fps`) exactly as a live source takes them,
each taken frame goes through the same plan, moving regions and hold as in `faceanon serve`, and a frame the camera
would not have taken is written as the service would have shown it: the last published frame again. Either way the
output keeps every frame, so frames align with the input. Output: H.264 (MP4/MOV/MKV/AVI by the file name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from faceanon import defaults
from faceanon.anonymizer import StreamAnonymizer, models_for, people_look
from faceanon.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ModelError, mask_style_from, progress, say
from faceanon.detect import load_models
from faceanon.media import MediaError, ensure_writable_dir
from faceanon.publish.video import container_of
from faceanon.videojob import DetectorFailed, anonymize_video


def build_anonymizer(args: argparse.Namespace, preset: defaults.Preset) -> StreamAnonymizer:
    """The preset with the options' overrides, its models loaded (ModelError on failure)."""
    stream = preset.stream(model=args.model, plan=args.plan, full_every=args.detect_every)
    detectors = load_models(models_for(stream, args.target), args.family, args.provider, args.threads)
    return StreamAnonymizer(detectors, stream, preset.hold(args.hold), args.threshold,
                            people_look(detectors, args.target))


def announced_frames(source: Path) -> int | None:
    """The frame count the file announces (for the progress line's total and time left), or None."""
    from faceanon.source.video import VideoReader

    try:
        with VideoReader(source) as reader:
            return reader.frame_count
    except MediaError:
        return None  # the job itself says what is wrong with the file


def cmd_video(args: argparse.Namespace) -> int:
    preset = defaults.PRESETS[args.preset]
    source, target = Path(args.input), Path(args.output)
    if args.detect_every is not None and args.detect_every < 1:
        say(f"--detect-every must be 1 or more, not {args.detect_every}")
        return EXIT_USAGE
    fps = args.fps if args.fps is not None else preset.fps
    if fps is not None and fps <= 0:
        say(f"--fps must be more than 0, not {fps}")
        return EXIT_USAGE
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        say(f"{target}: the output would overwrite the input; choose another -o file")
        return EXIT_USAGE
    try:
        if target.is_dir():
            raise MediaError(target, "is a folder; give a file name such as out.mp4")
        container_of(target)
    except MediaError as err:
        say(err.line())
        return EXIT_USAGE
    try:
        anonymizer = build_anonymizer(args, preset)  # before any folder is made: a model error leaves nothing
    except ModelError as err:
        say(str(err))
        return EXIT_USAGE
    try:
        ensure_writable_dir(target.parent)
    except MediaError as err:
        say(f"{target}: cannot write ({err.reason})")
        return EXIT_USAGE
    if target.exists():
        say(f"note: {target} exists; it is replaced when the job ends (it stays as it is if the job fails)")
    bar = progress(desc="frames", unit="f", total=announced_frames(source))
    try:
        result = anonymize_video(source, target, anonymizer, mask_style_from(args, preset.margin), fps, args.keep_audio,
                                 fail_closed=preset.fps is not None, frame_hook=lambda _n: bar.update())
    except KeyboardInterrupt:
        say(f"{target}: interrupted; nothing written")
        return EXIT_INTERRUPTED
    except MediaError as err:
        say(err.line())
        return EXIT_FAILED
    except DetectorFailed as err:
        say(f"{source}: {err}; nothing written")
        return EXIT_FAILED
    finally:
        bar.close()
    if result.failed:
        say(f"{source}: the detector failed on {result.failed} frames (first: {result.first_error}); privacy-hold "
            "frames were written for them, as the live service would")
    audio = ""
    if result.audio:
        audio = "; audio copied" if args.keep_audio else "; audio dropped (--keep-audio keeps it)"
    camera = f"camera at {fps:g} fps: {result.taken} frames taken, the rest repeat the last one; " if fps else ""
    print(f"{target}: {result.frames} frames {result.width}x{result.height} anonymized (H.264) in "
          f"{result.seconds:.1f} s ({result.fps:.1f} fps; {camera}detect "
          f"{1000 * result.detect_s / max(result.taken, 1):.0f} ms/frame, whole frame on {result.whole}; "
          f"{result.faces} detections){audio}")
    if result.announced and result.frames < 0.9 * result.announced:
        say(f"{source}: only {result.frames} of the {result.announced} frames the file announces could be decoded "
            "(truncated or corrupt); the output holds those")
        return EXIT_FAILED
    return EXIT_FAILED if result.failed else 0
