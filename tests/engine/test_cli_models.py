"""`faceanon models`, and every bad-model case: one line on stderr naming the model/file and the reason, exit 2,
and no output written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT
from faceanon.cli import main

MODELS = ROOT / "addon" / "faceanon" / "models"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_models_table(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "finds", "family", "size", "threshold", "license", "origin"]
    default = next(line for line in lines if line.startswith("*"))
    assert default.split()[1:4] == ["centerface", "faces", "centerface"] and "7.3 MB" in default and "MIT" in default
    assert any(line.split()[:3] == ["retinaface", "faces", "retinaface"] for line in lines)
    assert "execution providers available:" in out and "cpu" in out
    assert any(line.split()[:3] == ["yunet", "faces", "yunet"] and "Apache-2.0" in line for line in lines)
    assert any(line.split()[:3] == ["nanodet-person", "people", "nanodet"] and "Apache-2.0" in line for line in lines)
    plans = out[out.index("plans"):]
    assert "max       centerface@0.5x + centerface@1x + centerface@2x <=3072px" in plans


def bad_model(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """CLI options for one broken model, and the text its error line must hold."""
    if case == "unknown name":
        return ["--model", "facefinder9000"], "unknown model 'facefinder9000': use one of centerface, "
    if case == "sha256 mismatch":
        manifest = json.loads((MODELS / "retinaface_mnet025.json").read_text())
        manifest["sha256"] = "0" * 64
        manifest["file"] = str(MODELS / manifest["file"])
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(manifest))
        return ["--model", str(path)], f"{MODELS / 'retinaface_mnet025.onnx'} does not match its sha256"
    if case == "outputs of another family":
        return (["--model", str(MODELS / "retinaface_mnet025.onnx"), "--family", "centerface"],
                "model retinaface_mnet025: its inputs/outputs do not match family centerface")
    if case == "outputs of another family (2)":
        return (["--model", str(MODELS / "centerface.onnx"), "--family", "retinaface"],
                "model centerface: its inputs/outputs do not match family retinaface")
    if case == "not an onnx file":
        path = tmp_path / "broken.onnx"
        path.write_bytes(b"this is not a protobuf" * 50)
        return ["--model", str(path), "--family", "centerface"], "model broken: onnxruntime cannot load it ("
    if case == "onnx without family":
        return (["--model", str(MODELS / "centerface.onnx")],
                f"{MODELS / 'centerface.onnx'}: say which decoder family it needs")
    if case == "missing onnx":
        return (["--model", str(tmp_path / "gone.onnx"), "--family", "centerface"],
                f"model file {tmp_path / 'gone.onnx'} does not exist")
    if case == "provider not installed":
        return ["--provider", "tensorrt"], "execution provider 'tensorrt' is not installed here"
    if case in ("zeroed weights", "NaN weights"):  # loads fine, answers nonsense: the canary refuses it
        path = broken_weights(tmp_path, 0.0 if case == "zeroed weights" else float("nan"))
        reason = ("found no face in the canary image" if case == "zeroed weights"
                  else "non-finite outputs (broken weights or server?)")
        return ["--model", str(path), "--family", "centerface"], f"model {path.stem}: {reason}"
    if case == "a model the plan names":
        return ["--plan", "1+facefinder9000@2x"], "unknown model 'facefinder9000'"
    raise AssertionError(case)


CASES = ["unknown name", "sha256 mismatch", "outputs of another family", "outputs of another family (2)",
         "not an onnx file", "onnx without family", "missing onnx", "provider not installed", "a model the plan names",
         "zeroed weights", "NaN weights"]


def broken_weights(folder: Path, value: float) -> Path:
    """The bundled CenterFace with every float weight set to `value` (0: finds nothing; NaN: non-finite)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(MODELS / "centerface.onnx"))
    for init in model.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.dtype.kind == "f":
            init.CopyFrom(numpy_helper.from_array(np.full_like(weights, value), init.name))
    path = folder / f"centerface_{'zeroed' if value == 0 else 'nan'}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["image", "detect"])
def test_bad_model_is_one_clear_line(tmp_path: Path, capsys, case: str, command: str):
    options, reason = bad_model(tmp_path, case)
    out = tmp_path / "out"
    target = ["-o", out] if command == "image" else ["--json", out]
    code, _, err = run(capsys, command, FIXTURES / "astronaut.jpg", *target, *options)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("faceanon: ") and reason in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("option", [["--threshold", "1.5"], ["--detect-size", "-1"], ["--margin", "-0.1"],
                                    ["--threads", "0"], ["--plan", "fastest"], ["--plan", "1:wobble"],
                                    ["--fill-color", "orange"], ["--tile", "10"]])
def test_bad_option_values(tmp_path: Path, capsys, option: list[str]):
    code, _, err = run(capsys, "image", FIXTURES / "astronaut.jpg", "-o", tmp_path / "out", *option)
    assert code == 2 and err.count("\n") == 1 and option[0] in err


def test_running_a_model_writes_no_telemetry_files(tmp_path: Path) -> None:
    """onnxruntime 1.32 writes a device id under ~/.cache/Microsoft and a session file in $TMPDIR unless told not to
    before it is imported; faceanon tells it. A real detection in a fresh home and temp folder leaves both empty."""
    import subprocess
    import sys

    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_") and k not in ("CI", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), TMPDIR=str(temp))
    done = subprocess.run([sys.executable, "-m", "faceanon", "detect", str(FIXTURES / "astronaut.jpg"), "--json", "-"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert '"faces"' in done.stdout
    left = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [], left
