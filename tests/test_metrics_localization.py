"""Hand-computed cases for the official AP/AR (with their quirks) and the ActivityNet mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.metrics import (
    AVDEEPFAKE1M,
    LAVDF,
    activitynet_map,
    ap_ar,
    evaluate_localization,
    interpolated_ap,
    temporal_iou,
)
from avdf.types import ScoredSegment, Segment


def test_iou_matches_segment_iou_and_official_formula() -> None:
    proposals = np.array([[0.0, 2.0], [1.0, 3.0], [5.0, 6.0]])
    labels = np.array([[0.0, 1.0], [1.0, 2.0]])
    iou = temporal_iou(proposals, labels)
    assert iou.shape == (3, 2)
    for i, p in enumerate(proposals):
        for j, lab in enumerate(labels):
            assert iou[i, j] == pytest.approx(Segment(*p).iou(Segment(*lab)))
    assert iou[0, 0] == pytest.approx(0.5) and iou[1, 1] == pytest.approx(0.5)
    assert iou[2, 0] == 0.0


def test_one_perfect_proposal_for_one_label_gives_ap_zero() -> None:
    # The official curve starts at (recall 1, precision 0) and skips the first recall step.
    m = ap_ar({"a": [[0.9, 0.0, 1.0]]}, {"a": [[0.0, 1.0]]}, ar_n_proposals=(1,))
    assert all(v == 0.0 for v in m.ap.values())
    assert m.ar[1] == 1.0


def test_two_labels_two_perfect_proposals() -> None:
    # Ranked TP, TP: precision 1, 1; recall 0.5, 1. Curve (1,0), (1,1), (0.5,1):
    # steps |1-1| x 0 + |0.5-1| x max(0, 1, 1)=1 -> AP 0.5.
    m = ap_ar({"a": [[0.9, 0.0, 1.0], [0.8, 2.0, 3.0]]}, {"a": [[0.0, 1.0], [2.0, 3.0]]})
    assert m.ap == {0.5: 0.5, 0.75: 0.5, 0.95: 0.5}


def test_hand_computed_mixed_ranking() -> None:
    # Two videos; pooled ranking by score: FP(0.9), TP(0.8), TP(0.7), FP(0.6); 3 labels.
    # precision 0, 1/2, 2/3, 2/4; recall 0, 1/3, 2/3, 2/3.
    # Curve (1,0), (2/3,1/2), (2/3,2/3), (1/3,1/2), (0,0); running max 0, .5, 2/3, 2/3, 2/3.
    # AP = 1/3*0 + 0*.5 + 1/3*(2/3) + 1/3*(2/3) = 4/9.
    proposals = {
        "a": [[0.9, 5.0, 6.0], [0.8, 0.0, 1.0]],
        "b": [[0.7, 2.0, 3.0], [0.6, 7.0, 8.0]],
    }
    labels = {"a": [[0.0, 1.0]], "b": [[2.0, 3.0], [10.0, 11.0]]}
    m = ap_ar(proposals, labels, iou_thresholds=(0.5,), ar_n_proposals=(1, 2))
    assert m.ap[0.5] == pytest.approx(4 / 9)
    # AR@1: a's first proposal misses, b's finds one of two -> 1/3; AR@2 adds a's -> 2/3.
    assert m.ar[1] == pytest.approx(1 / 3) and m.ar[2] == pytest.approx(2 / 3)
    assert (m.n_videos, m.n_labels, m.n_proposals) == (2, 3, 4)


def test_matching_follows_list_order_not_score() -> None:
    # Both proposals hit the single label; the first *in the list* (score 0.1) takes it, so the
    # higher-scored one later in the list is a false positive.
    # Ranked: FP(0.9), TP(0.1): precision 0, 1/2; recall 0, 1. Curve (1,0), (1,1/2), (0,0):
    # AP = 0*0 + 1*max(0, 1/2) = 0.5. Score-order matching would give TP, FP -> AP 0.
    proposals = {"a": [[0.1, 0.0, 1.0], [0.9, 0.0, 1.0]]}
    m = ap_ar(proposals, {"a": [[0.0, 1.0]]}, iou_thresholds=(0.5,))
    assert m.ap[0.5] == pytest.approx(0.5)
    swapped = ap_ar({"a": proposals["a"][::-1]}, {"a": [[0.0, 1.0]]}, iou_thresholds=(0.5,))
    assert swapped.ap[0.5] == 0.0


def test_labels_take_proposals_in_label_order() -> None:
    # Label 0 takes proposal 0 (first hit); label 1's only hit is proposal 0 as well -> missed.
    proposals = {"a": [[0.9, 0.0, 1.0], [0.8, 5.0, 6.0]]}
    labels = {"a": [[0.0, 1.0], [0.02, 1.0]]}  # IoU 0.98 with proposal 0
    m = ap_ar(proposals, labels, iou_thresholds=(0.5,), ar_n_proposals=(2,))
    # Ranked TP, FP; 2 labels: precision 1, 1/2; recall 1/2, 1/2.
    # Curve (1,0), (1/2,1/2), (1/2,1): AP = 1/2*0 + 0*... = 0.
    assert m.ap[0.5] == 0.0
    assert m.ar[2] == 1.0  # AR takes each label's best IoU independently: both found


def test_score_ties_keep_label_file_order() -> None:
    # Same score: video "b" (first in the label file) ranks first.
    proposals = {"a": [[0.5, 0.0, 1.0]], "b": [[0.5, 9.0, 9.5]]}
    labels = {"b": [[0.0, 1.0]], "a": [[0.0, 1.0]]}
    # Ranked FP (b), TP (a); 2 labels: precision 0, 1/2; recall 0, 1/2.
    # Curve (1,0), (1/2,1/2), (0,0): AP = 1/2*0 + 1/2*1/2 = 1/4.
    assert ap_ar(proposals, labels, iou_thresholds=(0.5,)).ap[0.5] == pytest.approx(0.25)
    reordered = {"a": labels["a"], "b": labels["b"]}
    # Ranked TP, FP: precision 1, 1/2; recall 1/2, 1/2 -> curve (1,0),(1/2,1/2),(1/2,1): AP 0.
    assert ap_ar(proposals, reordered, iou_thresholds=(0.5,)).ap[0.5] == 0.0


def test_threshold_is_strict() -> None:
    # IoU exactly 0.5 is not a hit at t = 0.5 (official: IoU > t).
    m = ap_ar({"a": [[1.0, 0.0, 2.0]]}, {"a": [[0.0, 1.0]]}, ar_n_proposals=(1,))
    assert m.ar[1] == 0.0


def test_ar_with_fewer_proposals_than_n_and_top_n_in_list_order() -> None:
    proposals = {"a": [[0.9, 5.0, 6.0], [0.8, 0.0, 1.0]]}
    labels = {"a": [[0.0, 1.0]]}
    m = ap_ar(proposals, labels, ar_n_proposals=(100, 2, 1))
    assert m.ar == {100: 1.0, 2: 1.0, 1: 0.0}


def test_ar_is_micro_averaged_and_mean_over_thresholds() -> None:
    # Label in "a" hit with IoU 0.8 (found for t < 0.8: 0.50..0.75 -> 6 of 10 thresholds);
    # the 3 labels of "b" are never hit. Micro recall per threshold: 1/4 or 0.
    proposals = {"a": [[0.9, 0.0, 0.8]], "b": [[0.9, 50.0, 51.0]]}
    labels = {"a": [[0.0, 1.0]], "b": [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]}
    m = ap_ar(proposals, labels, ar_n_proposals=(10,))
    assert m.ar[10] == pytest.approx(6 / 10 * 1 / 4)


def test_real_videos_add_false_positives_only() -> None:
    labels = {"a": [[0.0, 1.0]], "b": [[2.0, 3.0]], "real": []}
    base = {"a": [[0.9, 0.0, 1.0]], "b": [[0.8, 2.0, 3.0]]}
    assert ap_ar(base, labels, iou_thresholds=(0.5,)).ap[0.5] == pytest.approx(0.5)
    # A higher-scored proposal on a real video ranks first as FP:
    # precision 0, 1/2, 2/3; recall 0, 1/2, 1. Curve (1,0),(1,2/3),(1/2,1/2),(0,0):
    # AP = 0*0 + 1/2*2/3 + 1/2*2/3 = 2/3.
    with_real = dict(base, real=[[0.95, 4.0, 5.0]])
    m = ap_ar(with_real, labels, iou_thresholds=(0.5,), ar_n_proposals=(1,))
    assert m.ap[0.5] == pytest.approx(2 / 3)
    assert m.ar[1] == 1.0  # real videos have no labels to recall


def test_empty_and_missing_proposal_lists_count_labels_as_misses() -> None:
    labels = {"a": [[0.0, 1.0]], "b": [[2.0, 3.0]], "c": [[4.0, 5.0]]}
    proposals = {"a": [[0.9, 0.0, 1.0]], "b": []}  # "c" absent entirely
    m = ap_ar(proposals, labels, iou_thresholds=(0.5,), ar_n_proposals=(5,))
    assert m.videos_without_proposals == 2
    assert m.ar[5] == pytest.approx(1 / 3)
    # Single TP over 3 labels: curve (1,0),(1/3,1) -> AP = 2/3*0 = 0.
    assert m.ap[0.5] == 0.0


def test_no_labels_at_all_gives_nan_ap() -> None:
    m = ap_ar({"a": [[0.9, 0.0, 1.0]]}, {"a": []})
    assert all(np.isnan(v) for v in m.ap.values())
    assert m.ar[100] == 0.0


def test_frames_are_divided_by_fps() -> None:
    labels = {"a": [[0.0, 1.0]], "b": [[2.0, 3.0]]}
    seconds = ap_ar({"a": [[0.9, 0.0, 1.0]], "b": [[0.8, 2.0, 3.0]]}, labels)
    frames = ap_ar({"a": [[0.9, 0.0, 25.0]], "b": [[0.8, 50.0, 75.0]]}, labels, fps=25.0)
    assert frames.ap == seconds.ap and frames.ar == seconds.ar


def test_accepts_avdf_types() -> None:
    proposals = {
        "a": [
            ScoredSegment(Segment(0.0, 1.0), 0.9),
            ScoredSegment(Segment(2.0, 3.0), 0.8),
        ]
    }
    labels = {"a": [Segment(0.0, 1.0), Segment(2.0, 3.0)]}
    assert ap_ar(proposals, labels).ap[0.5] == pytest.approx(0.5)


def test_blocks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny padded blocks (one video each) must give the same numbers as one big block.
    import avdf.metrics.localization as loc

    rng = np.random.default_rng(3)
    labels, proposals = {}, {}
    for v in range(40):
        starts = rng.uniform(0, 10, rng.integers(0, 4))
        labels[f"v{v}"] = [[s, s + rng.uniform(0.2, 1.5)] for s in starts]
        k = int(rng.integers(0, 30))
        s = rng.uniform(0, 10, k)
        proposals[f"v{v}"] = np.stack([rng.random(k), s, s + rng.uniform(0.1, 2, k)], axis=1)
    big = evaluate_localization(proposals, labels, AVDEEPFAKE1M)
    big_anet = evaluate_localization(proposals, labels, LAVDF, metric="activitynet")
    monkeypatch.setattr(loc, "_BLOCK_ELEMENTS", 1)
    assert evaluate_localization(proposals, labels, AVDEEPFAKE1M) == big
    assert evaluate_localization(proposals, labels, LAVDF, metric="activitynet") == big_anet


def test_presets() -> None:
    m = evaluate_localization({"a": [[0.9, 0.0, 1.0]]}, {"a": [[0.0, 1.0]]}, "avdeepfake1m")
    assert tuple(m.ap) == (0.5, 0.75, 0.9, 0.95) and tuple(m.ar) == (50, 30, 20, 10, 5)
    m = evaluate_localization({"a": [[0.9, 0.0, 1.0]]}, {"a": [[0.0, 1.0]]}, "lavdf")
    assert tuple(m.ap) == (0.5, 0.75, 0.95) and tuple(m.ar) == (100, 50, 20, 10)
    with pytest.raises(ValueError, match="unknown preset"):
        evaluate_localization({}, {}, "nope")


def test_interpolated_ap_hand_computed() -> None:
    # Ranked TP, FP, TP over 2 labels: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # Envelope at recall 1/2 -> 1, at 1 -> 2/3: AP = 1/2*1 + 1/2*2/3 = 5/6.
    ap = interpolated_ap(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0]))
    assert ap == pytest.approx(5 / 6)


def test_activitynet_mode() -> None:
    # One perfect proposal for one label: 1.0 here (the curve starts at recall 0), 0 officially.
    one = activitynet_map({"a": [[0.9, 0.0, 1.0]]}, {"a": [[0.0, 1.0]]})
    assert all(v == 1.0 for v in one.ap.values()) and one.mean_ap == 1.0
    # Matching in score order, to the best-IoU free label, IoU >= t inclusive.
    proposals = {"a": [[0.1, 0.0, 1.0], [0.9, 0.0, 2.0]]}
    labels = {"a": [[0.0, 1.0], [0.0, 2.0]]}
    # 0.9 [0,2]: IoU 0.5 with label 0, 1.0 with label 1 -> takes label 1. 0.1 [0,1] takes label 0.
    m = activitynet_map(proposals, labels, iou_thresholds=(0.5, 0.95))
    assert m.ap == {0.5: 1.0, 0.95: 1.0}
    # At t = 0.5 inclusive: a lone [0, 2] proposal matches label [0, 1] (IoU exactly 0.5).
    lone = activitynet_map({"a": [[0.9, 0.0, 2.0]]}, {"a": [[0.0, 1.0]]}, iou_thresholds=(0.5,))
    assert lone.ap[0.5] == 1.0


def test_activitynet_hand_computed_ranking() -> None:
    # Pooled: TP(0.9, a), FP(0.8, b), TP(0.7, b); 2 labels -> AP 5/6 (see interpolated test).
    proposals = {"a": [[0.9, 0.0, 1.0]], "b": [[0.7, 2.0, 3.0], [0.8, 8.0, 9.0]]}
    labels = {"a": [[0.0, 1.0]], "b": [[2.0, 3.0]]}
    m = activitynet_map(proposals, labels, iou_thresholds=(0.5,))
    assert m.ap[0.5] == pytest.approx(5 / 6)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        ap_ar({}, {"a": []}, iou_thresholds=(1.5,))
    with pytest.raises(ValueError, match="counts"):
        ap_ar({}, {"a": []}, ar_n_proposals=(0,))
    with pytest.raises(ValueError, match="fps"):
        ap_ar({}, {"a": []}, fps=0.0)
    with pytest.raises(ValueError, match="finite"):
        ap_ar({"a": [[np.nan, 0.0, 1.0]]}, {"a": [[0.0, 1.0]]})


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_invariants_on_random_corpora(seed: int) -> None:
    # AP and AR lie in [0, 1]; AR cannot shrink as N grows (a best IoU over more proposals).
    rng = np.random.default_rng(seed)
    labels, proposals = {}, {}
    for v in range(int(rng.integers(1, 6))):
        starts = rng.uniform(0, 10, rng.integers(1, 4))
        labels[v] = [[s, s + rng.uniform(0.2, 2)] for s in starts]
        k = int(rng.integers(0, 25))
        s = rng.uniform(0, 10, k)
        proposals[v] = np.stack([rng.random(k), s, s + rng.uniform(0.1, 2, k)], axis=1)
    m = ap_ar(proposals, labels, (0.1, 0.5, 0.9), (1, 5, 10, 100))
    assert all(0.0 <= v <= 1.0 for v in [*m.ap.values(), *m.ar.values()])
    assert m.ar[1] <= m.ar[5] <= m.ar[10] <= m.ar[100]
    anet = activitynet_map(proposals, labels, (0.1, 0.5, 0.9))
    assert all(0.0 <= v <= 1.0 for v in anet.ap.values())


def _activitynet_by_loops(proposals: dict, labels: dict, threshold: float) -> float:
    """ActivityNet's detection AP written as plain loops, to check the vectorised version."""
    pooled = [(row[0], v, row[1], row[2]) for v in labels for row in proposals.get(v, [])]
    pooled.sort(key=lambda x: -x[0])  # stable: ties keep label-file then list order
    matched = {v: [False] * len(labels[v]) for v in labels}
    tp = []
    for _, v, start, end in pooled:
        ious = [Segment(start, end).iou(Segment(*lab)) for lab in labels[v]]
        best, best_iou = -1, -1.0
        for j, iou in enumerate(ious):
            if not matched[v][j] and iou > best_iou:
                best, best_iou = j, iou
        hit = best >= 0 and best_iou >= threshold
        if hit:
            matched[v][best] = True
        tp.append(hit)
    n_labels = sum(len(x) for x in labels.values())
    cum = np.cumsum(tp)
    return interpolated_ap(cum / np.arange(1, len(tp) + 1), cum / n_labels)


def test_activitynet_matches_plain_loops() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        labels, proposals = {}, {}
        for v in range(int(rng.integers(1, 6))):
            starts = rng.uniform(0, 10, rng.integers(0, 4))
            labels[f"v{v}"] = [[s, s + rng.uniform(0.2, 2)] for s in starts]
            k = int(rng.integers(0, 15))
            s = rng.uniform(0, 10, k)
            e = s + rng.uniform(0.1, 2, k)
            proposals[f"v{v}"] = np.stack([rng.integers(0, 4, k) / 4, s, e], axis=1).tolist()
        if not any(labels.values()):
            continue
        ours = activitynet_map(proposals, labels, (0.3, 0.5, 0.7))
        for t, value in ours.ap.items():
            assert value == pytest.approx(_activitynet_by_loops(proposals, labels, t))
