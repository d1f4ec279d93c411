"""The team's leak rule: is a labelled face hidden in the output that was actually written?

A labelled face of at least 10 px (shorter side) is MASKED when at least 80 % of the pixels inside the ellipse
inscribed in its labelled box changed by more than 24 (the largest absolute difference over the three channels)
between the original and the output. Leak = the share of such faces not masked. Collateral = the share of the
pixels outside every labelled and `ignore` box that changed. A missing output, or one of another size, leaks all
its faces. This is the rule of the team's reference tools (`leak.py`, `videoleak.py`), written again here; a test
checks that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

CHANGED = 24  # a channel must move by more than this for a pixel to count as changed
COVER = 0.8  # share of the face's ellipse that must have changed
MIN_FACE = 10  # px, shorter side: smaller faces are not counted
BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<10", 0, 10), ("10-24", 10, 24), ("24-64", 24, 64), (">=64", 64, math.inf))


def changed_pixels(original: np.ndarray, output: np.ndarray | None) -> np.ndarray:
    """HxW bools: pixels whose largest channel difference exceeds CHANGED. A missing or resized output: none."""
    if output is None or output.shape != original.shape:
        return np.zeros(original.shape[:2], bool)
    if original.dtype != np.uint8 or original.ndim != 3 or original.shape[2] != 3:
        return np.abs(original.astype(np.int16) - output.astype(np.int16)).max(axis=-1) > CHANGED
    # |a - b| in uint8 (cv2.absdiff is exact there), then "every channel <= CHANGED" in one pass: 1.2 ms instead
    # of 22.8 ms on a 720p frame (same run).
    same = cv2.inRange(cv2.absdiff(original, output), (0, 0, 0), (CHANGED, CHANGED, CHANGED))
    return same == 0


def bucket_of(side: float) -> str:
    return next(name for name, lo, hi in BUCKETS if lo <= side < hi)


def box_window(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The labelled x,y,w,h box as rounded pixel bounds clipped to the image (as the reference tools do)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(round(x), 0), max(round(y), 0)
    x1, y1 = min(round(x + w), width), min(round(y + h), height)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def ellipse_in(box: Sequence[float], width: int, height: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The pixel window of the x,y,w,h box in the image and, over it, the pixels of the ellipse inscribed in the
    box (all of the window when the ellipse holds no pixel centre); None outside the image."""
    window = box_window(box, width, height)
    if window is None:
        return None
    x0, y0, x1, y1 = window
    x, y, w, h = (float(v) for v in box)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rx, ry = max(w / 2, 0.5), max(h / 2, 0.5)
    inside = ((xx + 0.5 - (x + w / 2)) / rx) ** 2 + ((yy + 0.5 - (y + h / 2)) / ry) ** 2 <= 1.0
    if not inside.any():
        inside[:] = True
    return window, inside


def ellipse_share(changed: np.ndarray, box: Sequence[float]) -> float | None:
    """Share of the pixels inside the ellipse inscribed in the x,y,w,h box that changed; None outside the image."""
    found = ellipse_in(box, changed.shape[1], changed.shape[0])
    if found is None:
        return None
    (x0, y0, x1, y1), inside = found
    return float(changed[y0:y1, x0:x1][inside].mean())


@dataclass
class LeakTally:
    """Running totals over images (or video frames) of faces counted, faces leaked and collateral pixels."""

    faces: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _, _ in BUCKETS})
    leaked: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _, _ in BUCKETS})
    missing: int = 0  # outputs that were absent or of another size
    collateral_changed: int = 0
    collateral_total: int = 0

    def add(self, changed: np.ndarray, faces: Sequence[Sequence[float]], ignore: Sequence[Sequence[float]] = (),
            missing: bool = False) -> list[int]:
        """Add one image's changed-pixel map; return the indices of its faces (>= MIN_FACE) that leaked."""
        self.missing += int(missing)
        height, width = changed.shape
        labelled = np.zeros(changed.shape, bool)
        out = []
        for i, box in enumerate(faces):
            window = box_window(box, width, height)
            if window is None:
                continue
            x0, y0, x1, y1 = window
            labelled[y0:y1, x0:x1] = True
            side = min(float(box[2]), float(box[3]))
            share = ellipse_share(changed, box)
            name = bucket_of(side)
            self.faces[name] += 1
            if share is not None and share < COVER:
                self.leaked[name] += 1
                if side >= MIN_FACE:
                    out.append(i)
        for x, y, w, h in ignore:  # truncated, not rounded, as the reference leak.py does
            labelled[max(int(y), 0):int(y + h), max(int(x), 0):int(x + w)] = True
        self.collateral_changed += int((changed & ~labelled).sum())
        self.collateral_total += int((~labelled).sum())
        return out

    @property
    def counted(self) -> int:
        return sum(n for name, n in self.faces.items() if name != "<10")

    @property
    def leak(self) -> float:
        """Share of faces >= MIN_FACE left unmasked (NaN when there are none)."""
        n = self.counted
        return sum(k for name, k in self.leaked.items() if name != "<10") / n if n else math.nan

    @property
    def collateral(self) -> float:
        return self.collateral_changed / self.collateral_total if self.collateral_total else 0.0

    def by_bucket(self) -> dict[str, float | None]:
        return {name: (self.leaked[name] / n if n else None) for name, n in self.faces.items()}

    def as_dict(self) -> dict:
        return {"faces": self.counted, "leaked": sum(k for name, k in self.leaked.items() if name != "<10"),
                "leak": self.leak, "collateral": self.collateral, "missing_outputs": self.missing,
                "buckets": {name: {"faces": self.faces[name], "leaked": self.leaked[name],
                                   "leak": self.by_bucket()[name]} for name, _, _ in BUCKETS}}


