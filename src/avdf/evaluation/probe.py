"""Fitting a video probe (:mod:`avdf.inference.probe`) on a labelled folder of genuine
generator outputs, for ``avdf tune --probe FOLDER``.

    folder (labels.tsv, e.g. the re-encoded realworld-train) -> Detector once per clip (from
    the cache when complete) -> block summary per clip
      -> for each ridge in RIDGES: leave-generators-out folds (``logo_folds``: each fake
         family's clips and a share of the reals held out once; one copy per real scored),
         held-out probe scores, their AUC pooled over the folds
      -> the ridge of best pooled AUC (ties: the strongest, the simplest probe), refitted on
         every clip

The pooled held-out AUC is the probe's measured carry-over to generators it did not see; the
chosen ridge's row is optimistic by that one choice among five.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avdf.datasets.realworld import copy_index, logo_folds
from avdf.inference.probe import VideoProbe
from avdf.metrics import roc_auc
from avdf.types import Sample

RIDGES: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4)  # on standardised features
DEFAULT_GROUPS = 4  # fake families dealt into 4 held-out groups


@dataclass(frozen=True)
class ProbeFit:
    probe: VideoProbe  # refitted on every clip with the chosen ridge
    logo: list[dict[str, float]]  # per ridge: pooled held-out AUC, mean of the folds' AUCs
    held_out: dict[str, float]  # clip id -> held-out probe logit at the chosen ridge
    folds: dict[str, int]  # clip id -> the fold that held it out
    n_fakes: int
    n_reals: int
    groups: int | None

    def to_dict(self) -> dict[str, Any]:
        """The record stored beside the probe (JSON-serialisable)."""
        return {
            "ridge": self.probe.ridge,
            "groups": self.groups,
            "fakes": self.n_fakes,
            "reals": self.n_reals,
            "leave_generators_out": self.logo,
        }


def summaries_of(items: Sequence[tuple[Sample, Any]]) -> dict[str, np.ndarray]:
    """Clip id -> block summary of collected ``(sample, StepOutputs)`` pairs."""
    out = {}
    for sample, steps in items:
        if steps.block_summary is None:
            raise ValueError("a video probe needs a model that gives a block summary")
        out[sample.id] = np.asarray(steps.block_summary, dtype=np.float64)
    return out


def held_out_scores(
    samples: Sequence[Sample], x: Mapping[str, np.ndarray], groups: int | None, ridge: float
) -> dict[str, tuple[int, float]]:
    """Per held-out clip (one copy per real): ``(fold, held-out probe logit)``."""
    out: dict[str, tuple[int, float]] = {}
    for k, fold in enumerate(logo_folds(samples, n_groups=groups)):
        train = [s for s in fold.train if s.id in x]
        test = [s for s in fold.test if s.id in x and copy_index(s) == 0]
        if not test or len({s.label for s in train}) < 2:
            continue  # nothing to score, or a training side of one class
        probe = VideoProbe.fit(_stack(train, x), _labels(train), ridge)
        scores = probe.logit(_stack(test, x))
        out.update((s.id, (k, float(v))) for s, v in zip(test, scores, strict=True))
    return out


def logo_aucs(samples: Sequence[Sample], held: Mapping[str, tuple[int, float]]) -> dict[str, float]:
    """AUC pooled over the folds, and the mean of the AUCs of folds holding both classes."""
    labels = {s.id: int(s.label or 0) for s in samples}

    def auc(ids: Sequence[str]) -> float:
        y = [labels[i] for i in ids]
        return roc_auc([held[i][1] for i in ids], y) if len(set(y)) == 2 else float("nan")

    per_fold = [
        auc([i for i, (f, _) in held.items() if f == k]) for k in {f for f, _ in held.values()}
    ]
    kept = [a for a in per_fold if not np.isnan(a)]
    return {
        "pooled AUC": auc(list(held)),
        "mean fold AUC": float(np.mean(kept)) if kept else float("nan"),
    }


def fit_probe(
    samples: Sequence[Sample],
    x: Mapping[str, np.ndarray],
    groups: int | None = DEFAULT_GROUPS,
    ridges: Sequence[float] = RIDGES,
) -> ProbeFit:
    """Choose the ridge by leave-generators-out on ``samples`` (with a ``family`` in their
    extra, as the realworld adapter gives) and refit on all of them (module docstring)."""
    samples = [s for s in samples if s.id in x and s.label is not None]
    held = {ridge: held_out_scores(samples, x, groups, ridge) for ridge in ridges}
    if not held[ridges[0]]:
        raise ValueError("no leave-generators-out fold has both classes to fit a probe on")
    rows = [{"ridge": ridge, **logo_aucs(samples, held[ridge])} for ridge in ridges]
    # Strongest ridge among the best: the simplest probe the held-out generators allow.
    best = max(rows, key=lambda row: (_finite(row["pooled AUC"]), row["ridge"]))
    ridge = best["ridge"]
    scored = [s for s in samples if s.id in held[ridge]]
    return ProbeFit(
        probe=VideoProbe.fit(_stack(samples, x), _labels(samples), ridge),
        logo=rows,
        held_out={i: v for i, (_, v) in held[ridge].items()},
        folds={i: k for i, (k, _) in held[ridge].items()},
        n_fakes=sum(s.label == 1 for s in scored),
        n_reals=sum(s.label == 0 for s in scored),
        groups=groups,
    )


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -np.inf


def _stack(samples: Sequence[Sample], x: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.stack([x[s.id] for s in samples]).astype(np.float64)


def _labels(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([int(s.label or 0) for s in samples], np.float64)
