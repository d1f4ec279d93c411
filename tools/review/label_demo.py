"""Reference face boxes for a short clip with clear faces (the bundled demo clip): CenterFace (fp32, the `max` plan)
and RetinaFace (native and 2x) on every frame; a CenterFace face of score >= 0.4 is kept where RetinaFace agrees
(IoU >= 0.3) or its own score is >= 0.7, and linked into tracks by overlap. Writes CLIP.json in the walkers format
(`faceanon bench privacy --clips CLIP`) and an overlay sheet to check every box by eye before committing it.

    python tools/review/label_demo.py addon/faceanon/samples/face-demographics-walking.gif --sheet /tmp/labels.png

Labels made this way favour what these detectors see; they are for the demo clip's figures (how far masks reach,
whether they merge) and a privacy check a clone can run, not for judging detectors against each other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from faceanon.bench.stages import read_frames
from faceanon.detect import load_detector
from faceanon.detect.base import box_iou
from faceanon.detect.plan import Scanner
from faceanon.detect.plans import resolve_plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--fps", type=float, default=12.5, help="the clip's frame rate, written to the labels")
    parser.add_argument("--sheet", type=Path, help="an overlay of every frame's boxes, to check by eye")
    args = parser.parse_args()
    frames = read_frames(args.clip)
    centerface = Scanner({"centerface": load_detector("centerface")}, resolve_plan("max"))
    retinaface = Scanner({"retinaface": load_detector("retinaface")}, resolve_plan("1+2x", "retinaface"))
    out: dict = {"width": frames[0].shape[1], "height": frames[0].shape[0], "fps": args.fps, "frames": []}
    last: dict[int, np.ndarray] = {}
    tiles = []
    for index, frame in enumerate(frames):
        a, b = centerface.scan(frame), retinaface.scan(frame)
        faces = []
        for k in np.flatnonzero(a.scores >= 0.4):
            agreed = len(b) and box_iou(a.boxes[k:k + 1], b.boxes).max() >= 0.3
            if not (agreed or a.scores[k] >= 0.7):
                continue
            box = a.boxes[k]
            overlaps = {t: float(box_iou(box[None], prev[None])[0, 0]) for t, prev in last.items()}
            track = max(overlaps, key=lambda t: overlaps[t]) if overlaps and max(overlaps.values()) >= 0.2 \
                else len(last)
            last[track] = box
            x1, y1, x2, y2 = (float(v) for v in box)
            faces.append({"track": track, "box": [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)]})
        out["frames"].append({"index": index, "faces": faces})
        tile = frame.copy()
        for face in faces:
            x, y, w, h = face["box"]
            cv2.rectangle(tile, (int(x), int(y)), (int(x + w), int(y + h)), (0, 255, 0), 1)
            cv2.putText(tile, str(face["track"]), (int(x), int(y) - 2), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 255, 0), 1)
        tiles.append(tile)
    target = args.clip.with_suffix(".json")
    target.write_text(json.dumps(out) + "\n")
    print(f"{target}: {len(frames)} frames, {len(last)} tracks, {sum(len(f['faces']) for f in out['frames'])} faces")
    if args.sheet:
        blank = np.zeros_like(tiles[0])
        rows = [np.hstack(tiles[i:i + 5] + [blank] * (5 - len(tiles[i:i + 5]))) for i in range(0, len(tiles), 5)]
        cv2.imwrite(str(args.sheet), np.vstack(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
