"""Fixtures shared by the engine and add-on tests: real services on 127.0.0.1 and the shared data sets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Services the tests start keep their state (the service id) in a scratch folder, never in the user's home.
os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp(prefix="faceanon-test-state-"))

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FACES_DEV = SHARED / "faces-dev"
VIDEO = SHARED / "video"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def need_shared(path: Path) -> Path:
    """Skip (with the reason) when the team's shared data set is not beside this checkout."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data sets live in ../shared beside the project root")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Mosquitto:
    """A real mosquitto broker on 127.0.0.1; restartable on the same port (for reconnect tests)."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does this)")
        self.exe = exe
        self.port = free_port()
        self.host = "127.0.0.1"
        conf = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if users:
            pwfile = workdir / "passwd"
            pwfile.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            pwfile.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, timeout=30)
            conf += ["allow_anonymous false", f"password_file {pwfile}"]
            if os.geteuid() == 0:  # as root mosquitto drops to user `mosquitto`, who cannot read the 0600 file
                conf.append("user root")
        else:
            conf.append("allow_anonymous true")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1280x720 H.264 MP4 (GOP 10) made by ffmpeg from a real clip with faces (shared data), or from a
    committed fixture when ../shared is absent."""
    src = VIDEO / "intel-sample-videos" / "face-demographics-walking.gif"
    if not src.exists():
        src = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg; .ci/run does this)")
    out = tmp_path_factory.mktemp("clip") / "walking720.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "3", "-i", str(src),
         "-vf", "scale=1280:720,fps=10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-bf", "0",
         str(out)], check=True, timeout=120)
    return out


class RtspServer:
    def __init__(self, clip: Path) -> None:
        if not Path("/usr/bin/python3").exists():
            pytest.skip("Debian's /usr/bin/python3 with python3-gi is needed for the RTSP server")
        self.clip = clip
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "tests" / "tools" / "rtsp_server.py"), str(self.port), str(self.clip)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.stop()
            pytest.skip(f"the GStreamer RTSP server did not start: {line.strip()} "
                        "(apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                        "gstreamer1.0-plugins-bad; .ci/run does this)")
        self.url = line.split()[1]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def rtsp_server(h264_clip: Path) -> Iterator[RtspServer]:
    server = RtspServer(h264_clip)
    yield server
    server.stop()


# --- publisher tests (publish dev): a real feed of anonymized JPEGs, driving MQTT/HTTP like the pipeline does ---

SAMPLE_CLIP = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


@dataclass(frozen=True)
class AnonymizedFrame:
    jpeg: bytes  # masked by faceanon.mask.apply_masks after faceanon.detect found the faces
    faces: int  # faces the detector found before masking
    boxes: tuple[tuple[int, int, int, int], ...]


@pytest.fixture(scope="session")
def anonymized_frames() -> list[AnonymizedFrame]:
    """Every third frame of the bundled clip, faces found by the default detector and masked (fill, so that the
    same detector finds nothing left to see), as JPEGs."""
    import cv2
    from faceanon.detect import load_detector
    from faceanon.detect.plan import DetectPlan, Scanner
    from faceanon.mask import MaskStyle, apply_masks

    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert frames, f"cannot read {SAMPLE_CLIP}"
    scanner = Scanner(load_detector(), DetectPlan())
    out = []
    for frame in frames[::3]:
        faces = scanner.scan(frame)
        masked = apply_masks(frame.copy(), faces.boxes, MaskStyle("fill"))
        ok, buf = cv2.imencode(".jpg", masked, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        out.append(AnonymizedFrame(buf.tobytes(), len(faces.boxes),
                                   tuple(tuple(int(v) for v in b) for b in faces.boxes)))
    return out


class FrameFeed:
    """A CameraFeed (docs/architecture.md contract) fed by the test with anonymized JPEGs."""

    def __init__(self, name: str, snapshot_interval: float = 10.0) -> None:
        self.name = name
        self.seq = 0
        self.latest_jpeg: bytes | None = None
        self.snapshot_interval = snapshot_interval
        self.faces = 0
        self.privacy_degraded = False
        self._new: asyncio.Event | None = None
        self._last_frame = None

    def push(self, frame: AnonymizedFrame | bytes, faces: int | None = None) -> int:
        jpeg = frame if isinstance(frame, bytes) else frame.jpeg
        self.faces = faces if faces is not None else (0 if isinstance(frame, bytes) else frame.faces)
        self.latest_jpeg = jpeg
        self.seq += 1
        self._last_frame = time.monotonic()
        if self._new is not None:
            self._new.set()
            self._new = None
        return self.seq

    def status(self) -> dict:
        age = None if self._last_frame is None else time.monotonic() - self._last_frame
        return {"name": self.name, "online": self.latest_jpeg is not None, "privacy_degraded": self.privacy_degraded,
                "faces": self.faces, "fps": 5.0, "detect_ms_p50": 21.5, "detect_ms_p95": 40.25,
                "dropped_frames": 3, "fail_closed_frames": 1, "masks_held": 2, "model": "centerface",
                "provider": "cpu", "width": 480, "height": 270, "last_frame_age_s": age}

    async def wait_frame(self, after_seq: int, timeout: float) -> int:
        if self.seq != after_seq:
            return self.seq
        if self._new is None:
            self._new = asyncio.Event()
        event = self._new
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.seq

    async def play(self, frames: list[AnonymizedFrame], fps: float, count: int) -> None:
        for i in range(count):
            self.push(frames[i % len(frames)])
            await asyncio.sleep(1 / fps)
