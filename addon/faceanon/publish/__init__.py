"""Publishers: the last stage. They read cameras only through the `CameraFeed` contract (see docs/architecture.md)
and so only ever see `latest_jpeg`, which the pipeline sets from a masked or a safe frame, never a raw one."""

from __future__ import annotations

import json
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


MAX_JSON_DEPTH = 32  # no request body of the API nests deeper; json.loads would recurse until Python's limit


async def read_json(request: Any) -> Any:
    """A request's JSON body; ValueError for anything that is not one, including JSON nested so deep that parsing
    it would exhaust the recursion limit (a 500 before), which is refused before it is parsed."""
    text = await request.text()
    depth = deepest = 0
    for char in text:  # a cheap bound on the nesting; strings holding brackets only over-count, which is safe
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except RecursionError as err:
        raise ValueError("JSON nested too deep") from err


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
