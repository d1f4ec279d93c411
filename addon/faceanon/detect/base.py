"""The detector interface: a BGR frame in, face boxes and scores (and landmarks) out, in that frame's pixels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from faceanon.detect.manifest import Manifest, ModelError


@dataclass(frozen=True)
class Faces:
    """Detections in one image. boxes: (N,4) float32 x1,y1,x2,y2; scores: (N,); landmarks: (N,5,2) or None."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    @staticmethod
    def empty() -> Faces:
        return Faces(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), None)

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, threshold: float) -> Faces:
        keep = self.scores >= threshold
        return self.take(np.flatnonzero(keep))

    def take(self, index: np.ndarray) -> Faces:
        lms = None if self.landmarks is None else self.landmarks[index]
        return Faces(self.boxes[index], self.scores[index], lms)

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Faces:
        """Map boxes from a resized/cropped image back: x_frame = x * sx + dx."""
        boxes = self.boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
        lms = None
        if self.landmarks is not None:
            lms = self.landmarks * np.array([sx, sy], np.float32) + np.array([dx, dy], np.float32)
        return Faces(boxes.astype(np.float32), self.scores, lms)

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Faces.empty()
        lms = None
        if all(p.landmarks is not None for p in parts):
            lms = np.concatenate([p.landmarks for p in parts])
        return Faces(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]), lms)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) x1,y1,x2,y2 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def nms(faces: Faces, iou: float) -> Faces:
    """Greedy non-maximum suppression (OpenCV's implementation)."""
    if len(faces) < 2:
        return faces
    xywh = faces.boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), faces.scores.tolist(), 0.0, iou)
    return faces.take(np.asarray(keep, dtype=np.int64).reshape(-1))


class ModelMismatch(ValueError):
    """The model file's inputs/outputs are not what its family's decoder expects."""


class FaceDetector(ABC):
    """One decoder per model family. Subclasses set `family` and implement `infer`.

    `infer` takes an image at the size the caller chose (see `faceanon.detect.plan`) and returns faces in that
    image's pixels with every score above `floor` (the caller applies the user's threshold).
    """

    family: ClassVar[str]

    def __init__(self, session, manifest: Manifest) -> None:  # session: onnxruntime.InferenceSession
        self.session = session
        self.manifest = manifest
        self.input_name = session.get_inputs()[0].name
        self.check_io({o.name for o in session.get_outputs()}, session.get_inputs())

    @abstractmethod
    def check_io(self, outputs: set[str], inputs: list) -> None:
        """Raise ModelMismatch when the graph does not look like this family."""

    @abstractmethod
    def infer(self, image: np.ndarray, floor: float) -> Faces: ...

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The session's outputs, refused when any is not finite: a model with NaN or infinite weights must fail
        closed (privacy hold), not return "no faces"."""
        outputs = self.session.run(names, feeds)
        for out in outputs:
            if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not np.isfinite(out).all():
                raise ModelError(f"model {self.manifest.name}: non-finite outputs (broken weights?)")
        return outputs

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """The network input size used for an image of this size (padding to a stride multiple)."""
        m = self.manifest.input_multiple
        return -(-width // m) * m, -(-height // m) * m

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]
