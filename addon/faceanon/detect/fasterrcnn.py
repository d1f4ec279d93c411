"""Faster R-CNN in torchvision's ONNX export format: one unbatched (3,H,W) RGB [0,1] image in; `boxes`, `labels`,
`scores` out. Resizing, normalisation and mapping boxes back to input pixels are inside the graph."""

from __future__ import annotations

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector, Faces, ModelMismatch
from faceanon.detect.manifest import ModelError


class FasterRCNN(FaceDetector):
    family = "fasterrcnn"

    def check_io(self, outputs: set[str], inputs: list) -> None:
        if not {"boxes", "labels", "scores"} <= outputs:
            raise ModelMismatch("a Faster R-CNN model (torchvision export) has outputs boxes, labels and scores")
        if len(inputs[0].shape) != 3:
            raise ModelMismatch("a Faster R-CNN model (torchvision export) takes one unbatched (3,H,W) image")
        self.face_label = int(self.manifest.options.get("face_label", 1))

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) * np.float32(1 / 255)
        boxes, labels, scores = self.run(["boxes", "labels", "scores"], {self.input_name: tensor},
                                         [(None, 4), (None,), (None,)])
        if not len(boxes) == len(labels) == len(scores):
            raise ModelError(f"model {self.manifest.name}: {len(boxes)} boxes, {len(labels)} labels and "
                             f"{len(scores)} scores (a broken model or inference server)")
        keep = np.flatnonzero((labels == self.face_label) & (scores > floor))
        return Faces(boxes[keep].astype(np.float32).reshape(-1, 4), scores[keep].astype(np.float32), None)
