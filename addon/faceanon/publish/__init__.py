"""Publishers: the last stage. They read cameras only through the `CameraFeed` contract (see docs/architecture.md)
and so only ever see `latest_jpeg`, which the pipeline sets from a masked or a safe frame, never a raw one."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from faceanon.config import CAMERA_NAME

DEFAULT_SNAPSHOT_INTERVAL = 10.0


@runtime_checkable
class CameraFeed(Protocol):
    """What a publisher needs from one camera (`faceanon.pipeline.CameraFeed` implements it)."""

    name: str
    seq: int
    latest_jpeg: bytes | None
    latest_image: Any  # numpy array of the same frame, or None

    def status(self) -> dict[str, Any]: ...

    async def wait_frame(self, after_seq: int, timeout: float) -> int: ...


def json_default(value: Any) -> Any:
    """json.dumps fallback: numpy scalars as Python numbers, anything else as text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def json_error(status: int, message: str, **headers: str) -> Any:
    """The HTTP routes' error answer: {"error": message} with the status (an aiohttp Response)."""
    from aiohttp import web  # here, not at the top: the MQTT publisher does not need aiohttp

    return web.json_response({"error": message}, status=status, headers=headers or None)


def valid_camera_name(name: str) -> bool:
    return CAMERA_NAME.match(name) is not None


def snapshot_interval(feed: CameraFeed) -> float:
    """The camera's `snapshot_interval` in seconds (the pipeline sets it on its feed), else the default."""
    value = getattr(feed, "snapshot_interval", None)
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_SNAPSHOT_INTERVAL
    except (TypeError, ValueError):
        return DEFAULT_SNAPSHOT_INTERVAL


__all__ = ["CAMERA_NAME", "CameraFeed", "json_default", "json_error", "snapshot_interval", "valid_camera_name"]
