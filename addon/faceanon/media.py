"""Image files for the CLI: find the inputs, read them, and write outputs atomically (a temp file in the target
folder, renamed on success), so that a failed or interrupted run never leaves a half-written file that looks like
a finished, anonymized one. Video files: source/video.py (reading) and publish/video.py (writing)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceanon import defaults

# What OpenCV reads and writes as still images. GIF is read (first frame) but OpenCV cannot write it.
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff"})


class MediaError(Exception):
    """A file cannot be read or written. `path` is the file, the message is the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(reason)
        self.path = Path(path)
        self.reason = reason

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ImageJob:
    source: Path  # the input file
    rel: Path  # where it goes below the output folder (and the name `detect` reports)


@dataclass
class Inputs:
    jobs: list[ImageJob] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # files in a walked folder that are not images
    errors: list[MediaError] = field(default_factory=list)  # arguments that cannot be used at all


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def find_images(args: Iterable[str | Path], exclude: Path | None = None) -> Inputs:
    """Expand file and folder arguments. A folder is walked recursively and its relative paths kept; a file keeps
    its name. Files under `exclude` (the output folder, when it sits inside an input folder) are left out."""
    found = Inputs()
    seen: dict[Path, Path] = {}
    excluded = exclude.resolve() if exclude else None

    def add(source: Path, rel: Path) -> None:
        key = Path(str(rel).lower()) if os.name == "nt" else rel
        if key in seen:
            found.errors.append(MediaError(source, f"has the same output name {rel} as {seen[key]}; not processed"))
            return
        seen[key] = source
        found.jobs.append(ImageJob(source, rel))

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not (excluded and p.resolve().is_relative_to(excluded)))
            images = [p for p in files if is_image(p)]
            if not images:
                what = f"{len(files)} files but none is an image" if files else "it is empty"
                found.errors.append(MediaError(path, f"no images in this folder ({what}; image types: "
                                                     f"{', '.join(sorted(IMAGE_EXTS))})"))
            for p in files:
                if is_image(p):
                    add(p, p.relative_to(path))
                else:
                    found.skipped.append(p)
        elif path.is_file():
            if is_image(path):
                add(path, Path(path.name))
            else:
                found.errors.append(MediaError(path, f"not an image type ({path.suffix or 'no extension'}; "
                                                     f"image types: {', '.join(sorted(IMAGE_EXTS))})"))
        elif path.exists():
            found.errors.append(MediaError(path, "not a regular file or folder"))
        else:
            found.errors.append(MediaError(path, "no such file or folder"))
    return found


def read_image(path: Path) -> np.ndarray:
    """An 8-bit BGR image (EXIF orientation applied), or MediaError with the reason."""
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as err:
        raise MediaError(path, f"cannot read ({err.strerror or err})") from err
    if data.size == 0:
        raise MediaError(path, "empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(path, "cannot decode image (corrupt, truncated or not really an image)")
    return image


def encode_params(suffix: str) -> list[int]:
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg", ".jpe"):
        return [cv2.IMWRITE_JPEG_QUALITY, defaults.JPEG_QUALITY]
    if suffix == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, defaults.WEBP_QUALITY]
    return []


def ensure_writable_dir(folder: Path) -> None:
    """Create `folder` (and parents) and prove a file can be made in it, or raise MediaError with the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".faceanon-probe-"):
            pass
    except OSError as err:
        raise MediaError(folder, f"output folder is not writable ({err.strerror or err})") from err


def file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp makes 0600, which surprises users)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temp file beside `path`, then rename it over `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise MediaError(path, f"cannot write ({err.strerror or err})") from err
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as err:  # Ctrl-C included: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise MediaError(path, f"cannot write ({err.strerror or err})") from err
        raise


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode in the format the file name says (JPEG/WebP at high quality) and write atomically."""
    try:
        ok, buf = cv2.imencode(path.suffix, image, encode_params(path.suffix))
    except cv2.error as err:
        raise MediaError(path, f"cannot encode as {path.suffix} ({str(err).strip().splitlines()[-1]})") from err
    if not ok:
        raise MediaError(path, f"cannot encode as {path.suffix}")
    write_atomic(path, buf.tobytes())
