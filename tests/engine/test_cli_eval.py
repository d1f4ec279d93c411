"""`faceanon eval`: figures on hand-made ground truth over real photos, bad annotation files, and the privacy bound
on faces-dev with the default settings."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES
from faceanon.cli import main

ASTRONAUT_FACE = [181, 58, 88, 120]  # x, y, w, h of Eileen Collins' face in astronaut.jpg


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def privacy_line(stdout: str) -> tuple[int, int, float]:
    m = re.search(r"leak: (\d+) of (\d+) faces >= 10 px unmasked = ([\d.]+) %", stdout)
    assert m, stdout
    return int(m[1]), int(m[2]), float(m[3])


def write_gt(tmp_path: Path, faces: list[list[float]], ignore: list[list[float]] | None = None) -> Path:
    shutil.copy(FIXTURES / "astronaut.jpg", tmp_path / "astronaut.jpg")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"file": "astronaut.jpg", "width": 512, "height": 512, "faces": faces,
                                          "ignore": ignore or []}]}))
    return gt


@pytest.mark.parametrize("style", ["blur", "fill"])
def test_found_face_is_masked(tmp_path: Path, capsys, style: str):
    gt = write_gt(tmp_path, [ASTRONAUT_FACE])
    code, stdout, err = run(capsys, "eval", gt, "--style", style, "--json", tmp_path / "r.json")
    assert code == 0, err
    assert privacy_line(stdout) == (0, 1, 0.0)
    r = json.loads((tmp_path / "r.json").read_text())["faceanon"]
    assert r["buckets"]["all"]["ap"] == pytest.approx(1.0)
    assert r["buckets"][">=64"]["recall"] == pytest.approx(1.0)  # short side 88
    assert r["buckets"]["<10"]["ap"] is None  # no face of that size: no figure, not a made-up one
    assert 0 < r["leak"]["collateral"] < 0.1
    if style == "fill":  # one face, one ellipse mask grown by the image margin (0.4) and a little for JPEG
        assert 1.4 ** 2 * 0.9 < r["leak"]["mask_per_face_median"] < 1.4 ** 2 * 1.6, r["leak"]
    assert r["cpu_s"] > 0 and "masks of two faces merge" in stdout and "CPU:" in stdout


def test_pixelate_keeps_block_colours_so_the_rule_counts_it_leaked(tmp_path: Path, capsys):
    """Found and pixelated, yet most pixels stay within 24 of their block's mean: under the team's rule the face is
    not masked. eval says so rather than flattering the style."""
    gt = write_gt(tmp_path, [ASTRONAUT_FACE])
    code, stdout, _ = run(capsys, "eval", gt, "--style", "pixelate", "--json", tmp_path / "r.json")
    assert code == 0 and privacy_line(stdout) == (1, 1, 100.0)
    r = json.loads((tmp_path / "r.json").read_text())["faceanon"]
    assert r["buckets"]["all"]["recall"] == pytest.approx(1.0)  # the detector did find it


def test_a_face_the_detector_misses_counts_as_unmasked(tmp_path: Path, capsys):
    """A labelled 'face' on the flag behind her is not detected, so it is reported unmasked and lowers recall."""
    gt = write_gt(tmp_path, [ASTRONAUT_FACE, [50, 350, 40, 40]])
    code, stdout, _ = run(capsys, "eval", gt, "--style", "fill", "--json", tmp_path / "r.json")
    assert code == 0
    assert privacy_line(stdout) == (1, 2, 50.0)
    r = json.loads((tmp_path / "r.json").read_text())["faceanon"]
    assert r["buckets"]["all"]["recall"] == pytest.approx(0.5)
    assert r["unmasked_faces"] == [{"file": "astronaut.jpg", "box": [50.0, 350.0, 40.0, 40.0]}]


def test_ignore_regions_and_deface_comparison(tmp_path: Path, capsys):
    gt = write_gt(tmp_path, [], ignore=[[150, 30, 150, 180]])
    code, stdout, _ = run(capsys, "eval", gt, "--compare-deface", "--json", tmp_path / "r.json")
    assert code == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r) == {"faceanon", "deface"}
    assert r["deface"]["threshold"] == 0.2 and "mask scale 1.3" in r["deface"]["settings"]
    # The only detection lies in an ignore region: not a false positive, and its mask is not collateral.
    assert r["faceanon"]["leak"]["faces"] == 0
    assert r["faceanon"]["leak"]["collateral"] < 0.01 and r["deface"]["leak"]["collateral"] < 0.01
    assert "== deface" in stdout and "faceanon / deface, same run" in stdout


def test_bad_annotation_files(tmp_path: Path, capsys):
    for text, reason in (("{not json", "not a face annotation file"), ('{"pictures": []}', "not a face annotation "
                                                                                          "file ('images')")):
        gt = tmp_path / "gt.json"
        gt.write_text(text)
        code, _, err = run(capsys, "eval", gt)
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"faceanon: {gt}: {reason}")
    code, _, err = run(capsys, "eval", tmp_path / "none.json")
    assert code == 2 and err.startswith(f"faceanon: {tmp_path / 'none.json'}: cannot read")


def test_missing_image_is_reported(tmp_path: Path, capsys):
    gt = write_gt(tmp_path, [ASTRONAUT_FACE])
    doc = json.loads(gt.read_text())
    doc["images"].append({"file": "gone.png", "faces": [[0, 0, 20, 20]], "ignore": []})
    gt.write_text(json.dumps(doc))
    code, stdout, err = run(capsys, "eval", gt)
    assert code == 1
    assert err.strip() == f"faceanon: {tmp_path / 'gone.png'}: cannot read (No such file or directory)"
    assert privacy_line(stdout) == (0, 1, 0.0)  # the readable image still counts
