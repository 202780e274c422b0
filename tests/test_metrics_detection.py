"""Video-level detection metrics on hand-computed cases and against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.metrics import (
    average_precision,
    detection_metrics,
    equal_error_rate,
    roc_auc,
    threshold_metrics,
)

SCORES = [0.1, 0.4, 0.35, 0.8]
LABELS = [0, 0, 1, 1]


def test_auc_hand_computed() -> None:
    # Positive/negative pairs ordered correctly: (0.35>0.1), (0.8>0.1), (0.8>0.4) -> 3/4.
    assert roc_auc(SCORES, LABELS) == pytest.approx(0.75)


def test_auc_ties_count_half() -> None:
    assert roc_auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    # Pairs: (0.5 vs 0.2) 1, (0.5 vs 0.5) 1/2, (0.9 vs 0.2) 1, (0.9 vs 0.5) 1 -> 3.5/4.
    assert roc_auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=30).filter(
        lambda xs: len({y for _, y in xs}) == 2
    )
)
def test_auc_equals_pair_counting(pairs: list[tuple[int, int]]) -> None:
    # Integer scores force many ties; compare with the O(n^2) Mann-Whitney definition.
    s = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs])
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(s, y) == pytest.approx(wins / (len(pos) * len(neg)))


def test_average_precision_hand_computed() -> None:
    # Ranked 0.8(T), 0.4(F), 0.35(T), 0.1(F): recall steps 1/2 at precision 1 and 2/3.
    assert average_precision(SCORES, LABELS) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Ties form one step: 0.9 (T): P 1, R 1/2; {0.5, 0.5} (F, T): P 2/3, R 1 -> 5/6.
    assert average_precision([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(5 / 6)


def test_eer_hand_computed() -> None:
    # At threshold 0.4: FPR 1/2 and FNR 1/2 meet on a ROC vertex.
    assert equal_error_rate(SCORES, LABELS) == pytest.approx(0.5)
    assert equal_error_rate([0.9, 0.1], [1, 0]) == 0.0
    # ROC (0,0), (0,1/2), (1,1/2), (1,1): FNR - FPR goes 1/2 -> -1/2 along the horizontal
    # segment at TPR 1/2, crossing halfway: EER 1/2.
    assert equal_error_rate([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx(0.5)
    # Fully inverted scores: every fake below every real.
    assert equal_error_rate([0.1, 0.9], [1, 0]) == pytest.approx(1.0)


def test_threshold_metrics_hand_computed() -> None:
    m = threshold_metrics(SCORES, LABELS, threshold=0.38)
    assert m == pytest.approx({"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5})
    m = threshold_metrics(SCORES, LABELS, threshold=0.3)
    assert m == pytest.approx({"accuracy": 0.75, "precision": 2 / 3, "recall": 1.0, "f1": 0.8})
    # Nothing predicted fake: precision and F1 are 0 rather than undefined.
    m = threshold_metrics(SCORES, LABELS, threshold=2.0)
    assert m == pytest.approx({"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0})


def test_detection_metrics_by_video_name() -> None:
    scores = {"a.mp4": 0.1, "b.mp4": 0.4, "c.mp4": 0.35, "d.mp4": 0.8, "extra.mp4": 0.9}
    labels = {"a.mp4": 0, "b.mp4": 0, "c.mp4": 1, "d.mp4": 1}
    m = detection_metrics(scores, labels)
    assert (m.auc, m.n_videos, m.n_fake) == (pytest.approx(0.75), 4, 2)
    assert m.accuracy == pytest.approx(0.75)  # at 0.5 only c (0.35, fake) is wrong
    with pytest.raises(ValueError, match="no score"):
        detection_metrics({"a.mp4": 0.1}, labels)


def test_single_class_gives_nan_and_bad_input_raises() -> None:
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))
    assert np.isnan(equal_error_rate([0.1, 0.2], [0, 0]))
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([np.nan, 0.2], [0, 1])
    with pytest.raises(ValueError, match="scores but"):
        roc_auc([0.1], [0, 1])
