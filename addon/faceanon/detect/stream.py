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
from faceanon.detect.mosaic import scan_images
from faceanon.detect.motion import MotionRegions, merge_boxes
from faceanon.detect.plan import DetectPlan, Scanner, merge, resized

TRACK_PAD = 1.0  # a tracked face's region: its box grown by this share of its size on every side
LOOK_GRID = (18, 32)  # rows, columns: how finely the scanner remembers where its region looks last went
FRESH_SHARE = 0.5  # a region with no tracked face where this share of the motion just started goes first


@dataclass(frozen=True)
class StreamPlan:
    full: DetectPlan = field(default_factory=DetectPlan)  # the whole-frame look
    full_every: int = 1  # frames between whole-frame looks
    # The look at each moving region and tracked face, every frame: passes relative to the region's crop (a 2x
    # pass doubles the crop), with thresholds of their own. None: no region looks (the whole frame every frame).
    regions: DetectPlan | None = None
    motion_width: int = 320  # px of the grey copy the motion model runs on
    # Pixels the region looks may scan per frame (after their scaling), 0: no limit. The regions whose place waited
    # longest go first, then those with a tracked face, then the smallest; what does not fit waits its turn.
    region_budget: int = 0
    # (score, scale) steps: a face found below `score` is masked over its box scaled by `scale` about its centre
    # (the first step that applies). A low-threshold region look's box is often off the face by a share of its size.
    doubt: tuple[tuple[float, float], ...] = ()

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


def widen_doubtful(boxes: np.ndarray, scores: np.ndarray, doubt: tuple[tuple[float, float], ...]) -> np.ndarray:
    """(N,4) boxes, each scaled about its centre by the first `doubt` step whose score it falls below."""
    scale = np.ones(len(boxes), np.float32)
    for below, factor in reversed(doubt):  # the first step that applies is written last
        scale[scores < below] = factor
    half = (boxes[:, 2:] - boxes[:, :2]) * (scale[:, None] - 1) / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, 2:] + half], 1).astype(np.float32)


