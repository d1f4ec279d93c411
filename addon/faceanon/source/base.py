"""The source interface: a reader thread per camera that keeps only the newest frame.

A source runs off the event loop in its own thread. It takes frames at the camera's detect_fps and puts each into
a 1-slot mailbox: a frame the pipeline has not collected yet is replaced by the newer one (and counted as dropped),
so a slow detector never builds a backlog. A lost stream reconnects with capped exponential backoff; a corrupt
frame is skipped and counted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger("faceanon.source")


# Largest image a source may take (declared size, checked before decoding): 8K is 33 MP; a JPEG declaring more is a
# corrupt frame, so a hostile one cannot exhaust the box. A camera's `max_image_pixels` changes it.
MAX_IMAGE_PIXELS = 40_000_000
# Largest frame a camera is anonymized and published at: 4K is 8.3 MP. A bigger frame is scaled down to fit as it is
# read (a JPEG is decoded at 1/2, 1/4 or 1/8 of its size directly): the pipeline keeps several frames alive (the
# mailbox, the one masked, the last published, the stream encoder's), and one legal 38.5 MP camera took the service
# from 715 MB to 2.3 GB of RAM. The outputs then come at that size.
WORK_PIXELS = 16_000_000


class SourceError(RuntimeError):
    """The stream cannot be opened or was lost; the message says why (never contains frame data)."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, RAW: must only ever reach the detector and the masker
    captured: float  # time.monotonic() when the source read it
    index: int  # counts frames taken from this source


class Cadence:
    """Which frames a camera running at `fps` takes: the first, then one per period, keeping the beat without a
    burst after a stall. The live sources and `faceanon video --preset live` (a file replayed as a camera) share it,
    so a replay drops exactly the frames the service would."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next_take = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_take

    def take(self, now: float) -> bool:
        """Whether the frame seen at `now` is taken (and if so, when the next one is due)."""
        if not self.due(now):
            return False
        self.next_take = max(self.next_take + self.period, now + self.period * 0.5)
        return True


class Mailbox:
    """One slot; the newest frame wins. Thread-safe; `notify` is called (from the source thread) on every put."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self.dropped = 0  # frames replaced before anyone took them
        self.notify: Callable[[], None] | None = None

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
        if self.notify is not None:
            self.notify()

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


class Source(ABC):
    """Reads one camera in a thread. Subclasses implement `_stream()`: open the stream and read until
    `self.stopping` is set, handing every decoded frame to `self._offer()` (a frame that fails to decode to
    `self._corrupt()`), and raise SourceError/OSError when the stream is lost."""

    kind = "source"
    backoff_start = 1.0
    backoff_cap = 30.0

    def __init__(self, name: str, url: str, fps: float) -> None:
        self.name = name
        self.url = url
        self.fps = fps
        self.mailbox = Mailbox()
        self.stopping = threading.Event()
        self.corrupt_frames = 0
        self.reconnects = 0
        self.connected = False
        self.last_error: str | None = None  # the last failure, redacted (the web page shows it)
        self.retry_at: float | None = None  # monotonic time of the next reconnect after a failure
        self._taken = 0
        self.cadence = Cadence(fps)
        self.max_pixels = MAX_IMAGE_PIXELS  # JPEGs declaring more are refused before decoding
        self.work_pixels = WORK_PIXELS  # bigger frames are scaled down to fit as they are read
        self._scaled_logged = False
        self._backoff = self.backoff_start
        self._thread: threading.Thread | None = None

    # -- lifecycle (called from the event loop's thread) --
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return  # already reading (a restarted pipeline keeps its source)
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def dropped(self) -> int:
        return self.mailbox.dropped

    # -- for subclasses --
    @abstractmethod
    def _stream(self) -> None: ...

    def _due(self, now: float | None = None) -> bool:
        """Is it time to take the next frame (at detect_fps)? Lets a source skip decoding frames it will not use."""
        return self.cadence.due(time.monotonic() if now is None else now)

    def _offer(self, image: np.ndarray | None) -> bool:
        """Hand a decoded frame over if one is due; returns whether it was taken. None counts as corrupt."""
        if image is None or image.size == 0 or image.ndim != 3:
            self._corrupt()
            return False
        now = time.monotonic()
        if not self.cadence.take(now):
            return False
        image = self._fitted(image)
        self._taken += 1
        self._healthy()
        self.mailbox.put(Frame(image, now, self._taken))
        return True

    def _fitted(self, image: np.ndarray) -> np.ndarray:
        """The frame scaled down (by area) to at most `work_pixels`, said once per camera."""
        h, w = image.shape[:2]
        if h * w <= self.work_pixels:
            return image
        scale = (self.work_pixels / (h * w)) ** 0.5
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        if not self._scaled_logged:
            self._scaled_logged = True
            log.warning("%s: frames of %dx%d (%.1f MP) are anonymized and published at %dx%d: at most %.0f MP a "
                        "frame are kept (memory)", self.name, w, h, w * h / 1e6, *size, self.work_pixels / 1e6)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def _corrupt(self) -> None:
        self.corrupt_frames += 1
        if self.corrupt_frames in (1, 10, 100) or self.corrupt_frames % 1000 == 0:
            log.warning("%s: skipped a corrupt frame (%d so far)", self.name, self.corrupt_frames)

    def _healthy(self) -> None:
        if not self.connected:
            self.connected = True
            if self.reconnects:
                log.info("%s: %s stream is back", self.name, self.kind)
            self._backoff = self.backoff_start

    # -- the thread --
    def _run(self) -> None:
        self._backoff = self.backoff_start
        while not self.stopping.is_set():
            try:
                self._stream()
                if self.stopping.is_set():
                    break
                raise SourceError("the stream ended")
            except Exception as err:  # any failure of a transport: log one line, back off, reconnect
                if self.stopping.is_set():
                    break
                self.connected = False
                self.last_error = one_line(err)
                self.reconnects += 1
                self.retry_at = time.monotonic() + self._backoff
                log.warning("%s: %s stream lost or unreachable (%s); reconnecting in %.0fs", self.name, self.kind,
                            self.last_error, self._backoff)
                self.stopping.wait(self._backoff)
                self._backoff = min(self._backoff * 2, self.backoff_cap)
        self.connected = False


