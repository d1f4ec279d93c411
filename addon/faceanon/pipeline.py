"""Per-camera pipeline: newest frame -> detect and hold (own thread) -> mask -> JPEG -> CameraFeed. FAIL CLOSED.

Each taken frame goes through the camera's StreamAnonymizer (faceanon.anonymizer: the whole frame now and then,
moving regions and tracked faces every frame, the hold following faces in the image) on the camera's own thread,
then the masker, then the feed (faceanon.feed), whose only way in is an `Anonymized` frame. When the detector raises,
stalls past the camera's deadline or cannot load, the camera publishes the privacy-hold frame and says
`privacy_degraded`; it recovers by itself when the detector answers again. Until the detector is ready nothing is
published. Raw frames are never logged and never leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from faceanon import controls, defaults, floors
from faceanon.anonymizer import Masks, StreamAnonymizer, models_for, people_look
from faceanon.detect.manifest import ModelError, resolve
from faceanon.detect.people import PeopleLook
from faceanon.detect.plan import DetectPlan, Pass
from faceanon.detect.plans import sized
from faceanon.detect.shared import Detectors, WaitClock
from faceanon.detect.stream import StreamPlan
from faceanon.feed import Anonymized, CameraFeed, anonymize, privacy_hold_frame, wait_event
from faceanon.hold import Hold
from faceanon.mask import MaskStyle, parse_color
from faceanon.source import Frame, Source, open_source
from faceanon.source.base import one_line

# privacy_degraded turns on at the first failure and off only after this many anonymized frames in a row, so a
# detector failing every other frame reads as degraded, not as 37 flips in 40 s.
RECOVER_FRAMES = 3

log = logging.getLogger("faceanon.pipeline")

SAFE_SIZE = (640, 360)  # the black frame's size before any frame size is known
LOAD_RETRY_S = (5.0, 60.0)  # model load retries: first delay, cap
# However long other cameras' turns on a shared model take, a frame is given up (privacy hold) after this much wall
# time (the larger of the two): its output would be too stale to show, the box is overloaded.
WAIT_CAP_S, WAIT_CAP_DEADLINES = 10.0, 4.0


def camera_preset(cam: dict) -> defaults.Preset:
    return defaults.PRESETS[cam.get("preset") or "live"]


def stream_plan(cam: dict, detector_cfg: dict) -> StreamPlan:
    """The camera's stream plan: its preset, with the camera's model, plan, regions, detect_size and tile."""
    preset = camera_preset(cam)
    model = cam.get("model") or detector_cfg.get("model") or preset.model
    stream = preset.stream(model=model, plan=cam.get("plan"), full_every=cam.get("detect_every"),
                           regions=cam.get("regions"))
    size = cam.get("detect_size")
    whole = stream.full if size is None else sized(stream.full, size)
    if cam.get("tile"):  # native tiles, one per frame round robin; the regions and the hold cover the rest
        whole = DetectPlan((*whole.passes, Pass(1.0, tile=cam["tile"])), whole.model, whole.name, tiles_per_call=1)
    return replace(stream, full=whole)


def camera_threshold(cam: dict, detector_cfg: dict) -> float | None:
    """The camera's detector threshold, else the detector section's; None: each model's own."""
    return cam["threshold"] if cam.get("threshold") is not None else detector_cfg.get("threshold")


def control_values(cam: dict, detector_cfg: dict) -> dict:
    """The camera's controls as they act: with no plan or threshold of its own, the preset's plan and the main
    model's threshold (from its manifest: known before, and without, loading the model)."""
    threshold = camera_threshold(cam, detector_cfg)
    if threshold is None:
        with contextlib.suppress(ModelError):
            threshold = resolve(stream_plan(cam, detector_cfg).full.model, detector_cfg.get("family")).threshold
    return controls.values(cam, camera_preset(cam).plan, threshold)


def mask_style(cam: dict) -> MaskStyle:
    margin = cam["margin"] if cam.get("margin") is not None else camera_preset(cam).margin
    return MaskStyle(cam["style"], cam["shape"], margin, defaults.SMALL_MARGIN, defaults.SMALL_FACE,
                     parse_color(cam.get("fill_color") or "auto"), target=cam.get("target") or "face")


