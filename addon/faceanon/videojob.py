"""A video file through a preset: read (source/video.py), anonymize (anonymizer.py), write (publish/video.py).

`faceanon video` and `faceanon bench privacy` both run this, so the benchmark measures the command users run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceanon.anonymizer import StreamAnonymizer
from faceanon.mask import MaskStyle, apply_masks, privacy_hold_image
from faceanon.media import MediaError
from faceanon.publish.video import VideoWriter
from faceanon.source.base import Cadence, one_line
from faceanon.source.video import VideoReader


class DetectorFailed(RuntimeError):
    """The detector raised while anonymizing a file that has no fallback (the video preset)."""


@dataclass
class JobResult:
    frames: int = 0  # written (every frame of the input)
    taken: int = 0  # run through the anonymizer (all of them, unless a camera fps drops some)
    faces: int = 0  # detections
    whole: int = 0  # frames whose whole frame was looked at
    detect_s: float = 0.0
    seconds: float = 0.0
    failed: int = 0  # frames written as privacy-hold frames because the detector failed
    first_error: str = ""
    width: int = 0
    height: int = 0
    announced: int | None = None
    audio: bool = False  # the input has audio
    taken_at: list[int] = field(default_factory=list)  # the indices of the frames run through the anonymizer

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def anonymize_video(source: Path, target: Path, anonymizer: StreamAnonymizer, style: MaskStyle,
                    camera_fps: float | None = None, keep_audio: bool = False, fail_closed: bool = False,
                    frame_hook: Callable[[int], None] | None = None) -> JobResult:
    """Anonymize every frame of `source` into `target`. With `camera_fps` frames are taken at that rate as a live
    source takes them, and the others written as the last published frame. A detector error raises DetectorFailed,
    or with `fail_closed` (a live replay) writes privacy-hold frames as the service would. MediaError on bad files;
    the target is then not written."""
    result = JobResult()
    started = time.monotonic()
    reader = VideoReader(source)
    result.width, result.height, result.announced = reader.width, reader.height, reader.frame_count
    result.audio = reader.audio is not None
    try:
        writer = VideoWriter(target, reader.fps, reader.width, reader.height, reader.audio if keep_audio else None)
    except MediaError:
        reader.close()
        raise
    cadence = Cadence(camera_fps) if camera_fps else None
    last: np.ndarray | None = None
    try:
        with reader:
            for item in reader.items(with_audio=keep_audio):
                if item.audio is not None:
                    writer.write_audio(item.audio)
                    continue
                frame = item.frame
                assert frame is not None
                now = result.frames / reader.fps  # video time: the hold and the cadence do not depend on speed
                if cadence is None or cadence.take(now) or last is None:
                    last = _anonymized(frame, now, anonymizer, style, result, fail_closed, last)
                    result.taken_at.append(result.frames)
                    result.taken += 1
                writer.write(last)
                result.frames += 1
                if frame_hook is not None:
                    frame_hook(result.frames)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    result.seconds = time.monotonic() - started
    return result


def _anonymized(frame: np.ndarray, now: float, anonymizer: StreamAnonymizer, style: MaskStyle, result: JobResult,
                fail_closed: bool, last: np.ndarray | None) -> np.ndarray:
    t0 = time.perf_counter()
    try:
        masks = anonymizer.masks(frame, now)
    except Exception as err:  # the service fails closed here; so does its replay
        if not fail_closed:
            raise DetectorFailed(f"detector failed at frame {result.frames} ({one_line(err)})") from err
        result.failed += 1
        result.first_error = result.first_error or f"frame {result.frames}: {one_line(err)}"
        return privacy_hold_image(last, result.width, result.height)
    result.detect_s += time.perf_counter() - t0
    result.faces += masks.faces
    result.whole += masks.look.whole
    return apply_masks(frame, masks.boxes, style)
