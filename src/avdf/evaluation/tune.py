"""``avdf tune``: fit a checkpoint's post-processing on a dev split (DESIGN §12.5, after
pyannote's tuned pipelines) and store it in the checkpoint.

    dev samples -> Detector once per video (from the cache when complete, exactly as
    dataset evaluation) -> stitched StepOutputs kept in memory (a few floats per step)
      (a) decoding: every combination of ``decode.SEARCH_SPACE`` is decoded from the kept
          steps and scored by the official AP@0.5 + AR@100 (LAV-DF preset); the current
          parameters are kept unless a combination is strictly better (split with temporal
          labels only); then a proposal rescorer for those parameters
          (:mod:`avdf.evaluation.rescore`), kept when it helps dev videos it was not
          fitted on;
      (b) calibration of the raw video score (the detector's score before calibration):
          first how it pools the video (``Calibration.top_fraction``, one of
          ``VIDEO_POOLS``) by the best mean over the split's datasets of their video AUC
          (pools with fitted parts, the best proposal after the rescorer and the video
          stacker of :mod:`avdf.inference.video_score`, judged on 2-fold cross-fitted
          dev scores);
          for a checkpoint with a video probe (given ``probe``, fitted on another labelled
          folder by :mod:`avdf.evaluation.probe`), the blend of the probe's logit and that
          pooled score's (:func:`fit_blend`: on dev and on the probe folder's held-out
          scores, each dataset weighing alike); then temperature and shift by minimum
          log-loss, then the decision ``threshold`` of best dev accuracy on the calibrated
          probability, and ``segment_threshold`` of best step-level F1 on the step fake
          probabilities.
    -> checkpoint extra["decode"], extra["calibration"] (tuned=True), extra["tuning"] (dev
       figures before / after), extra["video_probe"] (when fitted),
       extra["proposal_rescorer"] (when kept), extra["video_stacker"] (when its pool is
       chosen), extra["test_time_flip"], written atomically beside the input.

:func:`tune_outputs` is the core on outputs already in memory (a training loop can call it
with a ``Detector`` built around its model); :func:`tune_checkpoint` is the command's body.
Only the dev split is ever used: tuning on a test fold would leak it (DESIGN §12.4). The
probe's folder must not hold test clips either; clips of the dev split (and their re-encoded
copies) are left out of it, so the calibration is fitted on clips the probe never saw.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from avdf.errors import AvdfError, OutputExistsError
from avdf.evaluation.dataset import iter_sample_steps, load_split, official_name
from avdf.evaluation.rescore import RescorerFit, fit_rescorer, top_proposal_score
from avdf.inference.calibration import Calibration, logit
from avdf.inference.decode import SEARCH_SPACE, DecodeConfig, ProposalRescorer
from avdf.inference.detector import Detector, StepOutputs
from avdf.inference.probe import VideoProbe, fit_logistic
from avdf.inference.video_score import (
    BASE_STATISTICS,
    VideoStacker,
    aggregate_video_score,
    video_statistics,
)
from avdf.metrics import best_threshold, evaluate_localization, roc_auc
from avdf.types import Prediction, Sample

# Raw video score pooling candidates: None is the untuned rule (max of the window mean and
# the step maximum); a fraction q is the mean of the top q of the step probabilities;
# PROPOSAL_POOL is the best proposal's score (after the proposal rescorer); STACKED_POOL a
# logistic regression over all of these and the modality maxima, fitted on dev.
PROPOSAL_POOL = "best proposal"
STACKED_POOL = "stacked statistics"  # the video stacker (avdf.inference.video_score)
VIDEO_POOLS: tuple[float | str | None, ...] = (None, 0.1, 0.25, 0.5, PROPOSAL_POOL, STACKED_POOL)
TUNING_PRESET = "lavdf"  # the objective is AP@0.5 + AR@100, both in the LAV-DF preset
_EPS = 1e-6  # raw scores are clipped to [eps, 1 - eps] before the logit (as Calibration)
_MIN_INVERSE_TEMPERATURE = 1e-3  # a score that carries no information: T = 1000, not < 0


@dataclass
class DevOutputs:
    """The stitched outputs of the labelled videos of a split, kept in memory."""

    items: list[tuple[Sample, StepOutputs]]
    failed: list[str] = field(default_factory=list)  # "path: cause" lines
    n_cached: int = 0  # videos read from the feature cache


@dataclass(frozen=True)
class TuningResult:
    decode: DecodeConfig
    calibration: Calibration
    before: dict[str, float]  # dev figures with the checkpoint's stored parameters
    after: dict[str, float]  # ... and with the tuned ones
    search: list[dict[str, Any]]  # every decoding combination tried with its objective
    n_videos: int
    pools: list[dict[str, Any]] = field(default_factory=list)  # every video pool tried
    probe: Any = None  # the avdf.evaluation.probe.ProbeFit when one was fitted
    video_probe: VideoProbe | None = None  # the probe with its blend, as stored
    rescoring: RescorerFit | None = None  # None: decoding not tuned (no temporal labels)
    video_stacker: VideoStacker | None = None  # when the stacked pool was chosen

    def to_dict(self) -> dict[str, Any]:
        """The ``extra["tuning"]`` record (JSON-serialisable)."""
        return {
            "n_videos": self.n_videos,
            "objective": "AP@0.5 + AR@100 (official, LAV-DF preset)",
            "before": self.before,
            "after": self.after,
            "search": self.search,
            "video_pools": self.pools,
            **({"video_probe": self.probe.to_dict()} if self.probe is not None else {}),
            **(
                {"proposal_rescorer": self.rescoring.to_dict()}
                if self.rescoring is not None
                else {}
            ),
        }


# --- collecting ---------------------------------------------------------------------------


def collect_outputs(
    detector: Detector,
    samples: Sequence[Sample],
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> DevOutputs:
    """Run ``detector`` once over the labelled ``samples`` and keep each video's steps."""
    out = DevOutputs(items=[])
    labelled = [s for s in samples if s.label is not None]
    for sample, steps, status in iter_sample_steps(
        detector, labelled, cache_dir, progress, desc="avdf tune"
    ):
        if steps is None:
            out.failed.append(str(status))
            continue
        out.n_cached += status is True
        out.items.append((sample, steps))
    return out


