"""Decoders for the families a user brings (YuNet, SCRFD): no weights of theirs can ship, so each test builds an
ONNX graph in the layout the family exports, with one face planted in known cells, and checks the decoded box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from faceanon.detect import ModelError, load_detector, open_detector
from onnx import TensorProto, helper, numpy_helper

SIZE = 64  # network input: 64x64, so strides 8/16/32 give 8x8, 4x4 and 2x2 grids


def constant_graph(path: Path, outputs: dict[str, np.ndarray]) -> Path:
    """A model whose input is a (1,3,64,64) image and whose outputs are the given tensors."""
    nodes, infos = [], []
    for name, value in outputs.items():
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32))))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])
    model = helper.make_model(helper.make_graph(nodes, "family_layout", [image], infos),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def yunet_outputs(cell: tuple[int, int], stride: int) -> dict[str, np.ndarray]:
    out = {}
    for s in (8, 16, 32):
        n = (SIZE // s) ** 2
        out[f"cls_{s}"] = np.zeros((1, n, 1))
        out[f"obj_{s}"] = np.zeros((1, n, 1))
        out[f"bbox_{s}"] = np.zeros((1, n, 4))
        out[f"kps_{s}"] = np.zeros((1, n, 10))
    row, col = cell
    i = row * (SIZE // stride) + col
    out[f"cls_{stride}"][0, i, 0] = 0.81
    out[f"obj_{stride}"][0, i, 0] = 1.0
    out[f"bbox_{stride}"][0, i] = [0.5, 0.5, np.log(2.0), np.log(3.0)]  # centre +half a cell, 2x3 cells big
    return out


def test_yunet_decodes_a_planted_face(tmp_path: Path) -> None:
    model = constant_graph(tmp_path / "yunet.onnx", yunet_outputs((2, 3), 8))
    detector = open_detector(str(model), family="yunet")  # no canary: a constant graph finds no real face
    faces = detector.infer(np.zeros((SIZE, SIZE, 3), np.uint8), 0.5)
    assert len(faces) == 1
    assert faces.scores[0] == pytest.approx(0.9, abs=1e-4)  # sqrt(cls * obj)
    cx, cy = (3 + 0.5) * 8, (2 + 0.5) * 8
    np.testing.assert_allclose(faces.boxes[0], [cx - 8, cy - 12, cx + 8, cy + 12], atol=1e-3)
    assert detector.infer(np.zeros((SIZE, SIZE, 3), np.uint8), 0.95).boxes.shape == (0, 4)


def scrfd_outputs(cell: tuple[int, int], anchor: int, stride: int, kps: bool) -> dict[str, np.ndarray]:
    scores, boxes, points = {}, {}, {}
    for s in (8, 16, 32):
        n = (SIZE // s) ** 2 * 2
        scores[f"score_{s}"] = np.zeros((n, 1))
        boxes[f"bbox_{s}"] = np.zeros((n, 4))
        points[f"kps_{s}"] = np.zeros((n, 10))
    row, col = cell
    i = (row * (SIZE // stride) + col) * 2 + anchor
    scores[f"score_{stride}"][i, 0] = 0.7
    boxes[f"bbox_{stride}"][i] = [1.0, 1.0, 2.0, 1.5]  # distances left, top, right, bottom in strides
    points[f"kps_{stride}"][i] = [0.5, 0.25] * 5
    return {**scores, **boxes, **(points if kps else {})}


@pytest.mark.parametrize("kps", [True, False])
def test_scrfd_decodes_a_planted_face(tmp_path: Path, kps: bool) -> None:
    model = constant_graph(tmp_path / "scrfd.onnx", scrfd_outputs((1, 1), 1, 16, kps))
    detector = open_detector(str(model), family="scrfd")
    faces = detector.infer(np.zeros((SIZE, SIZE, 3), np.uint8), 0.5)
    assert len(faces) == 1
    assert faces.scores[0] == pytest.approx(0.7)
    cx = cy = 16  # anchor centre of cell (1, 1) at stride 16: no half-cell offset in SCRFD
    np.testing.assert_allclose(faces.boxes[0], [cx - 16, cy - 16, cx + 32, cy + 24], atol=1e-3)
    if kps:
        np.testing.assert_allclose(faces.landmarks[0, 0], [cx + 8, cy + 4], atol=1e-3)
    else:
        assert faces.landmarks is None


def test_layout_of_another_family_is_refused(tmp_path: Path) -> None:
    model = constant_graph(tmp_path / "yunet.onnx", yunet_outputs((0, 0), 8))
    with pytest.raises(ModelError, match="do not match family scrfd"):
        load_detector(str(model), family="scrfd")
    with pytest.raises(ModelError, match="fails on the canary image"):  # a fixed 64x64 graph cannot take frames
        load_detector(str(model), family="yunet")
    with pytest.raises(ModelError, match="say which decoder family"):
        load_detector(str(model))
