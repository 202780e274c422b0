"""The video stacker (``avdf.inference.video_score``, fitted by ``avdf tune``): where the
evidence of a fake video is in a statistic no fixed pool reads (the visual head's maximum),
it must be chosen on held-out dev scores and separate; where a fixed pool already
separates, it must not replace it; and the Detector must score videos with it."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from avdf.errors import AvdfError
from avdf.evaluation.tune import (
    STACKED_POOL,
    choose_video_pool,
    fit_video_stacker,
    raw_video_scores,
    tune_outputs,
)
from avdf.inference.detector import Detector, StepOutputs
from avdf.inference.video_score import (
    BASE_STATISTICS,
    VIDEO_STATISTICS,
    VideoStacker,
    video_statistics,
)
from avdf.metrics import roc_auc
from avdf.timebase import MediaSpec
from avdf.types import Sample

N_STEPS = 100


def _video(
    rng: np.random.Generator, index: int, fake: bool, visual_spike: float, face: bool = True
) -> tuple[Sample, StepOutputs]:
    """The step fake curve is noise alike for both classes; the visual head has one spike
    of ``visual_spike`` (about 0.9 in fakes, 0.5 in reals) over a 0.2 floor."""
    fake_prob = (0.3 + 0.2 * rng.random(N_STEPS)).astype(np.float32)
    visual = np.full(N_STEPS, 0.2, np.float32)
    at = int(rng.integers(0, N_STEPS - 10))
    visual[at : at + 10] = visual_spike
    sample = Sample(
        f"v{index}", "lavdf", "dev", f"v{index}.mp4", N_STEPS / 25, label=int(fake)
    )  # whole-video labels: no decoding search, so the test stays fast
    steps = StepOutputs(
        spec=MediaSpec(), duration=N_STEPS / 25, fake_prob=fake_prob,
        audio_prob=(0.3 + 0.2 * rng.random(N_STEPS)).astype(np.float32), visual_prob=visual,
        level_prob=fake_prob[:, None], level_boundaries=np.ones((N_STEPS, 1, 2), np.float32),
        start_prob=None, end_prob=None, window_video_prob=np.full(2, 0.4, np.float32),
        audio_present=np.ones(N_STEPS, bool), face_present=np.full(N_STEPS, face),
    )  # fmt: skip
    return sample, steps


def _videos(seed: int, n: int) -> list[tuple[Sample, StepOutputs]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fake = i % 3 != 0
        spike = (0.85 if fake else 0.45) + 0.1 * rng.random()
        out.append(_video(rng, seed * 1000 + i, fake, spike))
    return out


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The bundled model's detector without its proposal rescorer (fitted for its three
    pyramid levels; the hand-made videos have one)."""
    detector = Detector.from_checkpoint()
    detector.rescorer = None
    return detector


def test_stacker_reads_what_no_fixed_pool_does_and_is_chosen_on_held_out_scores() -> None:
    dev = _videos(1, 60)
    labels = [s.label for s, _ in dev]
    tops = [0.5] * len(dev)  # proposals tell nothing either
    stacker, held = fit_video_stacker(dev, tops)
    assert stacker is not None and held is not None and len(held) == len(dev)
    assert roc_auc(held, labels) > 0.95  # held out: each half scored by the other's fit
    for pool in (None, 0.1, 0.25, 0.5):
        assert roc_auc(raw_video_scores(dev, pool), labels) < 0.75
    pool, rows = choose_video_pool(dev, fitted_scores={STACKED_POOL: held})
    assert pool == STACKED_POOL and rows[-1]["pool"] == STACKED_POOL
    # The visual spike carries the weight (its maximum, or its peak over the median).
    heaviest = stacker.statistics[int(np.argmax(np.abs(stacker.weights)))]
    assert heaviest in ("visual step maximum", "visual peak over median")

    # Fresh videos: the stacker fitted on dev separates them as well.
    test = _videos(2, 30)
    scores = [stacker.score(video_statistics(st, 0.5)) for _, st in test]
    assert roc_auc(scores, [s.label for s, _ in test]) > 0.95


def test_a_fixed_pool_that_separates_keeps_its_place() -> None:
    dev = _videos(3, 30)
    for sample, steps in dev:  # the step curve now separates perfectly by itself
        steps.fake_prob[:5] = 0.95 if sample.label else 0.6
    _, held = fit_video_stacker(dev, [0.5] * len(dev))
    pool, _ = choose_video_pool(dev, fitted_scores={STACKED_POOL: held})
    assert pool is None  # the untuned rule already has AUC 1: a tie keeps it


