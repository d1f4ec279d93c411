"""NanoDet (RangiLyu, Apache-2.0): an anchor-free COCO detector, here for its `person` class. The model
(tools/models/convert_nanodet.py) takes one 416x416 image and answers, per stride 8, 16 and 32, the 80 class
scores (sigmoid applied) and, per side of the box, a distribution over 11 distances (Generalized Focal Loss): the
distance is the distribution's expectation, in units of the stride, from the cell's corner.

The frame is letterboxed into the square (aspect kept, padded at the right and bottom), so a person keeps their
shape; boxes come back in frame pixels. Its detections are people, not faces: `kind: person` in the manifest."""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect.base import Expected, FaceDetector, Faces, ModelMismatch, nms

SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11
PERSON = 0  # COCO class index
# NanoDet's training normalisation (BGR means and standard deviations); on vtest.avi it scores the same people
# 0.1 higher than RGB in [0, 1] and keeps the same false positives (models/README.md).
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


class NanoDet(FaceDetector):
    family = "nanodet"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1:] != [3, SIZE, SIZE]:
            raise ModelMismatch(f"a NanoDet model takes one (1,3,{SIZE},{SIZE}) image, not {shape}")
        if len(outputs) != 2 * len(STRIDES):
            raise ModelMismatch("a NanoDet model answers scores and box distributions for strides 8, 16 and 32")
        # Its input is fixed, so are its outputs: (1, cells, 80 classes) and (1, cells, 4 x BINS) per stride, in the
        # graph's order.
        cells = {(SIZE // s) ** 2 for s in STRIDES}
        self.expected: list[Expected] = []
        for o in self.session.get_outputs():
            if len(o.shape) != 3 or o.shape[1] not in cells or o.shape[2] not in (80, 4 * BINS):
                raise ModelMismatch(f"a NanoDet output is (1, cells, 80) or (1, cells, {4 * BINS}), not {o.shape}")
            self.expected.append((1, o.shape[1], o.shape[2]))

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        h, w = image.shape[:2]
        scale = SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        square = np.zeros((SIZE, SIZE, 3), np.uint8)
        square[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        blob = ((square.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        outputs = self.run(None, {self.input_name: np.ascontiguousarray(blob)}, self.expected)
        parts = []
        for stride in STRIDES:
            cells = (SIZE // stride) ** 2
            scores = next(o for o in outputs if o.shape[1] == cells and o.shape[2] == 80)[0][:, PERSON]
            idx = np.flatnonzero(scores > floor)
            if len(idx) == 0:
                continue
            dist = next(o for o in outputs if o.shape[1] == cells and o.shape[2] == 4 * BINS)[0][idx]
            dist = dist.reshape(-1, 4, BINS)
            soft = np.exp(dist - dist.max(2, keepdims=True))
            sides = (soft / soft.sum(2, keepdims=True) * np.arange(BINS, dtype=np.float32)).sum(2) * stride
            side = SIZE // stride
            cx, cy = (idx % side).astype(np.float32) * stride, (idx // side).astype(np.float32) * stride
            boxes = np.stack([cx - sides[:, 0], cy - sides[:, 1], cx + sides[:, 2], cy + sides[:, 3]], 1) / scale
            parts.append(Faces(boxes.astype(np.float32), scores[idx].astype(np.float32)))
        found = Faces.concat(parts)
        if len(found):
            found = Faces(np.clip(found.boxes, 0, [w, h, w, h]).astype(np.float32), found.scores)
        return nms(found, 0.5)
