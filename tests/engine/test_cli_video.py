"""`faceanon video` on the real sample clip: faces masked in every frame (detected or held), H.264 out (checked
with Debian's ffprobe), audio kept on request, the live preset replayed as a camera, and corrupt input or an
unwritable target leave no output behind."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, VIDEO, need_shared
from faceanon.bench.stages import read_frames
from faceanon.cli import main
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner

SAMPLE = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def frames(path: Path) -> list[np.ndarray]:
    return read_frames(path)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(load_detector("centerface"), DetectPlan(), threshold=0.5)


def streams(path: Path) -> list[dict]:
    if not shutil.which("ffprobe"):
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg; .ci/run does this)")
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,pix_fmt",
                            "-of", "json", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(probe.stdout)["streams"]


def test_video_every_frame_masked_with_hold(tmp_path: Path, capsys, scanner: Scanner):
    out = tmp_path / "anon.mp4"
    code, stdout, err = run(capsys, "video", SAMPLE, "-o", out, "--detect-every", "3", "--style", "fill",
                            "--shape", "box")
    assert code == 0, err
    assert "audio" not in stdout + err  # the clip has none: nothing to drop, nothing to say
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


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi"])
def test_output_is_h264_that_browsers_play(tmp_path: Path, capsys, suffix: str):
    """H.264 in 4:2:0 (what Chrome, Firefox and Home Assistant's media browser play), every container."""
    out = tmp_path / f"anon{suffix}"
    assert run(capsys, "video", SAMPLE, "-o", out, "--detect-size", "320")[0] == 0
    assert [(s["codec_type"], s["codec_name"], s.get("pix_fmt")) for s in streams(out)] == [
        ("video", "h264", "yuv420p")]


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg; .ci/run does this)")
    out = tmp_path_factory.mktemp("audio") / "talk.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(out)], check=True, timeout=120)
    return out


def test_keep_audio_copies_it_and_the_default_says_it_was_dropped(tmp_path: Path, capsys, clip_with_audio: Path):
    kept, dropped = tmp_path / "kept.mp4", tmp_path / "dropped.mp4"
    code, stdout, err = run(capsys, "video", clip_with_audio, "-o", kept, "--keep-audio")
    assert code == 0, err
    assert "audio copied" in stdout
    assert {(s["codec_type"], s["codec_name"]) for s in streams(kept)} == {("video", "h264"), ("audio", "aac")}
    code, stdout, err = run(capsys, "video", clip_with_audio, "-o", dropped)
    assert code == 0 and "audio dropped (--keep-audio keeps it)" in stdout
    assert [s["codec_type"] for s in streams(dropped)] == ["video"]


def test_pcm_audio_into_mp4_is_reencoded(tmp_path: Path, capsys):
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    src = tmp_path / "pcm.mov"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-f", "lavfi", "-i",
                    "sine=duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest",
                    str(src)], check=True, timeout=120)
    out = tmp_path / "out.mp4"
    assert run(capsys, "video", src, "-o", out, "--keep-audio")[0] == 0
    assert ("audio", "aac") in {(s["codec_type"], s["codec_name"]) for s in streams(out)}


def test_live_preset_replays_the_camera(tmp_path: Path, capsys):
    """At 5 fps from a 12.5 fps clip the camera takes about 2 frames in 5; every other frame is written as the last
    published one, and the output keeps every frame so frames align with the input."""
    out = tmp_path / "live.mp4"
    code, stdout, err = run(capsys, "video", SAMPLE, "-o", out, "--preset", "live", "--fps", "5")
    assert code == 0, err
    assert "camera at 5 fps: 14 frames taken" in stdout
    original, written = frames(SAMPLE), frames(out)
    assert len(written) == len(original)
    repeats = sum(float(np.abs(a.astype(int) - b.astype(int)).mean()) < 1.0
                  for a, b in itertools.pairwise(written))
    assert repeats >= 18  # 35 frames, 14 taken: 21 repeat the frame before them (H.264 rounds a little)


