"""deface's default settings, reproduced: the baseline that `faceanon eval --compare-deface` and `faceanon bench
privacy` measure in the same run as faceanon.

deface 1.5.0 runs CenterFace on the image RESIZED (not padded) to multiples of 32, keeps detections above 0.2,
truncates each box to ints and grows it by 30 % of its size on every side (`--mask-scale 1.3`, so 1.6x in all),
clips it to the image and draws: a solid black rectangle (`--replacewith solid`, our `fill`), its box blur in the
inscribed ellipse (`blur`, the default) or a 20 px mosaic (`mosaic`, our `pixelate`). Run on faces-dev with
`--replacewith solid`, deface itself leaks 6.98 % and changes 13.1 % of the background under the team's rule;
this class gives the same figures (tests/engine/test_baseline.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect import FaceDetector, Faces
from faceanon.mask import Style

THRESHOLD = 0.2
MASK_SCALE = 1.3
MOSAIC = 20
MODEL = "centerface"


class DefaceLike:
    """deface's detection and drawing with its default settings, on our CenterFace session."""

    def __init__(self, detector: FaceDetector, threshold: float = THRESHOLD, mask_scale: float = MASK_SCALE) -> None:
        if detector.family != "centerface":
            raise ValueError("deface runs CenterFace")
        self.detector = detector
        self.threshold = threshold
        self.mask_scale = mask_scale

    def detect(self, frame: np.ndarray, threshold: float | None = None) -> Faces:
        """deface's detections (at its threshold, or down to `threshold` for an AP curve)."""
        h, w = frame.shape[:2]
        nw, nh = -(-w // 32) * 32, -(-h // 32) * 32
        stretched = cv2.resize(frame, (nw, nh)) if (nw, nh) != (w, h) else frame
        found = self.detector.infer(stretched, self.threshold if threshold is None else threshold)
        return found.scaled(w / nw, h / nh)

    def regions(self, faces: Faces, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """deface's scale_bb and clipping: inclusive x1,y1,x2,y2."""
        out = []
        s = self.mask_scale - 1.0
        for x1, y1, x2, y2 in faces.boxes.astype(int):
            bw, bh = x2 - x1, y2 - y1
            gx1, gy1, gx2, gy2 = np.round([x1 - bw * s, y1 - bh * s, x2 + bw * s, y2 + bh * s]).astype(int)
            out.append((max(0, int(gx1)), max(0, int(gy1)), min(width - 1, int(gx2)), min(height - 1, int(gy2))))
        return out

    def anonymize(self, frame: np.ndarray, style: Style = "fill") -> Faces:
        """Detect and draw on `frame` in place; return the detections."""
        faces = self.detect(frame)
        self.draw(frame, faces.above(self.threshold), style)
        return faces

    def draw(self, frame: np.ndarray, faces: Faces, style: Style = "fill") -> None:
        h, w = frame.shape[:2]
        for x1, y1, x2, y2 in self.regions(faces, w, h):
            if style == "fill":
                cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 0, 0), -1)
            elif style == "blur":
                _blur(frame, x1, y1, x2, y2)
            else:
                _mosaic(frame, x1, y1, x2, y2)


def _blur(frame: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    roi = frame[y1:y2, x1:x2]
    bh, bw = roi.shape[:2]
    if bw < 2 or bh < 2:
        return
    blurred = cv2.blur(roi, (max(1, bw // 2), max(1, bh // 2)))
    # skimage.draw.ellipse((h // 2, w // 2), radii (h // 2, w // 2)) as deface draws it
    rr, rc = max(bh // 2, 1), max(bw // 2, 1)
    yy, xx = np.mgrid[:bh, :bw]
    inside = ((yy - bh // 2) / rr) ** 2 + ((xx - bw // 2) / rc) ** 2 < 1
    roi[inside] = blurred[inside]


def _mosaic(frame: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    for y in range(y1, y2, MOSAIC):
        for x in range(x1, x2, MOSAIC):
            colour = tuple(int(c) for c in frame[y, x])
            cv2.rectangle(frame, (x, y), (min(x2, x + MOSAIC - 1), min(y2, y + MOSAIC - 1)), colour, -1)
