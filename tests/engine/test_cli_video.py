"""`faceanon video` on the real sample clip: faces masked in every frame (detected or held), codecs by extension,
and corrupt input or an unwritable target leave no output behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, VIDEO, need_shared
from faceanon.cli import main
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner

SAMPLE = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(load_detector("centerface"), DetectPlan(), threshold=0.5)


def test_video_every_frame_masked_with_hold(tmp_path: Path, capsys, scanner: Scanner):
    out = tmp_path / "anon.mp4"
    code, stdout, err = run(capsys, "video", SAMPLE, "-o", out, "--detect-every", "3", "--style", "fill")
    assert code == 0, err
    assert "audio is not copied" in err
    assert "35 frames 480x270" in stdout and " fps" in stdout
    original, masked = frames(SAMPLE), frames(out)
    assert len(masked) == len(original) == 35
    assert masked[0].shape == original[0].shape
    before = sum(len(scanner.scan(f)) for f in original)
    assert before >= 35  # people with visible faces in most frames
    # Every output frame, also the two of three the detector skipped (the hold masks them), shows no face left.
    left = [i for i, f in enumerate(masked) if len(scanner.scan(f))]
    assert len(left) <= 2, f"faces still found in output frames {left}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("suffix", "fourccs"), [(".mp4", {"mp4v", "fmp4"}), (".avi", {"mjpg"})])
def test_codec_follows_the_extension(tmp_path: Path, capsys, suffix: str, fourccs: set[str]):
    """MPEG-4 part 2 in .mp4 (FFmpeg reads its tag back as FMP4), Motion JPEG in .avi."""
    out = tmp_path / f"anon{suffix}"
    assert run(capsys, "video", SAMPLE, "-o", out, "--detect-size", "320")[0] == 0
    cap = cv2.VideoCapture(str(out))
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    assert code.to_bytes(4, "little").decode().lower() in fourccs


def test_not_a_video_is_one_clear_line(tmp_path: Path, capsys):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing" * 10)
    out = tmp_path / "out.mp4"
    code, _, err = run(capsys, "video", bad, "-o", out)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(f"faceanon: {bad}: ")
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_missing_video(tmp_path: Path, capsys):
    code, _, err = run(capsys, "video", tmp_path / "nope.avi", "-o", tmp_path / "o.avi")
    assert code == 1 and err.strip() == f"faceanon: {tmp_path / 'nope.avi'}: no such file"


def test_truncated_video_is_reported(tmp_path: Path, capsys):
    clip = need_shared(VIDEO / "vtest.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[:300_000])
    code, _, err = run(capsys, "video", cut, "-o", tmp_path / "o.mp4", "--detect-size", "160")
    assert code == 1
    assert f"faceanon: {cut}: only " in err and "truncated or corrupt" in err


def test_unwritable_target(tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "video", SAMPLE, "-o", blocker / "o.mp4")
    assert code == 2
    assert err.strip().startswith(f"faceanon: {blocker / 'o.mp4'}: cannot write (")


def test_output_may_not_overwrite_input(tmp_path: Path, capsys):
    clip = tmp_path / "walk.gif"
    shutil.copy(SAMPLE, clip)
    code, _, err = run(capsys, "video", clip, "-o", clip)
    assert code == 2 and "would overwrite the input" in err
    assert clip.read_bytes() == SAMPLE.read_bytes()


def test_ctrl_c_leaves_no_output(tmp_path: Path):
    """Interrupted half-way, the video command exits 130 and leaves neither the target nor its temp file."""
    import signal
    import subprocess
    import sys
    import time

    clip = need_shared(VIDEO / "vtest.avi")
    out = tmp_path / "anon.mp4"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "faceanon"), "video", str(clip), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".anon.*.part.mp4")) or not any(p.stat().st_size for p in
                                                                      tmp_path.glob(".anon.*")):
            assert proc.poll() is None and time.monotonic() < deadline, f"no temp output appeared {proc.poll()}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"faceanon: {out}: interrupted after " in err and "nothing written" in err
    assert list(tmp_path.iterdir()) == [], err
