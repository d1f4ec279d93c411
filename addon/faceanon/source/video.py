"""A video file read frame by frame (PyAV, FFmpeg's demuxers and decoders), with its audio packets on request.

`faceanon video` reads files with it; the live service's looped file cameras use OpenCV (source/file.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from faceanon.media import MediaError


@dataclass
class Item:
    """One thing read from the file, in file order: a decoded frame (BGR) or an audio packet to copy."""

    frame: np.ndarray | None = None
    audio: av.Packet | None = None


class VideoReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise MediaError(path, "no such file" if not path.exists() else "not a regular file")
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError) as err:
            raise MediaError(path, f"cannot open as video ({_reason(err)})") from err
        if not self.container.streams.video:
            self.container.close()
            raise MediaError(path, "has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        ctx = self.stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 1000 else 25.0
        self.frame_count = self.stream.frames or None  # an estimate; the container may be wrong
        if not self.width or not self.height:
            self.container.close()
            raise MediaError(path, "no frame size in the video stream (corrupt or empty video)")

    def items(self, with_audio: bool = False) -> Iterator[Item]:
        """Frames (and, with_audio, audio packets) in file order. MediaError when the file breaks off badly."""
        streams = [self.stream] + ([self.audio] if with_audio and self.audio is not None else [])
        decoded = 0
        try:
            for packet in self.container.demux(*streams):
                if packet.stream is self.stream:
                    for frame in packet.decode():
                        decoded += 1
                        yield Item(frame=frame.to_ndarray(format="bgr24"))
                elif packet.dts is not None:  # the demuxer's empty flush packet carries no audio
                    yield Item(audio=packet)
        except av.FFmpegError as err:
            if decoded == 0:
                raise MediaError(self.path, f"no frame could be decoded ({_reason(err)})") from err
            # A truncated tail: what was decoded stands; the caller compares with the announced count.
        if decoded == 0:
            raise MediaError(self.path, "no frame could be decoded (corrupt or empty video)")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
