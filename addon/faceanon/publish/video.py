"""Anonymized frames to a video file: H.264 (libx264 through PyAV) that browsers and Home Assistant's media browser
play, with the input's audio copied on request. Written to a temp file beside the target and renamed by `commit()`,
so a failed or interrupted run never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from faceanon.media import MediaError, file_mode

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
# Audio codecs each container takes as they are; anything else is re-encoded to AAC (MP4/MOV) or copied (Matroska).
COPYABLE_AUDIO = {"mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
                  "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
                  "avi": {"mp3", "ac3", "pcm_s16le"}}
CRF = "18"  # visually lossless for most footage; the masks are solid anyway
PRESET = "veryfast"


def container_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise MediaError(path, f"unknown video type {suffix or '(no extension)'}: use "
                               f"{', '.join(sorted(CONTAINERS))}")
    return CONTAINERS[suffix]


class VideoWriter:
    """H.264 frames (and copied audio) into `path`; `commit()` renames the temp file into place, `abort()` drops it."""

    def __init__(self, path: Path, fps: float, width: int, height: int,
                 audio: av.audio.stream.AudioStream | None = None, crf: str = CRF, preset: str = PRESET) -> None:
        self.path = path
        self.format = container_of(path)
        if path.is_dir():
            raise MediaError(path, "is a folder; give a file name such as out.mp4")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".part{path.suffix}")
            os.close(fd)
        except OSError as err:
            raise MediaError(path, f"cannot write ({err.strerror or err})") from err
        self.tmp = Path(tmp)
        try:
            self.out = av.open(str(self.tmp), mode="w", format=self.format)
            self.video = self.out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            self.video.width, self.video.height = width, height
            # 4:2:0 plays everywhere but needs even sizes; an odd-sized input keeps its size in 4:4:4.
            self.video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            self.video.options = {"crf": crf, "preset": preset}
        except (av.FFmpegError, ValueError) as err:
            self.tmp.unlink(missing_ok=True)
            raise MediaError(path, f"cannot write H.264 video ({err})") from err
        self.audio_in, self.audio_out, self.audio_encoder = audio, None, None
        if audio is not None:
            self._add_audio(audio)
        self.frames = 0

    def _add_audio(self, source: av.audio.stream.AudioStream) -> None:
        codec = source.codec_context.name
        if self.format == "matroska" or codec in COPYABLE_AUDIO.get(self.format, set()):
            self.audio_out = self.out.add_stream_from_template(source)
        else:  # e.g. PCM into MP4: re-encode, since the container cannot hold it as it is
            self.audio_out = self.out.add_stream("aac", rate=source.codec_context.sample_rate or 48000)
            self.audio_encoder = source

    def write(self, frame: np.ndarray) -> None:
        picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
        picture.pts = self.frames
        for packet in self.video.encode(picture):
            self.out.mux(packet)
        self.frames += 1

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio_out is None:
            return
        if self.audio_encoder is None:
            packet.stream = self.audio_out
            self.out.mux(packet)
            return
        for decoded in packet.decode():
            decoded.pts = None
            for out_packet in self.audio_out.encode(decoded):
                self.out.mux(out_packet)

    def commit(self) -> None:
        try:
            for packet in self.video.encode(None):
                self.out.mux(packet)
            if self.audio_encoder is not None and self.audio_out is not None:
                for packet in self.audio_out.encode(None):
                    self.out.mux(packet)
            self.out.close()
        except av.FFmpegError as err:
            self.abort()
            raise MediaError(self.path, f"the video writer failed ({err})") from err
        if self.frames == 0 or not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            self.abort()
            raise MediaError(self.path, "the video writer produced no output")
        try:
            os.chmod(self.tmp, file_mode())
            os.replace(self.tmp, self.path)
        except OSError as err:
            self.abort()
            raise MediaError(self.path, f"cannot write ({err.strerror or err})") from err

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.out.close()
        self.tmp.unlink(missing_ok=True)