@dataclass
class ExtentTally:
    """How far the masks reach beyond the faces they hide, read from the output alone: for each labelled face the
    rule calls masked, the area of the changed regions (8-connected changed pixels) that reach into its ellipse,
    over the ellipse's area; and the frames where one changed region reaches two labelled faces (their masks merged
    into one cloud). A mask that hugs its face gives about (1 + margin)^2; a cloud over several faces counts its
    whole area for each."""

    ratios: list[float] = field(default_factory=list)
    frames: int = 0  # frames with two faces or more, where masks can merge
    merged: int = 0  # ...of which one changed region reached two of them

    def add(self, changed: np.ndarray, faces: Sequence[Sequence[float]]) -> None:
        height, width = changed.shape
        _, labels, stats, _ = cv2.connectedComponentsWithStats(changed.astype(np.uint8), connectivity=8)
        reached: list[set[int]] = []
        for box in faces:
            found = ellipse_in(box, width, height)
            if found is None or min(float(box[2]), float(box[3])) < MIN_FACE:
                continue
            (x0, y0, x1, y1), inside = found
            under = labels[y0:y1, x0:x1][inside]
            ids = {int(k) for k in np.unique(under[under > 0])}
            reached.append(ids)
            if np.count_nonzero(under) >= COVER * under.size:
                ellipse = math.pi / 4 * float(box[2]) * float(box[3])
                self.ratios.append(float(stats[sorted(ids), cv2.CC_STAT_AREA].sum()) / max(ellipse, 1.0))
        if len(reached) >= 2:
            self.frames += 1
            seen: set[int] = set()
            for ids in reached:
                if ids & seen:
                    self.merged += 1
                    break
                seen |= ids

    def as_dict(self) -> dict:
        r = np.asarray(self.ratios, np.float64)
        return {"mask_per_face_median": float(np.median(r)) if len(r) else math.nan,
                "mask_per_face_p95": float(np.percentile(r, 95)) if len(r) else math.nan,
                "merged_frames": self.merged / self.frames if self.frames else 0.0,
                "frames_with_two_faces": self.frames}

    def extend(self, other: ExtentTally) -> None:
        self.ratios += other.ratios
        self.frames += other.frames
        self.merged += other.merged


@dataclass
class TrackTally:
    """The video rule per (face, frame), per track: one frame unmasked is enough to identify someone."""

    frames: LeakTally = field(default_factory=LeakTally)
    per_track: dict[object, list[int]] = field(default_factory=dict)  # track -> [frames counted, frames leaked]

    def add(self, changed: np.ndarray, faces: Sequence[tuple[object, Sequence[float]]], missing: bool = False
            ) -> None:
        boxes = [box for _, box in faces]
        leaked = set(self.frames.add(changed, boxes, missing=missing))
        for i, (track, box) in enumerate(faces):
            if min(float(box[2]), float(box[3])) < MIN_FACE or box_window(box, *changed.shape[::-1]) is None:
                continue
            counts = self.per_track.setdefault(track, [0, 0])
            counts[0] += 1
            counts[1] += i in leaked

    def track_leak(self, frames: int = 1) -> float:
        """Share of tracks left unmasked in at least `frames` frames."""
        tracks = list(self.per_track.values())
        return sum(1 for _, k in tracks if k >= frames) / len(tracks) if tracks else math.nan

    def as_dict(self) -> dict:
        d = self.frames.as_dict()
        return {"pairs": d["faces"], "frame_leak": d["leak"], "tracks": len(self.per_track),
                "tracks_exposed": sum(1 for _, k in self.per_track.values() if k >= 1),
                "track_leak": self.track_leak(1), "track_leak3": self.track_leak(3),
                "collateral": d["collateral"], "missing_frames": d["missing_outputs"],
                "frame_leak_by_size": {k: v for k, v in self.frames.by_bucket().items() if k != "<10"}}
