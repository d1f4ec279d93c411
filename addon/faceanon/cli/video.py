"""`faceanon video`: anonymize a video file frame by frame, masks held between detections."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from faceanon.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ModelError,
    build_scanner,
    mask_style_from,
    progress,
    say,
)
from faceanon.mask import apply_masks
from faceanon.media import MediaError, VideoReader, VideoWriter


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
        scanner = build_scanner(args)
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
