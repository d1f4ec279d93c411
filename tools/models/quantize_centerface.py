"""Make centerface_int8.onnx: static int8 (QDQ, per-channel weights) quantisation of the vendored CenterFace.

Usage: python tools/models/quantize_centerface.py /path/to/shared/data/video/intel-sample-videos
Calibration uses frames of the Intel sample clips (CC BY 4.0), never the faces-dev evaluation photos.
Per-channel QDQ needs opset >= 13, so the opset-9 graph is converted first.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

HERE = Path(__file__).resolve().parents[2] / "addon" / "faceanon" / "models"
CALIBRATION_SIZE = (640, 384)
EVERY_NTH_FRAME = 8


def calibration_blobs(clip_dir: Path) -> list[np.ndarray]:
    blobs = []
    for clip in sorted(clip_dir.glob("*.gif"))[:8]:
        cap = cv2.VideoCapture(str(clip))
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % EVERY_NTH_FRAME == 0:
                blobs.append(cv2.dnn.blobFromImage(cv2.resize(frame, CALIBRATION_SIZE), 1.0, swapRB=True))
            index += 1
        cap.release()
    if not blobs:
        raise SystemExit(f"no calibration frames found in {clip_dir}")
    return blobs


class Frames(CalibrationDataReader):
    def __init__(self, blobs: list[np.ndarray]) -> None:
        self._it = iter(blobs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._it, None)
        return None if blob is None else {"input.1": blob}


def main(clip_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        opset13, prepared = Path(tmp) / "cf13.onnx", Path(tmp) / "cf13p.onnx"
        onnx.save(version_converter.convert_version(onnx.load(HERE / "centerface.onnx"), 13), opset13)
        quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(HERE / "centerface_int8.onnx"), Frames(calibration_blobs(clip_dir)),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    print("centerface_int8.onnx", hashlib.sha256((HERE / "centerface_int8.onnx").read_bytes()).hexdigest())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
