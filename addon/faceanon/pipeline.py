"""Per-camera pipeline: newest frame -> detect (executor thread) -> hold -> mask -> JPEG -> CameraFeed. FAIL CLOSED.

The only way a JPEG reaches `CameraFeed.latest_jpeg` is `CameraFeed._publish(Anonymized)`, and an `Anonymized` is
made only by `anonymize()` (the masker ran over every box of the hold) or `privacy_hold_frame()` (the last
anonymized frame, darkened and stamped, or a black frame). When the detector raises, stalls past the camera's
deadline or cannot load, the camera publishes the privacy-hold frame and says `privacy_degraded`; it recovers by
itself when the detector answers again. Until the detector is ready nothing is published. Raw frames are never
logged and never leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from faceanon.detect import FaceDetector, Faces, load_detector
from faceanon.detect.plan import DetectPlan, Pass, Scanner
from faceanon.hold import Hold
from faceanon.mask import MaskStyle, apply_masks
from faceanon.source import Frame, Source, open_source
from faceanon.source.base import one_line

log = logging.getLogger("faceanon.pipeline")

JPEG_QUALITY = 85
STALE_TEXT = "STALE - PRIVACY HOLD"
SAFE_SIZE = (640, 360)  # the black frame's size before any frame size is known
LOAD_RETRY_S = (5.0, 60.0)  # model load retries: first delay, cap
_TOKEN = object()  # only this module's builders may make an Anonymized


class Anonymized:
    """An output frame that is safe to publish: masked, or the privacy-hold frame. Built only in this module."""

    __slots__ = ("image", "jpeg", "safe")

    def __init__(self, token: object, image: np.ndarray, jpeg: bytes, safe: bool) -> None:
        if token is not _TOKEN:
            raise TypeError("an Anonymized frame is made only by anonymize() or privacy_hold_frame()")
        self.image = image  # the masked (or stamped) pixels, kept to build the next privacy-hold frame
        self.jpeg = jpeg
        self.safe = safe  # True: a privacy-hold frame, not a live one


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def anonymize(frame: np.ndarray, boxes: np.ndarray, style: MaskStyle) -> Anonymized:
    """Mask every box (in place, on the pipeline's own copy of the frame) and encode it."""
    masked = apply_masks(frame, boxes, style)
    return Anonymized(_TOKEN, masked, encode_jpeg(masked), safe=False)


def privacy_hold_frame(last: Anonymized | None, width: int, height: int) -> Anonymized:
    """The last anonymized frame, darkened and stamped STALE - PRIVACY HOLD; a black frame when there is none."""
    if last is not None and last.image.shape[:2] == (height, width):
        image = (last.image * 0.4).astype(np.uint8)
    else:
        image = np.zeros((max(height, 16), max(width, 16), 3), np.uint8)
    h, w = image.shape[:2]
    scale = max(0.5, w / 900)
    thick = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(STALE_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = (max(4, (w - tw) // 2), (h + th) // 2)
    cv2.rectangle(image, (org[0] - 8, org[1] - th - 8), (org[0] + tw + 8, org[1] + 8), (0, 0, 160), -1)
    cv2.putText(image, STALE_TEXT, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return Anonymized(_TOKEN, image, encode_jpeg(image), safe=True)


@dataclass
class SharedDetector:
    """One loaded model shared by every camera that uses it; the lock runs one inference at a time (the session
    already uses every core through its intra-op threads, so concurrent runs only contend)."""

    detector: FaceDetector
    lock: threading.Lock


class Detectors:
    """Loads each model once, off the event loop, and hands the same SharedDetector to every camera."""

    def __init__(self, detector_cfg: dict) -> None:
        self.cfg = detector_cfg
        self._loaded: dict[tuple, SharedDetector] = {}
        self._loading: dict[tuple, asyncio.Future] = {}

    def key(self, model: str | None) -> tuple:
        return (model or self.cfg.get("model"), self.cfg.get("family"), self.cfg.get("provider", "cpu"),
                self.cfg.get("threads"))

    async def get(self, model: str | None = None) -> SharedDetector:
        """Raises ModelError (one line naming the model and the reason) when it cannot load."""
        key = self.key(model)
        if key in self._loaded:
            return self._loaded[key]
        if key not in self._loading:
            loop = asyncio.get_running_loop()
            self._loading[key] = loop.run_in_executor(None, self._load, key)
        try:
            shared = await asyncio.shield(self._loading[key])
        finally:
            if key in self._loading and self._loading[key].done():
                del self._loading[key]  # a failure is retried by the next call
        self._loaded[key] = shared
        return shared

    @staticmethod
    def _load(key: tuple) -> SharedDetector:
        model, family, provider, threads = key
        return SharedDetector(load_detector(model, family=family, provider=provider, threads=threads),
                              threading.Lock())


def percentile(values: deque | list, q: float) -> float:
    return round(float(np.percentile(np.asarray(values, np.float64), q)), 1) if len(values) else 0.0


class CameraFeed:
    """What publishers see of a camera (docs/architecture.md, pipeline contract)."""

    def __init__(self, name: str, model: str = "", provider: str = "") -> None:
        self.name = name
        self.seq = 0
        self._latest: Anonymized | None = None
        self._changed = asyncio.Event()
        self.model = model
        self.provider = provider
        self.width = 0
        self.height = 0
        self.faces = 0
        self.masks_held = 0
        self.privacy_degraded = False
        self.fail_closed_frames = 0
        self.dropped_base = 0  # frames dropped by the pipeline itself (e.g. before the detector was ready)
        self.source: Source | None = None
        self.online_after_s = 5.0
        self.last_frame_at: float | None = None  # monotonic arrival of the newest source frame
        self.detect_ms: deque[float] = deque(maxlen=200)
        self.latency_ms: deque[float] = deque(maxlen=200)  # source capture -> published
        self._published_at: deque[float] = deque(maxlen=64)

    @property
    def latest_jpeg(self) -> bytes | None:
        return None if self._latest is None else self._latest.jpeg

    def _publish(self, out: Anonymized, captured: float | None = None) -> None:
        """The single way into latest_jpeg."""
        if not isinstance(out, Anonymized):
            raise TypeError("only an Anonymized frame may be published")
        now = time.monotonic()
        self._latest = out
        self.seq += 1
        self._published_at.append(now)
        if captured is not None:
            self.latency_ms.append((now - captured) * 1000)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_frame(self, after_seq: int, timeout: float) -> int:
        """Wait for an output frame newer than after_seq; return the new seq (after_seq on timeout)."""
        deadline = time.monotonic() + timeout
        while self.seq <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                return after_seq
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return after_seq
        return self.seq

    def fps(self) -> float:
        stamps = self._published_at
        if len(stamps) < 2 or time.monotonic() - stamps[-1] > 5.0:
            return 0.0
        return round((len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6), 2)

    def status(self) -> dict:
        age = None if self.last_frame_at is None else round(time.monotonic() - self.last_frame_at, 2)
        dropped = self.dropped_base + (self.source.dropped if self.source else 0)
        return {
            "name": self.name,
            "online": age is not None and age < self.online_after_s,
            "privacy_degraded": self.privacy_degraded,
            "faces": self.faces,
            "fps": self.fps(),
            "detect_ms_p50": percentile(self.detect_ms, 50),
            "detect_ms_p95": percentile(self.detect_ms, 95),
            "dropped_frames": dropped,
            "fail_closed_frames": self.fail_closed_frames,
            "masks_held": self.masks_held,
            "model": self.model,
            "provider": self.provider,
            "width": self.width,
            "height": self.height,
            "last_frame_age_s": age,
        }


class CameraPipeline:
    """Runs one camera: its source thread, its detect thread, and the fail-closed guard on the event loop."""

    def __init__(self, cam: dict, detectors: Detectors, mqtt_cfg: dict | None = None,
                 source: Source | None = None) -> None:
        self.cam = cam
        self.name = cam["name"]
        self.detectors = detectors
        self.source = source or open_source(self.name, cam["url"], cam["detect_fps"], mqtt_cfg)
        self.feed = CameraFeed(self.name, model=cam.get("model") or detectors.cfg.get("model", ""))
        self.feed.source = self.source
        self.feed.online_after_s = max(5.0, 3.0 / cam["detect_fps"])
        self.style = MaskStyle(cam["style"], cam["shape"], cam["margin"])
        self.hold = Hold(seconds=cam["hold_seconds"])
        self.deadline = cam["deadline_ms"] / 1000
        self.detect_every = cam["detect_every"]
        passes = [Pass(1.0, max_side=cam["detect_size"]), Pass(1.0, min_side=640)]
        if cam["tile"]:
            passes.append(Pass(1.0, tile=cam["tile"]))
        self.plan = DetectPlan(tuple(passes), tiles_per_call=1)
        self.threshold = detectors.cfg.get("threshold")
        self.shared: SharedDetector | None = None
        self.scanner: Scanner | None = None
        # One thread per camera for detection: a stalled detector holds only this camera's thread.
        self._detect_thread = ThreadPoolExecutor(1, thread_name_prefix=f"detect-{self.name}")
        self._stalled: Future | None = None  # a detection still running past its deadline
        self._last_good: Anonymized | None = None
        self._safe: Anonymized | None = None  # cached privacy-hold frame for the current failure
        self._arrived = asyncio.Event()
        self._taken = 0
        self._load_error: str | None = None
        self.load_retry = LOAD_RETRY_S

    # -- lifecycle --
    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def notify() -> None:  # called from the source thread
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody waits any more
                loop.call_soon_threadsafe(self._arrived.set)

        self.source.mailbox.notify = notify
        self.source.start()
        load = asyncio.create_task(self._load())
        try:
            while True:
                try:
                    await asyncio.wait_for(self._arrived.wait(), 1.0)
                except TimeoutError:
                    continue
                self._arrived.clear()
                frame = self.source.mailbox.take()
                if frame is not None:
                    await self._process(frame)
        finally:
            load.cancel()

    async def stop(self) -> None:
        await asyncio.to_thread(self.source.stop)
        self._detect_thread.shutdown(wait=False, cancel_futures=True)

    async def _load(self) -> None:
        """Load (or reuse) the detector; on failure fail closed and retry with backoff."""
        delay = self.load_retry[0]
        while self.scanner is None:
            try:
                shared = await self.detectors.get(self.cam.get("model"))
            except Exception as err:  # ModelError, or whatever else a provider throws: fail closed, retry
                if self._load_error is None:
                    log.error("%s: detector unavailable, output held as privacy frames (%s); retrying",
                              self.name, one_line(err))
                self._load_error = one_line(err)
                self._fail_closed(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.load_retry[1])
                continue
            self.shared = shared
            self.feed.model = shared.detector.manifest.name
            self.feed.provider = shared.detector.provider
            self.scanner = Scanner(shared.detector, self.plan, self.threshold)
            if self._load_error:
                log.info("%s: detector %s loaded, privacy hold lifted", self.name, self.feed.model)
            self._load_error = None

    # -- per frame --
    async def _process(self, frame: Frame) -> None:
        feed = self.feed
        feed.last_frame_at = frame.captured
        feed.height, feed.width = frame.image.shape[:2]
        if self.scanner is None:
            if self._load_error is None:  # still starting: publish nothing
                feed.dropped_base += 1
            else:
                self._fail_closed(frame)
            return
        if self._stalled is not None:
            if not self._stalled.done():
                self._fail_closed(frame)  # the last detection has not returned: still no trustworthy boxes
                return
            self._stalled = None
        self._taken += 1
        try:
            if (self._taken - 1) % self.detect_every == 0 or feed.privacy_degraded:
                boxes = await self._detect(frame)
                if boxes is None:
                    return  # failed closed
            else:
                boxes = self.hold.boxes_at(frame.captured)
                feed.masks_held = len(boxes)
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, anonymize, frame.image, boxes, self.style)
        except Exception as err:  # a masker/encoder failure must not let anything else out
            log.error("%s: anonymizing failed, output held (%s)", self.name, one_line(err))
            self._fail_closed(frame)
            return
        self._last_good = out
        self._safe = None
        if feed.privacy_degraded:
            feed.privacy_degraded = False
            log.info("%s: detector answering again, privacy hold lifted", self.name)
        feed._publish(out, frame.captured)

    async def _detect(self, frame: Frame) -> np.ndarray | None:
        """Faces of this frame merged with the hold; None when it failed closed (error or deadline)."""
        assert self.scanner is not None and self.shared is not None
        loop = asyncio.get_running_loop()
        future = self._detect_thread.submit(self._scan, self.scanner, self.shared.lock, frame.image)
        try:
            faces, ms = await asyncio.wait_for(asyncio.wrap_future(future, loop=loop), self.deadline)
        except TimeoutError:
            self._stalled = future
            if not self.feed.privacy_degraded:
                log.error("%s: detector missed its %d ms deadline, output held as privacy frames", self.name,
                          round(self.deadline * 1000))
            self._fail_closed(frame)
            return None
        except Exception as err:
            if not self.feed.privacy_degraded:
                log.error("%s: detector failed, output held as privacy frames (%s)", self.name, one_line(err))
            self._fail_closed(frame)
            return None
        self.feed.detect_ms.append(ms)
        boxes = self.hold.update(faces.boxes, frame.captured)
        self.feed.faces = len(faces)
        self.feed.masks_held = len(boxes) - len(faces)
        return boxes

    @staticmethod
    def _scan(scanner: Scanner, lock: threading.Lock, image: np.ndarray) -> tuple[Faces, float]:
        with lock:
            start = time.perf_counter()
            faces = scanner.scan(image)
            return faces, (time.perf_counter() - start) * 1000

    def _fail_closed(self, frame: Frame | None) -> None:
        """Publish the privacy-hold frame in place of this frame."""
        feed = self.feed
        feed.privacy_degraded = True
        feed.fail_closed_frames += 1
        width, height = (feed.width, feed.height) if feed.width else SAFE_SIZE
        if self._safe is None or self._safe.image.shape[:2] != (height, width):
            self._safe = privacy_hold_frame(self._last_good, width, height)
        feed._publish(self._safe, None if frame is None else frame.captured)
