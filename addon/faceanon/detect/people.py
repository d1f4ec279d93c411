"""People: a person detector's look at the whole frame, for the `head` and `person` mask targets.

A face detector finds nothing on a person seen from behind, far away or with a 6 px face, yet someone who knows
them still recognises them. With target `head`, every person whose head no face mask covers gets a head mask (the
top of their box); with `person`, every person is masked whole. The boxes go to a hold of their own (it keeps them
where they were seen, growing, and only ever adds masks; faceanon.anonymizer), as *face-equivalent* boxes: the
masker grows every box of these targets into a head (faceanon.detect.heads.HEAD_GROWTH), so a region is handed over
shrunk by that growth, and comes out as that region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceanon.detect.base import FaceDetector, Faces
from faceanon.detect.heads import face_equivalents

# A head in a person box, as fractions (measured by eye on vtest.avi and one-by-one-person-detection.mp4, whose
# people are 40-250 px tall; models/README.md): at least this share of the box's width, and of its height
# (a pedestrian's head is about 1/7 of their height; the box often includes a raised arm or a bag).
# The detector's box of a small person often stops at the brow, so the region starts a little above it.
HEAD_WIDTH, HEAD_MIN_WIDTH_OF_HEIGHT, HEAD_HEIGHT_OF_HEIGHT, HEAD_ABOVE = 0.7, 0.3, 0.35, 0.05
PERSON_MARGIN = 0.05  # `person`: the whole box, a little larger (the detector's box is tight at the feet and head)
COVERED_BY_FACE = 0.25  # a face centred in the top quarter of a person box is that person's face


@dataclass(frozen=True)
class PeopleSeen:
    boxes: np.ndarray  # (N,4) face-equivalent boxes of the regions to mask (heads, or whole people)
    scores: np.ndarray
    people: int  # people in view (the person count)


def head_regions(people: np.ndarray) -> np.ndarray:
    """The head region at the top of each person box (x1,y1,x2,y2)."""
    p = np.asarray(people, np.float32).reshape(-1, 4)
    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    head_w = np.minimum(w, np.maximum(HEAD_WIDTH * w, HEAD_MIN_WIDTH_OF_HEIGHT * h))
    head_h = np.minimum(h, np.maximum(1.2 * head_w, HEAD_HEIGHT_OF_HEIGHT * h))
    cx, top = (p[:, 0] + p[:, 2]) / 2, p[:, 1] - HEAD_ABOVE * h
    return np.stack([cx - head_w / 2, top, cx + head_w / 2, top + head_h], 1)


def uncovered(people: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Which people have no face (a detection or a held mask) centred in the top quarter of their box."""
    p = np.asarray(people, np.float32).reshape(-1, 4)
    f = np.asarray(faces, np.float32).reshape(-1, 4)
    if len(f) == 0:
        return np.ones(len(p), bool)
    cx, cy = (f[:, 0] + f[:, 2]) / 2, (f[:, 1] + f[:, 3]) / 2
    top = p[:, 1] + COVERED_BY_FACE * (p[:, 3] - p[:, 1])
    inside = ((cx[None] >= p[:, 0:1]) & (cx[None] <= p[:, 2:3]) & (cy[None] >= p[:, 1:2]) & (cy[None] <= top[:, None]))
    return ~inside.any(1)


class PeopleLook:
    """The person detector on the whole frame, and the masks its people need for the camera's target."""

    def __init__(self, detector: FaceDetector, target: str, threshold: float | None = None) -> None:
        if target not in ("head", "person"):
            raise ValueError(f"people are looked for with target head or person, not {target!r}")
        self.detector, self.target = detector, target
        self.threshold = detector.manifest.threshold if threshold is None else threshold

    def look(self, frame: np.ndarray, faces: np.ndarray) -> PeopleSeen:
        found: Faces = self.detector.infer(frame, self.threshold)
        people = found.boxes
        if self.target == "person":
            grown = people + np.tile(people[:, 2:] - people[:, :2], 2) * np.array(
                [-PERSON_MARGIN, -PERSON_MARGIN, PERSON_MARGIN, PERSON_MARGIN], np.float32)
            regions, scores = grown, found.scores
        else:
            keep = uncovered(people, faces)
            regions, scores = head_regions(people[keep]), found.scores[keep]
        h, w = frame.shape[:2]
        regions = np.clip(regions, 0, [w, h, w, h]).astype(np.float32)
        return PeopleSeen(face_equivalents(regions), scores.astype(np.float32), len(found))
