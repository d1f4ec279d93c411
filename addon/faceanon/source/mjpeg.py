"""The multipart/x-mixed-replace (MJPEG over HTTP) parser: one JPEG per part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from faceanon.source.base import SourceError

MAX_PART = 20 * 1024 * 1024  # a JPEG bigger than this is not a camera frame


def boundary_of(content_type: str) -> bytes:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            value = value.strip('"')
            return value[2:].encode() if value.startswith("--") else value.encode()
    raise SourceError(f"multipart stream without a boundary ({content_type})")


def mjpeg_parts(body: BinaryIO, boundary: bytes) -> Iterator[bytes]:
    """Yield each part's payload from a multipart/x-mixed-replace body (with or without Content-Length)."""
    marker = b"--" + boundary
    buf = b""
    while True:
        start = buf.find(marker)
        while start < 0:
            chunk = body.read1(65536) if hasattr(body, "read1") else body.read(65536)
            if not chunk:
                return
            buf = buf[-len(marker):] + chunk
            start = buf.find(marker)
            if len(buf) > MAX_PART:
                raise SourceError("no multipart boundary in the stream")
        buf = buf[start + len(marker):]
        while b"\r\n\r\n" not in buf:
            chunk = body.read1(65536) if hasattr(body, "read1") else body.read(65536)
            if not chunk:
                return
            buf += chunk
            if len(buf) > 16384 and b"\r\n\r\n" not in buf:
                raise SourceError("multipart part headers are too long")
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        if length is not None:
            if length > MAX_PART:
                raise SourceError(f"a part of {length} bytes is too large")
            while len(buf) < length:
                chunk = body.read(length - len(buf))
                if not chunk:
                    return
                buf += chunk
            yield buf[:length]
            buf = buf[length:]
        else:
            while (end := buf.find(marker)) < 0:
                chunk = body.read1(65536) if hasattr(body, "read1") else body.read(65536)
                if not chunk:
                    return
                buf += chunk
                if len(buf) > MAX_PART:
                    raise SourceError("a multipart part is too large")
            yield buf[:end].rstrip(b"\r\n")
            buf = buf[end:]
