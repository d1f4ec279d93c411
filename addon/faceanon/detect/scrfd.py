"""SCRFD (InsightFace layout): per stride 8/16/32 and 2 anchors per cell, sigmoid scores, distance boxes, 5 landmarks.

InsightFace's own SCRFD weights are for non-commercial research only, so none ship here; this decoder is for the
`.onnx` a user brings (exports with or without landmarks, batched or not)."""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect.base import Expected, FaceDetector, Faces, ModelMismatch, nms

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


class SCRFD(FaceDetector):
    family = "scrfd"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        n = len(self.session.get_outputs())
        if n not in (6, 9):
            raise ModelMismatch("an SCRFD model has 6 outputs (scores, boxes per stride) or 9 (with landmarks)")
        self.has_kps = n == 9

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        h, w = image.shape[:2]
        nw, nh = self.network_size(w, h)
        padded = cv2.copyMakeBorder(image, 0, nh - h, 0, nw - w, cv2.BORDER_CONSTANT)
        blob = cv2.dnn.blobFromImage(padded, 1 / 128, mean=(127.5, 127.5, 127.5), swapRB=True)
        cells = [(nh // s) * (nw // s) * ANCHORS_PER_CELL for s in STRIDES]
        expect: list[Expected] = [*cells, *(c * 4 for c in cells), *((c * 10 for c in cells) if self.has_kps else ())]
        outs = self.run(None, {self.input_name: blob}, expect)
        parts = []
        for i, s in enumerate(STRIDES):
            scores = outs[i].reshape(-1)
            dist = outs[i + 3].reshape(-1, 4) * s
            rows, cols = nh // s, nw // s
            ys, xs = np.mgrid[:rows, :cols]
            centres = np.repeat(np.stack([xs, ys], -1).reshape(-1, 2) * s, ANCHORS_PER_CELL, axis=0).astype(np.float32)
            idx = np.flatnonzero(scores > floor)
            if len(idx) == 0:
                continue
            c = centres[idx]
            boxes = np.concatenate([c - dist[idx, :2], c + dist[idx, 2:]], 1)
            lms = None
            if self.has_kps:
                lms = c[:, None, :] + outs[i + 6].reshape(-1, 5, 2)[idx] * s
            parts.append(Faces(boxes.astype(np.float32), scores[idx].astype(np.float32), lms))
        faces = Faces.concat(parts)
        if len(faces):
            faces = Faces(np.clip(faces.boxes, 0, [w, h, w, h]).astype(np.float32), faces.scores, faces.landmarks)
        return nms(faces, 0.4)
