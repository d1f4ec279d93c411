"""Where in a frame to look: a full-frame pass on a resized copy, plus an optional tiled pass at native resolution
for faces of 10-24 px that the downscaled pass cannot see. Boxes always come back in original-frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, nms


@dataclass(frozen=True)
class DetectPlan:
    max_side: int = 0  # full-frame pass: shrink so the long side is at most this (0: native size)
    min_side: int = 0  # ...and enlarge small images so the long side is at least this (0: never enlarge)
    tile: int = 0  # tiled pass: square-ish tiles of about this many native pixels (0: off)
    tile_overlap: float = 0.2  # fraction of a tile shared with its neighbour, so no face is cut in two
    tiles_per_call: int = 0  # 0: every tile on every call; N: N tiles per call, round robin (streams)

    def full_scale(self, width: int, height: int) -> float:
        long_side = max(width, height)
        if self.max_side and long_side > self.max_side:
            return self.max_side / long_side
        if self.min_side and long_side < self.min_side:
            return self.min_side / long_side
        return 1.0


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
        if scale == 1.0:
            parts = [self.detector.infer(frame, self.threshold)]
        else:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
            sx, sy = w / small.shape[1], h / small.shape[0]
            parts = [self.detector.infer(small, self.threshold).scaled(sx, sy)]
        if scale < 1.0:  # tiles only add detail the shrunken pass lost
            for x, y, tw, th in self._tiles_now(w, h):
                parts.append(self.detector.infer(frame[y:y + th, x:x + tw], self.threshold).scaled(1, 1, x, y))
        faces = Faces.concat(parts)
        return nms(faces, 0.3) if len(parts) > 1 else faces

    def _tiles_now(self, w: int, h: int) -> list[tuple[int, int, int, int]]:
        tiles = tile_grid(w, h, self.plan.tile, self.plan.tile_overlap)
        n = self.plan.tiles_per_call
        if not tiles or n <= 0 or n >= len(tiles):
            return tiles
        start = self._next_tile % len(tiles)
        self._next_tile = start + n
        return [tiles[(start + i) % len(tiles)] for i in range(n)]
