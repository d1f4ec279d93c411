"""What leaves a camera: `Anonymized` frames only, through the `CameraFeed` publishers read (docs/architecture.md).

An `Anonymized` is made only by `anonymize()` (the masker ran over every box the hold returned) or
`privacy_hold_frame()` (the last anonymized frame, darkened and stamped, or a black frame); the feed's single way in,
`_publish`, takes nothing else. Raw frames never get here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import cv2
import numpy as np

from faceanon.defaults import FACE_COUNT_HOLD_S
from faceanon.mask import MaskStyle, apply_masks, privacy_hold_image
from faceanon.source import Source

JPEG_QUALITY = 85
START_GRACE_S = 30.0  # a camera without a first frame reads as starting this long (model load, first connect)
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


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout`. asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a
    cancellation that lands as the event fires, and a loop around it would then never stop."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
        return bool(done)
    finally:
        waiter.cancel()


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
    image = privacy_hold_image(None if last is None else last.image, width, height)
    return Anonymized(_TOKEN, image, encode_jpeg(image), safe=True)


class Debounced:
    """A reading that changes only once a new value has held for `hold_s`: a count flapping 2 <-> 3 on a passing
    false positive stays put, so every output (MQTT, HTTP, the integration's sensors, the recorder) sees one figure."""

    def __init__(self, hold_s: float, value: int = 0) -> None:
        self.hold_s = hold_s
        self.value = value
        self._candidate: int | None = None
        self._since = 0.0
        self._started = False

    def update(self, reading: int, now: float) -> int:
        if not self._started or self.hold_s <= 0:
            self._started, self.value = True, reading
        elif reading == self.value:
            self._candidate = None
        else:
            if reading != self._candidate:
                self._candidate, self._since = reading, now
            if now - self._since >= self.hold_s:
                self.value, self._candidate = reading, None
        return self.value


BEHIND_SHARE = 0.8  # of detect_fps published, under which a camera whose frames pile up is behind
BEHIND_WINDOW_S = 10.0  # a frame superseded within this long counts


def percentile(values: deque | list, q: float) -> float:
    return round(float(np.percentile(np.asarray(values, np.float64), q)), 1) if len(values) else 0.0


class CameraFeed:
    """What publishers see of a camera (docs/architecture.md, pipeline contract)."""

    def __init__(self, name: str, model: str = "", provider: str = "",
                 count_hold_s: float = FACE_COUNT_HOLD_S) -> None:
        self.name = name
        self.enabled = True  # False: the camera is off (config or control): it reads and publishes nothing
        self.setup_error: str | None = None  # why the camera could not even be set up (it then runs no pipeline)
        self.controls: dict = {}  # the camera's controls as they act now (faceanon.controls.values)
        self.configured_plan: str | None = None  # the plan its config file gives it (a control may have changed it)
        self.seq = 0
        self._latest: Anonymized | None = None
        self._changed = asyncio.Event()
        self.model = model
        self.provider = provider
        self.width = 0
        self.height = 0
        self.faces_seen = 0  # faces in view in the newest frame (the detector's last whole-frame look)
        self._faces = Debounced(count_hold_s)
        self._people: Debounced | None = None  # only while a person detector runs
        self.masks_held = 0
        self.privacy_degraded = False
        self.degraded_reason: str | None = None  # why, in words, while privacy_degraded
        # Why the camera runs below the protection floor (the owner's override in the config file, or settings that
        # find no face in the canary image): its privacy reads as degraded for as long as that holds.
        self.weakened: str | None = None
        # Since when the person detector has seen people in every look while no look found a face (None: not so).
        self.blind_since: float | None = None
        self.started_at = time.monotonic()  # a camera with no frame yet is "starting" for START_GRACE_S, then offline
        self.fail_closed_frames = 0
        self.dropped_base = 0  # frames dropped by the pipeline itself (e.g. before the detector was ready)
        self.source: Source | None = None
        self.snapshot_interval: float | None = None  # the camera's, for the MQTT snapshots (None: the default)
        self.rtsp_port: int | None = None  # the built-in RTSP restream's port (rtsp://<host>:<port>/<name>)
        # The smallest still face the whole-frame look resolves at this camera's size (None before a frame);
        # smaller faces are found only while they move (the region looks) or by round-robin tiles.
        self.min_face_px: int | None = None
        self.online_after_s = 5.0
        self.last_frame_at: float | None = None  # monotonic arrival of the newest source frame
        self.detect_ms: deque[float] = deque(maxlen=200)
        self.latency_ms: deque[float] = deque(maxlen=200)  # source capture -> published
        self._published_at: deque[float] = deque(maxlen=64)
        self.target_fps: float | None = None  # the camera's detect_fps (set by its pipeline)
        self._dropped_seen, self._dropped_at = 0, None  # the source's superseded frames, and when that last grew

    @property
    def faces(self) -> int:
        """The face count outputs publish: the newest frame's, once it has held for `count_hold_s`."""
        return self._faces.value

    @property
    def people(self) -> int | None:
        """People in view (targets head and person: the person detector's count, held like faces); None without."""
        return None if self._people is None else self._people.value

    def count_people(self, seen: int | None, now: float | None = None) -> None:
        if seen is None:
            self._people = None
            return
        if self._people is None:
            self._people = Debounced(self._faces.hold_s)
        self._people.update(seen, time.monotonic() if now is None else now)

    def note_blind(self, faces_found: int, people: int | None, now: float) -> None:
        """People in view with no face found, look after look: past defaults.BLIND_WARN_S the detection health check
        says so (/api/health's warnings), for settings or a camera angle that find no face where people are."""
        if faces_found or not people:
            self.blind_since = None
        elif self.blind_since is None:
            self.blind_since = now

    def blind_for(self, now: float | None = None) -> float:
        if self.blind_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.blind_since

    def count_faces(self, seen: int, now: float | None = None) -> None:
        self.faces_seen = seen
        self._faces.update(seen, time.monotonic() if now is None else now)

    @property
    def latest_jpeg(self) -> bytes | None:
        return None if self._latest is None else self._latest.jpeg

    @property
    def latest_image(self) -> np.ndarray | None:
        """The newest output frame's pixels (masked or privacy-hold; read-only for publishers), for encoders."""
        return None if self._latest is None else self._latest.image

    @property
    def latest_is_hold(self) -> bool:
        return self._latest is not None and self._latest.safe

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

    def switch_off(self) -> None:
        """The camera is turned off: its newest frame is withdrawn (publishers then have nothing to send) and its
        figures reset, so nothing reads as live."""
        self.enabled = False
        self._latest = None
        self.last_frame_at = None
        self.privacy_degraded = False
        self.faces_seen = self.masks_held = 0
        self._faces = Debounced(self._faces.hold_s)
        self._people = None
        self.detect_ms.clear()
        self.latency_ms.clear()
        self._published_at.clear()

    async def wait_frame(self, after_seq: int, timeout: float) -> int:
        """Wait for an output frame newer than after_seq; return the new seq (after_seq on timeout)."""
        deadline = time.monotonic() + timeout
        while self.seq <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                return after_seq
            if not await wait_event(self._changed, left):
                return after_seq
        return self.seq

    def fps(self) -> float:
        stamps = self._published_at
        if len(stamps) < 2 or time.monotonic() - stamps[-1] > 5.0:
            return 0.0
        return round((len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6), 2)

    def behind(self, now: float) -> str | None:
        """Why the camera falls behind its detect_fps, or None: frames arrive faster than it anonymizes them (the
        source's newest frame replaces one not yet taken) and it publishes under BEHIND_SHARE of its rate. A camera
        that merely sends fewer frames is not behind. Masks are never skipped; they are held longer between looks."""
        dropped = getattr(self.source, "dropped", 0)
        if dropped != self._dropped_seen:
            self._dropped_seen, self._dropped_at = dropped, now
        if not self.target_fps or self._dropped_at is None or now - self._dropped_at > BEHIND_WINDOW_S:
            return None
        fps = self.fps()
        if len(self._published_at) < 10 or fps >= BEHIND_SHARE * self.target_fps:
            return None
        return (f"behind: {fps:.1f} of {self.target_fps:g} fps, the box is busy (every frame is still masked; masks "
                "are held longer between looks)")

    def state(self, now: float | None = None) -> tuple[str, str | None, float | None]:
        """(state, reason in words, seconds until the source retries): live, degraded, offline, starting or off."""
        now = time.monotonic() if now is None else now
        if self.setup_error:
            return "offline", f"cannot set up the camera ({self.setup_error})", None
        if not self.enabled:
            return "off", "turned off: it reads and publishes nothing", None
        if self.privacy_degraded:
            return "degraded", self.degraded_reason, None
        if self.weakened:
            return "degraded", self.weakened, None
        if self.last_frame_at is not None and now - self.last_frame_at < self.online_after_s:
            if self._latest is None:  # frames arrive, nothing is published yet
                return "starting", "loading the detector", None
            return "live", self.behind(now), None
        source = self.source
        error = getattr(source, "last_error", None)
        retry_at = getattr(source, "retry_at", None)
        retry = None if retry_at is None or getattr(source, "connected", False) else max(0.0, retry_at - now)
        if self.last_frame_at is None and now - self.started_at < START_GRACE_S and not error:
            return "starting", "waiting for the camera's first frame", None
        if error and not getattr(source, "connected", False):
            return "offline", f"{getattr(source, 'kind', 'camera')} stream lost or unreachable ({error})", retry
        age = None if self.last_frame_at is None else now - self.last_frame_at
        return "offline", ("no frame from the camera yet" if age is None else
                           f"no frame from the camera for {age:.0f} s"), retry

    def status(self) -> dict:
        now = time.monotonic()
        age = None if self.last_frame_at is None else round(now - self.last_frame_at, 2)
        dropped = self.dropped_base + (self.source.dropped if self.source else 0)
        state, reason, retry = self.state(now)
        return {
            "name": self.name,
            "enabled": self.enabled,
            "state": state,
            "reason": reason,
            "retry_in_s": None if retry is None else round(retry, 1),
            "online": self.enabled and age is not None and age < self.online_after_s,
            "privacy_degraded": self.privacy_degraded or self.weakened is not None,
            "faces": self.faces,
            "people": self.people,
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
            "rtsp_port": self.rtsp_port,
            "min_face_px": self.min_face_px,
            "people_without_face_s": round(self.blind_for(now), 1),
            "controls": dict(self.controls),
            "configured_plan": self.configured_plan,
            "behind": state == "live" and reason is not None,
        }