class CameraPipeline:
    """Runs one camera: its source thread, its detect thread, and the fail-closed guard on the event loop."""

    def __init__(self, cam: dict, detectors: Detectors, mqtt_cfg: dict | None = None,
                 source: Source | None = None, feed: CameraFeed | None = None) -> None:
        self.cam = cam
        self.name = cam["name"]
        self.detectors = detectors
        self.source = source or open_source(self.name, cam["url"], cam["detect_fps"], mqtt_cfg)
        self.source.max_pixels = cam.get("max_image_pixels") or self.source.max_pixels
        self.plan = stream_plan(cam, detectors.cfg)
        # The feed outlives a pipeline: a camera turned off and on again gets a new pipeline, its publishers keep it.
        self.feed = feed or CameraFeed(self.name, count_hold_s=cam["count_hold_seconds"])
        self.feed.model = self.feed.model or self.plan.full.model
        self.feed.enabled = True
        self.feed.source = self.source
        self.feed.snapshot_interval = cam["snapshot_interval"]  # read by the MQTT publisher
        self.feed.online_after_s = max(5.0, 3.0 / cam["detect_fps"])
        self.feed.target_fps = cam["detect_fps"]
        self.style = mask_style(cam)
        self.preset = camera_preset(cam)
        self.deadline = cam["deadline_ms"] / 1000
        self.threshold = camera_threshold(cam, detectors.cfg)
        self.target = cam.get("target") or "face"
        self.person_model = cam.get("person_model") or defaults.PERSON_MODEL
        self.anonymizer: StreamAnonymizer | None = None
        # One thread per camera for detection: a stalled detector holds only this camera's thread, and the
        # camera's hold and motion model are only ever touched from it.
        self._detect_thread = ThreadPoolExecutor(1, thread_name_prefix=f"detect-{self.name}")
        self._clock = WaitClock()  # the deadline counts this camera's own work, not its waits for other cameras
        self._stalled: Future | None = None  # a detection still running past its deadline
        self._last_good: Anonymized | None = None
        self._safe: Anonymized | None = None  # cached privacy-hold frame for the current failure
        self._arrived = asyncio.Event()
        self._load_error: str | None = None
        self._good_run = 0  # anonymized frames in a row since the last failure (privacy_degraded's hysteresis)
        self.load_retry = LOAD_RETRY_S
        self.feed.controls = self.control_values()

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
                if not await wait_event(self._arrived, 1.0):  # cancellation-safe, unlike wait_for on 3.11
                    self._source_quiet()
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
        """Load (or reuse) every model of the camera's plan; on failure fail closed and retry with backoff."""
        delay = self.load_retry[0]
        while self.anonymizer is None:
            plan, target = self.plan, self.target
            try:
                shared = await self.detectors.get_many(self._models(plan, target))
            except Exception as err:  # ModelError, or whatever else a provider throws: fail closed, retry
                if self._load_error is None:
                    log.error("%s: detector unavailable, output held as privacy frames (%s); retrying",
                              self.name, one_line(err))
                self._load_error = one_line(err)
                self._fail_closed(None, f"the detector cannot load ({self._load_error}); retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.load_retry[1])
                continue
            if (self.plan, self.target) != (plan, target):
                continue  # a control changed the plan or target while its models loaded: load the new ones
            main = shared[self.plan.full.model]
            self.feed.model = main.manifest.name
            self.feed.provider = main.provider
            self.anonymizer = StreamAnonymizer(shared, self.plan, self.preset.hold(self.cam["hold_seconds"]),
                                               self.threshold, self._people(shared, target))
            self.feed.controls = self.control_values()
            if self._load_error:
                log.info("%s: detector %s loaded, privacy hold lifted", self.name, self.feed.model)
            self._load_error = None
            await self._check_settings()

    # -- controls (faceanon.controls) --
    def control_values(self) -> dict:
        return control_values(self.cam, self.detectors.cfg)

    async def reconfigure(self, cam: dict) -> None:
        """Take a camera config changed by a control (style, target, plan, threshold, hold time) without a gap:
        frames go on through the current detector until the new plan's models are loaded. The hold's tracks carry
        over, so a change never drops a mask."""
        old, self.cam = self.cam, cam
        self.style = mask_style(cam)
        if cam["hold_seconds"] != old["hold_seconds"] and self.anonymizer is not None:
            # The hold is only touched from the camera's detect thread, so the change queues there.
            for hold in (self.anonymizer.hold, self.anonymizer.people_hold):
                if hold is not None:
                    self._detect_thread.submit(self._set_hold, hold, self.preset.hold(cam["hold_seconds"]))
        threshold = camera_threshold(cam, self.detectors.cfg)
        target = cam.get("target") or "face"
        if cam.get("plan") != old.get("plan") or threshold != self.threshold or target != self.target:
            plan = stream_plan(cam, self.detectors.cfg)
            if self.anonymizer is None:  # still loading: the load takes the new plan
                self.plan, self.threshold, self.target = plan, threshold, target
            else:
                # raises ModelError: the old plan stays
                shared = await self.detectors.get_many(self._models(plan, target))
                anonymizer = StreamAnonymizer(shared, plan, self.anonymizer.hold, threshold,
                                              self._people(shared, target))
                self.plan, self.threshold, self.target, self.anonymizer = plan, threshold, target, anonymizer
        self.feed.controls = self.control_values()
        if self.anonymizer is not None:
            await self._check_settings()

    async def _check_settings(self) -> None:
        """The camera reads as privacy degraded while the owner runs it below the protection floor, or while its
        settings find no face in the canary image (faceanon.floors)."""
        assert self.anonymizer is not None
        reasons = [floors.override_reason(self.cam, self.detectors.cfg)]
        if not await asyncio.to_thread(floors.finds_canary, self.anonymizer.scanner.whole):
            log.error("%s: %s", self.name, floors.NO_FACE)
            reasons.append(floors.NO_FACE)
        self.feed.weakened = "; ".join(r for r in reasons if r) or None

    def _models(self, plan: StreamPlan, target: str) -> list[str]:
        return models_for(plan, target, self.person_model)

    def _people(self, shared: dict, target: str) -> PeopleLook | None:
        return people_look(shared, target, self.person_model)

    @staticmethod
    def _set_hold(hold: Hold, new: Hold) -> None:
        hold.seconds, hold.follow_seconds = new.seconds, new.follow_seconds

    # -- per frame --
    async def _process(self, frame: Frame) -> None:
        feed = self.feed
        feed.last_frame_at = frame.captured
        if frame.image.shape[:2] != (feed.height, feed.width):
            feed.height, feed.width = frame.image.shape[:2]
            self._size_changed()
        if self.anonymizer is None:
            if self._load_error is None:  # still starting: publish nothing
                feed.dropped_base += 1
            else:
                self._fail_closed(frame, f"the detector cannot load ({self._load_error}); retrying")
            return
        if self._stalled is not None:
            if not self._stalled.done():
                # the last detection has not returned: still no trustworthy boxes
                self._fail_closed(frame, f"the detector is stalled (past its {round(self.deadline * 1000)} ms "
                                         "deadline)")
                return
            self._stalled = None
        try:
            masks = await self._detect(frame)
            if masks is None:
                return  # failed closed
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, anonymize, frame.image, masks.boxes, self.style)
        except Exception as err:  # a masker/encoder failure must not let anything else out
            log.error("%s: anonymizing failed, output held (%s)", self.name, one_line(err))
            self._fail_closed(frame, f"masking failed ({one_line(err)})")
            return
        self._last_good = out
        self._safe = None
        self._good_run += 1
        if feed.privacy_degraded and self._good_run >= RECOVER_FRAMES:
            feed.privacy_degraded = False
            log.info("%s: detector answering again, privacy hold lifted", self.name)
        feed._publish(out, frame.captured)

    async def _detect(self, frame: Frame) -> Masks | None:
        """The boxes to mask in this frame (detections and held faces); None when it failed closed."""
        assert self.anonymizer is not None
        loop = asyncio.get_running_loop()
        started = self._clock.start()
        future = self._detect_thread.submit(self._masks, self.anonymizer, frame, self._clock)
        try:
            masks, ms = await self._within_deadline(asyncio.wrap_future(future, loop=loop), started)
        except TimeoutError:
            self._stalled = future
            if not self.feed.privacy_degraded:
                log.error("%s: detector missed its %d ms deadline, output held as privacy frames", self.name,
                          round(self.deadline * 1000))
            self._fail_closed(frame, f"the detector missed its {round(self.deadline * 1000)} ms deadline")
            return None
        except Exception as err:
            if not self.feed.privacy_degraded:
                log.error("%s: detector failed, output held as privacy frames (%s)", self.name, one_line(err))
            self._fail_closed(frame, f"the detector failed ({one_line(err)})")
            return None
        self.feed.detect_ms.append(ms)
        self.feed.count_faces(masks.faces)
        self.feed.count_people(masks.people)
        self.feed.note_blind(len(masks.look.faces), masks.people, frame.captured)
        self.feed.masks_held = masks.held
        return masks

    async def _within_deadline(self, waiting: asyncio.Future, started: float) -> tuple[Masks, float]:
        """The detection's answer; TimeoutError once its own work (its waits for other cameras' turns on a shared
        model excluded) passed the deadline, or its wall time passed the wait cap."""
        cap = max(WAIT_CAP_S, self.deadline * WAIT_CAP_DEADLINES)
        while True:
            own = self._clock.own_seconds(started)
            wall = time.perf_counter() - started
            if own >= self.deadline or wall >= cap:
                raise TimeoutError
            done, _ = await asyncio.wait({waiting}, timeout=min(self.deadline - own, cap - wall))
            if done:
                return waiting.result()

    @staticmethod
    def _masks(anonymizer: StreamAnonymizer, frame: Frame, clock: WaitClock | None = None) -> tuple[Masks, float]:
        WaitClock.use(clock)
        start = time.perf_counter()
        masks = anonymizer.masks(frame.image, frame.captured)
        return masks, (time.perf_counter() - start) * 1000

    def _size_changed(self) -> None:
        """Say (once per frame size) when the whole-frame look cannot see small still faces at this size."""
        feed = self.feed
        smallest = self.plan.full.smallest_face(feed.width, feed.height)
        feed.min_face_px = round(smallest) if smallest != float("inf") else None
        if feed.min_face_px is None or feed.min_face_px > defaults.SMALL_FACE_WARN_PX:
            long_side = max(feed.width, feed.height)
            log.warning("%s: at %dx%d the whole-frame look resolves still faces from %s px only (smaller ones are "
                        "found only while they move); detect_size: %d (or 0, native) sees them at every look",
                        self.name, feed.width, feed.height, feed.min_face_px or "no", long_side)

    def _source_quiet(self) -> None:
        """No frame for `online_after_s` (camera down or stalled): publish the privacy-hold frame once, so the
        streams (MJPEG, RTSP) show a stale camera as stale rather than freezing on its last live picture."""
        feed = self.feed
        if feed.last_frame_at is None or feed.latest_is_hold:
            return
        if time.monotonic() - feed.last_frame_at < feed.online_after_s:
            return
        feed._publish(privacy_hold_frame(self._last_good, feed.width, feed.height))

    def _fail_closed(self, frame: Frame | None, reason: str) -> None:
        """Publish the privacy-hold frame in place of this frame; `reason` says why, in words (the web page's)."""
        feed = self.feed
        feed.privacy_degraded = True
        feed.degraded_reason = reason
        self._good_run = 0
        feed.fail_closed_frames += 1
        width, height = (feed.width, feed.height) if feed.width else SAFE_SIZE
        if self._safe is None or self._safe.image.shape[:2] != (height, width):
            self._safe = privacy_hold_frame(self._last_good, width, height)
        feed._publish(self._safe, None if frame is None else frame.captured)
