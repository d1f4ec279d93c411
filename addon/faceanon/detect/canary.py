"""The load-time canary: a model must find the faces of a known image before any camera may use it.

A model file that loads but is broken (zeroed or NaN weights, a wrong export) would otherwise answer "no faces" to
every frame, and every frame would go out raw with nothing degraded. The canary is the first frame of the bundled
sample clip (two people walking towards the camera, faces about 30 px), enlarged 2x: every bundled model finds
both faces there at its own threshold.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from faceanon.detect.base import FaceDetector
from faceanon.detect.manifest import ModelError

CANARY = "samples/face-demographics-walking.gif"


@lru_cache(maxsize=1)
def canary_image() -> np.ndarray:
    path = resources.files("faceanon").joinpath(CANARY)
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise ModelError(f"the canary image {CANARY} cannot be read: the package is incomplete")
    return cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)


def check_canary(detector: FaceDetector) -> None:
    """Raise ModelError unless the detector finds a face in the canary image (non-finite outputs raise too)."""
    found = detector.infer(canary_image(), detector.manifest.threshold)
    if not len(found):
        raise ModelError(f"model {detector.manifest.name}: found no face in the canary image (a broken or wrong "
                         f"model, or a threshold too high); refused, cameras stay in privacy hold")
