"""The video probe (avdf.inference.probe) and its leave-generators-out fitting
(avdf.evaluation.probe) on planted and pure-noise features, by hand where possible."""

from __future__ import annotations

import numpy as np
import pytest

from avdf.evaluation.probe import RIDGES, fit_probe, held_out_scores, logo_aucs
from avdf.inference.probe import VideoProbe, fit_logistic
from avdf.types import Sample


def _clips(n_families: int = 6, per_family: int = 4, n_reals: int = 12) -> list[Sample]:
    fakes = [
        Sample(f"f{k}_{i}", "realworld", "train", f"f{k}_{i}.mp4", label=1,
               extra={"family": f"G{k}", "file": f"f{k}_{i}.mp4"})
        for k in range(n_families) for i in range(per_family)
    ]  # fmt: skip
    reals = [
        Sample(f"r{i}", "realworld", "train", f"r{i}.mp4", label=0,
               extra={"family": "real", "file": f"r{i}.mp4"})
        for i in range(n_reals)
    ]  # fmt: skip
    return fakes + reals


def test_logistic_regression_separates_and_is_shrunk_by_its_ridge() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(float)
    w = fit_logistic(x, y, 1.0)
    assert w[0] > 1 and abs(w[1]) < 0.5 and abs(w[2]) < 0.5
    assert abs(fit_logistic(x, y, 1e4)[0]) < w[0] / 10  # a strong ridge shrinks it


def test_probe_standardises_and_treats_an_absent_modality_as_the_mean() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(loc=[5.0, -3.0], scale=[2.0, 0.5], size=(100, 2))
    y = (x[:, 0] > 5.0).astype(float)
    x[:10, 1] = np.nan  # ten videos without the second feature's modality
    probe = VideoProbe.fit(x, y, 1.0)
    assert probe.mean == pytest.approx([np.mean(x[:, 0]), np.nanmean(x[:, 1])])
    assert probe.weights[0] > 1.0
    # NaN counts as the training mean: the same score as giving the mean itself.
    assert probe.logit([7.0, np.nan]) == pytest.approx(probe.logit([7.0, probe.mean[1]]))
    assert probe.probability([9.0, np.nan]) > 0.9 > 0.1 > probe.probability([1.0, np.nan])
    again = VideoProbe.from_dict(probe.to_dict())
    assert again.logit([6.0, -3.2]) == pytest.approx(probe.logit([6.0, -3.2]))
    with pytest.raises(ValueError, match="reads 2 summary features"):
        probe.logit([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="real and fake"):
        VideoProbe.fit(x, np.ones(100), 1.0)


def test_probe_scores_each_clip_held_out_and_finds_only_a_real_signal() -> None:
    samples = _clips()
    rng = np.random.default_rng(0)
    noise = {s.id: rng.normal(size=6) for s in samples}
    planted = {s.id: noise[s.id] + np.r_[3.0 * s.label, np.zeros(5)] for s in samples}
    held = held_out_scores(samples, planted, 3, 1.0)
    assert sorted(held) == sorted(s.id for s in samples)  # every clip once, held out
    assert {k for k, _ in held.values()} == {0, 1, 2}
    aucs = logo_aucs(samples, held)
    assert aucs["pooled AUC"] > 0.85 and aucs["mean fold AUC"] > 0.85
    # Pure noise: a probe that saw its test labels would still score near 1 here.
    blind = held_out_scores(samples, noise, 3, 1.0)
    assert 0.2 < logo_aucs(samples, blind)["pooled AUC"] < 0.8


def test_fit_probe_chooses_the_ridge_held_out_and_refits_on_everything() -> None:
    samples = _clips()
    rng = np.random.default_rng(2)
    # One informative feature among 40 noisy ones: a weak ridge overfits the noise.
    x = {s.id: np.r_[1.5 * s.label + rng.normal(), rng.normal(size=40)] for s in samples}
    fit = fit_probe(samples, x, groups=3)
    assert [row["ridge"] for row in fit.logo] == list(RIDGES)
    best = max(row["pooled AUC"] for row in fit.logo)
    chosen = next(row for row in fit.logo if row["ridge"] == fit.probe.ridge)
    assert chosen["pooled AUC"] == best
    assert fit.n_fakes == 24 and fit.n_reals == 12 and len(fit.held_out) == 36
    # The refitted probe is the one fitted on every clip with that ridge.
    everything = np.stack([x[s.id] for s in samples])
    refit = VideoProbe.fit(everything, [s.label for s in samples], fit.probe.ridge)
    assert fit.probe.logit(everything) == pytest.approx(refit.logit(everything))
    assert np.argmax(np.abs(fit.probe.weights)) == 0  # it found the planted feature
    with pytest.raises(ValueError, match="n_groups"):
        fit_probe(samples, x, groups=99)
