"""The one place that holds the default settings of the CLI and the live service, each chosen by measurement under
the team's leak rule (commands and figures in models/README.md)."""

from __future__ import annotations

from faceanon.mask import MaskStyle

# Still images: CenterFace at half, native and double size (`max`). On faces-dev it leaves 0.75 % of faces unmasked
# where deface's settings leave 6.98 %, changing 9.6 % of the background where deface changes 13.1 %, and it held at
# 0.75x and 2x the image size (models/README.md).
IMAGE_MODEL = "centerface"
IMAGE_PLAN = "max"
# Video files and live cameras: CenterFace int8 on frames up to 1280 px (video) and a 640 px pass (live).
VIDEO_MODEL = "centerface-int8"
VIDEO_PLAN = "1<=1280"
STREAM_MODEL = "centerface-int8"
STREAM_PLAN = "1<=640"
STREAM_DETECT_SIZE = 640

_MASK = MaskStyle()
DEFAULT_STYLE = _MASK.style  # fill: the only style that changes every pixel of the face (models/README.md)
DEFAULT_SHAPE = _MASK.shape
DEFAULT_MARGIN = _MASK.margin  # 0.5; deface's mask scale 1.3 is 0.6
SMALL_MARGIN = _MASK.small_margin
SMALL_FACE = _MASK.small_face
HOLD_SECONDS = 1.0  # video: a mask outlives its last detection by this long
DETECT_EVERY = 1  # video: run the detector on every N-th frame
JPEG_QUALITY = 95
WEBP_QUALITY = 95
EVAL_FLOOR = 0.05  # detector score floor for the AP curve
