"""Where a head is, from a face box: the geometry the `head` and `person` targets share between the detect stage
(faceanon.detect.people hands over head regions as face-equivalent boxes) and the masker (which grows every box of
those targets into a head)."""

from __future__ import annotations

import numpy as np

# A face box grown into the whole head's (hair, ears, chin), as fractions of the face box's width/height: left, top,
# right, bottom. Face detectors box the face from brows to chin; the crown is about half a face above. Never less on
# any side than the face target's margin (0.5 of the size: a quarter each side).
HEAD_GROWTH = (0.3, 0.7, 0.3, 0.25)


def head_boxes(boxes: np.ndarray) -> np.ndarray:
    """Face boxes grown into head boxes (HEAD_GROWTH), unclipped."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    size = np.concatenate([b[:, 2:] - b[:, :2]] * 2, 1)
    return b + size * np.array([-HEAD_GROWTH[0], -HEAD_GROWTH[1], HEAD_GROWTH[2], HEAD_GROWTH[3]], np.float32)


def face_equivalents(regions: np.ndarray) -> np.ndarray:
    """The boxes that head_boxes grows into exactly these regions (its inverse)."""
    r = np.asarray(regions, np.float32).reshape(-1, 4)
    left, top, right, bottom = HEAD_GROWTH
    w = (r[:, 2] - r[:, 0]) / (1 + left + right)
    h = (r[:, 3] - r[:, 1]) / (1 + top + bottom)
    x1, y1 = r[:, 0] + left * w, r[:, 1] + top * h
    return np.stack([x1, y1, x1 + w, y1 + h], 1)
