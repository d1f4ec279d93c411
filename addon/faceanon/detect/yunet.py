"""YuNet (libfacedetection / OpenCV zoo 2023mar layout, BSD-3): anchor-free heads cls_/obj_/bbox_/kps_ per stride.

No YuNet weights ship in any package we can depend on; this decoder is for the `.onnx` a user brings."""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect.base import Expected, FaceDetector, Faces, ModelMismatch, nms

STRIDES = (8, 16, 32)


class YuNet(FaceDetector):
    family = "yunet"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        wanted = {f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in STRIDES}
        if not wanted <= outputs:
            raise ModelMismatch("a YuNet model has outputs cls_8/16/32, obj_8/16/32, bbox_8/16/32, kps_8/16/32")

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        h, w = image.shape[:2]
        nw, nh = self.network_size(w, h)
        padded = cv2.copyMakeBorder(image, 0, nh - h, 0, nw - w, cv2.BORDER_CONSTANT)
        names = [f"{head}_{s}" for s in STRIDES for head in ("cls", "obj", "bbox", "kps")]
        width = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
        expect: list[Expected] = [(1, (nh // s) * (nw // s), width[head]) for s in STRIDES
                                  for head in ("cls", "obj", "bbox", "kps")]
        out = dict(zip(names, self.run(names, {self.input_name: cv2.dnn.blobFromImage(padded)}, expect), strict=True))
        parts = []
        for s in STRIDES:
            cols = nw // s
            cls, obj = out[f"cls_{s}"].reshape(-1), out[f"obj_{s}"].reshape(-1)
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            idx = np.flatnonzero(score > floor)
            if len(idx) == 0:
                continue
            gx, gy = (idx % cols).astype(np.float32), (idx // cols).astype(np.float32)
            bbox = out[f"bbox_{s}"].reshape(-1, 4)[idx]
            kps = out[f"kps_{s}"].reshape(-1, 5, 2)[idx]
            cx, cy = (gx + bbox[:, 0]) * s, (gy + bbox[:, 1]) * s
            bw, bh = np.exp(bbox[:, 2]) * s, np.exp(bbox[:, 3]) * s
            boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            lms = (kps + np.stack([gx, gy], 1)[:, None, :]) * s
            parts.append(Faces(boxes.astype(np.float32), score[idx].astype(np.float32), lms.astype(np.float32)))
        faces = Faces.concat(parts)
        if len(faces):
            faces = Faces(np.clip(faces.boxes, 0, [w, h, w, h]).astype(np.float32), faces.scores, faces.landmarks)
        return nms(faces, 0.3)
