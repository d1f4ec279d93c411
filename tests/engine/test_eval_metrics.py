"""The detection metrics of `faceanon eval` (AP, recall) on tiny hand-made cases whose answers are worked out by
hand. The leak rule has its own tests (test_leak_rule.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faceanon.evaluate import (
    ImageRecord,
    average_precision,
    detection_report,
    iou,
    match,
    recall_at,
    voc_ap,
    xyxy_to_xywh,
)


def rec(gt, det, scores, ignore=()):
    return ImageRecord(np.array(gt, float).reshape(-1, 4), np.array(ignore, float).reshape(-1, 4),
                       np.array(det, float).reshape(-1, 4), np.array(scores, float))


def test_iou_by_hand():
    a = [[0, 0, 10, 10]]
    assert iou(a, a)[0, 0] == pytest.approx(1.0)
    assert iou(a, [[20, 20, 5, 5]])[0, 0] == 0.0
    # Half of a shifted by 5 px: intersection 50, union 150.
    assert iou(a, [[5, 0, 10, 10]])[0, 0] == pytest.approx(50 / 150)
    assert iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_xyxy_to_xywh():
    assert xyxy_to_xywh([[1, 2, 11, 22]]).tolist() == [[1, 2, 10, 20]]


def test_voc_ap_all_point_interpolation():
    assert voc_ap(np.array([True, True]), 2) == pytest.approx(1.0)
    # TP, FP, TP over 2 faces: precision 1 up to recall 0.5, then 2/3 up to recall 1.
    assert voc_ap(np.array([True, False, True]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Same detections, a third face never found: recall stops at 2/3.
    assert voc_ap(np.array([True, False, True]), 3) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
    # Interpolation: a later higher precision lifts the earlier point (FP, TP, TP over 2: 0.5*2/3 + 0.5*2/3).
    assert voc_ap(np.array([False, True, True]), 2) == pytest.approx(2 / 3)
    assert math.isnan(voc_ap(np.array([True]), 0))


def test_ranking_is_across_images():
    face = [10, 10, 20, 20]
    fp_first = [rec([], [[100, 100, 20, 20]], [0.9]), rec([face], [face], [0.8])]
    assert average_precision(fp_first)[0] == pytest.approx(0.5)
    tp_first = [rec([], [[100, 100, 20, 20]], [0.7]), rec([face], [face], [0.8])]
    assert average_precision(tp_first)[0] == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive():
    face = [10, 10, 20, 20]
    _, is_tp, dropped, n = match(rec([face], [face, [11, 11, 20, 20]], [0.9, 0.8]))
    assert is_tp.tolist() == [True, False] and not dropped.any() and n == 1


def test_iou_below_half_is_a_miss():
    _, is_tp, _, _ = match(rec([[0, 0, 10, 10]], [[5, 0, 10, 10]], [0.9]))
    assert not is_tp.any()


def test_ignore_region_neither_rewards_nor_punishes():
    face = [10, 10, 20, 20]
    stray = [200, 200, 20, 20]
    assert average_precision([rec([face], [stray, face], [0.9, 0.8])])[0] == pytest.approx(0.5)
    with_ignore = rec([face], [stray, face], [0.9, 0.8], ignore=[[190, 190, 100, 100]])
    assert average_precision([with_ignore])[0] == pytest.approx(1.0)


def test_size_buckets_ignore_faces_of_other_sizes():
    small, mid = [0, 0, 8, 8], [100, 100, 30, 40]  # short sides 8 and 30
    r = rec([small, mid], [small, mid], [0.9, 0.5])
    # In 24-64 the small face and its detection are left out, so the mid face is found at full precision.
    assert average_precision([r], size=(24, 64)) == (pytest.approx(1.0), 1)
    assert average_precision([r], size=(0, 10)) == (pytest.approx(1.0), 1)
    # A detection that matches nothing and is itself outside the bucket is dropped, not a false positive.
    r2 = rec([mid], [[300, 300, 8, 8], mid], [0.9, 0.5])
    assert average_precision([r2], size=(24, 64))[0] == pytest.approx(1.0)
    assert average_precision([r2])[0] == pytest.approx(0.5)


def test_recall_at_threshold():
    faces = [[0, 0, 20, 20], [50, 50, 20, 20], [100, 100, 20, 20], [150, 150, 20, 20]]
    r = rec(faces, faces[:3], [0.9, 0.6, 0.3])
    assert recall_at([r], 0.5) == (pytest.approx(0.5), 4)
    assert recall_at([r], 0.2) == (pytest.approx(0.75), 4)
    assert recall_at([r], 0.95)[0] == 0.0
    report = detection_report([r], 0.5)
    assert report["buckets"]["10-24"]["faces"] == 4
    assert report["buckets"]["all"]["recall"] == pytest.approx(0.5)
    assert math.isnan(report["buckets"][">=64"]["ap"])
    assert list(report["buckets"]) == ["all", "<10", "10-24", "24-64", ">=64"]  # the leak rule's buckets
