"""Temporal hold: a face's mask outlives the frame it was seen in, and follows the face.

A detector misses a face now and then (motion blur, a turned head, one bad frame), and one unmasked frame is enough
to identify someone. So every detection starts or feeds a track. On every later frame each track is re-located in
that frame's image: optical flow (Lucas-Kanade) on the corners inside its box, checked forwards and backwards, or,
when the face moved too far for the flow, the best match of its last appearance within the distance it can have
covered. When the image cannot place it, a motion model does: the box moves with the face's velocity and grows with
the time since the face was last seen and with its speed (the fastest a face may move while its speed is not yet
known), so the held mask covers every place the face can have reached, across missed detections and dropped frames
alike. A track lives `seconds` after its last
detection and at least `min_frames` frames (so a slow box, taking few frames, still holds a missed face), or up to
`follow_seconds` while optical flow keeps finding it.

The hold only ever ADDS boxes: every detection of the current frame is returned unchanged, first, whatever the
tracks say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from faceanon.detect import box_iou

FLOW_POINTS = 16
HALF_SIZE_FROM = 48  # px: a face this big is followed on the half-size image (a quarter of the work)
FLOW_MIN_POINTS = 4
FLOW_BACK_ERROR = 1.0  # px: a point that does not come back to where it started is dropped
MATCH_SCORE = 0.6  # normalised correlation a template match needs to place a face


@dataclass
class Track:
    box: np.ndarray  # x1,y1,x2,y2 where the face is now: last detected, or re-located since
    velocity: np.ndarray  # px/s of the box centre
    seen_at: float  # last detection
    moved_at: float  # last time the box was placed (detection, flow or prediction)
    seen_box: np.ndarray | None = None  # the last detected box
    followed: bool = False  # the image (flow or template) placed it in the last frame
    moves_known: bool = False  # its velocity was measured (two sightings, or the image placed it)
    misses: int = 0  # frames since its last detection
    sightings: int = 1  # detections that fed it
    score: float = 1.0  # the best detection score it had


@dataclass
class Hold:
    """Keeps masks alive between detections and across misses. One instance per camera (or video)."""

    seconds: float = 1.0  # how long a mask stays after its face was last detected
    growth_per_second: float = 0.5  # a predicted box grows by this share of its size per second unseen
    follow_growth: float = 0.2  # a box optical flow placed grows by this much less uncertainty per second
    speed_doubt: float = 0.5  # a predicted box also grows by this share of the distance its speed covers
    follow_seconds: float = 2.0  # a track optical flow keeps finding lives this long after its last detection
    max_pad: float = 1.0  # a held box grows by at most this many of its sizes on each side
    min_frames: int = 3  # ...and for at least this many frames, however long they take to come (a busy box)
    min_iou: float = 0.5  # a detection continues a track when they agree this much (IoU)
    # A track of one sighting below this score (a low-threshold look at a moving region) is held only min_frames:
    # a face the detector will find again, not a long-lived ghost over a background patch.
    confirm_score: float = 0.0
    # More tracks than this at once (a crowd, and the region looks' one-off finds around it): one-sighting tracks
    # go first (_prune). It bounds the work of a crowd: a cap of 48 exposed 135 of 350 walkers, no cap 128.
    max_tracks: int = 128
    max_speed: float = 2.0  # cap on the velocity used, in box sizes per second...
    max_speed_px: float = 250.0  # ...or px per second, whichever is more (a far face crosses many of its sizes)
    tracks: list[Track] = field(default_factory=list)
    _grey: np.ndarray | None = field(default=None, init=False, repr=False)
    _half: np.ndarray | None = field(default=None, init=False, repr=False)

    def update(self, detections: np.ndarray, now: float, frame: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> np.ndarray:
        """Feed this frame's detections (N,4) (with their scores, when known) and, when there is one, the frame
        itself; return the boxes to mask: the N detections unchanged, then the held boxes of the tracks no
        detection matched."""
        det = np.asarray(detections, np.float32).reshape(-1, 4)
        score = np.ones(len(det), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        live = [t for t in self.tracks if self._alive(t, now)]
        # A detection continues a track when it agrees with where the face should be now: first where its motion
        # model puts it, then, for the faces that did not agree, where the image places it (optical flow costs a
        # millisecond or two a face, so only those are searched for). A detection that overlaps a track without
        # agreeing (a part of the face, a neighbour, a background patch near it) starts a track of its own and the
        # face keeps its mask: taking it as the face moved the mask off a face the detector had lost (measured on
        # 6 walkers clips: with any overlap of 5 % as agreement, 60 of 96 walkers were exposed, 49 with this).
        predicted = np.array([t.box + np.tile(self._velocity(t) * max(0.0, now - t.moved_at), 2) for t in live],
                             np.float32).reshape(-1, 4)
        matched = self._match(live, list(range(len(live))), predicted, det, set(), score, now)
        unmatched_at = [i for i in range(len(live)) if i not in matched]
        self._advance([live[i] for i in unmatched_at], now, frame)
        placed = np.array([live[i].box for i in unmatched_at], np.float32).reshape(-1, 4)
        matched_dets = set(matched.values())
        refound = self._match(live, unmatched_at, placed, det, matched_dets, score, now)
        matched_dets |= set(refound.values())
        unmatched = [live[i] for i in unmatched_at if i not in refound]
        held = [self._held_box(t, now) for t in unmatched if self._alive(t, now)]
        for di in range(len(det)):
            if di not in matched_dets:
                live.append(Track(det[di].copy(), np.zeros(2, np.float32), now, now, det[di].copy(),
                                  score=float(score[di])))
        self.tracks = self._prune([t for t in live if self._alive(t, now)])
        return np.concatenate([det, np.array(held, np.float32).reshape(-1, 4)])

    def _match(self, live: list[Track], which: list[int], where: np.ndarray, det: np.ndarray, taken: set[int],
               score: np.ndarray, now: float) -> dict[int, int]:
        """Greedy, best overlap first: each track of `live[which]` (now at `where`) takes the free detection that
        agrees with it (IoU >= min_iou). Returns {track index: detection index}."""
        ious = box_iou(where, det)
        pairs: dict[int, int] = {}
        for flat in np.argsort(-ious, axis=None):
            row, di = divmod(int(flat), max(len(det), 1))
            if ious[row, di] < self.min_iou:
                break
            ti = which[row]
            if ti in pairs or di in taken or di in pairs.values():
                continue
            pairs[ti] = di
            self._seen(live[ti], det[di], now)
            live[ti].sightings += 1
            live[ti].score = max(live[ti].score, float(score[di]))
        return pairs

    def boxes_at(self, now: float, frame: np.ndarray | None = None) -> np.ndarray:
        """Boxes for a frame that was not run through the detector: every live track, followed into `frame`."""
        live = [t for t in self.tracks if self._alive(t, now)]
        self._advance(live, now, frame)
        self.tracks = self._prune([t for t in live if self._alive(t, now)])
        return np.array([self._held_box(t, now) for t in self.tracks], np.float32).reshape(-1, 4)

    # -- tracks ---------------------------------------------------------------------------------------------
    def confirmed(self, t: Track) -> bool:
        """Seen twice, or once at a score that makes it likely a face."""
        return t.sightings >= 2 or t.score >= self.confirm_score

    def _prune(self, tracks: list[Track]) -> list[Track]:
        """One track per face (dedupe), and at most max_tracks: past it, tracks of one low-score sighting go first,
        then the longest unseen. Evicting the longest unseen alone dropped faces the detector had lost for a moment
        in favour of background patches a region look found once; and 48 tracks were too few for a crowd (22 walkers
        clips: a cap of 48 exposed 135 of 350 walkers, no cap 128)."""
        kept = dedupe(tracks)
        if len(kept) <= self.max_tracks:
            return kept
        ranked = sorted(kept, key=lambda t: (self.confirmed(t), t.seen_at), reverse=True)
        chosen = {id(t) for t in ranked[:self.max_tracks]}
        return [t for t in kept if id(t) in chosen]

    def _alive(self, t: Track, now: float) -> bool:
        if self.seconds <= 0:
            return False
        if not self.confirmed(t):
            return t.misses <= self.min_frames
        unseen = now - t.seen_at
        # Following on the image alone (no detection) only extends a track seen at least twice: flow also "finds"
        # a patch of background, and one stray detection must not become a mask that wanders for seconds.
        return (unseen <= self.seconds or t.misses <= self.min_frames
                or (t.followed and t.sightings >= 2 and unseen <= max(self.seconds, self.follow_seconds)))

    def _advance(self, tracks: list[Track], now: float, frame: np.ndarray | None) -> None:
        """Place each track in `frame` (flow, a template match, else the motion model); remember the frame's grey
        image for the next call."""
        grey = None if frame is None else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        half = None if grey is None else cv2.pyrDown(grey)
        for t in tracks:
            t.misses += 1  # no detection of this frame matched it
            dt = now - t.moved_at
            if dt <= 0:
                continue
            shift = None
            if self.confirmed(t) and grey is not None and self._grey is not None and self._grey.shape == grey.shape:
                reach = self._reach(t, dt)
                if min(t.box[2:] - t.box[:2]) >= HALF_SIZE_FROM and self._half is not None and half is not None:
                    shift = _at_half(self._half, half, t.box, reach)
                else:
                    shift = flow_shift(self._grey, grey, t.box, reach)
                    if shift is None:
                        shift = match_shift(self._grey, grey, t.box, reach)
            t.followed = shift is not None
            if shift is None:
                shift = self._velocity(t) * dt
            else:
                t.velocity = (0.5 * t.velocity + 0.5 * shift / dt if t.moves_known else shift / dt).astype(np.float32)
                t.moves_known = True
            t.box = (t.box + np.concatenate([shift, shift])).astype(np.float32)
            t.moved_at = now
        if grey is not None:
            self._grey, self._half = grey, half

    def _top_speed(self, t: Track) -> float:
        """px/s: the fastest this face may move."""
        return max(self.max_speed * float(np.max(t.box[2:] - t.box[:2])), self.max_speed_px)

    def _velocity(self, t: Track) -> np.ndarray:
        limit = self._top_speed(t)
        return np.clip(t.velocity, -limit, limit)

    def _reach(self, t: Track, dt: float) -> float:
        """How far (px) the face can have gone in dt: where the image is searched."""
        size = float(np.max(t.box[2:] - t.box[:2]))
        return size * 0.5 + self._top_speed(t) * dt

    def _seen(self, t: Track, box: np.ndarray, now: float) -> None:
        dt = now - t.seen_at
        if dt > 0 and t.seen_box is not None and not t.followed:
            observed = ((box[:2] + box[2:]) - (t.seen_box[:2] + t.seen_box[2:])) / 2 / dt
            t.velocity = (0.5 * t.velocity + 0.5 * observed if t.moves_known else observed).astype(np.float32)
            t.moves_known = True
        t.box = box.copy()
        t.seen_box = box.copy()
        t.seen_at = t.moved_at = now
        t.followed = False
        t.misses = 0

    def _held_box(self, t: Track, now: float) -> np.ndarray:
        """The track's box grown by its uncertainty: time since it was seen, and the distance its speed covers."""
        unseen = max(0.0, now - t.seen_at)
        size = t.box[2:] - t.box[:2]
        if t.followed:
            pad = size * self.follow_growth * unseen / 2
        else:
            # A face whose speed is known may be off its predicted path by a share of that speed; one whose speed is
            # not known (seen once) may have gone anywhere it could reach.
            speed = np.abs(self._velocity(t)) * self.speed_doubt if t.moves_known else np.full(2, self._top_speed(t))
            pad = np.minimum(size * self.growth_per_second * unseen / 2 + speed * unseen, size * self.max_pad)
        return np.concatenate([t.box[:2] - pad, t.box[2:] + pad]).astype(np.float32)


