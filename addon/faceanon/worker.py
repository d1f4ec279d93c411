"""A member of the snapshot worker pool: jobs from the shared subscription (faceanon.source.jobs) -> detect (the
still-image plan) -> mask -> the result topic. FAIL CLOSED: a job is published only as an `Anonymized` image; when
the detector cannot load or fails, the job waits (unacknowledged, so nothing is lost) and is tried again."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import time
from dataclasses import dataclass

import numpy as np

from faceanon import defaults
from faceanon.detect.plan import Scanner
from faceanon.detect.plans import resolve_plan
from faceanon.detect.shared import Detectors
from faceanon.feed import Anonymized, anonymize
from faceanon.mask import MaskStyle
from faceanon.source.base import one_line
from faceanon.source.http import decode_jpeg
from faceanon.source.jobs import Job, JobPool

log = logging.getLogger("faceanon.worker")

RETRY_S = (1.0, 30.0)  # detector failures: first wait, cap
# A clean stop finishes the jobs already given to this worker for at most this long, then leaves the rest in its
# session for a peer (nothing is lost). 8 s (with the rest of the shutdown, 10-14 s) outlasted the 10 s a container
# gets between SIGTERM and SIGKILL.
STOP_DRAIN_S = 2.5


def default_worker_name() -> str:
    """Unique per process; a restarted worker's old session is taken over by the pool like a dead peer's."""
    host = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    return f"{host}-{os.getpid()}"[:64]


@dataclass
class JobStats:
    done: int = 0
    not_images: int = 0
    detector_failures: int = 0
    last_ms: float = 0.0


class SnapshotWorker:
    """Takes jobs from the pool one at a time and publishes each anonymized JPEG before acknowledging it."""

    def __init__(self, jobs_cfg: dict, mqtt_cfg: dict, detectors: Detectors) -> None:
        self.cfg = jobs_cfg
        self.name = jobs_cfg.get("worker") or default_worker_name()
        prefix = (mqtt_cfg.get("topic_prefix") or "faceanon").rstrip("/")
        self.pool = JobPool(mqtt_cfg, jobs_cfg["group"], self.name, prefix, jobs_cfg.get("frigate_prefix"))
        self.detectors = detectors
        self.plan = resolve_plan(jobs_cfg.get("plan") or defaults.IMAGE_PLAN,
                                 jobs_cfg.get("model") or defaults.IMAGE_MODEL)
        self.style = MaskStyle(jobs_cfg["style"], jobs_cfg["shape"], jobs_cfg["margin"], defaults.SMALL_MARGIN,
                               defaults.SMALL_FACE)
        self.scanner: Scanner | None = None
        self.stats = JobStats()
        self._failing = False  # one log line per episode of detector failures
        self._leaving = asyncio.Event()

    async def run(self) -> None:
        self.pool.start()
        delay = RETRY_S[0]
        while True:
            if self.scanner is None:
                try:
                    self.scanner = Scanner(await self.detectors.get_many(self.plan.models), self.plan)
                    delay = RETRY_S[0]
                except Exception as err:  # the jobs wait in the broker, unacknowledged, until it loads
                    log.error("jobs: detector unavailable, jobs wait (%s); retrying in %.0f s", one_line(err), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_S[1])
                    continue
            job = await self._next()
            if job is None:
                if self._leaving.is_set() and self.pool.drained():
                    return
                continue
            while not await self._do(job):  # the detector failed: the same job again, never its raw image
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_S[1])
            delay = RETRY_S[0]

    async def _next(self) -> Job | None:
        try:
            return await asyncio.to_thread(self.pool.jobs.get, True, 0.5)
        except queue.Empty:
            return None

    async def _do(self, job: Job) -> bool:
        """Anonymize and deliver one job; False when the detector failed (try again)."""
        start = time.perf_counter()
        image = decode_jpeg(job.payload)
        if image is None:
            log.warning("jobs: %s: dropped, not a usable JPEG (%d bytes: corrupt, empty or over %d MP)",
                        job.topic, len(job.payload), defaults.MAX_IMAGE_PIXELS // 1_000_000)
            self.stats.not_images += 1
            await asyncio.to_thread(job.finish, None)
            return True
        try:
            out = await asyncio.get_running_loop().run_in_executor(None, self._anonymize, image)
        except Exception as err:
            if not self._failing:
                log.error("jobs: detector failed on %s, the job waits (%s)", job.topic, one_line(err))
            self._failing = True
            self.stats.detector_failures += 1
            return False
        if self._failing:
            log.info("jobs: detector answering again")
            self._failing = False
        delivered = await asyncio.to_thread(job.finish, out.jpeg)
        self.stats.last_ms = (time.perf_counter() - start) * 1000
        if delivered:
            self.stats.done += 1
        return True

    def _anonymize(self, image: np.ndarray) -> Anonymized:
        assert self.scanner is not None
        return anonymize(image, self.scanner.scan(image).boxes, self.style)

    async def stop(self, task: asyncio.Task | None = None) -> None:
        """Leave the group, finish the jobs already given to this worker (bounded), end its session."""
        await asyncio.to_thread(self.pool.leave)
        self._leaving.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, STOP_DRAIN_S)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("jobs: stopped with jobs unfinished; they stay in the session for the pool")
                await asyncio.to_thread(self.pool.abandon)
                return
            except Exception as err:
                log.error("jobs: worker ended with an error (%s)", one_line(err))
        await asyncio.to_thread(self.pool.stop)
