"""Detection and privacy metrics against ground-truth face boxes. Pure functions on arrays; `faceanon eval` runs the
detector and the masker and feeds them here.

Rules (documented in `faceanon eval --help` too):
- Boxes are [x, y, w, h] in pixels. A face's size is the SHORTER side of its ground-truth box, in buckets
  <10, 10-24, 25-49, 50-99, >=100 px.
- AP@0.5: VOC all-point interpolated average precision. Per image, detections are taken best score first; each takes
  the unmatched ground-truth face with the highest IoU >= 0.5 (a true positive). A detection that only overlaps an
  ignored box (IoU >= 0.5 with it, or half its own area inside an `ignore` region) is dropped, neither true nor false.
  Per size bucket (as COCO does with areas), faces outside the bucket become ignored boxes and an unmatched
  detection whose own size is outside the bucket is dropped.
- Recall at a threshold: the share of faces matched (IoU >= 0.5) by detections scoring at least the threshold.
- Privacy: on the masked frame (the array that gets encoded), a pixel is "masked" when it differs from the original
  in any channel (blur, pixelate) or was changed to the fill colour (fill; pixels that already held the fill colour
  are left out of the count). A face counts as masked when at least `masked_share` (default 60 %) of its
  ground-truth box pixels are masked. `unmasked` is the share of faces of at
  least 10 px (shorter side) that are not. With blur/pixelate a pixel that keeps its value by chance counts as
  unmasked, so the figure errs on the side of reporting a leak.
- Over-masking: `overmask_share` is the share of masked pixels that lie outside every ground-truth (and ignore) box;
  `background_masked` is the share of the pixels outside every such box that were masked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceanon.detect import box_iou

BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<10", 0, 10), ("10-24", 10, 25), ("25-49", 25, 50), ("50-99", 50, 100), (">=100", 100, math.inf))
ALL = ("all", 0, math.inf)


def as_boxes(boxes: Sequence | np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, 2:] -= b[:, :2]
    return b


def short_side(boxes: np.ndarray) -> np.ndarray:
    return np.minimum(as_boxes(boxes)[:, 2], as_boxes(boxes)[:, 3])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) x,y,w,h boxes."""
    return box_iou(xywh_to_xyxy(a), xywh_to_xyxy(b)).astype(np.float64)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, 2:] += b[:, :2]
    return b


