"""`faceanon bench privacy`: its walkers clips, its scorer against the team's videoleak.py on the same files, and a
short run end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FACES_DEV, ROOT, SAMPLE_CLIP, VIDEO, need_shared
from faceanon.bench.privacy import main as bench_privacy
from faceanon.bench.privacy import score
from faceanon.bench.walkers import make_clip

VIDEOLEAK = ROOT.parent / "shared" / "tools" / "videoleak.py"

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg writes the walkers clips "
                                                                   "(apt-get install ffmpeg; .ci/run does this)")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need_shared(FACES_DEV)
    out = tmp_path_factory.mktemp("walkers") / "walk.mp4"
    truth = make_clip(FACES_DEV / "annotations.json", FACES_DEV, SAMPLE_CLIP, out, size=(640, 360), frames=40,
                      walkers=6, seed=3)
    return out, truth


def test_walkers_clip_is_deterministic_and_in_the_team_format(clip: tuple[Path, Path], tmp_path: Path) -> None:
    _, truth = clip
    gt = json.loads(truth.read_text())
    assert (gt["width"], gt["height"], gt["fps"], len(gt["frames"])) == (640, 360, 10.0, 40)
    boxes = [f for frame in gt["frames"] for f in frame["faces"]]
    assert boxes and all(set(f) == {"track", "box"} and len(f["box"]) == 4 for f in boxes)
    again = make_clip(FACES_DEV / "annotations.json", FACES_DEV, SAMPLE_CLIP, tmp_path / "again.mp4",
                      size=(640, 360), frames=40, walkers=6, seed=3)
    assert json.loads(again.read_text())["frames"] == gt["frames"]


def test_the_scorer_agrees_with_the_team_tool(clip: tuple[Path, Path], tmp_path: Path) -> None:
    """One clip anonymized by the video preset, scored by both: every figure the same."""
    need_shared(VIDEOLEAK)
    out, truth = clip
    anonymized = tmp_path / "anon.mp4"
    from faceanon.cli import main

    assert main(["video", str(out), "-o", str(anonymized), "--preset", "video"]) == 0
    ours = score(truth, out, anonymized)
    tool = subprocess.run([sys.executable, str(VIDEOLEAK), str(truth), str(out), str(anonymized), "--json",
                           str(tmp_path / "theirs.json")], capture_output=True, text=True, timeout=300)
    assert tool.returncode == 0, tool.stderr
    theirs = json.loads((tmp_path / "theirs.json").read_text())
    for key in ("pairs", "tracks", "missing_frames"):
        assert ours[key] == theirs[key], key
    for key in ("frame_leak", "track_leak", "track_leak3", "collateral"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key
    assert {k: round(v, 4) for k, v in ours["frame_leak_by_size"].items() if v is not None} == {
        k: v for k, v in theirs["frame_leak_by_size"].items()}


def test_a_short_run_prints_presets_and_deface_side_by_side(clip: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    out, _ = clip
    code = bench_privacy(["--clips", str(out), "--presets", "live,video", "--json", str(tmp_path / "r.json")])
    assert code == 0
    text = capsys.readouterr().out
    assert "live / deface, same run" in text and "video / deface, same run" in text
    doc = json.loads((tmp_path / "r.json").read_text())
    assert {r["label"] for r in doc["runs"]} == {"live", "video", "deface"}
    assert set(doc["totals"]) == {"live", "video", "deface"}
    for t in doc["totals"].values():  # leak, collateral, CPU, and how far the masks reach, every run
        assert {"frame_leak", "collateral", "cpu_share", "mask_per_face_median", "mask_per_face_p95",
                "merged_frames"} <= set(t)
        assert 0 < t["cpu_share"] and t["mask_per_face_median"] >= 1.0


def test_the_bundled_clip_runs_a_privacy_figure_without_the_team_data(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """A clone has no ../shared: the demo clip and its labels (samples/) give leak, collateral, mask extent and CPU
    end to end, with contact sheets of what was written."""
    sample = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
    code = bench_privacy(["--clips", str(sample), "--presets", "live", "--no-deface", "--json",
                          str(tmp_path / "r.json"), "--sheets", str(tmp_path / "sheets")])
    assert code == 0
    live = json.loads((tmp_path / "r.json").read_text())["totals"]["live"]
    assert live["pairs"] == 70 and live["frame_leak"] <= 0.05, live  # two clear faces in 35 frames
    assert (tmp_path / "sheets" / "face-demographics-walking.live.jpg").stat().st_size > 10_000
    assert "mask/face" in capsys.readouterr().out


def test_the_live_preset_masks_a_crowd(tmp_path: Path) -> None:
    """16 walkers over the campus clip at 1280x720 (100 frames, seed 7), replayed as a live camera: 8.6 % of
    (face, frame) pairs unmasked by the team's rule. Before moving boxes stopped chaining into one frame-sized
    region and the region budget was taken in turns, the same clip left 14.2 %."""
    from faceanon.cli import main

    out = tmp_path / "crowd.mp4"
    truth = make_clip(FACES_DEV / "annotations.json", need_shared(FACES_DEV), need_shared(VIDEO / "vtest.avi"), out,
                      size=(1280, 720), frames=100, walkers=16, seed=7)
    assert main(["video", str(out), "-o", str(tmp_path / "live.mp4"), "--preset", "live"]) == 0
    result = score(truth, out, tmp_path / "live.mp4")
    assert result["pairs"] > 1000 and result["frame_leak"] <= 0.11, result
