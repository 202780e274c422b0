"""``avdf tune``: calibration fitting on hand-made scores, thresholds by hand, and the whole
command on a tiny synthetic corpus with the bundled checkpoint."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation_corpus import synth_corpus

from avdf.cli import main
from avdf.evaluation.dataset import evaluate_dataset
from avdf.evaluation.tune import (
    fit_calibration,
    fit_temperature_shift,
    log_loss,
    step_f1,
)
from avdf.inference.calibration import Calibration
from avdf.inference.decode import DecodeConfig, ProposalRescorer
from avdf.inference.detector import Detector, bundled_checkpoint_path
from avdf.metrics import best_threshold, roc_auc
from avdf.models.checkpoint import load_checkpoint

SPLIT = "train"  # 12 of the 16 videos, real and fake: more to tune on than dev's 2


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize(("temperature", "shift"), [(2.0, 0.7), (0.5, -1.0), (1.0, 0.0)])
def test_temperature_and_shift_are_recovered(temperature: float, shift: float) -> None:
    # Labels drawn from the model itself: the maximum-likelihood fit must find its parameters.
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 3.0, 40_000)
    labels = rng.random(len(z)) < _sigmoid((z - shift) / temperature)
    fitted_t, fitted_shift = fit_temperature_shift(_sigmoid(z), labels)
    assert fitted_t == pytest.approx(temperature, rel=0.05)
    assert fitted_shift == pytest.approx(shift, abs=0.08)
    # ...and the fit is at least as good as the truth on these labels (it is the minimum).
    true_p = _sigmoid((z - shift) / temperature)
    fitted_p = _sigmoid((z - fitted_shift) / fitted_t)
    assert log_loss(fitted_p, labels) <= log_loss(true_p, labels) + 1e-9


def test_separable_and_reversed_scores_stay_finite() -> None:
    raw = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    t, shift = fit_temperature_shift(raw, [0, 0, 0, 1, 1, 1])
    assert 0.0 < t < 10.0 and abs(shift) < 1e-6  # finite (Platt targets), symmetric
    t, _ = fit_temperature_shift(raw, [1, 1, 1, 0, 0, 0])
    assert t == pytest.approx(1000.0)  # reversed scores carry no usable sign: flat, never T < 0


def test_best_threshold_by_hand() -> None:
    scores = [0.1, 0.4, 0.35, 0.8, 0.6, 0.2]
    labels = [0, 0, 1, 1, 1, 0]
    # Sorted: .1(0) .2(0) .35(1) .4(0) .6(1) .8(1). Cut at (.2+.35)/2 = .275: 5/6 right
    # (only .4 wrong); at (.4+.6)/2 = .5: 5/6 right (only .35 wrong). Tie: nearest 0.5 wins.
    assert best_threshold(scores, labels, "accuracy") == pytest.approx(0.5)
    # F1 at .275: TP 3, FP 1, FN 0 -> 6/7; at .5: TP 2, FP 0, FN 1 -> 4/5. 6/7 wins.
    assert best_threshold(scores, labels, "f1") == pytest.approx(0.275)
    assert step_f1(np.array(scores), np.array(labels), 0.275) == pytest.approx(6 / 7)


def test_fit_calibration_orders_and_separates() -> None:
    raw = [0.30, 0.32, 0.33, 0.36, 0.38, 0.40]
    labels = [0, 0, 0, 1, 1, 1]
    steps = np.array([0.1, 0.9, 0.2, 0.8])
    calibration = fit_calibration(raw, labels, steps, np.array([0, 1, 0, 1]))
    assert calibration.tuned and calibration.uncertain_band == Calibration().uncertain_band
    probabilities = [calibration.calibrate(s) for s in raw]
    assert probabilities == sorted(probabilities)  # a monotone map of the raw score
    decisions = [p >= calibration.threshold for p in probabilities]
    assert decisions == [bool(y) for y in labels]  # dev accuracy 1
    assert 0.2 < calibration.segment_threshold < 0.8  # between the classes: step F1 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synth_corpus(tmp_path_factory)


def test_tune_keeps_or_improves_dev_figures_and_is_used_by_evaluate(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, cache = corpus
    bundled = bundled_checkpoint_path()
    out, record = tmp_path / "tuned.ckpt", tmp_path / "tune.json"
    argv = ["tune", str(bundled), "--dataset", "lavdf", "--root", str(root), "--split", SPLIT]
    argv += ["--cache", str(cache), "--out", str(out), "--json", str(record)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "| AP@0.5 |" in captured.out and "calibration: temperature=" in captured.out
    assert "12 from the cache" in captured.err

    _, _, info = load_checkpoint(out)
    extra = info["extra"]
    decode = DecodeConfig.from_dict(extra["decode"])
    calibration = Calibration.from_dict(extra["calibration"])
    assert calibration.tuned and extra["decode"] == decode.to_dict()
    assert extra["test_time_flip"] is False  # the bundled checkpoint's, unless --flip
    before, after = extra["tuning"]["before"], extra["tuning"]["after"]
    assert extra["tuning"]["n_videos"] == 12 and extra["tuning"]["split"] == SPLIT
    # The search starts from the stored parameters, so the dev objective can only rise (a
    # proposal rescorer is kept only if it helps held-out halves of dev and all of it)...
    assert after["objective"] >= before["objective"] - 1e-12
    best_searched = max(row["objective"] for row in extra["tuning"]["search"])
    rescoring = extra["tuning"]["proposal_rescorer"]
    if "proposal_rescorer" in extra:
        by_mix = rescoring["objective by mix (2-fold cross-fitted on dev)"]
        assert by_mix[str(rescoring["mix"])] > by_mix["0.0"]
        assert after["objective"] >= best_searched
    else:
        assert after["objective"] == best_searched
    # ...the calibration never raises the dev log-loss (the stored one is kept otherwise)
    # and the threshold is the best cut on dev, so no worse than the stored one.
    assert after["log-loss"] <= before["log-loss"] + 1e-9
    assert after["ACC"] >= before["ACC"]
    assert json.loads(record.read_text())["decode"] == extra["decode"]
    # The other stored fields survive.
    original = load_checkpoint(bundled)[2]["extra"]
    refitted = (
        "decode",
        "calibration",
        "tuning",
        "proposal_rescorer",
        "video_stacker",
        "test_time_flip",
    )
    assert all(extra[k] == v for k, v in original.items() if k not in refitted)

    # The detector and `avdf evaluate` pick the tuned parameters up by themselves: scoring the
    # split again gives exactly the "after" figures.
    detector = Detector.from_checkpoint(out)
    assert detector.decode_config == decode and detector.calibration == calibration
    stored = extra.get("proposal_rescorer")
    assert detector.rescorer == (ProposalRescorer.from_dict(stored) if stored else None)
    results = evaluate_dataset("lavdf", root, out, SPLIT, cache_dir=cache, progress=False)
    loc, det = results["localization"], results["detection"]
    assert det.threshold == calibration.threshold  # the tuned decision threshold by default
    assert loc.ap[0.5] + loc.ar[100] == pytest.approx(after["objective"])
    assert det.accuracy == pytest.approx(after["ACC"])

    # Never overwritten without --force; the default output sits beside the input.
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    copy = tmp_path / "model.ckpt"
    copy.write_bytes(bundled.read_bytes())
    argv = ["tune", str(copy), "--dataset", "lavdf", "--root", str(root), "--split", "dev"]
    assert main([*argv, "--cache", str(cache)]) == 0
    assert (tmp_path / "model-tuned.ckpt").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left


def test_tune_needs_a_split_with_both_classes(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, cache = corpus
    records = json.loads((root / "metadata.json").read_text())
    fakes = [dict(r, split="dev") for r in records if r["n_fakes"]][:2]
    only_fakes = tmp_path / "root"
    only_fakes.mkdir()
    (only_fakes / "metadata.json").write_text(json.dumps(fakes))
    for r in fakes:
        (only_fakes / r["file"]).parent.mkdir(exist_ok=True)
        (only_fakes / r["file"]).symlink_to(root / r["file"])
    argv = ["tune", str(bundled_checkpoint_path()), "--dataset", "lavdf", "--root"]
    argv += [str(only_fakes), "--cache", str(cache), "--out", str(tmp_path / "t.ckpt")]
    assert main(argv) == 1
    assert "both real and fake" in capsys.readouterr().err
    assert not (tmp_path / "t.ckpt").exists()


def _pool_item(dataset: str, label: int, steps: list[float]) -> tuple:
    from avdf.inference.detector import StepOutputs
    from avdf.timebase import MediaSpec
    from avdf.types import Sample

    n = len(steps)
    fake = np.array(steps, dtype=np.float32)
    sample = Sample(
        f"{dataset}-{label}-{n}-{steps[0]}", dataset, "dev", "x.mp4", n / 25, label=label
    )
    outputs = StepOutputs(
        spec=MediaSpec(), duration=n / 25, fake_prob=fake, audio_prob=fake, visual_prob=fake,
        level_prob=fake[:, None], level_boundaries=np.zeros((n, 1, 2), np.float32),
        start_prob=None, end_prob=None, window_video_prob=np.full(2, 0.2, np.float32),
        audio_present=np.ones(n, bool), face_present=np.ones(n, bool),
    )  # fmt: skip
    return sample, outputs


def test_video_pool_is_chosen_by_the_mean_auc_over_datasets() -> None:
    from avdf.evaluation.tune import choose_video_pool, raw_video_scores
    from avdf.inference.detector import aggregate_video_score

    # 40 steps each, by hand. A short edit: one 0.9 step among 0.1s, against a real at 0.25
    # all along. A generated face: 0.5 all along, against a real at 0.3 with one 0.9 spike.
    short_fake, spiky_real = [0.9] + [0.1] * 39, [0.9] + [0.3] * 39
    items = [_pool_item("lavdf", 1, short_fake), _pool_item("lavdf", 0, [0.25] * 40),
             _pool_item("realworld", 1, [0.5] * 40), _pool_item("realworld", 0, spiky_real)]  # fmt: skip
    # Max rule (window mean 0.2 never wins): 0.9 > 0.25 but 0.5 < 0.9. Top 10 % (4 steps):
    # 0.3 > 0.25 and 0.5 > 0.45. Top 25 % (10): 0.18 < 0.25. Top 50 %: 0.14 < 0.25.
    assert raw_video_scores(items, None) == pytest.approx([0.9, 0.25, 0.5, 0.9])
    assert raw_video_scores(items, 0.1) == pytest.approx([0.3, 0.25, 0.5, 0.45])
    assert aggregate_video_score(np.array([0.2]), np.array(short_fake), 0.25) == pytest.approx(0.18)
    pool, rows = choose_video_pool(items)
    assert [r["mean AUC"] for r in rows] == [0.5, 1.0, 0.5, 0.5]
    assert rows[0]["AUC lavdf"] == 1.0 and rows[0]["AUC realworld"] == 0.0
    assert pool == 0.1
    # One dataset, where the max rule and the top 10 % both separate: the tie keeps the rule.
    assert choose_video_pool(items[:2])[0] is None


def test_calibration_pool_field_is_checked_and_round_trips() -> None:
    tuned = Calibration(top_fraction=0.25, tuned=True)
    assert Calibration.from_dict(tuned.to_dict()) == tuned
    assert Calibration.from_dict({"threshold": 0.4}).top_fraction is None  # older checkpoints
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="top_fraction"):
            Calibration(top_fraction=bad)


def test_tune_fits_a_video_probe_that_detect_then_scores_by(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from realworld_folder import make_realworld_folder

    from avdf.inference.probe import VideoProbe

    root, cache = corpus
    folder = make_realworld_folder(tmp_path / "generators")
    out = tmp_path / "probed.ckpt"
    argv = ["tune", str(bundled_checkpoint_path()), "--dataset", "lavdf", "--root", str(root)]
    argv += ["--split", SPLIT, "--cache", str(cache), "--out", str(out)]
    probe_args = ["--probe", str(folder), "--probe-cache", str(tmp_path / "pcache")]
    assert main([*argv, *probe_args, "--probe-groups", "3"]) == 0
    printed = capsys.readouterr().out
    assert "video probe: ridge" in printed and "| 10000 |" in printed
    assert "x pooled score logit" in printed  # the probe is blended with the pooled score

    extra = load_checkpoint(out)[2]["extra"]
    probe = VideoProbe.from_dict(extra["video_probe"])
    record = extra["tuning"]["video_probe"]
    assert record["fakes"] == 3 and record["reals"] == 2 and record["groups"] == 3
    assert probe.ridge in [row["ridge"] for row in record["leave_generators_out"]]
    # The tuned detector scores a video by the probe on its block summary, then calibrates.
    plain, probed = Detector.from_checkpoint(), Detector.from_checkpoint(out)
    assert plain.probe is None and probed.probe is not None
    clip = folder / "b.mp4"
    steps = plain.detect_steps(clip)
    assert steps.block_summary is not None and len(steps.block_summary) == probe.n_features
    rule = copy.copy(probed)
    rule.probe = None
    pooled = rule.raw_video_score(steps)  # the pooled score alone (no probe)
    blended = 1 / (1 + np.exp(-(probe.probe_weight * probe.logit(steps.block_summary)
                                + probe.rule_weight * np.log(pooled / (1 - pooled))
                                + probe.blend_bias)))  # fmt: skip
    expected = probed.calibration.calibrate(blended)
    assert probed.detect(clip).score == pytest.approx(expected, abs=1e-5)
    # The silent clip's audio summary is NaN (no audio anywhere), not zeros.
    silent = plain.detect_steps(folder / "d.mp4").block_summary
    assert np.isnan(silent).any() and not np.isnan(steps.block_summary).any()
    # Retuning the probed checkpoint without --probe keeps its probe.
    again = tmp_path / "again.ckpt"
    argv2 = ["tune", str(out), "--dataset", "lavdf", "--root", str(root), "--split", SPLIT]
    assert main([*argv2, "--cache", str(cache), "--out", str(again)]) == 0
    kept = load_checkpoint(again)[2]["extra"]["video_probe"]  # the same probe, blend refitted
    assert kept["weights"] == extra["video_probe"]["weights"] and kept["ridge"] == probe.ridge
    capsys.readouterr()
    # A folder the probe cannot be fitted on: one line, nothing written.
    bad = tmp_path / "bad.ckpt"
    assert main([*argv[:-1], str(bad), *probe_args, "--probe-groups", "9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_groups" in err[0] and not bad.exists()


def test_blend_weighs_the_probe_where_the_pooled_score_is_blind() -> None:
    from dataclasses import replace

    from avdf.evaluation.tune import fit_blend
    from avdf.inference.probe import VideoProbe

    # Short edits ("lavdf"): the pooled step score separates them, the whole-video probe
    # does not. Generated faces ("realworld"): the other way round. Summaries are one
    # number that the probe reads as it is (mean 0, scale 1, weight 1).
    rng = np.random.default_rng(3)
    probe = VideoProbe(np.zeros(1), np.ones(1), np.ones(1), 0.0, 1.0)
    items, rule = [], []
    for dataset, n in (("lavdf", 60), ("realworld", 20)):
        for i in range(n):
            label = i % 2
            sample, steps = _pool_item(dataset, label, [0.5] * 8)
            informative = 2.0 * label - 1.0 + 0.5 * rng.normal()
            noise = rng.normal()
            summary = noise if dataset == "lavdf" else informative
            items.append((sample, replace(steps, block_summary=np.array([summary]))))
            rule.append(1 / (1 + np.exp(-(informative if dataset == "lavdf" else noise))))
    blended = fit_blend(probe, items, rule)
    assert blended.probe_weight > 0.5 and blended.rule_weight > 0.5
    assert np.array_equal(blended.weights, probe.weights)  # the probe is not refitted
    scores = [blended.score(st.block_summary, r) for (_, st), r in zip(items, rule, strict=True)]
    for dataset in ("lavdf", "realworld"):
        part = [
            (s, x.label) for (x, _), s in zip(items, scores, strict=True) if x.dataset == dataset
        ]
        assert roc_auc(*zip(*part, strict=True)) > 0.8, dataset


def test_no_rescorer_drops_the_checkpoints_rescorer(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from avdf.evaluation.tune import json_safe
    from avdf.inference.decode import RESCORER_FEATURES
    from avdf.models.checkpoint import save_checkpoint

    root, cache = corpus
    model, spec, info = load_checkpoint(bundled_checkpoint_path())
    width = len(RESCORER_FEATURES) + Detector(model, spec).n_levels
    stored = ProposalRescorer(
        (0.0,) * width, (1.0,) * width, (0.1,) * width, 0.0, 0.5, width - len(RESCORER_FEATURES)
    )
    extra = dict(info["extra"], proposal_rescorer=json_safe(stored.to_dict()))
    rescored = tmp_path / "rescored.ckpt"
    save_checkpoint(rescored, model, spec, extra)
    assert Detector.from_checkpoint(rescored).rescorer == stored
    out = tmp_path / "plain.ckpt"
    argv = ["tune", str(rescored), "--dataset", "lavdf", "--root", str(root), "--split", SPLIT]
    assert main([*argv, "--cache", str(cache), "--out", str(out), "--no-rescorer"]) == 0
    assert "proposal rescorer: not kept" in capsys.readouterr().out
    assert "proposal_rescorer" not in load_checkpoint(out)[2]["extra"]
    assert Detector.from_checkpoint(out).rescorer is None
