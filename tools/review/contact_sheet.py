"""A contact sheet: N evenly spaced frames of a video in a grid, each labelled with its frame number, for checking
by eye what an anonymized clip shows (issue reviews, model cards).

    python tools/review/contact_sheet.py out.mp4 -o sheet.png --frames 12 --columns 4 --width 480
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def sheet(video: Path, frames: int, columns: int, width: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
        raise SystemExit(f"{video}: no frames")
    tiles = []
    for index in np.linspace(0, count - 1, frames).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, image = capture.read()
        if not ok:
            raise SystemExit(f"{video}: frame {index} cannot be read")
        tile = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"#{index}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, f"#{index}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + columns] + [blank] * (columns - len(tiles[i:i + columns])))
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--width", type=int, default=480)
    args = parser.parse_args()
    cv2.imwrite(str(args.out), sheet(args.video, args.frames, args.columns, args.width))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
