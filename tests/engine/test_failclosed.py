"""FAIL CLOSED: with detector faults injected (raises, stalls past the deadline, cannot load, masker fails), EVERY
output frame is either masked or the privacy-hold frame, never the raw frame; the camera recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from faceanon import feed as feed_module
from faceanon.detect import Faces, load_detector
from faceanon.detect.shared import Detectors, SharedDetector
from faceanon.source import Frame
from test_pipeline import (
    RecordingPipeline,
    Scripted,
    ScriptedDetectors,
    assert_all_safe,
    camera,
    decode,
    is_privacy_hold,
    run_for,
)

pytestmark = pytest.mark.timeout(90)
STRICT = {"style": "fill", "shape": "box", "detect_every": 1}  # the whole frame every frame; box: the engine judges


class Timeline(RecordingPipeline):
    """Also records privacy_degraded after every frame."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.degraded: list[bool] = []

    async def _process(self, frame: Frame) -> None:
        await super()._process(frame)
        self.degraded.append(self.feed.privacy_degraded)


def recovered(p: Timeline, masked_after: int = 3) -> bool:
    """Degraded at some point, and the last `masked_after` outputs are live masked frames again."""
    return (True in p.degraded and len(p.pairs) > masked_after
            and not any(is_privacy_hold(decode(j)) for _, j in p.pairs[-masked_after:]))


async def test_detector_raising_fails_closed_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "faceanon")
    scripted = Scripted(lambda n: "raise" if 3 <= n <= 6 else "ok")
    p = Timeline(camera(**STRICT), ScriptedDetectors(scripted))
    await run_for(p, 15, until=lambda: recovered(p))
    kinds = assert_all_safe(p.pairs, p.style)
    assert kinds["hold"] >= 4 and kinds["masked"] >= 5
    assert p.feed.status()["fail_closed_frames"] == kinds["hold"]
    assert p.degraded[-1] is False and not p.feed.status()["privacy_degraded"]
    # the first hold frame is the last anonymized frame, stamped
    first_hold = next(i for i, (_, j) in enumerate(p.pairs) if is_privacy_hold(decode(j)))
    assert first_hold == 2
    msgs = [r.getMessage() for r in caplog.records if r.name == "faceanon.pipeline"]
    assert any(m.startswith("demo: detector failed, output held as privacy frames (injected detector fault)")
               for m in msgs)
    assert any(m.startswith("demo: detector answering again") for m in msgs)
    assert sum("detector failed" in m for m in msgs) == 1  # one line per episode, not per frame


async def test_privacy_degraded_has_hysteresis() -> None:
    """A detector failing every other frame reads as degraded throughout, not as a flag flipping every frame; it
    lifts after 3 anonymized frames in a row."""
    scripted = Scripted(lambda n: "raise" if n % 2 == 0 and n <= 12 else "ok")
    p = Timeline(camera(**STRICT), ScriptedDetectors(scripted))
    await run_for(p, 20, until=lambda: recovered(p, masked_after=4) and p.degraded[-1] is False)
    assert_all_safe(p.pairs, p.style)
    flips = sum(a != b for a, b in zip(p.degraded, p.degraded[1:], strict=False))
    assert flips <= 2 and p.degraded[-1] is False, p.degraded  # on once, off once
    first = p.degraded.index(True)
    last = len(p.degraded) - 1 - p.degraded[::-1].index(True)
    assert all(p.degraded[first:last + 1])  # stayed on while the detector kept failing


async def test_detector_stalling_past_the_deadline_fails_closed_and_recovers() -> None:
    scripted = Scripted(lambda n: 1.5 if n in (3, 4) else "ok")
    p = Timeline(camera(deadline_ms=300, **STRICT), ScriptedDetectors(scripted))
    # Bounded, not timed: it ends once the camera recovers (seconds on an idle box); a saturated one needs longer to
    # meet the deadline again (it failed at 20 s with two benches and three busy loops on the 2 cores).
    await run_for(p, 60, until=lambda: recovered(p))
    kinds = assert_all_safe(p.pairs, p.style)
    assert kinds["hold"] >= 5  # 2 stalls of 1.5 s at 5 fps
    assert kinds["masked"] >= 5 and p.degraded[-1] is False


async def test_a_stall_before_any_good_frame_gives_the_black_hold_frame() -> None:
    scripted = Scripted(lambda n: 1.2 if n == 1 else "ok")
    p = Timeline(camera(deadline_ms=200, **STRICT), ScriptedDetectors(scripted))
    await run_for(p, 60, until=lambda: recovered(p))  # bounded, as above
    out = decode(p.pairs[0][1])
    assert is_privacy_hold(out)
    assert np.median(out) == 0  # black: there was no anonymized frame to show
    assert assert_all_safe(p.pairs, p.style)["masked"] >= 3


