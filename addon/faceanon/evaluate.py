"""Detection metrics against ground-truth face boxes: AP and recall per face size. Pure functions on arrays;
`faceanon eval` runs the detector and feeds them here. The privacy figure (the team's leak rule) is in
`faceanon.leak`.

Rules (documented in `faceanon eval --help` too):
- Boxes are [x, y, w, h] in pixels. A face's size is the SHORTER side of its ground-truth box, in the leak rule's
  buckets <10, 10-24, 24-64, >=64 px.
- AP@0.5: VOC all-point interpolated average precision. Per image, detections are taken best score first; each takes
  the unmatched ground-truth face with the highest IoU >= 0.5 (a true positive). A detection that only overlaps an
  ignored box (IoU >= 0.5 with it, or half its own area inside an `ignore` region) is dropped, neither true nor false.
  Per size bucket (as COCO does with areas), faces outside the bucket become ignored boxes and an unmatched
  detection whose own size is outside the bucket is dropped.
- Recall at a threshold: the share of faces matched (IoU >= 0.5) by detections scoring at least the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceanon.detect import box_iou
from faceanon.leak import BUCKETS

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


def detection_report(records: Sequence[ImageRecord], threshold: float, iou_thr: float = 0.5) -> dict:
    """AP and recall over all faces and per size bucket."""
    out: dict = {"iou": iou_thr, "threshold": threshold, "buckets": {}}
    for name, lo, hi in (ALL, *BUCKETS):
        ap, n = average_precision(records, iou_thr, (lo, hi))
        rec, _ = recall_at(records, threshold, iou_thr, (lo, hi))
        out["buckets"][name] = {"faces": n, "ap": ap, "recall": rec}
    return out
