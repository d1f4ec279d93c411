"""Where in a frame to look. Up to three passes, merged by NMS, boxes always in original-frame pixels:
1. the whole frame, shrunk so its long side is at most `max_side` (speed on big frames);
2. small images only: the whole image enlarged to `min_side`, IN ADDITION to pass 1, because faces of 10-20 px
   are below what the detectors resolve at native size (on faces-dev this found 3 of 8 faces that the native
   pass alone leaks, see models/README.md);
3. big frames only: overlapping tiles at native resolution (`tile`), for faces of 10-24 px that pass 1 shrank away;
   streams can spread the tiles over several frames (`tiles_per_call`) and let the hold cover the gaps."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, nms


@dataclass(frozen=True)
class DetectPlan:
    max_side: int = 0  # full-frame pass: shrink so the long side is at most this (0: native size)
    min_side: int = 0  # extra pass for images whose long side is below this, enlarged to it (0: off)
    tile: int = 0  # tiled pass: square-ish tiles of about this many native pixels (0: off)
    tile_overlap: float = 0.2  # fraction of a tile shared with its neighbour, so no face is cut in two
    tiles_per_call: int = 0  # 0: every tile on every call; N: N tiles per call, round robin (streams)

    def full_scale(self, width: int, height: int) -> float:
        long_side = max(width, height)
        return self.max_side / long_side if self.max_side and long_side > self.max_side else 1.0

    def enlarge_scale(self, width: int, height: int) -> float | None:
        long_side = max(width, height)
        return self.min_side / long_side if self.min_side and long_side < self.min_side else None


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping (x, y, w, h) tiles covering the frame; empty when one tile would cover it anyway."""
    if tile <= 0 or (width <= tile and height <= tile):
        return []
    step = max(1, int(tile * (1 - overlap)))

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        n = -(-(length - tile) // step) + 1
        return [round(i * (length - tile) / (n - 1)) for i in range(n)]

    tw, th = min(tile, width), min(tile, height)
    return [(x, y, tw, th) for y in starts(height) for x in starts(width)]


class Scanner:
    """Runs a DetectPlan with one detector for one camera (it keeps the round-robin position)."""

    def __init__(self, detector: FaceDetector, plan: DetectPlan, threshold: float | None = None) -> None:
        self.detector = detector
        self.plan = plan
        self.threshold = detector.manifest.threshold if threshold is None else threshold
        self._next_tile = 0

    def scan(self, frame: np.ndarray) -> Faces:
        h, w = frame.shape[:2]
        scale = self.plan.full_scale(w, h)
        parts = [self._resized_pass(frame, scale)]
        enlarge = self.plan.enlarge_scale(w, h)
        if enlarge is not None:
            parts.append(self._resized_pass(frame, enlarge))
        if scale < 1.0:  # tiles only add the detail that the shrunken pass lost
            for x, y, tw, th in self._tiles_now(w, h):
                parts.append(self.detector.infer(frame[y:y + th, x:x + tw], self.threshold).scaled(1, 1, x, y))
        faces = Faces.concat(parts)
        return nms(faces, 0.3) if len(parts) > 1 else faces

    def _resized_pass(self, frame: np.ndarray, scale: float) -> Faces:
        if scale == 1.0:
            return self.detector.infer(frame, self.threshold)
        h, w = frame.shape[:2]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
        return self.detector.infer(resized, self.threshold).scaled(w / resized.shape[1], h / resized.shape[0])

    def _tiles_now(self, w: int, h: int) -> list[tuple[int, int, int, int]]:
        tiles = tile_grid(w, h, self.plan.tile, self.plan.tile_overlap)
        n = self.plan.tiles_per_call
        if not tiles or n <= 0 or n >= len(tiles):
            return tiles
        start = self._next_tile % len(tiles)
        self._next_tile = start + n
        return [tiles[(start + i) % len(tiles)] for i in range(n)]
