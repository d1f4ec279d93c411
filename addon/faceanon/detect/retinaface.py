"""RetinaFace MobileNet-0.25 (biubug6 layout): SSD-style anchors at strides 8/16/32, boxes + 5 landmarks."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, ModelMismatch, nms

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


@lru_cache(maxsize=16)
def priors(width: int, height: int) -> np.ndarray:
    """(N,4) cx, cy, w, h in pixels, in the network's output order (per cell, per anchor size)."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        ny, nx = -(-height // step), -(-width // step)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs + 0.5) * step, (ys + 0.5) * step], -1).reshape(-1, 1, 2)
        wh = np.array([[s, s] for s in sizes], np.float32).reshape(1, -1, 2)
        cell = np.concatenate([np.broadcast_to(centres, (centres.shape[0], len(sizes), 2)),
                               np.broadcast_to(wh, (centres.shape[0], len(sizes), 2))], -1)
        out.append(cell.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


class RetinaFace(FaceDetector):
    family = "retinaface"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        if len(outputs) != 3:
            raise ModelMismatch("a RetinaFace model has 3 outputs (loc, conf, landmarks)")
        # Order the outputs by their last dimension: loc 4, conf 2, landmarks 10.
        by_width = {o.shape[-1]: o.name for o in self.session.get_outputs()}
        if set(by_width) != {4, 2, 10}:
            raise ModelMismatch("RetinaFace outputs must end in 4 (loc), 2 (conf) and 10 (landmarks)")
        self.output_names = [by_width[4], by_width[2], by_width[10]]

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height  # fully dynamic; anchors follow the size

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        h, w = image.shape[:2]
        blob = cv2.dnn.blobFromImage(image, 1.0, mean=MEAN_BGR, swapRB=False)
        anchors = len(priors(w, h))
        loc, conf, landm = (o[0] for o in self.run(self.output_names, {self.input_name: blob},
                                                   [(1, anchors, 4), (1, anchors, 2), (1, anchors, 10)]))
        scores = conf[:, 1]
        keep = np.flatnonzero(scores > floor)
        if len(keep) == 0:
            return Faces.empty()
        p = priors(w, h)[keep]
        loc, landm = loc[keep], landm[keep].reshape(-1, 5, 2)
        centre = p[:, :2] + loc[:, :2] * VARIANCE[0] * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        landmarks = p[:, None, :2] + landm * VARIANCE[0] * p[:, None, 2:]
        return nms(Faces(boxes.astype(np.float32), scores[keep].astype(np.float32), landmarks.astype(np.float32)), 0.4)
