"""The proposal rescorer (``avdf.inference.decode.ProposalRescorer``, fitted by
``avdf.evaluation.rescore``): it must learn to rank a true segment above a decoy that the
decoder's own score prefers, be kept only when it helps held-out dev videos, and survive
the checkpoint."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avdf.errors import AvdfError
from avdf.evaluation.rescore import fit_rescorer
from avdf.evaluation.tune import fit_proposal_rescorer, json_safe, localization_figures
from avdf.inference.decode import (
    RESCORER_FEATURES,
    DecodeConfig,
    ProposalRescorer,
    candidate_features,
    decode_candidates,
    decode_proposals,
)
from avdf.inference.detector import Detector, StepOutputs, bundled_checkpoint_path
from avdf.models.checkpoint import load_checkpoint, save_checkpoint
from avdf.timebase import MediaSpec
from avdf.types import Sample, Segment

N_STEPS, EDIT = 100, 10  # steps per video; a 0.4 s edit
DECODE = DecodeConfig(pre_threshold=0.1, snap_steps=0, boundary_weight=0.0)


def _region(prob: np.ndarray, bounds: np.ndarray, start: int, value: float) -> None:
    """Every step of [start, start + EDIT) proposes exactly that region with ``value``."""
    steps = np.arange(start, start + EDIT)
    prob[steps, 0] = value
    bounds[steps, 0, 0] = steps + 0.5 - start
    bounds[steps, 0, 1] = start + EDIT - (steps + 0.5)


def _video(rng: np.random.Generator, index: int, fake: bool) -> tuple[Sample, StepOutputs]:
    """A video whose decoder score prefers a decoy region (level probability 0.8) to the
    true edit (0.6); only the visual probability inside tells them apart (0.9 against
    0.2), the step fake probability is flat. A real video has the decoy alone."""
    level = np.zeros((N_STEPS, 1), np.float32)
    bounds = np.zeros((N_STEPS, 1, 2), np.float32)
    visual = np.full(N_STEPS, 0.2, np.float32)
    truth, decoy = rng.choice([5, 30, 55, 80], size=2, replace=False)
    _region(level, bounds, decoy, 0.8 + 0.05 * rng.random())
    segments: tuple[Segment, ...] = ()
    if fake:
        _region(level, bounds, truth, 0.6 + 0.05 * rng.random())
        visual[truth : truth + EDIT] = 0.9
        segments = (Segment(truth / 25, (truth + EDIT) / 25),)
    fake_prob = np.full(N_STEPS, 0.5, np.float32)  # the step curve tells nothing
    sample = Sample(
        f"v{index}", "lavdf", "dev", f"v{index}.mp4", N_STEPS / 25, label=int(fake),
        fake_segments=segments,
    )  # fmt: skip
    steps = StepOutputs(
        spec=MediaSpec(), duration=N_STEPS / 25, fake_prob=fake_prob, audio_prob=fake_prob,
        visual_prob=visual, level_prob=level, level_boundaries=bounds, start_prob=None,
        end_prob=None, window_video_prob=np.full(2, 0.5, np.float32),
        audio_present=np.ones(N_STEPS, bool), face_present=np.ones(N_STEPS, bool),
    )  # fmt: skip
    return sample, steps


def _videos(seed: int, n: int) -> list[tuple[Sample, StepOutputs]]:
    rng = np.random.default_rng(seed)
    return [_video(rng, seed * 1000 + i, fake=i % 4 != 0) for i in range(n)]


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The bundled model's detector, decoding by the decoder's own score (the hand-made
    videos have one pyramid level; the bundle's rescorer was fitted for its three)."""
    detector = Detector.from_checkpoint(decode=DECODE)
    detector.rescorer = None
    return detector


def _figures(detector: Detector, items: list, rescorer: ProposalRescorer | None) -> dict:
    tuner = copy.copy(detector)  # shares the model; only the rescorer differs
    tuner.rescorer = rescorer
    return localization_figures(items, [tuner.predict(st, s.id) for s, st in items])


def test_rescorer_learns_what_the_decoder_score_misses(detector: Detector) -> None:
    dev, test = _videos(1, 40), _videos(2, 40)
    before = _figures(detector, test, None)
    assert before["AP@0.5"] < 0.8  # the decoys outrank half the true edits

    fit = fit_proposal_rescorer(detector, dev, DECODE)
    assert fit.rescorer is not None and fit.rescorer.mix > 0.0
    assert fit.held_out[fit.rescorer.mix] > fit.held_out[0.0] + 0.1  # held-out dev gain
    # 30 fakes, each of whose 10 edited steps proposes the edit; 10 reals x 10 decoy steps.
    assert (fit.n_hits, fit.n_candidates) == (300, 700)
    visual = RESCORER_FEATURES.index("log visual probability inside")
    assert fit.rescorer.weights[visual] > 0  # told apart by the visual probability

    after = _figures(detector, test, fit.rescorer)
    assert after["AP@0.5"] > 0.95 and after["AP@0.5"] > before["AP@0.5"] + 0.2


