"""Temporal hold: a face's mask outlives the frame it was seen in.

A detector misses a face now and then (motion blur, a turned head, one bad frame), and one unmasked frame is
enough to identify someone. So every detection starts or feeds a track; a track keeps masking for `seconds` after
its face was last seen, moving with the face's recent velocity and growing as it gets less certain. The hold only
ever ADDS boxes: every detection of the current frame is returned unchanged, first, whatever the tracks say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceanon.detect import box_iou


@dataclass
class Track:
    box: np.ndarray  # x1,y1,x2,y2 where the face was last seen
    velocity: np.ndarray  # px/s of the box centre
    last_seen: float


class Hold:
    """Keeps masks alive between detections and across misses. One instance per camera (or video)."""

    def __init__(self, seconds: float = 1.0, growth_per_second: float = 0.5, min_iou: float = 0.05,
                 max_speed: float = 2.0) -> None:
        self.seconds = seconds  # how long a mask stays after its face was last detected
        self.growth_per_second = growth_per_second  # a held box grows by this fraction of its size per second
        self.min_iou = min_iou  # a detection continues a track when they overlap at least this much
        self.max_speed = max_speed  # cap on extrapolated motion, in box sizes per second
        self.tracks: list[Track] = []

    def update(self, detections: np.ndarray, now: float) -> np.ndarray:
        """Feed this frame's detections (N,4); return the boxes to mask: the N detections, then held boxes."""
        det = np.asarray(detections, np.float32).reshape(-1, 4)
        live = [t for t in self.tracks if now - t.last_seen <= self.seconds]
        predicted = np.array([self._predict(t, now) for t in live], np.float32).reshape(-1, 4)
        ious = box_iou(predicted, det)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        # Greedy matching, best overlap first.
        for flat in np.argsort(-ious, axis=None):
            ti, di = divmod(int(flat), max(len(det), 1))
            if ious[ti, di] < self.min_iou:
                break
            if ti in matched_tracks or di in matched_dets:
                continue
            matched_tracks.add(ti)
            matched_dets.add(di)
            self._follow(live[ti], det[di], now)
        held = [predicted[i] for i in range(len(live)) if i not in matched_tracks]
        for di in range(len(det)):
            if di not in matched_dets:
                live.append(Track(det[di].copy(), np.zeros(2, np.float32), now))
        self.tracks = live
        return np.concatenate([det, np.array(held, np.float32).reshape(-1, 4)])

    def boxes_at(self, now: float) -> np.ndarray:
        """Boxes for a frame that was not run through the detector: every live track, moved to `now`."""
        return np.array([self._predict(t, now) for t in self.tracks if now - t.last_seen <= self.seconds],
                        np.float32).reshape(-1, 4)

    def _follow(self, track: Track, box: np.ndarray, now: float) -> None:
        dt = now - track.last_seen
        if dt > 0:
            shift = ((box[:2] + box[2:]) - (track.box[:2] + track.box[2:])) / 2 / dt
            track.velocity = 0.5 * track.velocity + 0.5 * shift.astype(np.float32)
        track.box = box.copy()
        track.last_seen = now

    def _predict(self, track: Track, now: float) -> np.ndarray:
        dt = max(0.0, now - track.last_seen)
        size = track.box[2:] - track.box[:2]
        limit = self.max_speed * size
        move = np.clip(track.velocity * dt, -limit * max(dt, 1e-3), limit * max(dt, 1e-3))
        pad = size * self.growth_per_second * dt / 2
        return np.concatenate([track.box[:2] + move - pad, track.box[2:] + move + pad]).astype(np.float32)
