"""Where in a frame to look: a plan is a list of passes whose detections are merged into one set of faces.

A pass looks at the whole frame (or its tiles) at one scale, with one model, optionally mirrored. The scale is
relative to the frame and clamped to the pass's `min_side`/`max_side`, so one plan serves a 300 px photo and a
4K frame alike. A pass that would repeat an earlier one (same model, mirror and tiling, scale within 10 %) or
shrink the frame below `MIN_PASS_SIDE` is skipped. Detections of every pass are merged: boxes overlapping by IoU
0.3 become the box around them all, so a face that any pass finds is masked at least as widely as that pass
asked. Boxes always come back in original-frame pixels.

Why several passes: a detector resolves faces over a limited range of sizes. Enlarging finds faces of 10-20 px
that the native pass cannot resolve; shrinking finds large, blurry or upscaled faces that the native pass misses
(both measured under the team's leak rule, models/README.md). Named plans are in `faceanon.detect.plans`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, box_iou, nms

MIN_PASS_SIDE = 64  # px: a pass shrunk below this long side sees nothing a detector can use
SAME_SCALE = 0.1  # passes whose scales differ by less than this share are the same pass
MERGE_IOU = 0.3
# The smallest face the bundled models resolve at their input: below about 10 px they find almost nothing (the
# 10-24 px faces of faces-dev are where every model's misses are; models/README.md).
RESOLVED_FACE_PX = 10.0


@dataclass(frozen=True)
class Pass:
    scale: float = 1.0  # size relative to the frame: 0.5 halves it, 2 doubles it
    max_side: int = 0  # cap on the pass's long side in px (0: none)
    min_side: int = 0  # floor on the pass's long side in px (0: none): small images are enlarged to it
    model: str | None = None  # None: the plan's model
    flip: bool = False  # mirror horizontally: detectors are not symmetric, a mirrored look finds other faces
    tile: int = 0  # split the scaled frame into overlapping tiles of about this many px (0: whole frame)
    threshold: float | None = None  # None: the model's threshold (or the plan's override for its own model)

    def scale_for(self, width: int, height: int) -> float:
        """The effective scale for a frame of this size (the clamped long side over the frame's)."""
        long_side = max(width, height)
        target = long_side * self.scale
        if self.min_side:
            # A shrinking pass with a floor (`0.67x>=640`) never enlarges: a frame under its floor is seen as it is.
            target = max(target, min(self.min_side, long_side) if self.scale < 1 else self.min_side)
        if self.max_side:
            target = min(target, self.max_side)
        return target / long_side

    def describe(self, default_model: str) -> str:
        parts = [f"{self.model or default_model}@{self.scale:g}x"]
        if self.max_side:
            parts.append(f"<={self.max_side}px")
        if self.min_side:
            parts.append(f">={self.min_side}px")
        if self.tile:
            parts.append(f"tiles {self.tile}")
        if self.flip:
            parts.append("mirrored")
        return " ".join(parts)


@dataclass(frozen=True)
class DetectPlan:
    passes: tuple[Pass, ...] = (Pass(),)
    model: str = "centerface"  # the model of passes that name none
    name: str = "custom"
    tile_overlap: float = 0.2  # share of a tile overlapped by its neighbour, so no face is cut in two
    tiles_per_call: int = 0  # 0: every tile on every call; N: N tiles per call, round robin (streams)
    # hull: overlapping boxes become the box around them all (never less mask than any pass asked for; scores of
    # different models need not compare); nms: the best-scoring box. hull leaked less at every image size tried.
    merge: str = "hull"

    def smallest_face(self, width: int, height: int) -> float:
        """The smallest face (frame px) a whole-frame look of this plan resolves on a frame of this size: the
        models' RESOLVED_FACE_PX over the largest scale of the passes that see the whole frame at every look
        (round-robin tiles see each part only every few looks; a moving face is also looked at by the regions)."""
        every_look = [p for p in self.passes if not (p.tile and self.tiles_per_call)]
        scale = max((p.scale_for(width, height) for p in every_look), default=0.0)
        return RESOLVED_FACE_PX / scale if scale > 0 else float("inf")

    @property
    def models(self) -> list[str]:
        """Every model the plan needs, the plan's own first."""
        names = [self.model] + [p.model for p in self.passes if p.model]
        return list(dict.fromkeys(names))

    def with_model(self, model: str) -> DetectPlan:
        """The same passes with another default model."""
        return replace(self, model=model)

    def describe(self) -> str:
        return " + ".join(p.describe(self.model) for p in self.passes)

    def passes_for(self, width: int, height: int) -> list[tuple[Pass, float]]:
        """(pass, effective scale) for a frame of this size, with repeated and useless passes left out."""
        chosen: list[tuple[Pass, float]] = []
        long_side = max(width, height)
        keys: list[tuple[str, bool, int, float]] = []
        for p in self.passes:
            s = p.scale_for(width, height)
            if long_side * s < MIN_PASS_SIDE or (p.scale > 1 and s <= 1) or (p.scale < 1 and s >= 1):
                continue  # too small to see anything, or clamped into a pass that does not enlarge (shrink)
            # A tiled pass over a frame that fits in one tile is a whole-frame pass.
            tile = p.tile if p.tile and max(width, height) * s > p.tile else 0
            key = (p.model or self.model, p.flip, tile)
            if any(k[:3] == key and abs(s - k[3]) <= SAME_SCALE * max(s, k[3]) for k in keys):
                continue
            keys.append((*key, s))
            chosen.append((p, s))
        if not chosen:  # a tiny image: the largest look there is, rather than none
            p = max(self.passes, key=lambda q: q.scale_for(width, height))
            chosen.append((p, p.scale_for(width, height)))
        return chosen


def hull(faces: Faces, iou: float = MERGE_IOU) -> Faces:
    """Greedy clusters of boxes overlapping the best remaining one by `iou`; each becomes the box around them all,
    with the best score (and its landmarks). Scores of different models need not be comparable."""
    if len(faces) < 2:
        return faces
    order = np.argsort(-faces.scores, kind="stable")
    boxes = faces.boxes[order]
    ious = box_iou(boxes, boxes)
    free = np.ones(len(boxes), bool)
    keep, out = [], []
    for i in range(len(boxes)):
        if not free[i]:
            continue
        near = free & (ious[i] >= iou)
        near[i] = True  # a box of no area overlaps nothing, itself included
        group = np.flatnonzero(near)
        free[group] = False
        keep.append(order[i])
        out.append(np.concatenate([boxes[group, :2].min(0), boxes[group, 2:].max(0)]))
    best = faces.take(np.asarray(keep))
    return Faces(np.asarray(out, np.float32).reshape(-1, 4), best.scores, best.landmarks)


def merge(faces: Faces, how: str) -> Faces:
    return hull(faces) if how == "hull" else nms(faces, MERGE_IOU)


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


def resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)


