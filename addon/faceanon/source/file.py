"""A local video or GIF file, looped and paced at the file's own frame rate (a stand-in for a live camera)."""

from __future__ import annotations

import time

import cv2

from faceanon.source.base import Source, SourceError

DEFAULT_FPS = 10.0


class FileSource(Source):
    kind = "file"

    def _stream(self) -> None:
        while not self.stopping.is_set():
            cap = cv2.VideoCapture(self.url)
            try:
                if not cap.isOpened():
                    raise SourceError(f"cannot open {self.url}")
                fps = cap.get(cv2.CAP_PROP_FPS)
                period = 1.0 / (fps if 0 < fps <= 120 else DEFAULT_FPS)
                start = time.monotonic()
                count = 0
                while not self.stopping.is_set():
                    if not cap.grab():
                        break  # end of file: loop
                    count += 1
                    if self._due():
                        ok, image = cap.retrieve()
                        self._offer(image if ok else None)
                    # Real time: the next frame is due `period` after this one.
                    self.stopping.wait(max(0.0, start + count * period - time.monotonic()))
                if count == 0:
                    raise SourceError(f"{self.url} has no readable frame")
            finally:
                cap.release()
