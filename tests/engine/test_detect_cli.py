"""`faceanon detect` with both single-stage families on real photos: the JSON format and that boxes are real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FACES_DEV, FIXTURES, need_shared
from faceanon.cli import main
from faceanon.evaluate import iou


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("family", ["centerface", "retinaface"])
def test_detect_json_on_fixtures(tmp_path: Path, capsys, family: str):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(FIXTURES / "astronaut.jpg", folder / "sub" / "astronaut.jpg")
    shutil.copy(FIXTURES / "camera.jpg", tmp_path / "camera.jpg")
    out = tmp_path / "faces.json"
    code, stdout, err = run(capsys, "detect", folder, tmp_path / "camera.jpg", "--json", out, "--model", family)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["model"] == family
    by_file = {i["file"]: i for i in doc["images"]}
    # Relative to the folder argument; a file argument is reported by its name.
    assert set(by_file) == {"sub/astronaut.jpg", "camera.jpg"}
    astro = by_file["sub/astronaut.jpg"]
    assert (astro["width"], astro["height"]) == (512, 512)
    assert len(astro["faces"]) == 1
    face = astro["faces"][0]
    assert set(face) == {"box", "score"} and 0.5 <= face["score"] <= 1
    # Eileen Collins' face is at about x 180-270, y 55-180 in the 512x512 photo (x, y, w, h in pixels).
    assert iou([face["box"]], [[181, 58, 88, 120]])[0, 0] > 0.6
    assert len(by_file["camera.jpg"]["faces"]) == 1
    assert "2 images, 2 faces" in stdout


def test_detect_to_stdout_and_threshold(capsys):
    code, stdout, _ = run(capsys, "detect", FIXTURES / "astronaut.jpg", "--json", "-", "--threshold", "0.999")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["threshold"] == 0.999 and doc["images"][0]["faces"] == []


def test_detect_reports_bad_files_and_goes_on(tmp_path: Path, capsys):
    shutil.copy(FIXTURES / "astronaut.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, _, err = run(capsys, "detect", tmp_path, "--json", tmp_path / "out.json")
    assert code == 1
    assert err.strip() == f"faceanon: {tmp_path / 'b.jpg'}: cannot decode image (corrupt, truncated or not really " \
                          "an image)"
    assert [i["file"] for i in json.loads((tmp_path / "out.json").read_text())["images"]] == ["a.jpg"]


@pytest.mark.parametrize("family", ["centerface", "retinaface"])
def test_detect_finds_the_labelled_faces_on_faces_dev(tmp_path: Path, capsys, family: str):
    """On 12 real street photos, most labelled faces of 25 px and more are found at the right place."""
    need_shared(FACES_DEV)
    gt = json.loads((FACES_DEV / "annotations.json").read_text())["images"][:12]
    folder = tmp_path / "dev"
    folder.mkdir()
    for entry in gt:
        shutil.copy(FACES_DEV / entry["file"], folder)
    code, _, err = run(capsys, "detect", folder, "--json", tmp_path / "d.json", "--model", family)
    assert code == 0, err
    found = {i["file"]: i for i in json.loads((tmp_path / "d.json").read_text())["images"]}
    hits = total = 0
    for entry in gt:
        image = found[Path(entry["file"]).name]
        assert (image["width"], image["height"]) == (entry["width"], entry["height"])
        boxes = np.array([f["box"] for f in image["faces"]]).reshape(-1, 4)
        for face in entry["faces"]:
            if min(face[2], face[3]) >= 25:
                total += 1
                hits += bool(len(boxes)) and iou([face], boxes).max() >= 0.5
    assert total >= 20
    assert hits / total >= 0.8, f"{family}: {hits} of {total} faces >= 25 px found"


def test_unwritable_json_target_fails_before_any_work(tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "detect", FIXTURES / "astronaut.jpg", "--json", blocker / "faces.json")
    assert code == 2
    assert err.strip().startswith(f"faceanon: {blocker}: output folder is not writable (")