@dataclass
class Scanner:
    """Runs a DetectPlan for one camera, image set or video (it keeps the round-robin position of the tiles).

    `detectors` maps model names to loaded detectors (a single detector serves as the plan's model). `threshold`
    overrides the score threshold of the plan's own model; other models keep theirs (their scores are on other
    scales: CenterFace 0.2 is YuNet 0.6)."""

    detectors: Mapping[str, FaceDetector] | FaceDetector
    plan: DetectPlan = field(default_factory=DetectPlan)
    threshold: float | None = None
    _next_tile: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.detectors, FaceDetector):
            self.detectors = {self.plan.model: self.detectors}
        missing = [m for m in self.plan.models if m not in self.detectors]
        if missing:
            raise ValueError(f"plan {self.plan.name} needs model(s) {', '.join(missing)}, not loaded")

    @property
    def detector(self) -> FaceDetector:
        """The plan's own model."""
        assert isinstance(self.detectors, Mapping)
        return self.detectors[self.plan.model]

    def threshold_of(self, p: Pass) -> float:
        model = p.model or self.plan.model
        if p.threshold is not None:
            return p.threshold
        if self.threshold is not None and model == self.plan.model:
            return self.threshold
        assert isinstance(self.detectors, Mapping)
        return self.detectors[model].manifest.threshold

    def scan(self, frame: np.ndarray) -> Faces:
        return self.scan_with_floor(frame)[0]

    def scan_with_floor(self, frame: np.ndarray, floor: float | None = None) -> tuple[Faces, Faces]:
        """(faces at the plan's thresholds, faces down to `floor`): one inference serves masking and the AP curve.
        The first are merged by the plan's rule (what gets masked); the second always by NMS, because the AP curve
        measures where the detector put its boxes, and a hull of many low-score boxes is no detection.
        Without a floor both are the same faces."""
        h, w = frame.shape[:2]
        kept, every = [], []
        for i, (p, s) in enumerate(self.plan.passes_for(w, h)):
            threshold = self.threshold_of(p)
            found = self.look(frame, p, s, i, threshold if floor is None else min(floor, threshold))
            every.append(found)
            kept.append(found.above(threshold) if floor is not None else found)
        if len(kept) == 1:
            return kept[0], every[0]
        found = merge(Faces.concat(kept), self.plan.merge)
        return found, (found if floor is None else nms(Faces.concat(every), MERGE_IOU))

    def look(self, frame: np.ndarray, p: Pass, scale: float, index: int = 0, threshold: float | None = None
             ) -> Faces:
        """One pass over `frame` at `scale`; boxes in `frame` pixels."""
        assert isinstance(self.detectors, Mapping)
        detector = self.detectors[p.model or self.plan.model]
        threshold = self.threshold_of(p) if threshold is None else threshold
        image = resized(frame, scale)
        if p.flip:
            image = np.ascontiguousarray(image[:, ::-1])
        ih, iw = image.shape[:2]
        tiles = self._tiles_now(index, tile_grid(iw, ih, p.tile, self.plan.tile_overlap)) if p.tile else []
        if tiles:
            found = Faces.concat([detector.infer(image[y:y + th, x:x + tw], threshold).scaled(1, 1, x, y)
                                  for x, y, tw, th in tiles])
        else:
            found = detector.infer(image, threshold)
        if p.flip and len(found):
            boxes = found.boxes.copy()
            boxes[:, [0, 2]] = iw - boxes[:, [2, 0]]
            lms = None
            if found.landmarks is not None:
                lms = found.landmarks.copy()
                lms[..., 0] = iw - lms[..., 0]
            found = Faces(boxes, found.scores, lms)
        h, w = frame.shape[:2]
        return found.scaled(w / iw, h / ih) if (iw, ih) != (w, h) else found

    def _tiles_now(self, index: int, tiles: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
        n = self.plan.tiles_per_call
        if not tiles or n <= 0 or n >= len(tiles):
            return tiles
        start = self._next_tile.get(index, 0) % len(tiles)
        self._next_tile[index] = start + n
        return [tiles[(start + i) % len(tiles)] for i in range(n)]