def test_a_rescorer_that_does_not_help_is_not_kept(detector: Detector) -> None:
    dev = _videos(3, 40)

    def objective(items: list, rescorer: ProposalRescorer | None) -> float:
        return 1.0 if rescorer is None else 0.5  # every mix hurts held-out videos

    fit = fit_rescorer(dev, DECODE, objective)
    assert fit.rescorer is None and fit.held_out[0.0] == 1.0
    # Nothing to learn from: a split without a single true segment.
    reals = [(replace(s, label=0, fake_segments=()), st) for s, st in dev]
    assert fit_rescorer(reals, DECODE, objective).rescorer is None


def test_mix_zero_keeps_the_decoder_score_and_features_have_their_width() -> None:
    sample, steps = _videos(4, 2)[1]
    inputs = Detector.decoder_inputs(steps)
    candidates = decode_candidates(**inputs, config=DECODE)
    assert candidates is not None
    features = candidate_features(candidates)
    width = len(RESCORER_FEATURES) + 1  # one pyramid level
    assert features.shape == (len(candidates), width) and np.isfinite(features).all()
    flat = ProposalRescorer((0.0,) * width, (1.0,) * width, (0.0,) * width, 0.0, 0.0, 1)
    plain = decode_proposals(**inputs, config=DECODE)
    assert decode_proposals(**inputs, config=DECODE, rescorer=flat) == plain


def test_rescorer_round_trips_and_refuses_what_it_was_not_fitted_for(tmp_path: Path) -> None:
    width = len(RESCORER_FEATURES) + 3
    rescorer = ProposalRescorer(
        tuple(np.linspace(0, 1, width)), (2.0,) * width, (0.5,) * width, -1.0, 0.75, 3
    )
    assert ProposalRescorer.from_dict(rescorer.to_dict()) == rescorer
    # Stored by `avdf tune` in the checkpoint, it is what the detector decodes with.
    model, spec, info = load_checkpoint(bundled_checkpoint_path())
    extra = dict(info["extra"], proposal_rescorer=json_safe(rescorer.to_dict()))
    save_checkpoint(tmp_path / "rescored.ckpt", model, spec, extra)
    assert Detector.from_checkpoint(tmp_path / "rescored.ckpt").rescorer == rescorer
    assert Detector.from_checkpoint().rescorer is not None  # the bundle was tuned with one
    foreign = dict(rescorer.to_dict(), features=["something else"])
    with pytest.raises(AvdfError, match="retune"):
        ProposalRescorer.from_dict(foreign)
    with pytest.raises(ValueError, match="weights"):
        ProposalRescorer((0.0,), (1.0,), (0.0,), 0.0, 0.5, 3)
    _, steps = _videos(5, 2)[1]
    inputs = Detector.decoder_inputs(steps)
    with pytest.raises(AvdfError, match="pyramid levels"):
        decode_proposals(**inputs, config=DECODE, rescorer=rescorer)  # a 1-level model


def test_best_proposal_pool_uses_held_out_scores_and_detect_scores_by_it(
    detector: Detector,
) -> None:
    from avdf.evaluation.tune import PROPOSAL_POOL, choose_video_pool
    from avdf.inference.calibration import Calibration
    from avdf.metrics import roc_auc

    dev = _videos(6, 40)
    fit = fit_proposal_rescorer(detector, dev, DECODE)
    assert fit.rescorer is not None and len(fit.held_out_top) == len(dev)
    labels = [s.label for s, _ in dev]
    # Every video holds a decoy that the decoder scores above the true edits: its own best
    # proposal is the decoy everywhere (chance); the held-out rescored one separates.
    own = [max(p.score for p in detector.predict(st, s.id).segments) for s, st in dev]
    assert roc_auc(own, labels) < 0.7 and roc_auc(fit.held_out_top, labels) > 0.95
    pool, rows = choose_video_pool(dev, fitted_scores={PROPOSAL_POOL: fit.held_out_top})
    assert pool == PROPOSAL_POOL and rows[-1]["pool"] == PROPOSAL_POOL
    assert [r["pool"] for r in choose_video_pool(dev)[1]] == [None, 0.1, 0.25, 0.5]

    scorer = copy.copy(detector)
    scorer.rescorer, scorer.calibration = fit.rescorer, Calibration(from_proposals=True)
    _, steps = dev[1]
    prediction = scorer.predict(steps, "v")
    assert scorer.raw_video_score(steps) == pytest.approx(prediction.segments[0].score)
    assert prediction.score == pytest.approx(prediction.segments[0].score)  # identity map
