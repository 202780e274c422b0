"""Fitting the proposal rescorer (:class:`avdf.inference.decode.ProposalRescorer`) on a dev
split, for ``avdf tune``.

    dev videos' steps -> every candidate the tuned decoding makes (before soft-NMS), its
    features and whether it overlaps a true fake segment at IoU >= 0.5
    -> the mix (how much the rescorer's probability replaces the decoder's score) chosen
       by 2-fold cross-fitting on the dev videos: a rescorer fitted on one half is judged
       on the other half by the tuning objective, for every mix in ``MIXES``; mix 0 (no
       rescorer) wins ties, so the rescorer is kept only where it helps videos it never saw
    -> refitted on every dev video with the chosen mix, and dropped if it then lowers the
       objective on the whole dev split (tuning never makes the dev figures worse).

The cross-fitting also gives every dev video a held-out best-proposal score (from the
rescorer fitted on the other half), which ``avdf tune`` may choose as the video score.

Why: with the decoder's own score, 97-99% of true segments had a proposal at IoU >= 0.5
among a video's 100, yet AP@0.5 stayed near 36 (fold 0): the right proposals were there
but ranked below wrong ones. The rescorer learns how to rank them from the evidence the
decoder already has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from avdf.inference.decode import (
    DecodeConfig,
    ProposalRescorer,
    candidate_features,
    decode_candidates,
    decode_proposals,
)
from avdf.inference.detector import Detector, StepOutputs
from avdf.inference.probe import fit_logistic
from avdf.metrics.localization import temporal_iou
from avdf.types import Sample

MIXES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0: the decoder's score alone
RIDGE = 100.0  # L2 on standardised features: tens of thousands of candidates, 14 features
HIT_IOU = 0.5  # a candidate is a hit when it overlaps a true fake segment this much

Items = Sequence[tuple[Sample, StepOutputs]]
Objective = Callable[[Items, ProposalRescorer | None], float]


@dataclass(frozen=True)
class RescorerFit:
    rescorer: ProposalRescorer | None  # None: no mix beat the decoder's own score
    held_out: dict[float, float] = field(default_factory=dict)  # mix -> cross-fitted objective
    n_candidates: int = 0
    n_hits: int = 0
    # per dev video, its best proposal's score under the rescorer fitted on the other half
    # with the chosen mix (the decoder's own score where no rescorer is kept)
    held_out_top: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective by mix (2-fold cross-fitted on dev)": {
                str(m): v for m, v in self.held_out.items()
            },
            "mix": 0.0 if self.rescorer is None else self.rescorer.mix,
            "candidates": self.n_candidates,
            f"hits (IoU >= {HIT_IOU})": self.n_hits,
        }


def candidate_table(
    items: Items, decode: DecodeConfig
) -> list[tuple[np.ndarray, np.ndarray, int] | None]:
    """Per video of ``items``, every candidate under ``decode``: its features (M, F), hit
    labels (M,) and the number of pyramid levels; None for a video without candidates."""
    table: list[tuple[np.ndarray, np.ndarray, int] | None] = []
    for sample, steps in items:
        candidates = decode_candidates(**Detector.decoder_inputs(steps), config=decode)
        if candidates is None:
            table.append(None)
            continue
        features = candidate_features(candidates)
        truth = np.array([[s.start, s.end] for s in sample.fake_segments], np.float64)
        ends = np.column_stack([candidates.starts_s, candidates.ends_s])
        iou = np.zeros(len(candidates))
        if len(truth):
            iou = np.nan_to_num(temporal_iou(ends, truth.reshape(-1, 2)), nan=0.0).max(axis=1)
        table.append((features, iou >= HIT_IOU, candidates.n_levels))
    return table


def fit_on(
    rows: Sequence[tuple[np.ndarray, np.ndarray, int] | None], mix: float
) -> ProposalRescorer | None:
    """A rescorer fitted on the candidates of ``rows`` (from :func:`candidate_table`);
    None when they hold no hit or nothing but hits (nothing to learn)."""
    present = [r for r in rows if r is not None]
    if not present:
        return None
    x = np.vstack([r[0] for r in present])
    y = np.concatenate([r[1] for r in present])
    if y.all() or not y.any():
        return None
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    scale = np.where(sd > 1e-9, sd, 1.0)  # a constant feature (an unused level) stays 0
    w = fit_logistic((x - mean) / scale, y.astype(np.float64), RIDGE)
    return ProposalRescorer(
        tuple(mean.tolist()), tuple(scale.tolist()), tuple(w[:-1].tolist()), float(w[-1]),
        mix, present[0][2],
    )  # fmt: skip


def top_proposal_score(
    steps: StepOutputs, decode: DecodeConfig, rescorer: ProposalRescorer | None
) -> float:
    """The best proposal's score of a video (0 without proposals), as the detector decodes."""
    segments = decode_proposals(**Detector.decoder_inputs(steps), config=decode, rescorer=rescorer)
    return max((float(s.score) for s in segments), default=0.0)


def fit_rescorer(
    items: Items, decode: DecodeConfig, objective: Objective, fit: bool = True
) -> RescorerFit:
    """The rescorer for ``decode`` on the dev ``items`` (module docstring); ``objective``
    scores a set of videos decoded with a rescorer (None: the decoder's own score). With
    ``fit=False`` none is fitted (the held-out best-proposal scores are the decoder's)."""

    def decoders_own_top() -> tuple[float, ...]:
        return tuple(top_proposal_score(st, decode, None) for _, st in items)

    if not fit:
        return RescorerFit(None, held_out_top=decoders_own_top())
    table = candidate_table(items, decode)
    halves = [list(items[0::2]), list(items[1::2])]
    fitted = [fit_on(table[0::2], 1.0), fit_on(table[1::2], 1.0)]
    n_candidates = sum(len(r[1]) for r in table if r is not None)
    n_hits = sum(int(r[1].sum()) for r in table if r is not None)
    if fitted[0] is None or fitted[1] is None:
        return RescorerFit(None, {}, n_candidates, n_hits, decoders_own_top())
    held_out: dict[float, float] = {}
    for mix in MIXES:
        values = [
            objective(halves[1 - k], None if mix == 0.0 else replace(fitted[k], mix=mix))
            for k in (0, 1)
        ]
        held_out[mix] = float(np.mean(values))
    best = max(MIXES, key=lambda m: (held_out[m], -m))  # ties: the smaller mix
    rescorer = None if best == 0.0 else fit_on(table, best)
    # Refitted on every dev video, it must not lower the objective there either: tuning
    # never makes the dev figures worse.
    if rescorer is not None and objective(items, rescorer) < objective(items, None):
        rescorer = None
    top = [0.0] * len(items)
    for k in (0, 1):  # half k scored by the rescorer fitted on the other half
        other = None if rescorer is None else replace(fitted[1 - k], mix=best)
        for i in range(k, len(items), 2):
            top[i] = top_proposal_score(items[i][1], decode, other)
    return RescorerFit(rescorer, held_out, n_candidates, n_hits, tuple(top))
