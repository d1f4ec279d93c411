"""Where a fixed camera's picture moves: a background model on a small grey copy of each frame.

People who walk are where new faces come from, so a stream looks at the moving regions closely in every frame (at
native or enlarged resolution) and at the whole frame only now and then (faceanon.detect.stream). The model is
OpenCV's MOG2 on a copy `width` px wide (about a millisecond per frame), together with what changed since the
previous frame: MOG2 alone can take a jump (a scene cut, a looped clip, a run of dropped frames) for background,
and faces that jumped would wait for the next whole-frame look. Regions are the boxes around the moving
blobs, padded so a face at a blob's edge keeps its context, merged where that scans fewer pixels (`merge_boxes`),
and reported in frame pixels. When most of the picture moves at once (a camera that pans, lights switching) the
regions say so (`everything`) and the caller scans the whole frame instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SMALL_WIDTH = 320


@dataclass
class Motion:
    boxes: np.ndarray  # (N,4) x1,y1,x2,y2 float32 in frame pixels
    share: float  # share of the small copy's pixels that moved
    everything: bool  # so much moved that regions mean nothing
    moving: np.ndarray | None = None  # the small copy's motion mask
    # Its pixels that move now and did not move (or near) in the previous frame: something that just appeared (a
    # person stepping out from behind a pillar), not one that walks on. None: no previous frame.
    fresh: np.ndarray | None = None
    scale: tuple[float, float] = (1.0, 1.0)  # frame px per small-copy px (x, y)

    def fresh_share(self, regions: np.ndarray) -> np.ndarray:
        """For each (N,4) region in frame pixels, the share of its moving pixels that just started moving."""
        out = np.zeros(len(regions), np.float32)
        if self.fresh is None or self.moving is None:
            return out
        sx, sy = self.scale
        for i, (x1, y1, x2, y2) in enumerate(regions):
            window = (slice(int(y1 / sy), int(np.ceil(y2 / sy))), slice(int(x1 / sx), int(np.ceil(x2 / sx))))
            moving = np.count_nonzero(self.moving[window])
            if moving:
                out[i] = np.count_nonzero(self.fresh[window]) / moving
        return out


@dataclass
class MotionRegions:
    width: int = SMALL_WIDTH  # px of the grey copy the model runs on
    history: int = 150  # frames a still object takes to fade into the background
    sensitivity: float = 25.0  # MOG2 varThreshold: lower finds fainter motion
    min_area: int = 6  # px of the small copy: smaller blobs are noise
    pad: float = 0.25  # each blob's box grows by this share of its size on every side...
    pad_px: int = 12  # ...and by at least this many frame px (a detector needs some context around a face)
    max_regions: int = 24  # more are merged, cheapest union first
    everything_share: float = 0.4  # more moving than this: scan the whole frame
    # Also what changed since the previous frame by more than this (grey levels): a jump MOG2 is slow to call
    # foreground (a scene cut, a looped clip, a dropped run of frames) must still become a region.
    jump: int = 24
    _model: cv2.BackgroundSubtractorMOG2 | None = field(default=None, init=False, repr=False)
    _previous: np.ndarray | None = field(default=None, init=False, repr=False)
    _moved: np.ndarray | None = field(default=None, init=False, repr=False)  # the previous frame's motion, grown
    _size: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        self._model = None
        self._previous = None
        self._moved = None

    def update(self, frame: np.ndarray) -> Motion:
        h, w = frame.shape[:2]
        small_w = min(self.width, w)
        small_h = max(1, round(h * small_w / w))
        if self._model is None or self._size != (w, h):
            self._model = cv2.createBackgroundSubtractorMOG2(self.history, self.sensitivity, detectShadows=False)
            self._size = (w, h)
            self._previous = None
            self._moved = None
        grey = cv2.cvtColor(cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (3, 3), 0)
        mask = self._model.apply(grey)
        if self._previous is not None:
            mask[cv2.absdiff(grey, self._previous) > self.jump] = 255
        self._previous = grey
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        share = float(np.count_nonzero(mask)) / mask.size
        moved, self._moved = self._moved, cv2.dilate(mask, np.ones((5, 5), np.uint8))
        if share > self.everything_share:
            # A scene cut (a looped clip, a camera switching to night mode, a PTZ move): this frame is the new
            # background at once. MOG2 would otherwise take `history` frames to learn it, calling the whole picture
            # moving all that time, and the regions, where small faces are found, would be lost with it.
            self._model.apply(grey, learningRate=1.0)
            self._moved = None
            return Motion(np.zeros((0, 4), np.float32), share, True)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        sx, sy = w / small_w, h / small_h
        fresh = None if moved is None else cv2.bitwise_and(mask, cv2.bitwise_not(moved))
        boxes = []
        for x, y, bw, bh, area in stats[1:count]:
            if area < self.min_area:
                continue
            boxes.append([x * sx, y * sy, (x + bw) * sx, (y + bh) * sy])
        padded = self._padded(np.asarray(boxes, np.float32).reshape(-1, 4), w, h)
        return Motion(merge_boxes(padded, self.max_regions), share, False, mask, fresh, (sx, sy))

    def _padded(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        if len(boxes) == 0:
            return boxes
        size = boxes[:, 2:] - boxes[:, :2]
        grow = np.maximum(size * self.pad, self.pad_px)
        out = np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)
        return np.clip(out, 0, [width, height, width, height]).astype(np.float32)


def _hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[..., :2], b[..., :2]), np.maximum(a[..., 2:], b[..., 2:])], axis=-1)




def merge_boxes(boxes: np.ndarray, limit: int) -> np.ndarray:
    """Merge the pairs whose union scans no more pixels than the two apart (one inside the other, or overlapping
    by much), cheapest first, then the pairs whose union adds the least area until at most `limit` are left.
    Uniting every overlap instead chained a crowd's boxes into one region the size of the frame, which a region
    look then shrinks below a whole-frame look (measured on walkers clips: faces of 80 px went unmasked)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    area = np.prod(b[:, 2:] - b[:, :2], axis=1)
    while len(b) > 1:
        hulls = _hull(b[:, None, :], b[None, :, :])
        cost = np.prod(hulls[..., 2:] - hulls[..., :2], axis=-1) - area[:, None] - area[None, :]
        np.fill_diagonal(cost, np.inf)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        if cost[i, j] > 0 and len(b) <= max(1, limit):
            break
        b[i] = hulls[i, j]
        b = np.delete(b, j, axis=0)
        area = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return b