# --- figures ------------------------------------------------------------------------------


def _predictions(
    detector: Detector,
    items: Sequence[tuple[Sample, StepOutputs]],
    decode: DecodeConfig,
    calibration: Calibration,
    rescorer: ProposalRescorer | None,
) -> list[Prediction]:
    # A shallow copy shares the model (and probe); only the post-processing differs.
    tuner = copy.copy(detector)
    tuner.decode_config, tuner.calibration, tuner.rescorer = decode, calibration, rescorer
    return [tuner.predict(steps, official_name(sample)) for sample, steps in items]


def _has_temporal_labels(items: Sequence[tuple[Sample, StepOutputs]]) -> bool:
    return any(sample.fake_segments for sample, _ in items)


def localization_figures(
    items: Sequence[tuple[Sample, StepOutputs]], predictions: Sequence[Prediction]
) -> dict[str, float]:
    """Official AP@0.5, AP@0.75, AR@100 and the tuning objective AP@0.5 + AR@100."""
    proposals = {p.video_id: p.segments for p in predictions}
    labels = {official_name(s): s.fake_segments for s, _ in items}
    loc = evaluate_localization(proposals, labels, TUNING_PRESET)
    return {
        "AP@0.5": loc.ap[0.5],
        "AP@0.75": loc.ap[0.75],
        "AR@100": loc.ar[100],
        "objective": loc.ap[0.5] + loc.ar[100],
    }


