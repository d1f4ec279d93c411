"""HTTP(S) cameras: an MJPEG stream (multipart/x-mixed-replace) or a snapshot URL that returns one JPEG a request.

Which one it is comes from the response's Content-Type, as in Frigate's and Home Assistant's generic camera.
"""

from __future__ import annotations

import time
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from faceanon.source.base import MAX_IMAGE_PIXELS, WORK_PIXELS, Source, SourceError, redact
from faceanon.source.mjpeg import MAX_PART, boundary_of, mjpeg_parts

TIMEOUT_S = 10.0


def declared_pixels(data: bytes) -> int | None:
    """Width x height a JPEG (its SOF segment) or PNG (IHDR) declares, read before decoding; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None  # lost sync: not a JPEG we can vouch for
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame: the image size
            return int.from_bytes(data[i + 5:i + 7], "big") * int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


REDUCED = ((1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
           (8, cv2.IMREAD_REDUCED_COLOR_8))


def decode_jpeg(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, work_pixels: int = WORK_PIXELS
                ) -> np.ndarray | None:
    """A camera's JPEG as BGR pixels; None (a corrupt frame) for anything undecodable, oversized or declaring
    more than `max_pixels`: an 83 KB JPEG declaring 20000x20000 would otherwise take 2.4 GB to decode. One declaring
    more than `work_pixels` is decoded at 1/2, 1/4 or 1/8 of its size, whichever first fits (the decoder does that
    at a fraction of the memory and time)."""
    if not data or len(data) > MAX_PART:
        return None
    pixels = declared_pixels(data)
    if pixels is None or pixels == 0 or pixels > max_pixels:
        return None
    flag = next((f for k, f in REDUCED if pixels / (k * k) <= work_pixels), REDUCED[-1][1])
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None


def authenticated(url: str) -> tuple[urllib.request.OpenerDirector, str]:
    """An opener that answers a camera's HTTP Basic or Digest challenge with the URL's `user:password@` (percent-
    encoded characters allowed), and the URL without them (what is requested and what errors may name)."""
    parts = urlsplit(url)
    if parts.username is None:
        return urllib.request.build_opener(), url
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit(parts._replace(netloc=netloc))
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, bare, unquote(parts.username), unquote(parts.password or ""))
    return urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords),
                                       urllib.request.HTTPBasicAuthHandler(passwords)), bare


class HttpSource(Source):
    kind = "http"

    def _open(self):
        """The camera's response; its Basic/Digest challenge is answered with the URL's credentials."""
        opener, bare = authenticated(self.url)
        return opener.open(bare, timeout=TIMEOUT_S)

    def _stream(self) -> None:
        with self._open() as resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/"):
                self.kind = "mjpeg"
                for part in mjpeg_parts(resp, boundary_of(ctype)):
                    if self.stopping.is_set():
                        return
                    if self._due():  # decode only the frames we take
                        self._offer(decode_jpeg(part, self.max_pixels, self.work_pixels))
                raise SourceError(f"{redact(self.url)} closed the MJPEG stream")
            if not ctype.lower().startswith("image/"):
                raise SourceError(f"{redact(self.url)} answered {ctype or 'no Content-Type'}, "
                                  "expected an MJPEG stream or a JPEG snapshot")
            self.kind = "snapshot"
            self._offer(decode_jpeg(resp.read(MAX_PART), self.max_pixels, self.work_pixels))
        self._poll()

    def _poll(self) -> None:
        """Snapshot URL: fetch one JPEG every 1/detect_fps seconds."""
        period = 1.0 / self.fps
        due = time.monotonic() + period
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += period
            with self._open() as resp:
                self._offer(decode_jpeg(resp.read(MAX_PART), self.max_pixels, self.work_pixels))
            due = max(due, time.monotonic())  # a slow camera sets the pace; no burst to catch up