def _at_half(prev: np.ndarray, half: np.ndarray, box: np.ndarray, reach: float) -> np.ndarray | None:
    """flow_shift (then match_shift) on half-size images, as a full-size shift."""
    small = box / 2
    shift = flow_shift(prev, half, small, reach / 2)
    if shift is None:
        shift = match_shift(prev, half, small, reach / 2)
    return None if shift is None else shift * 2


def dedupe(tracks: list[Track], iou: float = 0.3, inside: float = 0.7) -> list[Track]:
    """Tracks that have come to cover the same face (IoU > iou, or one mostly inside the other) are one: the most
    recently seen, most seen, stays."""
    if len(tracks) < 2:
        return tracks
    order = sorted(range(len(tracks)), key=lambda i: (-tracks[i].seen_at, -tracks[i].sightings))
    boxes = np.array([tracks[order[k]].box for k in range(len(order))], np.float32)
    overlaps = box_iou(boxes, boxes)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    shared = np.prod(np.clip(rb - lt, 0, None), axis=2)
    contained = shared / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-6)
    keep: list[int] = []
    for k in range(len(order)):
        if all(overlaps[k, j] <= iou and contained[k, j] <= inside for j in keep):
            keep.append(k)
    return [tracks[order[k]] for k in sorted(keep)]


