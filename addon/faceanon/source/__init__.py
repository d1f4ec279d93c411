"""Frame sources, one module per kind behind one interface (`Source`): newest frame wins."""

from __future__ import annotations

from pathlib import Path

from faceanon.source.base import Frame, Mailbox, Source, SourceError, redact
from faceanon.source.file import FileSource
from faceanon.source.frigate import FrigateSource
from faceanon.source.http import HttpSource
from faceanon.source.rtsp import RtspSource


def open_source(name: str, url: str, fps: float, mqtt_cfg: dict | None = None) -> Source:
    """The source for a camera URL (not started): rtsp(s):// (go2rtc restreams too), http(s):// MJPEG or
    snapshot, frigate://<camera>[/<object>] over MQTT, or a local file (looped)."""
    lower = url.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return RtspSource(name, url, fps)
    if lower.startswith(("http://", "https://")):
        return HttpSource(name, url, fps)
    if lower.startswith("frigate://"):
        return FrigateSource(name, url, fps, mqtt_cfg)
    return FileSource(name, str(Path(url).expanduser()), fps)


__all__ = ["FileSource", "Frame", "FrigateSource", "HttpSource", "Mailbox", "RtspSource", "Source", "SourceError",
           "open_source", "redact"]
