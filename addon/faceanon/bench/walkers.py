"""Walkers clips: real labelled faces carried over real footage, with the exact box of every face in every frame.

Each walker takes one labelled face (at least 20 px in its photo) with its surroundings (a square twice the face's
longer side, edges faded), walks a straight line across the frame, and grows or shrinks between 10 and 90 px of
face height (approaching or receding). Some are motion-blurred or out of focus, some vanish behind something for a
few frames (and are then not listed). The clip is H.264 (crf 12) through ffmpeg; the ground truth is JSON:
`{"width", "height", "fps", "frames": [{"index", "faces": [{"track", "box": [x, y, w, h]}]}], "tracks": {...}}`,
the format of the team's walkers.py, whose clips `faceanon bench privacy --clips` takes as well.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

MIN_SOURCE_FACE = 20  # px: smaller labelled faces are too soft to carry
FACE_RANGE = (10.0, 90.0)  # px of face height along a walk
EFFECTS = ("none", "none", "motion", "defocus")


@dataclass(frozen=True)
class Face:
    patch: np.ndarray  # BGR square around the face
    box: tuple[float, float, float, float]  # the face inside the patch, as shares of the patch side: x, y, w, h


@dataclass
class Walk:
    face_index: int
    start: int
    length: int
    height: tuple[float, float]  # face height at the start and at the end
    path: tuple[tuple[float, float], tuple[float, float]]  # centre at the start and at the end, px
    effect: str
    hidden: tuple[int, int] | None  # frames (relative to the start) behind something


def read_faces(annotations: Path, root: Path, rng: random.Random, limit: int = 400) -> list[Face]:
    """Faces of at least MIN_SOURCE_FACE px whose surrounding square lies inside their photo, in random order."""
    images = json.loads(annotations.read_text())["images"]
    labelled = [(e["file"], box) for e in images for box in e["faces"] if min(box[2], box[3]) >= MIN_SOURCE_FACE]
    rng.shuffle(labelled)
    cache: dict[str, np.ndarray | None] = {}
    faces: list[Face] = []
    for file, (x, y, w, h) in labelled:
        if len(faces) >= limit:
            break
        if file not in cache:
            cache[file] = cv2.imread(str(root / file), cv2.IMREAD_COLOR)
        image = cache[file]
        if image is None:
            continue
        side = 2 * max(w, h)
        x0, y0 = int(x + w / 2 - side / 2), int(y + h / 2 - side / 2)
        x1, y1 = int(x + w / 2 + side / 2), int(y + h / 2 + side / 2)
        if x0 < 0 or y0 < 0 or x1 > image.shape[1] or y1 > image.shape[0]:
            continue
        patch = image[y0:y1, x0:x1].copy()
        ph, pw = patch.shape[:2]
        faces.append(Face(patch, ((x - x0) / pw, (y - y0) / ph, w / pw, h / ph)))
    return faces


def plan_walks(count: int, frames: int, width: int, height: int, faces: int, rng: random.Random) -> list[Walk]:
    walks = []
    for k in range(count):
        start = rng.randrange(0, max(1, frames - 60))
        room = frames - start
        length = rng.randrange(60, min(room, 240) + 1) if room >= 60 else room
        hidden = None
        if length > 40 and rng.random() < 0.3:
            begin = rng.randrange(10, length - 20)
            hidden = (begin, begin + rng.randrange(4, 12))
        walks.append(Walk(
            face_index=k % faces, start=start, length=length,
            height=(rng.uniform(*FACE_RANGE), rng.uniform(*FACE_RANGE)),
            path=((rng.uniform(0.05, 0.95) * width, rng.uniform(0.15, 0.9) * height),
                  (rng.uniform(0.05, 0.95) * width, rng.uniform(0.15, 0.9) * height)),
            effect=rng.choice(EFFECTS), hidden=hidden))
    return walks


def fade(side: int) -> np.ndarray:
    """Alpha for a side x side patch: opaque inside, fading to nothing over its outer quarter."""
    r = np.abs(np.linspace(-1, 1, side))
    d = np.maximum(r[None, :], r[:, None])
    return np.clip((1.0 - d) / 0.25, 0, 1)[:, :, None].astype(np.float32)


def render_patch(face: Face, side: int, effect: str) -> np.ndarray:
    interp = cv2.INTER_AREA if side < face.patch.shape[0] else cv2.INTER_CUBIC
    patch = cv2.resize(face.patch, (side, side), interpolation=interp)
    if effect == "motion":
        k = max(3, side // 8) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        patch = cv2.filter2D(patch, -1, kernel)
    elif effect == "defocus":
        patch = cv2.GaussianBlur(patch, (0, 0), max(0.8, side / 40))
    return patch


def background_frames(clip: Path, frames: int, width: int, height: int) -> list[np.ndarray]:
    """`frames` frames of the clip at width x height, looped when it is shorter."""
    out: list[np.ndarray] = []
    while len(out) < frames:
        cap = cv2.VideoCapture(str(clip))
        before = len(out)
        while len(out) < frames:
            ok, frame = cap.read()
            if not ok:
                break
            out.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR))
        cap.release()
        if len(out) == before:
            raise ValueError(f"{clip}: no frame could be decoded")
    return out


def make_clip(annotations: Path, root: Path, background: Path, out: Path, *, size: tuple[int, int] = (1280, 720),
              frames: int = 300, walkers: int = 16, seed: int = 1, fps: float = 10.0) -> Path:
    """Write OUT.mp4 and OUT.json (the ground truth beside it); return the JSON's path."""
    if not shutil.which("ffmpeg"):
        raise RuntimeError("ffmpeg is needed to write the walkers clip (apt-get install ffmpeg)")
    rng = random.Random(seed)
    width, height = size
    faces = read_faces(annotations, root, rng)
    if not faces:
        raise ValueError(f"{annotations}: no face of at least {MIN_SOURCE_FACE} px to carry")
    walks = plan_walks(walkers, frames, width, height, len(faces), rng)
    scene = background_frames(background, frames, width, height)
    out.parent.mkdir(parents=True, exist_ok=True)
    encoder = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-crf", "12", "-preset", "medium",
         "-pix_fmt", "yuv420p", str(out)], stdin=subprocess.PIPE)
    truth = []
    try:
        for i in range(frames):
            canvas = scene[i].astype(np.float32)
            listed = []
            for k, walk in enumerate(walks):
                j = i - walk.start
                if not 0 <= j < walk.length:
                    continue
                u = j / max(1, walk.length - 1)
                face = faces[walk.face_index]
                face_h = walk.height[0] + (walk.height[1] - walk.height[0]) * u
                side = max(6, round(face_h / face.box[3]))
                cx = walk.path[0][0] + (walk.path[1][0] - walk.path[0][0]) * u
                cy = walk.path[0][1] + (walk.path[1][1] - walk.path[0][1]) * u
                x0, y0 = round(cx - side / 2), round(cy - side / 2)
                if x0 < 0 or y0 < 0 or x0 + side > width or y0 + side > height:
                    continue
                if walk.hidden and walk.hidden[0] <= j < walk.hidden[1]:
                    continue  # behind something: neither drawn nor listed
                alpha = fade(side)
                region = canvas[y0:y0 + side, x0:x0 + side]
                region[:] = region * (1 - alpha) + render_patch(face, side, walk.effect).astype(np.float32) * alpha
                bx, by, bw, bh = face.box
                listed.append({"track": k, "box": [round(x0 + bx * side, 1), round(y0 + by * side, 1),
                                                   round(bw * side, 1), round(bh * side, 1)]})
            assert encoder.stdin is not None
            encoder.stdin.write(np.clip(canvas, 0, 255).astype(np.uint8).tobytes())
            truth.append({"index": i, "faces": listed})
    finally:
        if encoder.stdin:
            encoder.stdin.close()
        code = encoder.wait(timeout=600)
    if code != 0:
        raise RuntimeError(f"ffmpeg could not write {out} (exit {code})")
    meta = {str(k): {key: value for key, value in asdict(w).items()} for k, w in enumerate(walks)}
    gt = out.with_suffix(".json")
    gt.write_text(json.dumps({"width": width, "height": height, "fps": fps, "frames": truth, "tracks": meta,
                              "background": background.name, "seed": seed}))
    return gt