def test_tune_stores_the_stacker_and_the_detector_scores_by_it(detector: Detector) -> None:
    dev = _videos(4, 48)
    result = tune_outputs(detector, dev)
    assert result.video_stacker is not None
    assert result.pools[-1]["pool"] == STACKED_POOL
    assert result.after["AUC"] > 0.95 > result.before["AUC"]
    tuned = copy.copy(detector)
    tuned.stacker, tuned.calibration = result.video_stacker, result.calibration
    sample, steps = dev[1]
    prediction = tuned.predict(steps, sample.id)
    expected = result.video_stacker.score(
        video_statistics(steps, max((s.score for s in prediction.segments), default=0.0))
    )
    assert tuned.raw_video_score(steps) == pytest.approx(expected)
    assert prediction.score == pytest.approx(result.calibration.calibrate(expected))

    # A video without a face has no visual maximum: it counts as dev's mean, not as 0.
    _, faceless = _video(np.random.default_rng(5), 0, True, 0.9, face=False)
    stats = tuned.video_statistics(faceless)
    assert np.isnan(stats[VIDEO_STATISTICS.index("visual step maximum")])
    assert 0.0 < tuned.raw_video_score(faceless) < 1.0


def test_stacker_round_trips_and_rejects_other_statistics() -> None:
    dev = _videos(6, 30)
    stacker, _ = fit_video_stacker(dev, [0.5] * len(dev))
    assert stacker is not None
    again = VideoStacker.from_dict(stacker.to_dict())
    stats = video_statistics(dev[0][1], 0.5)
    assert again.score(stats) == pytest.approx(stacker.score(stats))
    with pytest.raises(AvdfError, match="retune"):
        VideoStacker.from_dict({**stacker.to_dict(), "statistics": ["step max"]})


def test_a_stacker_reads_only_the_statistics_it_names() -> None:
    """The default stacker (and every one tuned before the peak statistics existed) reads
    the nine base statistics; it loads and scores by those alone, whatever the others say.
    One fitted with the peaks reads all of them."""
    dev = _videos(8, 30)
    base, _ = fit_video_stacker(dev, [0.5] * len(dev))
    assert base is not None and len(base.weights) == len(BASE_STATISTICS) == 9
    loaded = VideoStacker.from_dict(base.to_dict())
    assert loaded.statistics == BASE_STATISTICS
    stats = video_statistics(dev[0][1], 0.5)
    changed = stats.copy()
    changed[len(BASE_STATISTICS) :] += 5.0  # the statistics it does not read
    assert loaded.score(changed) == pytest.approx(base.score(stats))
    peaks, _ = fit_video_stacker(dev, [0.5] * len(dev), VIDEO_STATISTICS)
    assert peaks is not None and VideoStacker.from_dict(peaks.to_dict()).statistics == (
        VIDEO_STATISTICS
    )
    assert peaks.score(changed) != pytest.approx(peaks.score(stats))


def test_peak_over_median_is_relative_to_the_video() -> None:
    """A spike of odds x9 over a floor of 0.1 and over one of 0.5: the maxima differ, the
    peaks over the median are both log 9."""
    _, low = _video(np.random.default_rng(9), 0, True, 0.9)
    _, high = _video(np.random.default_rng(9), 0, True, 0.9)
    low.fake_prob[:], high.fake_prob[:] = 0.1, 0.5
    low.fake_prob[40:45], high.fake_prob[40:45] = 0.5, 0.9
    peak = VIDEO_STATISTICS.index("step peak over median")
    a, b = video_statistics(low, 0.5), video_statistics(high, 0.5)
    assert a[peak] == pytest.approx(np.log(9), abs=1e-4)
    assert b[peak] == pytest.approx(np.log(9), abs=1e-4)
    maximum = VIDEO_STATISTICS.index("untuned rule")
    assert b[maximum] - a[maximum] > 2.0


def test_stacker_needs_both_classes_in_each_half() -> None:
    dev = _videos(7, 12)
    dev = [(replace(s, label=int(i % 2 == 0)), st) for i, (s, st) in enumerate(dev)]
    assert fit_video_stacker(dev, [0.5] * len(dev)) == (None, None)
