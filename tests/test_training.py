"""Losses (by hand), the config loader, and real training runs on cached real clips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from avdf.models.base import ModelOutput
from avdf.models.heads import LevelOutput
from avdf.timebase import MediaSpec
from avdf.training.config import ConfigError, config_from_dict, load_config
from avdf.training.losses import (
    LossWeights,
    detection_losses,
    diou_loss_1d,
    level_targets,
    masked_bce,
    sigmoid_focal_loss,
    sync_contrastive_loss,
    visible_fake_mask,
)
from avdf.training.module import warmup_cosine

SPEC_DEFAULT = MediaSpec()


# --- losses --------------------------------------------------------------------------------
def test_focal_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.0, 0.0])
    got = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    # p = 0.5 for y = 1: 0.25 * 0.5^2 * log 2
    assert math.isclose(got[0].item(), 0.25 * 0.25 * math.log(2), rel_tol=1e-5)
    # y = 0, p = sigmoid(2): 0.75 * p^2 * -log(1 - p)
    p = 1 / (1 + math.exp(-2))
    assert math.isclose(got[1].item(), 0.75 * p**2 * -math.log(1 - p), rel_tol=1e-5)
    p = 1 / (1 + math.exp(1))
    assert math.isclose(got[2].item(), 0.75 * p**2 * -math.log(1 - p), rel_tol=1e-5)


def test_focal_loss_reduces_to_bce() -> None:
    logits = torch.randn(50)
    targets = (torch.rand(50) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0), bce)
    # focusing only ever lowers the loss, most for confident correct predictions
    assert (sigmoid_focal_loss(logits, targets, alpha=-1, gamma=2.0) <= bce + 1e-7).all()


def test_diou_by_hand() -> None:
    # pred [-1, 1], target [0, 2] around the anchor: IoU 1/3, centres 0 and 1, enclosing 3
    got = diou_loss_1d(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]]))
    assert math.isclose(got.item(), 1 - 1 / 3 + 1 / 9, rel_tol=1e-6)
    # identical segments: zero loss; same centre, half length: 1 - 0.5
    same = diou_loss_1d(
        torch.tensor([[2.0, 3.0], [1.0, 1.0]]), torch.tensor([[2.0, 3.0], [2.0, 2.0]])
    )
    torch.testing.assert_close(same, torch.tensor([0.0, 0.5]))


def test_masked_bce_ignores_masked_entries() -> None:
    logits = torch.tensor([0.0, 100.0])
    targets = torch.tensor([1.0, 0.0])  # the second would cost 100
    got = masked_bce(logits, targets, torch.tensor([True, False]))
    assert math.isclose(got.item(), math.log(2), rel_tol=1e-6)
    assert masked_bce(logits, targets, torch.tensor([False, False])).item() == 0.0


def _batch_and_output(b: int = 2, t: int = 6) -> tuple[dict, ModelOutput]:
    """A batch with one 3-step fake segment (steps 1-3 of row 0) and a single-scale output."""
    torch.manual_seed(0)
    fake = torch.zeros(b, t)
    fake[0, 1:4] = 1
    boundaries = torch.zeros(b, t, 2)
    boundaries[0, 1:4] = torch.tensor([[0.5, 2.5], [1.5, 1.5], [2.5, 0.5]])
    batch = {
        "step_mask": torch.ones(b, t, dtype=torch.bool),
        "fake": fake,
        "boundaries": boundaries,
        "start": torch.zeros(b, t),
        "end": torch.zeros(b, t),
        "audio_fake": fake.clone(),
        "visual_fake": torch.zeros(b, t),
        "modality_known": torch.tensor([True, False]),
        "video_target": torch.tensor([1.0, 0.0]),
        "video_known": torch.tensor([True, True]),
    }
    logits = torch.randn(b, t, requires_grad=True)
    level = LevelOutput(
        stride=1,
        min_length=0.0,
        max_length=math.inf,
        centre_radius=math.inf,
        logits=logits,
        boundaries=torch.rand(b, t, 2, requires_grad=True),
        mask=torch.ones(b, t, dtype=torch.bool),
        classify=False,
    )
    out = ModelOutput(
        fake_logits=logits,
        levels=(level,),
        start_logits=None,
        end_logits=None,
        audio_fake_logits=torch.randn(b, t, requires_grad=True),
        visual_fake_logits=torch.randn(b, t, requires_grad=True),
        video_logit=torch.randn(b, requires_grad=True),
        presence_used=torch.ones(b, t, 3, dtype=torch.bool),
    )
    return batch, out


def test_detection_losses_combine_and_mask() -> None:
    batch, out = _batch_and_output()
    w = LossWeights(classification=1.0, regression=2.0, modality=0.5, video=0.25)
    losses = detection_losses(out, batch, w)
    expected = (
        losses["classification"]
        + 2 * losses["regression"]
        + 0.5 * losses["modality"]
        + 0.25 * losses["video"]
    )
    torch.testing.assert_close(losses["loss"], expected)
    # regression sees the 3 positive steps of the one segment, weighted to sum to one
    pos = batch["fake"] > 0
    level = out.levels[0]
    ref = diou_loss_1d(level.boundaries[pos], batch["boundaries"][pos]).mean()
    torch.testing.assert_close(losses["regression"], ref)
    # padding: masking a step changes nothing if its outputs change
    batch["step_mask"][1, -1] = False
    before = detection_losses(out, batch, w)["loss"]
    out.fake_logits.data[1, -1] += 50
    out.audio_fake_logits.data[1, -1] += 50
    torch.testing.assert_close(detection_losses(out, batch, w)["loss"], before)
    before.backward()
    assert level.boundaries.grad is not None and out.video_logit.grad is not None


def test_regression_weights_each_segment_equally() -> None:
    # Row 0: a 2-step and a 6-step segment. Each gets weight one in total, so the loss is the
    # mean of the two segments' mean DIoU, not the mean over the 8 steps.
    t = 10
    fake = torch.zeros(1, t)
    fake[0, 0:2] = 1
    fake[0, 3:9] = 1
    boundaries = torch.zeros(1, t, 2)
    for k in range(0, 2):
        boundaries[0, k] = torch.tensor([k + 0.5, 2 - (k + 0.5)])
    for k in range(3, 9):
        boundaries[0, k] = torch.tensor([k + 0.5 - 3, 9 - (k + 0.5)])
    level = LevelOutput(
        1,
        0.0,
        math.inf,
        math.inf,
        torch.zeros(1, t),
        torch.ones(1, t, 2),
        torch.ones(1, t, dtype=torch.bool),
        classify=False,
    )
    target = level_targets(level, fake, boundaries, torch.ones(1, t, dtype=torch.bool))
    assert target.positive.sum() == 8
    torch.testing.assert_close(target.weight[0, :2], torch.full((2,), 0.5))
    torch.testing.assert_close(target.weight[0, 3:9], torch.full((6,), 1 / 6))
    assert float(target.weight.sum()) == pytest.approx(2.0)


def test_level_targets_follow_length_ranges_and_centre_sampling() -> None:
    # One 8-step segment [2, 10) in a 16-step window. A stride-2 level owning lengths
    # [4, 16) with radius 1.5 takes the cells whose centres lie within 3 steps of 6.
    t = 16
    fake = torch.zeros(1, t)
    fake[0, 2:10] = 1
    centres = torch.arange(t) + 0.5
    boundaries = torch.zeros(1, t, 2)
    boundaries[0, 2:10, 0] = centres[2:10] - 2
    boundaries[0, 2:10, 1] = 10 - centres[2:10]
    n_cells = t // 2
    level = LevelOutput(
        2,
        4.0,
        16.0,
        1.5,
        torch.zeros(1, n_cells),
        torch.ones(1, n_cells, 2),
        torch.ones(1, n_cells, dtype=torch.bool),
    )
    target = level_targets(level, fake, boundaries, torch.ones(1, t, dtype=torch.bool))
    # cell centres 1, 3, 5, 7, 9, ...: within 3 of 6 -> 3, 5, 7, 9 (cells 1-4)
    assert target.positive[0].nonzero().flatten().tolist() == [1, 2, 3, 4]
    # cell 2 is centred at 5: 3 steps after the start, 5 before the end
    torch.testing.assert_close(target.boundaries[0, 2], torch.tensor([3.0, 5.0]))
    # a level owning only lengths < 4 has no positive for this segment
    short = LevelOutput(
        2,
        0.0,
        4.0,
        1.5,
        torch.zeros(1, n_cells),
        torch.ones(1, n_cells, 2),
        torch.ones(1, n_cells, dtype=torch.bool),
    )
    assert not level_targets(
        short, fake, boundaries, torch.ones(1, t, dtype=torch.bool)
    ).positive.any()


def test_labels_of_a_hidden_modality_are_left_out() -> None:
    batch, out = _batch_and_output()
    # Row 0's fake is audio-only; hide audio from the model in row 0.
    out.presence_used[0, :, 0] = False
    hidden = visible_fake_mask(batch, out.presence_used)
    assert not hidden[0, 1:4].any() and hidden[0, 0] and hidden[1].all()
    # The step loss no longer depends on those steps' logits.
    before = detection_losses(out, batch, LossWeights())["classification"]
    out.fake_logits.data[0, 1:4] -= 30
    torch.testing.assert_close(
        detection_losses(out, batch, LossWeights())["classification"], before
    )


def test_sync_contrastive_loss_by_hand() -> None:
    """One genuine step (row 0, step 0). Its negatives: the other modality at steps 3 and 4
    of its own window. Steps 1-2 are too near to count, step 5 is invalid (zero), and
    row 1 (another video) is never a negative."""
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    audio = torch.stack(
        [torch.stack([e0, e0, e0, e1, e1, e0 * 0]), torch.stack([e0, e0, e0, e0, e0, e0])]
    )
    lips = audio.clone()
    positive = torch.zeros(2, 6, dtype=torch.bool)
    positive[0, 0] = True
    # Each direction: logit 1/0.5 for the positive, 0 for the two orthogonal keys.
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    got = sync_contrastive_loss(audio, lips, positive, temperature=0.5)
    assert math.isclose(float(got), expected, rel_tol=1e-5)
    assert float(sync_contrastive_loss(audio, lips, positive & False, 0.5)) == 0.0


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 100, 0.1) == pytest.approx(0.1)


# --- config ----------------------------------------------------------------------------------
def test_config_overrides_and_unknown_keys(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"manifest": "m.jsonl", "cache_dir": "cache", "window_steps": 32},
                "model": {"name": "mmms_ba", "kwargs": {"gru_hidden": 32}},
                "optim": {"lr": 1},
            }
        )
    )
    cfg = load_config(
        path, ["model.kwargs.context_dim=16", "trainer.max_epochs=3", "media.stride=2"]
    )
    assert cfg.model.kwargs == {"gru_hidden": 32, "context_dim": 16}
    assert cfg.trainer.max_epochs == 3 and cfg.media.stride == 2
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.data.window_steps == 32 and cfg.data.val_split == "dev"

    with pytest.raises(ConfigError, match="'data.windows_stepz': unknown key"):
        load_config(path, ["data.windows_stepz=3"])
    with pytest.raises(ConfigError, match="'trainer.max_epochs': expected int"):
        load_config(path, ["trainer.max_epochs=many"])
    with pytest.raises(ConfigError, match="media"):
        load_config(path, ["media.fps=7"])  # 16000 samples/s do not divide into 7 fps
    with pytest.raises(ConfigError, match="exactly one"):
        config_from_dict({"data": {"cache_dir": "c"}})
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(path, ["novalue"])


def test_round_trip_of_resolved_config(tmp_path) -> None:
    from avdf.training.config import save_config

    cfg = config_from_dict({"data": {"dataset": "lavdf", "root": "r"}, "loss": {"video": 1}})
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load_and_build_their_model(path) -> None:
    from avdf.models import create_model

    cfg = load_config(path)
    model = create_model(cfg.model.name, spec=cfg.media.to_dict(), **cfg.model.kwargs)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_every_dataset_and_variant_has_a_config() -> None:
    names = {p.stem for p in CONFIGS}
    for variant in ("mmms_ba", "none", "mmus_sa", "ms_sa"):
        assert f"synth_{variant}" in names
    for dataset in ("lavdf", "avdeepfake1m", "fakeavceleb", "tvil"):
        assert f"{dataset}_mmms_ba" in names


# --- real training on cached real clips -------------------------------------------------------
# A CPU-tiny MMMS-BA; dropout off so the overfit check measures optimisation only.
TINY = {
    "block_dim": 16,
    "block_width": 8,
    "gru_hidden": 16,
    "context_dim": 16,
    "fusion_dim": 32,
    "gru_dropout": 0.0,
    "context_dropout": 0.0,
    "fusion_dropout": 0.0,
    "modality_dropout": 0.0,
}


@pytest.fixture(autouse=True)
def one_thread():
    # The test machine's 2 cores are shared; torch's intra-op threads then spin against other
    # processes and a tiny model runs 20x slower. One thread is the fast, stable choice.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    from test_data import cached_samples  # tests/ is on sys.path under pytest

    return cached_samples(tmp_path_factory.getbasetemp() / "avdf_real_cache")


@pytest.mark.slow
def test_loss_decreases_when_overfitting_a_fixed_batch(real_cache) -> None:
    from avdf.data.dataset import WindowDataset, collate
    from avdf.training.module import AVDFModule

    samples, cache_dir = real_cache
    torch.manual_seed(0)
    ds = WindowDataset(samples, cache_dir, SPEC_DEFAULT, 32, windows_per_video=1)
    batch = collate([ds[i] for i in range(len(ds))], 32)  # (B=3, T=32)
    module = AVDFModule("mmms_ba", TINY, SPEC_DEFAULT.to_dict())
    optimizer = torch.optim.AdamW(module.model.parameters(), lr=1e-2)
    module.train()
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = detection_losses(module(batch), batch, module.loss_weights)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses


def _write_run_config(tmp_path: Path, samples, cache_dir: Path, **trainer) -> Path:
    from avdf.types import write_manifest

    # two videos to train on, the third (and one of the first two) to validate on
    rows = [s.__class__(**{**s.__dict__, "split": "train"}) for s in samples[:2]]
    rows += [s.__class__(**{**s.__dict__, "split": "dev"}) for s in (samples[0], samples[2])]
    write_manifest(rows, str(tmp_path / "manifest.jsonl"))
    config = {
        "data": {
            "manifest": str(tmp_path / "manifest.jsonl"),
            "cache_dir": str(cache_dir),
            "window_steps": 32,
            "batch_size": 2,
            "windows_per_video": 2,
        },
        "model": {"name": "mmms_ba", "kwargs": TINY},
        "optim": {"lr": 0.003, "warmup_steps": 1},
        "trainer": {"max_steps": 3, "seed": 7, "log_every_n_steps": 1, **trainer},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_avdf_train_cli_end_to_end_deterministic_and_resumable(
    real_cache, tmp_path, capsys
) -> None:
    from avdf.cli import main
    from avdf.models import load_checkpoint

    samples, cache_dir = real_cache
    config = _write_run_config(tmp_path, samples, cache_dir)
    common = ["--accelerator", "cpu", "--devices", "1"]
    out1, out2 = tmp_path / "run1", tmp_path / "run2"
    assert main(["train", str(config), "--out", str(out1), *common]) == 0

    # outputs: resolved config, Lightning checkpoints, metrics, the plain checkpoint
    assert (out1 / "config.yaml").is_file() and (out1 / "checkpoints" / "last.ckpt").is_file()
    resolved = load_config(out1 / "config.yaml")
    assert resolved.model.kwargs == TINY and resolved.trainer.seed == 7
    metrics = (out1 / "logs" / "version_0" / "metrics.csv").read_text()
    for name in ("train/loss", "val/loss", "val/frame_auc", "val/video_auc", "val/ap50_ar100"):
        assert name in metrics
    model, spec, info = load_checkpoint(out1 / "model.ckpt")
    assert spec == SPEC_DEFAULT and info["extra"]["window_steps"] == 32
    assert info["model_name"] == "mmms_ba"

    # the same seed gives the same weights; refusing to overwrite without --force
    assert main(["train", str(config), "--out", str(out2), *common]) == 0
    a, b = _state(out1 / "model.ckpt"), _state(out2 / "model.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out2), *common]) == 1
    assert "already exists" in capsys.readouterr().err
    # a different seed trains different weights (the check above can fail)
    out3 = tmp_path / "run3"
    assert main(["train", str(config), "--out", str(out3), "--set", "trainer.seed=8", *common]) == 0
    c = _state(out3 / "model.ckpt")
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # windows served from RAM (data.in_memory) train exactly the weights of windows read from disk
    out4 = tmp_path / "run4"
    assert (
        main(["train", str(config), "--out", str(out4), "--set", "data.in_memory=true", *common])
        == 0
    )
    d = _state(out4 / "model.ckpt")
    assert all(torch.equal(a[k], d[k]) for k in a)

    # resume from the step-3 checkpoint and go on to step 5
    last = out1 / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    args = ["train", str(config), "--out", str(out1), "--resume", str(last)]
    assert main([*args, "--set", "trainer.max_steps=5", *common]) == 0
    assert torch.load(last, weights_only=False)["global_step"] == 5
    assert (out1 / "logs" / "version_1" / "metrics.csv").is_file()  # earlier logs kept
    resumed = _state(out1 / "model.ckpt")
    assert not all(torch.equal(a[k], resumed[k]) for k in a)


@pytest.mark.slow
def test_missing_cache_is_one_line_with_the_command(real_cache, tmp_path, capsys) -> None:
    from avdf.cli import main

    samples, _ = real_cache
    config = _write_run_config(tmp_path, samples, tmp_path / "empty_cache")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "3 of 3 videos are not preprocessed" in err
    assert f"avdf preprocess {tmp_path / 'run' / 'missing_from_cache.jsonl'}" in err
    from avdf.types import read_manifest

    assert len(read_manifest(str(tmp_path / "run" / "missing_from_cache.jsonl"))) == 3


def test_ema_forgets_the_initial_weights_early() -> None:
    from avdf.training.module import AVDFModule

    module = AVDFModule("mmms_ba", TINY, SPEC_DEFAULT.to_dict(), optim={"ema_decay": 0.998})
    weight = next(module.model.parameters())
    initial = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1.0)  # the weights move once, then stay
    for _ in range(200):
        module.on_train_batch_end(None, None, 0)
    averaged = next(module.ema.module.parameters())
    # A plain 0.998 average would still hold 0.998**200 = 67% of the initial weights.
    share_of_initial = float(((weight - averaged).mean() / (weight - initial).mean()).detach())
    assert share_of_initial < 0.05
    module.eval()
    assert module.evaluation_model() is module.ema.module
    # BatchNorm statistics follow the live model's (AveragedModel alone keeps the initial ones).
    for buffer in module.model.buffers():
        buffer.add_(3)
    module.on_train_batch_end(None, None, 0)
    for averaged, live in zip(module.ema.module.buffers(), module.model.buffers(), strict=True):
        assert torch.equal(averaged, live)