@dataclass
class Look:
    faces: Faces
    regions: np.ndarray  # (N,4) regions scanned this frame
    whole: bool  # the whole frame was scanned too
    motion_share: float
    whole_faces: int = 0  # faces the whole-frame look found (at the plan's own thresholds), when it ran


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
        self._looked_at: np.ndarray | None = None  # LOOK_GRID: the frame each cell was last in a region look

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
            near = grown(tracked, w, h)
            regions = merge_boxes(np.concatenate([near, motion.boxes]), self.motion.max_regions)
            # A held face the motion model carried past the frame's edge leaves an empty region: nothing to see.
            regions = regions[np.all(regions[:, 2:] - regions[:, :2] >= 1, axis=1)]
            regions = self._within_budget(regions, near, w, h, motion.fresh_share(regions))
        whole = everything or self.closely is None or (self.frames - 1) % max(1, self.plan.full_every) == 0
        if whole:
            parts.append(self.whole.scan(frame))
        whole_faces = len(parts[0]) if whole else 0
        if len(regions):
            parts.extend(self.look_at_all(frame, regions))
        faces = Faces.concat(parts)
        if len(parts) > 1:
            faces = merge(faces, self.plan.full.merge)
        return Look(faces, regions, whole, motion_share, whole_faces)

    def _within_budget(self, regions: np.ndarray, near: np.ndarray, width: int, height: int,
                       fresh: np.ndarray | None = None) -> np.ndarray:
        """The regions to look at this frame, until the plan's pixel budget is spent (the first always goes): the
        ones whose place waited longest since a region look first, then those holding a tracked face, then the
        smallest. Waiting time first is what lets every region in a crowd take its turn; smallest-first alone
        starved a large region (a near face) for good (measured on walkers clips)."""
        if not self.plan.region_budget or len(regions) < 2:
            self._mark_looked(regions, width, height)
            return regions
        assert self.plan.regions is not None
        area = np.prod(regions[:, 2:] - regions[:, :2], axis=1)
        tracked = (_covers(regions, near) if len(near) else np.zeros(len(regions), bool))
        waited = self._waited(regions, width, height)
        appeared = (fresh >= FRESH_SHARE) & ~tracked if fresh is not None else np.zeros(len(regions), bool)
        order = np.lexsort((area, ~tracked, -waited, ~appeared))
        chosen, spent = [], 0.0
        for i in order:
            w, h = regions[i, 2] - regions[i, 0], regions[i, 3] - regions[i, 1]
            cost = sum(area[i] * s * s for _, s in self.plan.regions.passes_for(int(w), int(h)))
            if chosen and spent + cost > self.plan.region_budget:
                continue
            chosen.append(i)
            spent += cost
        kept = regions[sorted(chosen)]
        self._mark_looked(kept, width, height)
        return kept

    def _cells(self, regions: np.ndarray, width: int, height: int) -> np.ndarray:
        """Each region as the (x1, y1, x2, y2) range of LOOK_GRID cells it touches."""
        rows, cols = LOOK_GRID
        scale = np.array([cols / width, rows / height, cols / width, rows / height], np.float32)
        cells = regions * scale
        cells[:, :2] = np.floor(cells[:, :2])
        cells[:, 2:] = np.ceil(cells[:, 2:])
        return np.clip(cells, 0, [cols, rows, cols, rows]).astype(int)

    def _waited(self, regions: np.ndarray, width: int, height: int) -> np.ndarray:
        """Frames since the longest-unlooked cell of each region was in a region look."""
        if self._looked_at is None:
            return np.zeros(len(regions), np.int64)
        return np.array([self.frames - self._looked_at[y1:y2, x1:x2].min(initial=self.frames)
                         for x1, y1, x2, y2 in self._cells(regions, width, height)], np.int64)

    def _mark_looked(self, regions: np.ndarray, width: int, height: int) -> None:
        if self._looked_at is None:
            self._looked_at = np.zeros(LOOK_GRID, np.int64)
        for x1, y1, x2, y2 in self._cells(regions, width, height):
            self._looked_at[y1:y2, x1:x2] = self.frames

    def look_at_all(self, frame: np.ndarray, regions: np.ndarray) -> list[Faces]:
        """Every region's crop through the region plan, one inference per pass for all regions together
        (faceanon.detect.mosaic); boxes in frame pixels."""
        assert self.closely is not None and self.plan.regions is not None
        jobs: dict[int, list[tuple[np.ndarray, np.ndarray, bool]]] = {}  # pass -> (image, region, flipped)
        passes = self.plan.regions.passes
        for region in regions:
            x1, y1, x2, y2 = (int(v) for v in np.round(region))
            crop = frame[y1:y2, x1:x2]
            if crop.shape[0] < 8 or crop.shape[1] < 8:
                continue
            for p, scale in self.plan.regions.passes_for(crop.shape[1], crop.shape[0]):
                image = resized(crop, scale)
                if p.flip:
                    image = np.ascontiguousarray(image[:, ::-1])
                jobs.setdefault(passes.index(p), []).append((image, np.array([x1, y1, x2, y2], np.float32), p.flip))
        out = []
        for index, items in jobs.items():
            p = passes[index]
            detector = self.detectors[p.model or self.plan.regions.model]
            found = scan_images(detector, [image for image, _, _ in items], self.closely.threshold_of(p))
            for faces, (image, (x1, y1, x2, y2), flipped) in zip(found, items, strict=True):
                if not len(faces):
                    continue
                ih, iw = image.shape[:2]
                if flipped:
                    boxes = faces.boxes.copy()
                    boxes[:, [0, 2]] = iw - boxes[:, [2, 0]]
                    faces = Faces(boxes, faces.scores, None)
                out.append(faces.scaled((x2 - x1) / iw, (y2 - y1) / ih, x1, y1))
        return out


def _covers(regions: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each region, whether it holds the centre of any of the boxes."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = ((centres[None, :, 0] >= regions[:, None, 0]) & (centres[None, :, 0] <= regions[:, None, 2])
              & (centres[None, :, 1] >= regions[:, None, 1]) & (centres[None, :, 1] <= regions[:, None, 3]))
    return inside.any(axis=1)


def grown(boxes: np.ndarray | None, width: int, height: int) -> np.ndarray:
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    pad = (b[:, 2:] - b[:, :2]) * TRACK_PAD
    out = np.concatenate([b[:, :2] - pad, b[:, 2:] + pad], axis=1)
    return np.clip(out, 0, [width, height, width, height]).astype(np.float32)
