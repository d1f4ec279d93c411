"""A contact sheet: N evenly spaced frames of a video in a grid, each labelled with its frame number, for checking
by eye what an anonymized clip shows (issue reviews, model cards). The drawing is faceanon.bench.sheets, which
`faceanon bench privacy --sheets DIR` uses too.

    python tools/review/contact_sheet.py out.mp4 -o sheet.png --frames 12 --columns 4 --width 480
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceanon.bench.sheets import write_sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--start", type=int, default=0, help="first frame")
    args = parser.parse_args()
    try:
        print(write_sheet(args.video, args.out, frames=args.frames, columns=args.columns, width=args.width,
                          start=args.start))
    except ValueError as err:
        print(f"contact_sheet: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
