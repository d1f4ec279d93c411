"""Models shared by every camera that uses them: loaded once, off the event loop, one inference at a time.

A session already uses every core through its intra-op threads, so concurrent runs only contend; cameras take turns
per inference, first come first served (a FIFO lock, not Python's Lock, which lets one thread win over and over), so
a camera that scans many regions cannot starve the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from faceanon.detect import FaceDetector, Faces, load_detector


class FairLock:
    """A lock handed over in arrival order."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # released straight to us: _held stays True

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
        start = time.perf_counter()
        with self.lock:
            self.waited_s += time.perf_counter() - start
            return self.detector.infer(image, floor)

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        return self.detector.network_size(width, height)


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

    async def get_many(self, models: list[str]) -> dict[str, SharedDetector]:
        """Every model of a stream plan; the first that cannot load raises."""
        return {name: await self.get(name) for name in models}

    def _load(self, key: tuple) -> SharedDetector:
        model, family, provider, threads = key
        # A user's .onnx needs its family; bundled models name theirs in their manifest.
        return SharedDetector(load_detector(model, family=family if model == self.cfg.get("model") else None,
                                            provider=provider, threads=threads))