async def test_model_that_cannot_load_holds_privacy_and_retries(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    scripted = Scripted(lambda n: "ok")
    p = Timeline(camera(**STRICT), ScriptedDetectors(scripted, fail_loads=2))
    p.load_retry = (0.5, 1.0)
    await run_for(p, 15, until=lambda: recovered(p))
    assert p.feed.seq > len(p.pairs)  # the hold frame went out at once, before any source frame
    kinds = assert_all_safe(p.pairs, p.style)
    assert kinds["hold"] >= 2 and kinds["masked"] >= 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[0].startswith("demo: detector unavailable, output held as privacy frames (")
    assert "/nonexistent/model.onnx" in errors[0]


async def test_a_broken_model_file_never_shows_the_camera(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model" * 100)
    p = Timeline(camera(), Detectors({"model": str(bad), "family": "centerface"}))
    p.load_retry = (0.3, 0.5)
    await run_for(p, 4, until=lambda: len(p.pairs) >= 8)
    assert len(p.pairs) >= 5
    assert assert_all_safe(p.pairs, p.style) == {"hold": len(p.pairs), "masked": 0}
    assert all(np.median(decode(j)) == 0 for _, j in p.pairs)
    status = p.feed.status()
    assert status["privacy_degraded"] and status["online"] and status["fail_closed_frames"] >= 5


async def test_a_model_with_broken_weights_never_shows_the_camera(tmp_path: Path) -> None:
    """It loads and runs, but would find no face anywhere: the canary refuses it, every output is the hold frame."""
    from test_cli_models import broken_weights

    bad = broken_weights(tmp_path, 0.0)
    p = Timeline(camera(), Detectors({"model": str(bad), "family": "centerface"}))
    p.load_retry = (0.3, 0.5)
    await run_for(p, 6, until=lambda: len(p.pairs) >= 8)
    assert len(p.pairs) >= 5
    assert assert_all_safe(p.pairs, p.style) == {"hold": len(p.pairs), "masked": 0}
    assert p.feed.status()["privacy_degraded"]


async def test_a_failing_masker_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = feed_module.apply_masks
    calls = {"n": 0}

    def flaky_masker(frame, boxes, style):
        calls["n"] += 1
        if 3 <= calls["n"] <= 5:
            raise MemoryError("injected masker fault")
        return real(frame, boxes, style)

    monkeypatch.setattr(feed_module, "apply_masks", flaky_masker)
    p = Timeline(camera(**STRICT), ScriptedDetectors(Scripted(lambda n: "ok")))
    await run_for(p, 15, until=lambda: recovered(p))
    kinds = assert_all_safe(p.pairs, p.style)
    assert kinds["hold"] >= 3 and kinds["masked"] >= 5


def test_only_anonymized_frames_can_be_published() -> None:
    with pytest.raises(TypeError):
        feed_module.Anonymized(object(), np.zeros((2, 2, 3), np.uint8), b"", False)


@pytest.mark.timeout(240)
async def test_a_slow_camera_on_the_shared_model_does_not_push_another_into_privacy_hold() -> None:
    """Camera `slow` holds the model it shares with camera `fast` for 2.5 s a frame (a huge frame, say); `fast`, with
    the default 2 s deadline, waits up to that long for its turn, but its deadline counts only its own work, so it
    never goes into privacy hold and every frame of it is masked (before, the wait counted and it went degraded)."""
    real = load_detector()

    class SlowForOneCamera(type(real)):
        def infer(self, image: np.ndarray, floor: float) -> Faces:
            if threading.current_thread().name.startswith("detect-slow") and image.shape[1] == 480:
                time.sleep(2.5)  # once per frame: the native pass
            return super().infer(image, floor)

    shared = SharedDetector(SlowForOneCamera(real.session, real.manifest))

    class OneModel(Detectors):
        def _load(self, key: tuple) -> SharedDetector:
            return shared

    detectors = OneModel({"model": "centerface"}, cameras=2)
    slow = Timeline({**camera(**STRICT, deadline_ms=20000), "name": "slow"}, detectors)
    fast = Timeline({**camera(**STRICT), "name": "fast"}, detectors)
    enough = lambda: len(fast.pairs) >= 4 and len(slow.pairs) >= 2  # noqa: E731
    await asyncio.gather(run_for(slow, 150, until=enough), run_for(fast, 150, until=enough))
    assert len(slow.pairs) >= 2 and len(fast.pairs) >= 4
    assert shared.waited_s > 4.0  # fast really waited for slow's turns, past its 2 s deadline
    kinds = assert_all_safe(fast.pairs, fast.style)
    assert kinds == {"hold": 0, "masked": len(fast.pairs)} and True not in fast.degraded
    assert assert_all_safe(slow.pairs, slow.style)["hold"] == 0