def test_an_output_that_is_a_folder_fails_at_once(tmp_path: Path, capsys):
    folder = tmp_path / "out.mp4"
    folder.mkdir()
    code, _, err = run(capsys, "video", SAMPLE, "-o", folder)
    assert code == 2 and err.strip() == f"faceanon: {folder}: is a folder; give a file name such as out.mp4"
    code, _, err = run(capsys, "video", SAMPLE, "-o", tmp_path / "out.webm")
    assert code == 2 and "unknown video type .webm" in err


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


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupt_or_a_kill_leaves_no_output(tmp_path: Path, how: str):
    """Interrupted half-way (Ctrl-C, `kill`, a closed terminal), the video command exits 130 and leaves neither
    the target nor its temp file (SIGTERM left a hidden .part.mp4 behind)."""
    import signal
    import subprocess
    import sys
    import time

    clip = need_shared(VIDEO / "vtest.avi")
    out = tmp_path / "anon.mp4"
    # SIGINT back to its default in the child: a test run started in the background (nohup, `&`) ignores it, and
    # the child would inherit that.
    proc = subprocess.Popen([str(Path(sys.executable).parent / "faceanon"), "video", str(clip), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".anon.*.part.mp4")) or not any(p.stat().st_size for p in
                                                                      tmp_path.glob(".anon.*")):
            assert proc.poll() is None and time.monotonic() < deadline, f"no temp output appeared {proc.poll()}"
            time.sleep(0.1)
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"faceanon: {out}: interrupted; nothing written" in err
    assert list(tmp_path.iterdir()) == [], err


def test_progress_goes_to_a_pipe_as_plain_lines(tmp_path: Path, monkeypatch):
    """Not on a terminal (a pipe, a log, CI) a long job still says how far it is: a line every LOG_EVERY_S seconds
    with the total, the rate and the time left, and one at the end."""
    import subprocess
    import sys

    from faceanon.cli import common

    monkeypatch.setattr(common, "LOG_EVERY_S", 0.0)
    bar = common.PlainProgress(desc="frames", unit="f", total=4)
    lines = []
    monkeypatch.setattr("builtins.print", lambda *a, **_k: lines.append(" ".join(map(str, a))))
    for _ in range(4):
        bar.update()
    bar.close()
    assert lines[0].startswith("faceanon: frames: 1/4 f (25 %), ") and lines[0].endswith(" s left")
    assert lines[-1].startswith("faceanon: frames: 4/4 f (100 %), ")
    monkeypatch.undo()
    from faceanon.config import SAMPLE_CLIP

    out = tmp_path / "demo.mp4"
    done = subprocess.run([sys.executable, "-m", "faceanon", "video", str(SAMPLE_CLIP), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "faceanon: frames: 35/35 f (100 %)" in done.stderr  # the closing line, in a pipe


def test_output_mistakes_name_the_real_problem(tmp_path: Path, capsys):
    """`image -o FILE` and `video -o DIR` say what is wrong; a model error leaves no empty folder behind; a video
    written over an existing file says so."""
    from faceanon.cli import main
    from faceanon.config import SAMPLE_CLIP

    existing = tmp_path / "taken.txt"
    existing.write_text("x")
    assert main(["image", str(ROOT / "tests" / "fixtures" / "astronaut.jpg"), "-o", str(existing)]) == 2
    assert "-o is an existing file; image writes into a folder" in capsys.readouterr().err
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(["video", str(SAMPLE_CLIP), "-o", str(folder)]) == 2
    assert f"{folder}: is a folder; give a file name such as out.mp4" in capsys.readouterr().err
    for command in (["image", str(ROOT / "tests" / "fixtures" / "astronaut.jpg"), "-o", str(tmp_path / "new_dir")],
                    ["video", str(SAMPLE_CLIP), "-o", str(tmp_path / "new_dir2" / "out.mp4")]):
        assert main([*command, "--model", "no-such-model"]) == 2
    capsys.readouterr()
    assert not (tmp_path / "new_dir").exists() and not (tmp_path / "new_dir2").exists()
    out = tmp_path / "again.mp4"
    out.write_bytes(b"old")
    assert main(["video", str(SAMPLE_CLIP), "-o", str(out)]) == 0
    assert f"note: {out} exists; it is replaced" in capsys.readouterr().err and out.stat().st_size > 1000
