"""One stream's frames through detect and hold: which boxes to mask in each frame, synchronously.

The live service (faceanon.pipeline, which adds threads, deadlines and the fail-closed guard) and `faceanon video`
(a file, frame by frame) both run this, so a file replayed with `--preset live` is anonymized exactly as the camera
would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from faceanon.detect import FaceDetector
from faceanon.detect.stream import Look, StreamPlan, StreamScanner
from faceanon.hold import Hold


@dataclass(frozen=True)
class Masks:
    boxes: np.ndarray  # (N,4): this frame's detections first, then the boxes the hold adds
    faces: int  # faces in view: what the last whole-frame look found (region looks, at low thresholds, only add masks)
    held: int  # boxes the hold added
    look: Look


class StreamAnonymizer:
    """Detect (a StreamPlan: whole frame now and then, moving regions and tracked faces every frame) -> hold."""

    def __init__(self, detectors: Mapping[str, FaceDetector] | FaceDetector, plan: StreamPlan, hold: Hold,
                 threshold: float | None = None) -> None:
        self.scanner = StreamScanner(detectors, plan, threshold)
        self.hold = hold
        self._in_view = 0

    def masks(self, frame: np.ndarray, now: float) -> Masks:
        """The boxes to mask in `frame`, seen at `now` (seconds, any origin; only differences matter)."""
        tracked = np.array([t.box for t in self.hold.tracks], np.float32).reshape(-1, 4)
        look = self.scanner.look(frame, tracked)
        boxes = self.hold.update(look.faces.boxes, now, frame, look.faces.scores)
        if look.whole:
            self._in_view = look.whole_faces
        return Masks(boxes, self._in_view, len(boxes) - len(look.faces), look)