def flow_shift(prev: np.ndarray, grey: np.ndarray, box: np.ndarray, reach: float) -> np.ndarray | None:
    """The median displacement (dx, dy) of the corners inside `box` from `prev` to `grey`, by pyramidal
    Lucas-Kanade within `reach` px, or None when too few corners survive the forward-backward check."""
    h, w = grey.shape
    x1, y1, x2, y2 = box
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    pad = reach + 8
    wx1, wy1 = int(max(0, np.floor(x1 - pad))), int(max(0, np.floor(y1 - pad)))
    wx2, wy2 = int(min(w, np.ceil(x2 + pad))), int(min(h, np.ceil(y2 + pad)))
    if wx2 - wx1 < 8 or wy2 - wy1 < 8:
        return None
    a, b = prev[wy1:wy2, wx1:wx2], grey[wy1:wy2, wx1:wx2]
    inside = np.zeros(a.shape, np.uint8)
    bx1, by1 = int(max(0, x1 - wx1)), int(max(0, y1 - wy1))
    bx2, by2 = int(min(a.shape[1], x2 - wx1)), int(min(a.shape[0], y2 - wy1))
    if bx2 - bx1 < 4 or by2 - by1 < 4:
        return None
    inside[by1:by2, bx1:bx2] = 255
    side = max(bx2 - bx1, by2 - by1)
    points = cv2.goodFeaturesToTrack(a, FLOW_POINTS, 0.01, max(2, side // 8), mask=inside, blockSize=3)
    if points is None or len(points) < FLOW_MIN_POINTS:
        return None
    win = int(min(31, max(9, side // 2))) | 1
    params = {"winSize": (win, win), "maxLevel": 2,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
    moved, ok, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None, **params)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(b, a, moved, None, **params)
    good = (ok.reshape(-1) == 1) & (ok_back.reshape(-1) == 1)
    good &= np.linalg.norm((back - points).reshape(-1, 2), axis=1) < FLOW_BACK_ERROR
    if good.sum() < FLOW_MIN_POINTS:
        return None
    return np.median((moved - points).reshape(-1, 2)[good], axis=0).astype(np.float32)


def match_shift(prev: np.ndarray, grey: np.ndarray, box: np.ndarray, reach: float) -> np.ndarray | None:
    """Where the face's look in `prev` (its box) best matches `grey` within `reach` px (normalised correlation),
    as (dx, dy); None when nothing matches well or the box is too small to carry a look."""
    h, w = grey.shape
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    template = prev[y1:y2, x1:x2]
    if float(template.std()) < 4.0:  # a flat patch matches anywhere
        return None
    r = int(np.ceil(reach))
    wx1, wy1, wx2, wy2 = max(0, x1 - r), max(0, y1 - r), min(w, x2 + r), min(h, y2 + r)
    window = grey[wy1:wy2, wx1:wx2]
    if window.shape[0] < template.shape[0] or window.shape[1] < template.shape[1]:
        return None
    scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if best < MATCH_SCORE:
        return None
    return np.array([wx1 + bx - x1, wy1 + by - y1], np.float32)
