"""Temporal localization metrics: the official LAV-DF / AV-Deepfake1M AP and AR, and the
ActivityNet-style mAP used by UMMAFormer and TVIL.

The official definition is the one of the Rust module shipped in the ``avdeepfake1m`` wheel
(version 0.0.4), which ``tests/test_metrics_parity.py`` checks us against. It has quirks that
published numbers depend on, reproduced here on purpose:

* AP: inside each video, every label in order takes the *first* not-yet-taken proposal in
  *list order* (not score order) whose IoU is strictly above the threshold; all other proposals
  are false positives. All videos are pooled and sorted by score, descending, with a stable sort
  (ties keep label-file order, then list order). The precision/recall curve is the point
  (recall 1, precision 0) followed by the (recall, precision) points from the last-ranked
  proposal to the first, and AP = sum |delta recall| x running max of precision along that
  curve. The step from recall 0 to the first recall value is never counted, so one perfect
  proposal for one label scores AP 0.
* AR@N: per video the first N proposals in list order; a label is found when its best IoU over
  them is strictly above the threshold; found and missed labels are summed over videos (micro)
  and the recall is averaged over the IoU thresholds 0.50, 0.55, ..., 0.95.

Like the reference, times, IoUs and the scores used for ranking are float32: an IoU that is a
threshold exactly in decimal (common with frame-quantised times, e.g. 0.096 / 0.192) is then
above or below the threshold exactly as in the published tool. Precision, recall and AP are
accumulated in float64 (the reference uses float32 sums; the difference is ~1e-7 on small sets).

Differences from the reference, all in cases where it has no answer: a labelled video with an
empty (or absent) proposal list makes the reference panic; here its labels count as misses.
With no label at all AP is undefined (the reference divides by zero); here it is NaN.

Only videos present in ``labels`` are scored (as in the reference); proposals of other videos
are ignored. Times are seconds, or frames when ``fps`` is given (proposal times are divided by
``fps``; label times are always seconds, as in the reference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avdf.intervals import interval_iou_array
from avdf.types import Segment

# 0.50, 0.55, ..., 0.95 computed as k/20 so each value is the nearest double to the decimal.
AR_IOU_THRESHOLDS: tuple[float, ...] = tuple(k / 20 for k in range(10, 20))
ACTIVITYNET_IOU_THRESHOLDS: tuple[float, ...] = AR_IOU_THRESHOLDS

# Padded IoU blocks are at most this many values (16-32 MiB), whatever the corpus size.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Preset:
    """The thresholds a benchmark reports."""

    name: str
    ap_iou_thresholds: tuple[float, ...]
    ar_n_proposals: tuple[int, ...]
    ar_iou_thresholds: tuple[float, ...] = AR_IOU_THRESHOLDS


LAVDF = Preset("lavdf", (0.5, 0.75, 0.95), (100, 50, 20, 10))
AVDEEPFAKE1M = Preset("avdeepfake1m", (0.5, 0.75, 0.9, 0.95), (50, 30, 20, 10, 5))
PRESETS: dict[str, Preset] = {p.name: p for p in (LAVDF, AVDEEPFAKE1M)}


@dataclass(frozen=True)
class LocalizationMetrics:
    """AP per IoU threshold and AR per proposal count, as fractions in [0, 1]."""

    metric: str  # "official" or "activitynet"
    ap: Mapping[float, float]
    ar: Mapping[int, float]
    n_videos: int
    n_labels: int
    n_proposals: int
    videos_without_proposals: int
    ar_iou_thresholds: tuple[float, ...] = field(default=AR_IOU_THRESHOLDS)

    @property
    def mean_ap(self) -> float:
        """Mean of AP over the thresholds (the ActivityNet 'average mAP')."""
        return float(np.mean(list(self.ap.values()))) if self.ap else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "ap": {f"{t:g}": v for t, v in self.ap.items()},
            "mean_ap": self.mean_ap,
            "ar": {str(n): v for n, v in self.ar.items()},
            "ar_iou_thresholds": list(self.ar_iou_thresholds),
            "n_videos": self.n_videos,
            "n_labels": self.n_labels,
            "n_proposals": self.n_proposals,
            "videos_without_proposals": self.videos_without_proposals,
        }


def temporal_iou(proposals: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """IoU of every proposal with every label.

    ``proposals`` (..., K, 2) and ``labels`` (..., L, 2) as [start, end] in seconds; returns
    (..., K, L). A zero-length union gives NaN (never a hit), as in the reference.
    """
    p_start, p_end = proposals[..., :, None, 0], proposals[..., :, None, 1]  # (..., K, 1)
    l_start, l_end = labels[..., None, :, 0], labels[..., None, :, 1]  # (..., 1, L)
    return interval_iou_array(p_start, p_end, l_start, l_end)


def _as_proposals(value: Any) -> np.ndarray:
    """(K, 3) float64 rows of [score, start, end]; accepts arrays, lists or ScoredSegments."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False).reshape(-1, 3)
    rows = [
        (s.score, s.start, s.end) if hasattr(s, "score") and hasattr(s, "segment") else s
        for s in value
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _as_labels(value: Any) -> np.ndarray:
    """(L, 2) float64 rows of [start, end] seconds; accepts arrays, lists or Segments."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False).reshape(-1, 2)
    rows = [(s.start, s.end) if isinstance(s, Segment) else s for s in value]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


@dataclass
class _Corpus:
    """Proposals and labels of the scored videos, flattened in label-file order."""

    scores: np.ndarray  # (P,) float64 proposal scores, video after video, list order inside
    times: np.ndarray  # (P, 2) proposal [start, end] seconds, in ``dtype``
    offsets: np.ndarray  # (V + 1,) start of each video's proposals in ``scores`` / ``times``
    labels: np.ndarray  # (N, 2) label [start, end] seconds, in ``dtype``
    label_offsets: np.ndarray  # (V + 1,) start of each video's labels in ``labels``
    videos_without_proposals: int
    dtype: type  # np.float32 for the official metric (as the reference), else np.float64

    @property
    def n_videos(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_labels(self) -> int:
        return len(self.labels)


def _gather(
    proposals: Mapping[str, Any],
    labels: Mapping[str, Any],
    fps: float | None,
    dtype: type = np.float64,
) -> _Corpus:
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    empty = np.zeros((0, 3))
    props = [
        empty if (rows := proposals.get(video)) is None else _as_proposals(rows) for video in labels
    ]
    labs = [_as_labels(video_labels) for video_labels in labels.values()]
    offsets = np.zeros(len(props) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in props], out=offsets[1:])
    label_offsets = np.zeros(len(labs) + 1, dtype=np.int64)
    np.cumsum([len(lab) for lab in labs], out=label_offsets[1:])
    flat = np.concatenate(props) if props else empty  # (P, 3)
    if not np.all(np.isfinite(flat[:, 0])):
        raise ValueError("proposal scores must be finite")
    # Frames -> seconds in the working precision, as the reference divides in float32.
    times = flat[:, 1:].astype(dtype)
    if fps:
        times /= dtype(fps)
    return _Corpus(
        scores=flat[:, 0],
        times=times,
        offsets=offsets,
        labels=(np.concatenate(labs) if labs else np.zeros((0, 2))).astype(dtype),
        label_offsets=label_offsets,
        videos_without_proposals=int(np.sum(np.diff(offsets) == 0)),
        dtype=dtype,
    )


def _blocks(corpus: _Corpus) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Videos with both proposals and labels, padded into blocks of similar size.

    Yields ``(proposals (C, K, 2), labels (C, L, 2), flat_index (C, K), valid (C, K))``; padding
    is NaN so that it never counts as a hit, and ``flat_index`` maps back into ``corpus.scores``.
    """
    n_props = np.diff(corpus.offsets)
    n_labs = np.diff(corpus.label_offsets)
    videos = np.flatnonzero((n_props > 0) & (n_labs > 0))
    # Sorting by size keeps the padding small when proposal counts vary a lot.
    videos = videos[np.lexsort((n_labs[videos], n_props[videos]))]
    start = 0
    while start < len(videos):
        stop, lmax = start + 1, n_labs[videos[start]]
        # Grow the block while the padded (C, K, L) array stays under the budget; K grows
        # along ``videos``, L is the running maximum.
        while stop < len(videos):
            lmax = max(lmax, n_labs[videos[stop]])
            if (stop + 1 - start) * n_props[videos[stop]] * lmax > _BLOCK_ELEMENTS:
                break
            stop += 1
        block = videos[start:stop]
        p_offsets = np.stack([corpus.offsets[block], corpus.offsets[block + 1]])
        l_offsets = np.stack([corpus.label_offsets[block], corpus.label_offsets[block + 1]])
        p, flat = _padded(corpus.times, p_offsets, int(n_props[block].max()))
        lab, _ = _padded(corpus.labels, l_offsets, int(n_labs[block].max()))
        yield p, lab, np.maximum(flat, 0), flat >= 0
        start = stop


def _padded(values: np.ndarray, bounds: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each video's rows ``values[start:stop]`` padded with NaN to ``width`` rows.

    ``bounds`` is (2, C): start and stop per video. Returns ``(padded (C, width, 2),
    flat_index (C, width))`` with ``flat_index`` -1 on padding.
    """
    counts = bounds[1] - bounds[0]  # (C,)
    slot = np.arange(width)
    valid = slot[None, :] < counts[:, None]  # (C, width)
    flat = np.where(valid, bounds[0][:, None] + slot[None, :], -1)
    padded = np.where(valid[..., None], values[np.maximum(flat, 0)], np.nan)
    return padded.astype(values.dtype, copy=False), flat


def _official_ap(tp_ranks: np.ndarray, n_labels: int) -> float:
    """AP of the reference from the 1-based ranks of the true positives in score order.

    The reference integrates |delta recall| x running max of precision along the curve
    (1, 0), (recall_P, precision_P), ..., (recall_1, precision_1). Recall changes only at a
    true positive, by 1/n_labels, and the running max there is the best precision at that
    rank or later, which is reached at a true positive (precision falls between them). The
    true positive at rank 1 closes the curve and is never counted. So, with the j-th true
    positive at rank r_j: AP = sum over r_j >= 2 of max_{i >= j} (i / r_i) / n_labels.
    """
    if n_labels == 0:
        return float("nan")
    precision = np.arange(1, len(tp_ranks) + 1) / tp_ranks  # (M,) at each true positive
    best_later = np.maximum.accumulate(precision[::-1])[::-1]
    return float(best_later[tp_ranks >= 2].sum() / n_labels)


def _official_tp(corpus: _Corpus, thresholds: Sequence[float]) -> np.ndarray:
    """(n_thresholds, P) true-positive flags of the list-order matching."""
    is_tp = np.zeros((len(thresholds), len(corpus.scores)), dtype=bool)
    for p, lab, flat, valid in _blocks(corpus):
        iou = temporal_iou(p, lab)  # (C, K, L)
        rows = np.arange(len(p))
        for ti, threshold in enumerate(thresholds):
            hit = iou > corpus.dtype(threshold)  # NaN padding compares False
            taken = np.zeros(hit.shape[:2], dtype=bool)  # (C, K)
            for j in range(hit.shape[2]):  # labels in order
                candidates = hit[:, :, j] & ~taken
                found = candidates.any(axis=1)
                first = candidates.argmax(axis=1)  # first True in list order
                taken[rows[found], first[found]] = True
            is_tp[ti, flat[valid]] = taken[valid]
    return is_tp


def _official_ar(
    corpus: _Corpus, n_proposals: Sequence[int], thresholds: Sequence[float]
) -> dict[int, float]:
    found = np.zeros((len(n_proposals), len(thresholds)), dtype=np.int64)
    for p, lab, _, _ in _blocks(corpus):
        iou = temporal_iou(p, lab)  # (C, K, L)
        for ni, n in enumerate(n_proposals):
            best = np.fmax.reduce(iou[:, :n], axis=1)  # (C, L), max ignoring NaN padding
            hits = best[None] > np.asarray(thresholds, corpus.dtype)[:, None, None]  # (T, C, L)
            found[ni] += hits.sum(axis=(1, 2))
    n_labels = corpus.n_labels
    recall = found / n_labels if n_labels else np.zeros(found.shape)
    return {int(n): float(recall[ni].mean()) for ni, n in enumerate(n_proposals)}


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(t) for t in thresholds)
    if any(not 0.0 <= t < 1.0 for t in out):
        raise ValueError(f"IoU thresholds must lie in [0, 1), got {out}")
    return out


def _check_counts(n_proposals: Sequence[int]) -> list[int]:
    out = [int(n) for n in n_proposals]
    if any(n < 1 for n in out):
        raise ValueError(f"AR proposal counts must be >= 1, got {out}")
    return out


def ap_ar(
    proposals: Mapping[str, Any],
    labels: Mapping[str, Any],
    iou_thresholds: Sequence[float] = LAVDF.ap_iou_thresholds,
    ar_n_proposals: Sequence[int] = LAVDF.ar_n_proposals,
    ar_iou_thresholds: Sequence[float] = AR_IOU_THRESHOLDS,
    fps: float | None = None,
) -> LocalizationMetrics:
    """Official LAV-DF / AV-Deepfake1M AP and AR (see the module docstring).

    ``proposals`` maps a video file to (K, 3) rows of [score, start, end] in list order (or
    ScoredSegments); ``labels`` maps every scored video to its fake segments, (L, 2) [start,
    end] seconds or Segments (an empty list for a real video). Label-file order matters only
    for score ties; pass an ordered mapping as read from the metadata file.
    """
    thresholds = _check_thresholds(iou_thresholds)
    ar_thresholds = _check_thresholds(ar_iou_thresholds)
    corpus = _gather(proposals, labels, fps, np.float32)
    n_labels = corpus.n_labels
    # One stable sort serves every threshold: the order depends only on the scores. Ranking by
    # float32 scores, as the reference, turns scores equal in float32 into ties.
    order = np.argsort(-corpus.scores.astype(np.float32), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)  # 1-based rank of every proposal
    is_tp = _official_tp(corpus, thresholds)
    ap = {t: _official_ap(np.sort(rank[is_tp[i]]), n_labels) for i, t in enumerate(thresholds)}
    ar = _official_ar(corpus, _check_counts(ar_n_proposals), ar_thresholds)
    return LocalizationMetrics(
        metric="official",
        ap=ap,
        ar=ar,
        n_videos=corpus.n_videos,
        n_labels=n_labels,
        n_proposals=len(corpus.scores),
        videos_without_proposals=corpus.videos_without_proposals,
        ar_iou_thresholds=ar_thresholds,
    )


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC all-point interpolated AP (ActivityNet's ``interpolated_prec_rec``).

    The precision envelope (running max from the right) integrated over recall, with the
    curve closed at (0, 0) and (1, 0).
    """
    mprec = np.concatenate(([0.0], precision, [0.0]))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    envelope = np.maximum.accumulate(mprec[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * envelope[steps]))


def _activitynet_tp(corpus: _Corpus, thresholds: Sequence[float]) -> np.ndarray:
    """(n_thresholds, P) TP flags: proposals by descending score take the best-IoU free label."""
    is_tp = np.zeros((len(thresholds), len(corpus.scores)), dtype=bool)
    limits = np.asarray(thresholds)[:, None]  # (T, 1)
    for p, lab, flat, valid in _blocks(corpus):
        # Score order inside each video (stable for ties); padding last.
        by_score = np.argsort(np.where(valid, -corpus.scores[flat], np.inf), axis=1, kind="stable")
        iou = temporal_iou(p, lab)  # (C, K, L)
        iou = np.take_along_axis(iou, by_score[:, :, None], axis=1)
        iou = np.where(np.isnan(iou), -np.inf, iou)
        sorted_flat = np.take_along_axis(flat, by_score, axis=1)
        sorted_valid = np.take_along_axis(valid, by_score, axis=1)
        n_videos, k, n_labels = iou.shape
        # All thresholds at once: (T, C, L) matched labels, (T, C, K) true positives.
        matched = np.zeros((len(thresholds), n_videos, n_labels), dtype=bool)
        tp = np.zeros((len(thresholds), n_videos, k), dtype=bool)
        t_index, c_index = np.indices((len(thresholds), n_videos))  # (T, C) each
        for r in range(k):
            free = np.where(matched, -np.inf, iou[None, :, r])  # (T, C, L)
            best = free.argmax(axis=2)  # (T, C), first label on IoU ties
            ok = free[t_index, c_index, best] >= limits
            matched[t_index[ok], c_index[ok], best[ok]] = True
            tp[:, :, r] = ok
        is_tp[:, sorted_flat[sorted_valid]] = tp[:, sorted_valid]
    return is_tp


def activitynet_map(
    proposals: Mapping[str, Any],
    labels: Mapping[str, Any],
    iou_thresholds: Sequence[float] = ACTIVITYNET_IOU_THRESHOLDS,
    ar_n_proposals: Sequence[int] = LAVDF.ar_n_proposals,
    ar_iou_thresholds: Sequence[float] = AR_IOU_THRESHOLDS,
    fps: float | None = None,
) -> LocalizationMetrics:
    """ActivityNet-style AP (UMMAFormer / TVIL papers) per threshold; AR is the official one.

    All proposals are ranked by score (stable sort: ties keep label-file order, then list
    order); each takes the unmatched label of its video with the highest IoU if that IoU is
    >= t (IoU ties go to the first label); AP is the interpolated area. ``mean_ap`` of the
    result is the average over thresholds the papers report.
    """
    thresholds = _check_thresholds(iou_thresholds)
    ar_thresholds = _check_thresholds(ar_iou_thresholds)
    corpus = _gather(proposals, labels, fps)
    n_labels = corpus.n_labels
    order = np.argsort(-corpus.scores, kind="stable")
    is_tp = _activitynet_tp(corpus, thresholds)
    ap: dict[float, float] = {}
    for i, t in enumerate(thresholds):
        if n_labels == 0:
            ap[t] = float("nan")
            continue
        tp = np.cumsum(is_tp[i][order])
        precision = tp / np.arange(1, len(tp) + 1)
        ap[t] = interpolated_ap(precision, tp / n_labels)
    ar = _official_ar(corpus, _check_counts(ar_n_proposals), ar_thresholds)
    return LocalizationMetrics(
        metric="activitynet",
        ap=ap,
        ar=ar,
        n_videos=corpus.n_videos,
        n_labels=n_labels,
        n_proposals=len(corpus.scores),
        videos_without_proposals=corpus.videos_without_proposals,
        ar_iou_thresholds=ar_thresholds,
    )


def evaluate_localization(
    proposals: Mapping[str, Any],
    labels: Mapping[str, Any],
    preset: Preset | str = LAVDF,
    metric: str = "official",
    fps: float | None = None,
) -> LocalizationMetrics:
    """The numbers a benchmark reports: ``preset`` picks the thresholds, ``metric`` the mode."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        preset = PRESETS[preset]
    if metric == "official":
        return ap_ar(
            proposals,
            labels,
            preset.ap_iou_thresholds,
            preset.ar_n_proposals,
            preset.ar_iou_thresholds,
            fps,
        )
    if metric == "activitynet":
        return activitynet_map(
            proposals,
            labels,
            ACTIVITYNET_IOU_THRESHOLDS,
            preset.ar_n_proposals,
            preset.ar_iou_thresholds,
            fps,
        )
    raise ValueError(f"unknown metric {metric!r}; choose 'official' or 'activitynet'")


@dataclass(frozen=True)
class ShortSegmentRecall:
    """Recall of the short fake segments alone (the ones a collapsed head misses)."""

    recall: float  # found / n_segments; NaN when no label is short enough
    n_segments: int  # labels shorter than ``max_length``
    n_found: int


def short_segment_recall(
    proposals: Mapping[str, Any],
    labels: Mapping[str, Any],
    max_length: float = 0.5,
    iou_threshold: float = 0.5,
    n_proposals: int = 100,
    fps: float | None = None,
) -> ShortSegmentRecall:
    """Share of the labels shorter than ``max_length`` seconds that one of their video's first
    ``n_proposals`` proposals (list order) overlaps with IoU strictly above ``iou_threshold``.

    Each short label is judged on its own, exactly as AR@N judges every label (best IoU over
    the first N proposals, float32 times, strict ``>``); it is AR@N at one IoU threshold
    restricted to short labels. A labelled video without proposals misses its labels.
    """
    corpus = _gather(proposals, labels, fps, np.float32)
    n_segments = n_found = 0
    for v in range(corpus.n_videos):
        lab = corpus.labels[corpus.label_offsets[v] : corpus.label_offsets[v + 1]]
        # Label lengths from the labels as given (seconds), not the float32 copies.
        short = lab[(lab[:, 1].astype(np.float64) - lab[:, 0]) < max_length]
        if not len(short):
            continue
        n_segments += len(short)
        times = corpus.times[corpus.offsets[v] : corpus.offsets[v + 1]][:n_proposals]
        if not len(times):
            continue
        best = np.fmax.reduce(temporal_iou(times, short), axis=0)  # (L,)
        n_found += int(np.sum(best > np.float32(iou_threshold)))
    recall = n_found / n_segments if n_segments else float("nan")
    return ShortSegmentRecall(recall, n_segments, n_found)