def one_line(err: BaseException) -> str:
    """An error as one log line, with any URL in it redacted (library errors quote the URL they failed on)."""
    text = str(err).strip().splitlines()
    return scrub(text[0][:300]) if text else type(err).__name__


def shown(value: object, limit: int = 80) -> str:
    """A value as it goes into a log line: its repr (strings quoted) cut to `limit` characters, scrubbed (a control
    value or a refusal must not carry megabytes, or a secret, into the log)."""
    text = repr(value) if isinstance(value, str) else str(value)
    text = text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
    return scrub(text)


# Query parameters whose values are credentials (cameras put them there: snap.jpg?usr=admin&pwd=..., Foscam's
# loginuse=admin&loginpas=..., pw=, psw=), in a URL or in a bare request target (`GET /x?token=...`, as aiohttp logs
# it): any key holding one of these words. Over-redacting a harmless key (keyframe=) is the safe error.
SECRET_QUERY = re.compile(r"([?&][\w.-]*?(?:pas|pw|psw|token|auth|key|secret|sig|cred)[\w.-]*=)[^&\s]*", re.I)
BEARER = re.compile(r"(Bearer\s+)\S+", re.I)
URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact(url: str) -> str:
    """A URL fit for logs, errors and APIs: the password of its userinfo (which may hold any character, even
    '@') and the values of credential-like query parameters become ***.
    rtsp://admin:p@ss@host/x?password=y -> rtsp://admin:***@host/x?password=***"""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # Userinfo ends at the last '@' when a user:... comes before it (a password may hold '/', '?' or '@';
    # over-redacting a path with an '@' in it is the safe error).
    at = rest.rfind("@")
    colon = rest.find(":")
    if not (0 <= colon < at and "/" not in rest[:colon]):
        query_at = rest.find("?") if "?" in rest else len(rest)
        at = rest.rfind("@", 0, query_at)
    ends = [i for i in (rest.find("/", at + 1), rest.find("?", at + 1)) if i >= 0]
    path_at = min(ends, default=len(rest))
    authority, tail = rest[:path_at], rest[path_at:]
    if "@" in authority:
        creds, host = authority.rsplit("@", 1)
        authority = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else f"{creds}@{host}"
    tail = SECRET_QUERY.sub(r"\1***", tail)
    return f"{scheme}://{authority}{tail}"


def scrub(text: str) -> str:
    """Every URL in `text` redacted, and credentials in bare request targets (`GET /x?token=...`) and bearer
    headers too: for log lines written by libraries (aiohttp quotes the request line of a request it refuses)."""
    text = URL.sub(lambda m: redact(m.group(0)), text)
    return BEARER.sub(r"\1***", SECRET_QUERY.sub(r"\1***", text))


class ScrubSecrets(logging.Filter):
    """A logging filter: the record's message scrubbed, its traceback reduced to one scrubbed line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({one_line(record.exc_info[1])})"
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = scrub(message), None
        return True
