"""Where to look in each frame of a stream (a camera, or a video file played like one).

A still image gets every pass of its plan. A stream cannot afford that on every frame, and need not: a new face
comes in moving. So every frame, the moving regions (faceanon.detect.motion) and the faces already tracked are
looked at closely: cropped, enlarged so a 10 px face becomes 20 px, and scanned at a threshold of their own. The
whole frame gets its plan every `full_every` frames (and at once when most of the picture moves), which finds
people who stand still. This is how Frigate spends its detector: motion first, then regions.

Boxes come back in frame pixels; `looked` tells the caller which regions were scanned this frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from faceanon.detect.base import FaceDetector, Faces
from faceanon.detect.motion import MotionRegions, merge_boxes
from faceanon.detect.plan import DetectPlan, Scanner, merge

TRACK_PAD = 1.0  # a tracked face's region: its box grown by this share of its size on every side


@dataclass(frozen=True)
class StreamPlan:
    full: DetectPlan = field(default_factory=DetectPlan)  # the whole-frame look
    full_every: int = 1  # frames between whole-frame looks
    # The look at each moving region and tracked face, every frame: passes relative to the region's crop (a 2x
    # pass doubles the crop), with thresholds of their own. None: no region looks (the whole frame every frame).
    regions: DetectPlan | None = None
    motion_width: int = 320  # px of the grey copy the motion model runs on

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.full.models + (self.regions.models if self.regions else [])))

    def describe(self) -> str:
        text = f"whole frame {self.full.describe()}"
        if self.full_every > 1:
            text += f" every {self.full_every} frames"
        if self.regions:
            text += f"; moving regions and tracked faces every frame: {self.regions.describe()}"
        return text


@dataclass
class Look:
    faces: Faces
    regions: np.ndarray  # (N,4) regions scanned this frame
    whole: bool  # the whole frame was scanned too
    motion_share: float


class StreamScanner:
    """Runs a StreamPlan over the frames of one stream; keeps its motion model and cadence."""

    def __init__(self, detectors: Mapping[str, FaceDetector] | FaceDetector, plan: StreamPlan,
                 threshold: float | None = None) -> None:
        self.plan = plan
        self.whole = Scanner(detectors, plan.full, threshold)
        self.detectors = self.whole.detectors
        self.closely = Scanner(self.detectors, plan.regions, threshold) if plan.regions else None
        self.motion = MotionRegions(width=plan.motion_width)
        self.frames = 0

    def look(self, frame: np.ndarray, tracked: np.ndarray | None = None) -> Look:
        """This frame's faces. `tracked`: (N,4) boxes of the faces the hold follows, looked at closely too."""
        self.frames += 1
        h, w = frame.shape[:2]
        parts: list[Faces] = []
        motion_share, everything = 0.0, False
        regions = np.zeros((0, 4), np.float32)
        if self.closely is not None:
            motion = self.motion.update(frame)
            motion_share, everything = motion.share, motion.everything
            regions = np.concatenate([motion.boxes, grown(tracked, w, h)]) if tracked is not None else motion.boxes
            regions = merge_boxes(regions, self.motion.max_regions)
        whole = everything or self.closely is None or (self.frames - 1) % max(1, self.plan.full_every) == 0
        if whole:
            parts.append(self.whole.scan(frame))
        for region in regions:
            parts.append(self.look_at(frame, region))
        faces = Faces.concat(parts)
        if len(parts) > 1:
            faces = merge(faces, self.plan.full.merge)
        return Look(faces, regions, whole, motion_share)

    def look_at(self, frame: np.ndarray, region: np.ndarray) -> Faces:
        """One region's crop through the region plan; boxes in frame pixels."""
        assert self.closely is not None
        x1, y1, x2, y2 = (int(v) for v in np.round(region))
        crop = frame[y1:y2, x1:x2]
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return Faces.empty()
        return self.closely.scan(crop).scaled(1, 1, x1, y1)


def grown(boxes: np.ndarray | None, width: int, height: int) -> np.ndarray:
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    pad = (b[:, 2:] - b[:, :2]) * TRACK_PAD
    out = np.concatenate([b[:, :2] - pad, b[:, 2:] + pad], axis=1)
    return np.clip(out, 0, [width, height, width, height]).astype(np.float32)
