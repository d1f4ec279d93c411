"""Several small images through a detector in one inference: packed side by side on one canvas, with gaps, and the
faces handed back to the image each came from.

A stream looks at a handful of regions per frame; one inference per region pays the session's fixed cost each time,
one inference per canvas pays it once. The detectors are fully convolutional, so a face sees only its own
surroundings; the gap keeps a neighbour's edge from completing it.
"""

from __future__ import annotations

import numpy as np

from faceanon.detect.base import FaceDetector, Faces

GAP = 16  # px of black between packed images
MIN_WIDTH = 320


def pack(sizes: list[tuple[int, int]], width: int, gap: int = GAP) -> tuple[list[tuple[int, int]], int, int]:
    """Shelf packing of (w, h) sizes, tallest first, into rows of at most `width`: the (x, y) of each and the
    canvas (width, height)."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i][1])
    places: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    x = y = row = used_width = 0
    for i in order:
        w, h = sizes[i]
        if x and x + w > width:
            x, y, row = 0, y + row + gap, 0
        places[i] = (x, y)
        x += w + gap
        row = max(row, h)
        used_width = max(used_width, x - gap)
    return places, used_width, y + row


def scan_images(detector: FaceDetector, images: list[np.ndarray], threshold: float) -> list[Faces]:
    """Faces of each image, in that image's pixels, from one inference over all of them."""
    if not images:
        return []
    if len(images) == 1:
        return [detector.infer(images[0], threshold)]
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    width = max(MIN_WIDTH, max(w for w, _ in sizes), int(np.ceil(np.sqrt(sum(w * h for w, h in sizes)) * 1.3)))
    places, cw, ch = pack(sizes, width)
    canvas = np.zeros((ch, cw, 3), np.uint8)
    for (x, y), im in zip(places, images, strict=True):
        canvas[y:y + im.shape[0], x:x + im.shape[1]] = im
    found = detector.infer(canvas, threshold)
    out = []
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2 if len(found) else np.zeros((0, 2), np.float32)
    for (x, y), (w, h) in zip(places, sizes, strict=True):
        mine = np.flatnonzero((centres[:, 0] >= x) & (centres[:, 0] < x + w)
                              & (centres[:, 1] >= y) & (centres[:, 1] < y + h))
        faces = found.take(mine).scaled(1, 1, -x, -y)
        if len(faces):
            boxes = np.clip(faces.boxes, 0, [w, h, w, h]).astype(np.float32)
            faces = Faces(boxes, faces.scores, faces.landmarks)
        out.append(faces)
    return out
