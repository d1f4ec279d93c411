"""`faceanon image` on real photos: folder mirroring, formats, skipping, and every bad-input case."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FIXTURES, ROOT
from faceanon.cli import main
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from faceanon.mask import MaskStyle, mask_boxes

ASTRONAUT = FIXTURES / "astronaut.jpg"
CAMERA = FIXTURES / "camera.jpg"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line and not line.startswith("faceanon: note:")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """in/ with a JPEG, a PNG and a WebP in a subfolder, a text file, a corrupt JPEG and a fake PNG."""
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    image = cv2.imread(str(ASTRONAUT))
    shutil.copy(ASTRONAUT, src / "astronaut.jpg")
    cv2.imwrite(str(src / "sub" / "astronaut.png"), image)
    cv2.imwrite(str(src / "sub" / "deeper" / "camera.webp"), cv2.imread(str(CAMERA)))
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_is_mirrored_formats_kept(tree: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "image", tree, "-o", out)
    assert code == 0, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["astronaut.jpg", "sub/astronaut.png", "sub/deeper/camera.webp"]
    assert "faceanon: note: " in err and "notes.txt: skipped, not an image" in err
    assert "3 images anonymized" in stdout and "1 non-image files skipped" in stdout
    # Formats are what the names say, not all JPEG; PNG stays lossless.
    assert (out / "astronaut.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert (out / "sub" / "astronaut.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sub" / "deeper" / "camera.webp").read_bytes()[8:12] == b"WEBP"
    for p in out.rglob("*"):  # the originals differ from the anonymized files, no temp files left behind
        assert not p.name.startswith(".")
    assert not np.array_equal(cv2.imread(str(out / "sub" / "astronaut.png")), cv2.imread(str(tree / "sub" /
                                                                                              "astronaut.png")))


def test_corrupt_images_fail_alone(tree: Path, tmp_path: Path, capsys):
    (tree / "truncated.jpg").write_bytes(ASTRONAUT.read_bytes()[:2000])
    (tree / "fake.png").write_text("garbage")
    (tree / "empty.bmp").write_bytes(b"")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "image", tree, "-o", out)
    assert code == 1
    errors = error_lines(err)
    assert len(errors) == 3, err
    for name in ("truncated.jpg", "fake.png", "empty.bmp"):
        line = next(e for e in errors if name in e)
        assert line.startswith(f"faceanon: {tree / name}: ")
        assert ("cannot decode" in line) or ("empty file" in line)
        assert not (out / name).exists()
    assert (out / "astronaut.jpg").is_file() and "3 failed" in stdout


def test_empty_folder_is_a_clear_error(tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "image", empty, "-o", tmp_path / "out")
    assert code == 1
    assert error_lines(err) == [f"faceanon: {empty}: no images in this folder (it is empty; image types: "
                                ".bmp, .dib, .jpe, .jpeg, .jpg, .png, .tif, .tiff, .webp)"]
    assert not (tmp_path / "out").exists()


def test_missing_input_and_non_image_file(tmp_path: Path, capsys):
    text = tmp_path / "a.txt"
    text.write_text("x")
    code, _, err = run(capsys, "image", tmp_path / "nope.jpg", text, "-o", tmp_path / "out")
    assert code == 1
    assert error_lines(err) == [f"faceanon: {tmp_path / 'nope.jpg'}: no such file or folder",
                                f"faceanon: {text}: not an image type (.txt; image types: .bmp, .dib, .jpe, .jpeg, "
                                ".jpg, .png, .tif, .tiff, .webp)"]


@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_unwritable_output_folder(tmp_path: Path, capsys, where: str):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    out = blocker if where == "is_a_file" else blocker / "out"
    code, _, err = run(capsys, "image", ASTRONAUT, "-o", out)
    assert code == 2
    lines = error_lines(err)
    if where == "is_a_file":  # named as what it is, not "File exists"
        assert lines == [f"faceanon: {out}: -o is an existing file; image writes into a folder (give a folder name)"]
    else:
        assert len(lines) == 1 and lines[0].startswith(f"faceanon: {out}: output folder is not writable (")


def test_output_may_not_overwrite_input(tmp_path: Path, capsys):
    shutil.copy(ASTRONAUT, tmp_path / "a.jpg")
    before = (tmp_path / "a.jpg").read_bytes()
    code, _, err = run(capsys, "image", tmp_path / "a.jpg", "-o", tmp_path)
    assert code == 1 and "the output would overwrite the input" in err
    assert (tmp_path / "a.jpg").read_bytes() == before


def test_output_folder_inside_input_is_not_walked(tree: Path, capsys):
    out = tree / "anon"
    assert run(capsys, "image", tree, "-o", out)[0] == 0
    code, stdout, _ = run(capsys, "image", tree, "-o", out)  # again: its own outputs are not inputs
    assert code == 0 and "3 images anonymized" in stdout


@pytest.mark.parametrize("family", ["centerface", "retinaface"])
@pytest.mark.parametrize("style", ["blur", "pixelate", "fill"])
def test_styles_really_obscure(tmp_path: Path, capsys, family: str, style: str):
    """The masked face is no longer found by the detector; inside the box the pixels changed a lot; outside the
    regions the masker paints for those faces nothing changed (PNG, so compression does not blur the comparison)."""
    src = tmp_path / "astronaut.png"
    original = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(src), original)
    out = tmp_path / "out"
    code, _, err = run(capsys, "image", src, "-o", out, "--model", family, "--plan", "fast", "--style", style,
                       "--shape", "box", "--margin", "0.3")
    assert code == 0, err
    masked = cv2.imread(str(out / "astronaut.png"))
    scanner = Scanner(load_detector(family), DetectPlan())
    before = scanner.scan(original)
    assert len(before) == 1
    after = scanner.scan(masked)
    assert len(after) == 0, f"{style}: the detector still finds a face ({after.scores})"
    x1, y1, x2, y2 = before.boxes[0].astype(int)
    inside = np.abs(masked[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2]).mean()
    assert inside > 20, f"{style} changes the face by only {inside:.1f} grey levels on average"
    outside = np.ones(original.shape[:2], bool)
    h, w = original.shape[:2]
    for gx1, gy1, gx2, gy2 in mask_boxes(before.boxes, MaskStyle(style, "box", 0.3), w, h):
        outside[gy1:gy2, gx1:gx2] = False
    assert np.array_equal(masked[outside], original[outside])


def test_console_script_and_python_m(tmp_path: Path):
    """The installed `faceanon` script and `python -m faceanon` both run the CLI (real processes)."""
    script = Path(sys.executable).parent / "faceanon"
    proc = subprocess.run([str(script), "image", str(ASTRONAUT), "-o", str(tmp_path / "a")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "astronaut.jpg").is_file()
    proc = subprocess.run([sys.executable, "-m", "faceanon", "image", str(tmp_path / "missing.png"), "-o",
                           str(tmp_path / "b")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"faceanon: {tmp_path / 'missing.png'}: no such file or folder"