def log_loss(probabilities: Any, labels: Any) -> float:
    """Mean binary cross-entropy (natural log) of probabilities against 0/1 labels."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1.0 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def step_arrays(
    items: Sequence[tuple[Sample, StepOutputs]],
) -> tuple[np.ndarray, np.ndarray]:
    """All dev steps pooled: fake probabilities (S,) and 0/1 targets (S,) on the step grid
    (a step is fake when its centre lies in a fake segment, as in training)."""
    from avdf.data.targets import step_targets

    probs = [steps.fake_prob for _, steps in items]
    targets = [step_targets(sample, steps.spec, steps.n_steps).fake for sample, steps in items]
    if not probs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(probs).astype(np.float64), np.concatenate(targets).astype(np.int64)


def step_f1(probabilities: np.ndarray, targets: np.ndarray, threshold: float) -> float:
    """F1 of "fake step" = probability >= threshold, pooled over all steps."""
    predicted = probabilities >= threshold
    positive = targets.astype(bool)
    tp = int((predicted & positive).sum())
    denominator = int(predicted.sum()) + int(positive.sum())
    return 2.0 * tp / denominator if denominator else 0.0


def dev_figures(
    detector: Detector,
    items: Sequence[tuple[Sample, StepOutputs]],
    decode: DecodeConfig,
    calibration: Calibration,
    rescorer: ProposalRescorer | None,
) -> dict[str, float]:
    """Everything the before / after table shows, for one set of parameters."""
    predictions = _predictions(detector, items, decode, calibration, rescorer)
    figures: dict[str, float] = {}
    if _has_temporal_labels(items):
        figures.update(localization_figures(items, predictions))
    scores = [p.score for p in predictions]
    labels = [int(s.label or 0) for s, _ in items]
    figures["AUC"] = roc_auc(scores, labels) if len(set(labels)) == 2 else float("nan")
    figures["log-loss"] = log_loss(scores, labels)
    figures["ACC"] = float(np.mean([(p >= calibration.threshold) == y for p, y in
                                    zip(scores, labels, strict=True)]))  # fmt: skip
    step_probs, step_targets_ = step_arrays(items)
    figures["step F1"] = step_f1(step_probs, step_targets_, calibration.segment_threshold)
    return figures


# --- (a) decoding -------------------------------------------------------------------------


def search_decoding(
    detector: Detector,
    items: Sequence[tuple[Sample, StepOutputs]],
    search_space: Mapping[str, Sequence[Any]] | None = None,
    current: DecodeConfig | None = None,
) -> tuple[DecodeConfig, list[dict[str, Any]]]:
    """The decoding parameters of best dev AP@0.5 + AR@100 over the grid of every
    combination of ``search_space`` (field -> candidate values; default
    ``decode.SEARCH_SPACE``), each built as ``DecodeConfig(**combination)``. ``current`` (the
    checkpoint's parameters) is kept unless a combination is strictly better, so tuning
    never lowers the dev objective. Candidates are scored by the decoder alone (a proposal
    rescorer is fitted afterwards, for the chosen parameters). Returns the choice and every
    row tried."""
    space = dict(SEARCH_SPACE if search_space is None else search_space)
    current = current or detector.decode_config
    identity = Calibration()  # decoding does not depend on calibration

    def objective(config: DecodeConfig) -> float:
        predictions = _predictions(detector, items, config, identity, None)
        return localization_figures(items, predictions)["objective"]

    best, best_value = current, objective(current)
    rows: list[dict[str, Any]] = [{"params": current.to_dict(), "objective": best_value}]
    names = list(space)
    for values in itertools.product(*(space[n] for n in names)):
        config = DecodeConfig(**dict(zip(names, values, strict=True)))
        value = objective(config)
        rows.append({"params": config.to_dict(), "objective": value})
        if value > best_value:
            best, best_value = config, value
    return best, rows


# --- (b) calibration ----------------------------------------------------------------------


def fit_temperature_shift(
    raw_scores: Any, labels: Any, iterations: int = 100
) -> tuple[float, float]:
    """``(temperature, shift)`` minimising the log-loss of
    ``sigmoid((logit(raw) - shift) / temperature)`` on 0/1 ``labels``.

    Solved as the logistic regression ``sigmoid(a z + b)`` (``a = 1 / T``, ``b = -shift / T``)
    by Newton's method with a backtracking line search; it is convex in (a, b). Platt's
    targets ((N+ + 1) / (N+ + 2) for fakes, 1 / (N- + 2) for reals) replace 0/1 so a dev split
    that the raw score separates perfectly still gets a finite temperature. ``a`` is kept
    >= 1e-3: a score anti-correlated with the labels gets T = 1000 (an almost constant
    probability), never a negative temperature.
    """
    z = logit(raw_scores)
    y = np.asarray(labels, dtype=np.float64)
    if z.shape != y.shape or not len(z):
        raise ValueError("need one label per score, and at least one score")
    n_fake, n_real = float(y.sum()), float(len(y) - y.sum())
    target = np.where(y > 0, (n_fake + 1.0) / (n_fake + 2.0), 1.0 / (n_real + 2.0))

    def loss(a: float, b: float) -> float:
        u = a * z + b
        # log(1 + e^u) - t u, written to stay finite for large |u|
        return float(np.mean(np.logaddexp(0.0, u) - target * u))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        residual, weight = p - target, p * (1.0 - p)
        gradient = np.array([np.mean(residual * z), np.mean(residual)])
        hessian = np.array(
            [[np.mean(weight * z * z), np.mean(weight * z)], [np.mean(weight * z), np.mean(weight)]]
        ) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:
            new_a = max(a - scale * step[0], _MIN_INVERSE_TEMPERATURE)
            new_b = b - scale * step[1]
            new = loss(new_a, new_b)
            if new <= current:
                break
            scale *= 0.5
        else:
            break
        converged = current - new < 1e-12
        a, b, current = new_a, new_b, new
        if converged:
            break
    return float(1.0 / a), float(-b / a)


def fit_calibration(
    raw_scores: Any,
    labels: Any,
    step_probabilities: Any | None = None,
    step_targets: Any | None = None,
    base: Calibration | None = None,
) -> Calibration:
    """A tuned :class:`Calibration`: temperature and shift (:func:`fit_temperature_shift`),
    the decision threshold of best accuracy on the calibrated probabilities and, when step
    arrays are given, the segment threshold of best step-level F1. The other fields
    (uncertain band, modality threshold) are kept from ``base`` (default: the defaults)."""
    base = base or Calibration()
    labels = np.asarray(labels)
    temperature, shift = fit_temperature_shift(raw_scores, labels)
    fitted = Calibration(
        temperature=temperature,
        shift=shift,
        uncertain_band=base.uncertain_band,
        modality_threshold=base.modality_threshold,
        segment_threshold=base.segment_threshold,
    )
    calibrated = [fitted.calibrate(s) for s in np.asarray(raw_scores, dtype=np.float64)]
    threshold = best_threshold(calibrated, labels, "accuracy")
    segment_threshold = base.segment_threshold
    if step_probabilities is not None and step_targets is not None:
        targets = np.asarray(step_targets)
        if targets.any():  # with no fake step F1 is 0 everywhere: keep the default
            segment_threshold = best_threshold(step_probabilities, targets, "f1")
    return Calibration(
        temperature=temperature,
        shift=shift,
        threshold=threshold,
        uncertain_band=base.uncertain_band,
        segment_threshold=segment_threshold,
        modality_threshold=base.modality_threshold,
        tuned=True,
    )


def raw_video_scores(
    items: Sequence[tuple[Sample, StepOutputs]],
    pool: float | str | None,
    fitted_scores: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """The detector's raw (uncalibrated) video score of each item under one pooling; for a
    pool with fitted parts (``PROPOSAL_POOL``, ``STACKED_POOL``), ``fitted_scores[pool]``
    (each item's score under it) are it."""
    if isinstance(pool, str):
        scores = (fitted_scores or {}).get(pool)
        if scores is None or len(scores) != len(items):
            raise ValueError(f"the pool {pool!r} needs each video's score under it")
        return np.asarray(scores, dtype=np.float64)
    return np.array(
        [aggregate_video_score(st.window_video_prob, st.fake_prob, pool) for _, st in items]
    )


def choose_video_pool(
    items: Sequence[tuple[Sample, StepOutputs]],
    pools: Sequence[float | str | None] = VIDEO_POOLS,
    fitted_scores: Mapping[str, Sequence[float]] | None = None,
) -> tuple[float | str | None, list[dict[str, Any]]]:
    """The pooling of best mean video AUC over the datasets of the split (``Sample.dataset``
    with both classes; e.g. the synthetic corpus and realworld-train count once each, so a
    few whole-video fakes are not outvoted by many short edits), and every pool's figures.
    Ties keep the earlier pool: the untuned rule unless another is strictly better.
    A pool with fitted parts is tried only with its scores in ``fitted_scores``, which
    must be held-out ones (a rescorer's or stacker's scores of the videos it was fitted on
    would flatter it)."""
    labels = np.array([int(s.label or 0) for s, _ in items])
    names = np.array([s.dataset for s, _ in items])
    parts = [d for d in sorted(set(names)) if len(set(labels[names == d])) == 2]
    rows, best, best_value = [], pools[0], -math.inf
    for pool in pools:
        if isinstance(pool, str) and pool not in (fitted_scores or {}):
            continue
        raw = raw_video_scores(items, pool, fitted_scores)
        aucs = {d: roc_auc(raw[names == d], labels[names == d]) for d in parts}
        value = float(np.mean(list(aucs.values()))) if aucs else roc_auc(raw, labels)
        rows.append({"pool": pool, "mean AUC": value, **{f"AUC {d}": a for d, a in aucs.items()}})
        if value > best_value + 1e-12:
            best, best_value = pool, value
    return best, rows


def dataset_weights(samples: Sequence[Sample]) -> np.ndarray:
    """Per sample, a loss weight under which every dataset of ``samples`` weighs alike in
    total (mean 1), as :func:`choose_video_pool` averages over datasets."""
    names = np.array([s.dataset for s in samples])
    counts = {d: int(np.sum(names == d)) for d in set(names)}
    return np.array([len(names) / counts[d] for d in names]) / len(counts)


def fit_video_stacker(
    items: Sequence[tuple[Sample, StepOutputs]],
    best_proposals: Sequence[float],
    statistics: tuple[str, ...] = BASE_STATISTICS,
) -> tuple[VideoStacker | None, np.ndarray | None]:
    """The video stacker (:mod:`avdf.inference.video_score`) fitted on every dev item, and
    each item's held-out stacked score from a stacker fitted on the other half (2-fold by
    index parity, as the proposal rescorer); ``best_proposals`` must themselves be held-out
    scores. The stacker reads the named ``statistics``. (None, None) when a half lacks a
    class."""
    stats = np.array(
        [video_statistics(st, top) for (_, st), top in zip(items, best_proposals, strict=True)]
    )
    labels = np.array([int(s.label or 0) for s, _ in items])
    weights = dataset_weights([s for s, _ in items])
    index = np.arange(len(items))
    held = np.empty(len(items))
    for k in (0, 1):
        fit, judge = index % 2 != k, index % 2 == k
        if len(set(labels[fit])) < 2 or not judge.any():
            return None, None
        stacker = VideoStacker.fit(stats[fit], labels[fit], weights[fit], statistics)
        held[judge] = [stacker.score(x) for x in stats[judge]]
    return VideoStacker.fit(stats, labels, weights, statistics), held


# --- the whole tuning ---------------------------------------------------------------------


def tune_outputs(
    detector: Detector,
    items: Sequence[tuple[Sample, StepOutputs]],
    search_space: Mapping[str, Sequence[Any]] | None = None,
    probe: VideoProbe | None = None,
    held_out: Sequence[tuple[Sample, StepOutputs, float]] = (),
    rescore: bool = True,
    stack_statistics: tuple[str, ...] = BASE_STATISTICS,
) -> TuningResult:
    """Decoding parameters and calibration fitted on labelled dev outputs (see the module
    docstring). ``detector``'s own parameters are the "before" column and are not changed;
    ``probe`` (default: the detector's own, if any) scores the videos "after". ``held_out``:
    the probe's own clips with their held-out probe logits, which the blend is fitted on
    beside the dev split (:func:`fit_blend`). ``rescore=False`` fits no proposal rescorer
    (and drops the checkpoint's). ``stack_statistics``: what the video stacker may read."""
    if not items:
        raise AvdfError("no labelled video to tune on")
    labels = np.array([int(s.label or 0) for s, _ in items])
    _check_both_classes(labels.tolist())
    before = dev_figures(
        detector, items, detector.decode_config, detector.calibration, detector.rescorer
    )
    tuned = copy.copy(detector)  # shares the model; only the post-processing differs
    tuned.probe = probe if probe is not None else detector.probe
    decode, search, rescoring = detector.decode_config, [], None
    if _has_temporal_labels(items):
        decode, search = search_decoding(detector, items, search_space)
        rescoring = fit_proposal_rescorer(detector, items, decode, fit=rescore)
        tuned.rescorer = rescoring.rescorer
    # Each dev video's best proposal score from a rescorer that never saw it: the pool is
    # judged, and the calibration fitted, on scores like those unseen videos will get.
    top = None if rescoring is None else rescoring.held_out_top
    # Without temporal labels no rescorer is refitted: the stored one never saw these videos.
    stack_top = (
        top
        if top is not None
        else [top_proposal_score(st, decode, tuned.rescorer) for _, st in items]
    )
    stacker, stacked = fit_video_stacker(items, stack_top, stack_statistics)
    fitted = {PROPOSAL_POOL: top, STACKED_POOL: stacked}
    fitted = {name: scores for name, scores in fitted.items() if scores is not None}
    pool, pools = choose_video_pool(items, fitted_scores=fitted)
    tuned.stacker = stacker if pool == STACKED_POOL else None
    raw = raw_video_scores(items, pool, fitted)  # the detector's score before calibration
    if tuned.probe is not None:
        held_items = [(s, st) for s, st, _ in held_out]
        held_top = [top_proposal_score(st, decode, tuned.rescorer) for _, st in held_items]
        held_fitted = {PROPOSAL_POOL: held_top}
        if tuned.stacker is not None:  # fitted on dev, so held out for the probe's clips
            held_fitted[STACKED_POOL] = [
                tuned.stacker.score(video_statistics(st, t))
                for (_, st), t in zip(held_items, held_top, strict=True)
            ]
        held_rule = raw_video_scores(held_items, pool, held_fitted)
        rows = [(s, z, r) for (s, _, z), r in zip(held_out, held_rule, strict=True)]
        tuned.probe = fit_blend(tuned.probe, items, raw, rows)
        raw = np.array(
            [tuned.probe.score(st.block_summary, r) for (_, st), r in zip(items, raw, strict=True)]
        )
    step_probs, step_targets_ = step_arrays(items)
    calibration = fit_calibration(raw, labels, step_probs, step_targets_)
    from_proposals = pool == PROPOSAL_POOL
    # A pool with fitted parts is in the detector (rescorer, stacker), not in the calibration.
    top_fraction = None if isinstance(pool, str) else pool
    calibration = replace(calibration, top_fraction=top_fraction, from_proposals=from_proposals)
    # Platt's smoothed targets can, on a tiny dev split, leave the plain dev log-loss above
    # that of the stored temperature and shift: then those are kept (never worse on dev),
    # when they were fitted to the same raw score.
    current = detector.calibration
    same_score = (
        tuned.probe is detector.probe
        and tuned.stacker is None  # a refitted stacker changes the scores
        and detector.stacker is None
        and not from_proposals  # a refitted rescorer changes the proposals' scores
        and not current.from_proposals
        and current.top_fraction == pool
    )
    if same_score and log_loss([current.calibrate(s) for s in raw], labels) < log_loss(
        [calibration.calibrate(s) for s in raw], labels
    ):
        calibration = replace(calibration, temperature=current.temperature, shift=current.shift)
        calibrated = [calibration.calibrate(s) for s in raw]
        calibration = replace(calibration, threshold=best_threshold(calibrated, labels))
    after = dev_figures(tuned, items, decode, calibration, tuned.rescorer)
    return TuningResult(
        decode, calibration, before, after, search, len(items), pools,
        video_probe=tuned.probe, rescoring=rescoring, video_stacker=tuned.stacker,
    )  # fmt: skip


def fit_proposal_rescorer(
    detector: Detector,
    items: Sequence[tuple[Sample, StepOutputs]],
    decode: DecodeConfig,
    fit: bool = True,
) -> RescorerFit:
    """:func:`avdf.evaluation.rescore.fit_rescorer` judged by the tuning objective; with
    ``fit=False`` none is fitted (the held-out best-proposal scores are the decoder's)."""
    identity = Calibration()  # decoding does not depend on calibration

    def objective(
        subset: Sequence[tuple[Sample, StepOutputs]], rescorer: ProposalRescorer | None
    ) -> float:
        predictions = _predictions(detector, subset, decode, identity, rescorer)
        return localization_figures(subset, predictions)["objective"]

    return fit_rescorer(items, decode, objective, fit)


def fit_blend(
    probe: VideoProbe,
    items: Sequence[tuple[Sample, StepOutputs]],
    rule_scores: Any,
    held_out: Sequence[tuple[Sample, float, float]] = (),
) -> VideoProbe:
    """``probe`` with its blend weights (:mod:`avdf.inference.probe`) fitted on the dev
    items (and on ``held_out``: ``(sample, held-out probe logit, rule score)`` of the
    probe's own clips, scored by probes that never saw their generator): a logistic
    regression of the labels on [probe logit, logit(rule score)], each dataset weighing
    alike in total (a few whole-video fakes are not outvoted by many short edits, as in
    :func:`choose_video_pool`)."""
    rows = [
        (sample, float(probe.logit(steps.block_summary)), float(rule))
        for (sample, steps), rule in zip(items, rule_scores, strict=True)
    ] + [(sample, float(z), float(rule)) for sample, z, rule in held_out]
    x = np.array([[z, float(logit(rule))] for _, z, rule in rows])
    labels = np.array([int(s.label or 0) for s, _, _ in rows], np.float64)
    w = fit_logistic(x, labels, 1e-3, sample_weight=dataset_weights([s for s, _, _ in rows]))
    return replace(probe, probe_weight=float(w[0]), rule_weight=float(w[1]), blend_bias=float(w[2]))


def _check_both_classes(labels: Sequence[int]) -> None:
    if len(set(labels)) < 2:
        raise AvdfError("the dev split needs both real and fake videos to fit a calibration")


def default_output(checkpoint: str | Path) -> Path:
    """``<stem>-tuned.ckpt`` beside the input checkpoint."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}-tuned.ckpt")


def json_safe(value: Any) -> Any:
    """Plain Python numbers (numpy scalars would not load under ``weights_only=True``), and
    None for undefined figures (JSON has no NaN)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def tune_checkpoint(
    checkpoint: str | Path,
    dataset: str | None,
    root: str | Path | None,
    split: str = "dev",
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    force: bool = False,
    manifest: str | Path | None = None,
    search_space: Mapping[str, Sequence[Any]] | None = None,
    progress: bool = False,
    detector: Detector | None = None,
    probe_root: str | Path | None = None,
    probe_cache: str | Path | None = None,
    probe_groups: int | None = None,
    rescore: bool = True,
    stack_statistics: tuple[str, ...] = BASE_STATISTICS,
    flip: bool | None = None,
) -> tuple[Path, TuningResult, DevOutputs]:
    """Tune ``checkpoint`` on ``split`` of ``dataset`` under ``root`` (or of ``manifest``)
    and write the tuned checkpoint to ``out`` (default :func:`default_output`) atomically;
    an existing ``out`` is kept unless ``force``. With ``probe_root`` (a ``labels.tsv``
    folder of the realworld layout; its features from ``probe_cache``) a video probe is
    fitted on it first, its ridge chosen leave-generators-out over ``probe_groups`` groups
    (:mod:`avdf.evaluation.probe`). Returns the path, the result and the dev outputs (their
    ``failed`` lines name unreadable videos of the dev split and the probe's folder, which
    are left out). ``rescore=False``: no proposal rescorer; ``stack_statistics``: what the
    video stacker may read (:func:`tune_outputs`). ``flip`` (None: as the checkpoint says)
    switches the detector's test-time flip for the tuning and in the tuned checkpoint: the
    calibration is fitted on the scores the detector will give."""
    from avdf.models.checkpoint import save_checkpoint

    target = Path(out) if out is not None else default_output(checkpoint)
    if target.exists() and not force:
        raise OutputExistsError(target)  # before minutes of inference
    dataset, samples = load_split(dataset, root, split, manifest)
    _check_both_classes([int(s.label) for s in samples if s.label is not None])
    detector = detector or Detector.from_checkpoint(checkpoint)
    if flip is not None and flip != detector.flip:
        detector = copy.copy(detector)  # shares the model; the caller's keeps its setting
        detector.flip = flip
    fitted, held_out = None, []
    probe_failed: list[str] = []
    if probe_root is not None:
        fitted, probe_outputs = _fit_probe(
            detector, probe_root, probe_cache, probe_groups, samples, progress
        )
        probe_failed = probe_outputs.failed
        held_out = [
            (s, st, fitted.held_out[s.id])
            for s, st in probe_outputs.items
            if s.id in fitted.held_out
        ]
    outputs = collect_outputs(detector, samples, cache_dir, progress)
    outputs.failed.extend(probe_failed)
    result = tune_outputs(
        detector, outputs.items, search_space, None if fitted is None else fitted.probe, held_out,
        rescore, stack_statistics,
    )  # fmt: skip
    result = replace(result, probe=fitted)
    extra = dict(detector.info.get("extra") or {})
    # Keep the window the detector ran with, whatever the source checkpoint's format.
    extra.setdefault("window_steps", detector.window_steps)
    extra["test_time_flip"] = detector.flip
    extra["decode"] = json_safe(result.decode.to_dict())
    extra["calibration"] = json_safe(result.calibration.to_dict())
    extra["tuning"] = json_safe(
        {**result.to_dict(), "dataset": dataset, "split": split, "failed": len(outputs.failed)}
    )
    if result.video_probe is not None:
        extra["video_probe"] = result.video_probe.to_dict()
    if result.rescoring is not None:  # refitted for the tuned decoding, or dropped
        extra.pop("proposal_rescorer", None)
        if result.rescoring.rescorer is not None:
            extra["proposal_rescorer"] = json_safe(result.rescoring.rescorer.to_dict())
    extra.pop("video_stacker", None)  # refitted with the pool, or dropped
    if result.video_stacker is not None:
        extra["video_stacker"] = json_safe(result.video_stacker.to_dict())
    save_checkpoint(target, detector.model, detector.spec, extra)
    return target, result, outputs


def _fit_probe(
    detector: Detector,
    root: str | Path,
    cache_dir: str | Path | None,
    groups: int | None,
    dev: Sequence[Sample],
    progress: bool,
) -> tuple[Any, DevOutputs]:
    """A ProbeFit on the folder at ``root`` without the dev split's clips, and the
    folder's outputs."""
    from avdf.datasets import load_dataset
    from avdf.datasets.realworld import source_clip
    from avdf.evaluation.probe import DEFAULT_GROUPS, fit_probe, summaries_of

    dev_clips = {source_clip(s) for s in dev}
    samples = [
        s
        for s in load_dataset("realworld", root, split_by="none")
        if source_clip(s) not in dev_clips
    ]
    collected = collect_outputs(detector, samples, cache_dir, progress)
    try:
        fit = fit_probe(
            [s for s, _ in collected.items],
            summaries_of(collected.items),
            DEFAULT_GROUPS if groups is None else groups,
        )
    except ValueError as e:
        raise AvdfError(f"{root}: {e}") from None
    return fit, collected
