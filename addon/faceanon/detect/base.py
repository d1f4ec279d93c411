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


# An output's expected shape: a tuple of sizes (None where the size depends on the image: a count of boxes), or a
# plain int: its number of elements (families whose exports differ in how they lay out the same values).
Expected = tuple[int | None, ...] | int


def check_answer(model: str, outputs: list, expect: list[Expected] | None) -> None:
    """Raise ModelError unless the outputs have the expected shapes, are finite, and are not all zero. A local model
    checked at load can still go wrong later (a remote server restarted with another model, a proxy that answers
    zeros, a corrupted tensor): each of these decodes to "no faces" and would let every frame out as it was."""
    if expect is not None:
        if len(outputs) != len(expect):
            raise ModelError(f"model {model}: answered {len(outputs)} outputs where {len(expect)} were expected")
        for out, want in zip(outputs, expect, strict=True):
            got = tuple(np.shape(out))
            ok = (int(np.prod(got)) == want if isinstance(want, int) else
                  len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want, strict=True)))
            if not ok:
                raise ModelError(f"model {model}: an output of shape {got} where {want} was expected (a broken model "
                                 "or inference server)")
    floats = [o for o in outputs if isinstance(o, np.ndarray) and o.dtype.kind == "f" and o.size]
    for out in floats:
        if not np.isfinite(out).all():
            raise ModelError(f"model {model}: non-finite outputs (broken weights or server?)")
    # A real network's outputs are never all exactly zero (sigmoid scores, log sizes and offsets all have values),
    # while a server or proxy that answers empty tensors gives exactly that.
    if floats and not any(o.any() for o in floats):
        raise ModelError(f"model {model}: every output is all zeros (a broken model or inference server)")


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

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray],
            expect: list[Expected] | None = None) -> list[np.ndarray]:
        """The session's outputs, checked on every call (`check_answer`): a model, or a remote server, that answers
        the wrong shapes, non-finite values or nothing but zeros must fail closed (privacy hold), not decode to
        "no faces". `expect`: the shape each output must have for these feeds (the family knows it)."""
        outputs = self.session.run(names, feeds)
        check_answer(self.manifest.name, outputs, expect)
        return outputs

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """The network input size used for an image of this size (padding to a stride multiple)."""
        m = self.manifest.input_multiple
        return -(-width // m) * m, -(-height // m) * m

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]
