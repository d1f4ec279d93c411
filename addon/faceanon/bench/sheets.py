"""Contact sheets: evenly spaced frames of a video in a grid, each labelled with its frame number, so a person can
look at what an anonymized clip shows (`faceanon bench privacy --sheets DIR`, tools/review/contact_sheet.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def sheet(video: Path, frames: int = 12, columns: int = 4, width: int = 480, start: int = 0) -> np.ndarray:
    """`frames` frames from `start` to the last, `columns` to a row, each `width` px wide. ValueError when the video
    cannot be read."""
    capture = cv2.VideoCapture(str(video))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            raise ValueError(f"{video}: no frames")
        tiles = []
        for index in np.linspace(min(start, count - 1), count - 1, frames).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, image = capture.read()
            if not ok:
                raise ValueError(f"{video}: frame {index} cannot be read")
            tile = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])),
                              interpolation=cv2.INTER_AREA)
            for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
                cv2.putText(tile, f"#{index}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, thick, cv2.LINE_AA)
            tiles.append(tile)
    finally:
        capture.release()
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + columns] + [blank] * (columns - len(tiles[i:i + columns])))
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def write_sheet(video: Path, out: Path, **kw: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet(video, **kw), [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise ValueError(f"{out}: cannot write the contact sheet")
    return out
