"""Models shared by every camera that uses them: loaded once, off the event loop, inferences taken in turn.

Cameras take turns per inference, first come first served (a FIFO semaphore, not Python's Lock, which lets one
thread win over and over), so a camera that scans many regions cannot starve the others. One camera gets every core
inside each inference (intra-op threads); several cameras get one core per inference and as many inferences at once
as there are cores: two single-threaded runs on two cores do more work than one run on two threads (the second
intra-op thread adds about half).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from faceanon.detect import FaceDetector, Faces, load_detector
from faceanon.detect.remote import is_remote
from faceanon.detect.runtime import default_threads


class FairLock:
    """A semaphore of `slots` handed over in arrival order (slots=1: a lock)."""

    def __init__(self, slots: int = 1) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._free = max(1, slots)

    def acquire(self) -> None:
        with self._guard:
            if self._free > 0:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # a slot was handed straight to us

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WaitClock:
    """What one camera's detect thread spent waiting for other cameras' turns on a shared model. A camera's deadline
    counts only its own work, so a slow or huge camera sharing the model cannot push the others into privacy hold
    (it misses its own deadline instead)."""

    _current = threading.local()  # the clock of the camera whose detect thread this is

    def __init__(self) -> None:
        self.waited = 0.0
        self.waiting_since: float | None = None

    def start(self) -> float:
        self.waited, self.waiting_since = 0.0, None
        return time.perf_counter()

    def own_seconds(self, started: float) -> float:
        """Seconds since `started` not spent waiting for another camera (a wait in progress included)."""
        now = time.perf_counter()
        since = self.waiting_since
        return now - started - self.waited - (now - since if since is not None else 0.0)

    @classmethod
    def use(cls, clock: WaitClock | None) -> None:
        cls._current.clock = clock

    @classmethod
    def current(cls) -> WaitClock | None:
        return getattr(cls._current, "clock", None)


class SharedDetector(FaceDetector):
    """A loaded detector behind a FairLock; behaves as the detector itself."""

    family = "shared"

    def __init__(self, detector: FaceDetector, lock: FairLock | None = None) -> None:  # no super(): a proxy
        self.detector = detector
        self.lock = lock or FairLock()
        self.manifest = detector.manifest
        self.session = detector.session
        self.family = detector.family  # type: ignore[misc]
        self.waited_s = 0.0  # time spent waiting for other cameras' inferences

    def check_io(self, outputs: set[str], inputs: list[Any]) -> None:  # the detector checked itself
        return None

    def infer(self, image: np.ndarray, floor: float) -> Faces:
        clock = WaitClock.current()
        start = time.perf_counter()
        if clock is not None:
            clock.waiting_since = start
        try:
            self.lock.acquire()
        finally:
            waited = time.perf_counter() - start
            if clock is not None:
                clock.waited += waited
                clock.waiting_since = None
        try:
            self.waited_s += waited
            return self.detector.infer(image, floor)
        finally:
            self.lock.release()

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        return self.detector.network_size(width, height)


class Detectors:
    """Loads each model once, off the event loop, and hands the same SharedDetector to every camera. With
    `cameras` > 1 (and no `threads` in the config) each inference gets one thread and the cores run them side by
    side. A remote detector (a KServe v2 server) takes one request per camera at a time."""

    def __init__(self, detector_cfg: dict, cameras: int = 1) -> None:
        self.cfg = detector_cfg
        cores = default_threads()
        if is_remote(detector_cfg.get("provider")):  # the server schedules (and batches): every camera may ask
            self.threads, self.slots = None, max(1, cameras)
        elif detector_cfg.get("threads") or cameras < 2 or cores < 2:
            self.threads, self.slots = detector_cfg.get("threads"), 1
        else:
            self.threads, self.slots = 1, cores
        self._loaded: dict[tuple, SharedDetector] = {}
        self._loading: dict[tuple, asyncio.Future] = {}

    def key(self, model: str | None) -> tuple:
        return (model or self.cfg.get("model"), self.cfg.get("family"), self.cfg.get("provider", "cpu"),
                self.threads)

    async def get(self, model: str | None = None) -> SharedDetector:
        """Raises ModelError (one line naming the model and the reason) when it cannot load."""
        key = self.key(model)
        if key in self._loaded:
            return self._loaded[key]
        if key not in self._loading:
            loop = asyncio.get_running_loop()
            loading = loop.run_in_executor(None, self._load, key)
            # A camera that stops while its model loads leaves nobody to read a failure: read it here, so asyncio
            # does not log "exception was never retrieved" with a traceback later.
            loading.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._loading[key] = loading
        try:
            shared = await asyncio.shield(self._loading[key])
        finally:
            if key in self._loading and self._loading[key].done():
                del self._loading[key]  # a failure is retried by the next call
        self._loaded[key] = shared
        return shared

    async def get_many(self, models: list[str]) -> dict[str, SharedDetector]:
        """Every model of a stream plan; the first that cannot load raises."""
        return {name: await self.get(name) for name in models}

    def _load(self, key: tuple) -> SharedDetector:
        model, family, provider, threads = key
        # A user's .onnx needs its family; bundled models name theirs in their manifest.
        return SharedDetector(load_detector(model, family=family if model == self.cfg.get("model") else None,
                                            provider=provider, threads=threads), FairLock(self.slots))