def inside_share(det: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(N,M): the share of each detection's area that lies inside each region."""
    det, regions = as_boxes(det), as_boxes(regions)
    if len(det) == 0 or len(regions) == 0:
        return np.zeros((len(det), len(regions)))
    lt = np.maximum(det[:, None, :2], regions[None, :, :2])
    rb = np.minimum(det[:, None, :2] + det[:, None, 2:], regions[None, :, :2] + regions[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    return inter / np.maximum((det[:, 2] * det[:, 3])[:, None], 1e-9)


@dataclass(frozen=True)
class ImageRecord:
    """One image's ground truth and detections (all x,y,w,h pixels)."""

    gt: np.ndarray  # (N,4)
    ignore: np.ndarray  # (K,4) regions that neither reward nor punish
    det: np.ndarray  # (D,4)
    scores: np.ndarray  # (D,)


def match(record: ImageRecord, iou_thr: float = 0.5, size: tuple[float, float] = (0, math.inf),
          threshold: float = -math.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Match one image's detections (score >= threshold) to its faces of the given size range.

    Returns (scores, is_tp, is_dropped) for those detections, and the number of faces in range."""
    gt, det = as_boxes(record.gt), as_boxes(record.det)
    scores = np.asarray(record.scores, np.float64).reshape(-1)
    keep = scores >= threshold
    det, scores = det[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    det, scores = det[order], scores[order]
    lo, hi = size
    gt_size = short_side(gt)
    counted = (gt_size >= lo) & (gt_size < hi)
    ious = iou(det, gt)
    in_ignore = inside_share(det, record.ignore).max(axis=1, initial=0.0) >= 0.5 if len(det) else np.zeros(0, bool)
    det_size = short_side(det)
    taken = np.zeros(len(gt), bool)
    is_tp = np.zeros(len(det), bool)
    dropped = np.zeros(len(det), bool)
    for i in range(len(det)):
        cand = np.where(counted & ~taken & (ious[i] >= iou_thr), ious[i], -1.0)
        if len(cand) and cand.max() >= 0:
            j = int(cand.argmax())
            taken[j] = True
            is_tp[i] = True
        else:
            # Not a face of this size range: drop it when it is an ignored face, in an ignore region, or itself
            # outside the range; otherwise it is a false positive.
            near_other = bool(((~counted) & (ious[i] >= iou_thr)).any()) if len(gt) else False
            dropped[i] = near_other or bool(in_ignore[i]) or not (lo <= det_size[i] < hi)
    return scores, is_tp, dropped, int(counted.sum())


def voc_ap(is_tp: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP of detections already sorted best score first."""
    if n_gt == 0:
        return math.nan
    tp = np.cumsum(is_tp.astype(np.float64))
    fp = np.cumsum((~is_tp).astype(np.float64))
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def average_precision(records: Sequence[ImageRecord], iou_thr: float = 0.5,
                      size: tuple[float, float] = (0, math.inf)) -> tuple[float, int]:
    """(AP, number of faces) over all images, detections ranked by score across images."""
    all_scores, all_tp, n_gt = [], [], 0
    for rec in records:
        scores, is_tp, dropped, n = match(rec, iou_thr, size)
        all_scores.append(scores[~dropped])
        all_tp.append(is_tp[~dropped])
        n_gt += n
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    return voc_ap(tp[order], n_gt), n_gt


def recall_at(records: Sequence[ImageRecord], threshold: float, iou_thr: float = 0.5,
              size: tuple[float, float] = (0, math.inf)) -> tuple[float, int]:
    """(recall, number of faces) with detections scoring at least `threshold`."""
    hit = total = 0
    for rec in records:
        _, is_tp, _, n = match(rec, iou_thr, size, threshold)
        hit += int(is_tp.sum())
        total += n
    return (hit / total if total else math.nan), total


def masked_pixels(original: np.ndarray, masked: np.ndarray, fill_color: tuple[int, int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(masked, known): HxW bools. blur/pixelate: masked = changed by the masker, known = None (every pixel counts).
    fill: masked = changed to the fill colour; pixels that already held the fill colour cannot tell whether the mask
    covered them, so `known` leaves them out of the shares."""
    if original.shape != masked.shape:
        raise ValueError(f"image shapes differ: {original.shape} vs {masked.shape}")
    if fill_color is None:
        return np.any(original != masked, axis=-1), None
    colour = np.asarray(fill_color, masked.dtype)
    already = np.all(original == colour, axis=-1)
    return np.all(masked == colour, axis=-1) & ~already, ~already


def box_slices(box: np.ndarray, width: int, height: int) -> tuple[slice, slice] | None:
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0, math.floor(x)), max(0, math.floor(y))
    x2, y2 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    if x2 <= x1 or y2 <= y1:
        return None
    return slice(y1, y2), slice(x1, x2)


def face_masked_shares(changed: np.ndarray, gt: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """For each ground-truth box, the share of its (known) pixels that were masked; 1.0 when none is known (a box
    that was all fill colour already shows nothing to hide)."""
    h, w = changed.shape
    out = np.zeros(len(as_boxes(gt)))
    for i, box in enumerate(as_boxes(gt)):
        sl = box_slices(box, w, h)
        if sl is None:
            continue
        if known is None:
            out[i] = changed[sl].mean()
        else:
            n = int(known[sl].sum())
            out[i] = changed[sl].sum() / n if n else 1.0
    return out


@dataclass
class PrivacyTally:
    """Running totals of the privacy and over-masking figures across images."""

    faces: int = 0  # faces of at least min_face px
    unmasked: int = 0
    masked_px: int = 0
    masked_outside_px: int = 0
    outside_px: int = 0

    def add(self, changed: np.ndarray, gt: np.ndarray, ignore: np.ndarray, min_face: float = 10,
            masked_share: float = 0.6, known: np.ndarray | None = None) -> list[int]:
        """Add one image; return the indices of its faces (>= min_face) that were left unmasked."""
        gt = as_boxes(gt)
        shares = face_masked_shares(changed, gt, known)
        big = short_side(gt) >= min_face
        missed = np.flatnonzero(big & (shares < masked_share))
        self.faces += int(big.sum())
        self.unmasked += len(missed)
        h, w = changed.shape
        faces = np.zeros_like(changed)
        for box in np.concatenate([gt, as_boxes(ignore)]):
            sl = box_slices(box, w, h)
            if sl:
                faces[sl] = True
        self.masked_px += int(changed.sum())
        self.masked_outside_px += int((changed & ~faces).sum())
        self.outside_px += int((~faces).sum())
        return [int(i) for i in missed]

    @property
    def unmasked_share(self) -> float:
        return self.unmasked / self.faces if self.faces else math.nan

    @property
    def overmask_share(self) -> float:
        return self.masked_outside_px / self.masked_px if self.masked_px else 0.0

    @property
    def background_masked(self) -> float:
        return self.masked_outside_px / self.outside_px if self.outside_px else 0.0


def detection_report(records: Sequence[ImageRecord], threshold: float, iou_thr: float = 0.5) -> dict:
    """AP and recall over all faces and per size bucket."""
    out: dict = {"iou": iou_thr, "threshold": threshold, "buckets": {}}
    for name, lo, hi in (ALL, *BUCKETS):
        ap, n = average_precision(records, iou_thr, (lo, hi))
        rec, _ = recall_at(records, threshold, iou_thr, (lo, hi))
        out["buckets"][name] = {"faces": n, "ap": ap, "recall": rec}
    return out
