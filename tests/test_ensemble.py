"""``avdf ensemble``: several trained checkpoints averaged into one model that the Detector,
``avdf tune`` and ``avdf evaluate`` use like any other (real tiny models, random inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import DEFAULT_SPEC, tiny_checkpoint

from avdf.cli import main
from avdf.data.batch import features_to_inputs
from avdf.errors import InputError
from avdf.inference.detector import Detector
from avdf.models import Ensemble, ensemble_checkpoint, load_checkpoint
from avdf.preprocess.features import N_LANDMARKS, VideoFeatures
from avdf.timebase import MediaSpec


def _features(n: int, experts: tuple[str, ...] = (), seed: int = 0) -> VideoFeatures:
    """A chunk with random pixels, mel and expert channels (so members disagree)."""
    rng = np.random.default_rng(seed)
    s = DEFAULT_SPEC
    streams = {name: rng.normal(size=(n, 3)).astype(np.float16) for name in experts}
    return VideoFeatures(
        s,
        0,
        rng.integers(0, 256, (n, s.face_size, s.face_size, 3), np.uint8),
        rng.integers(0, 256, (n, s.mouth_size, s.mouth_size, 3), np.uint8),
        rng.normal(size=(n, s.mel_frames_per_step, s.n_mels)).astype(np.float16),
        np.ones(n, bool),
        np.ones(n, bool),
        np.zeros((n, N_LANDMARKS, 2), np.float16),
        experts=streams,
    )


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("members")
    return [
        tiny_checkpoint(folder / "a.ckpt", seed=0),
        # another seed and the motion expert stream: a member reading a stream the other lacks
        tiny_checkpoint(folder / "b.ckpt", seed=1, experts=("motion",)),
    ]


def test_ensemble_outputs_are_the_mean_of_its_members_logits(
    members: list[Path], tmp_path: Path
) -> None:
    path, extra = ensemble_checkpoint(members, tmp_path / "ensemble.ckpt")
    ensemble, spec, info = load_checkpoint(path)
    assert isinstance(ensemble, Ensemble) and info["model_name"] == "ensemble"
    assert spec == DEFAULT_SPEC and extra["window_steps"] == 32
    assert ensemble.experts == ("motion",)  # the union: every member gets what it reads
    inputs = features_to_inputs([_features(32, ("motion",))], 32, ensemble.experts)
    with torch.inference_mode():
        outputs = [load_checkpoint(m)[0](**inputs) for m in members]
        mean = ensemble(**inputs)
    for name in ("fake_logits", "start_logits", "audio_fake_logits", "video_logit"):
        one, other = (getattr(o, name) for o in outputs)
        assert not torch.allclose(one, other)  # the members really differ
        torch.testing.assert_close(getattr(mean, name), (one + other) / 2)
    for i, level in enumerate(mean.levels):
        pair = [o.levels[i] for o in outputs]
        torch.testing.assert_close(level.logits, (pair[0].logits + pair[1].logits) / 2)
        torch.testing.assert_close(level.boundaries, (pair[0].boundaries + pair[1].boundaries) / 2)
        assert level.stride == pair[0].stride
    # each member's block summary kept whole, side by side
    assert mean.block_summary is not None and outputs[0].block_summary is not None
    assert mean.block_summary.shape[-1] == 2 * outputs[0].block_summary.shape[-1]


def test_an_ensemble_of_a_model_with_itself_detects_as_the_model(
    members: list[Path], tmp_path: Path
) -> None:
    """Stitching, clamping and decoding see the ensemble as one model: averaging a model
    with itself changes nothing down to the proposals and the video score."""
    path, _ = ensemble_checkpoint([members[0], members[0]], tmp_path / "twice.ckpt")
    single, twice = Detector.from_checkpoint(members[0]), Detector.from_checkpoint(path)
    assert twice.window_steps == single.window_steps == 32 and twice.n_levels == single.n_levels
    chunk = _features(70)
    one, two = single.steps_from_features([chunk]), twice.steps_from_features([chunk])
    for name in ("fake_prob", "start_prob", "level_prob", "level_boundaries", "window_video_prob"):
        np.testing.assert_allclose(getattr(two, name), getattr(one, name), atol=1e-5)
    a, b = single.predict(one, "v"), twice.predict(two, "v")
    assert b.score == pytest.approx(a.score, abs=1e-5)
    assert [(s.start, s.end) for s in b.segments] == pytest.approx(
        [(s.start, s.end) for s in a.segments], abs=1e-3
    )


def test_members_must_agree_on_the_media_spec(members: list[Path], tmp_path: Path) -> None:
    other = tiny_checkpoint(tmp_path / "wide.ckpt", spec=MediaSpec(face_size=96))
    with pytest.raises(InputError, match="wide.ckpt: media spec"):
        ensemble_checkpoint([members[0], other], tmp_path / "bad.ckpt")
    assert not (tmp_path / "bad.ckpt").exists()


def test_cli_writes_an_ensemble_and_refuses_to_overwrite(
    members: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "e.ckpt"
    assert main(["ensemble", *map(str, members), "--out", str(out)]) == 0
    assert "2 members" in capsys.readouterr().out
    written = out.read_bytes()
    assert main(["ensemble", *map(str, members), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == written
    assert main(["ensemble", str(members[0]), "--out", str(tmp_path / "one.ckpt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least two" in err
    missing = tmp_path / "missing.ckpt"
    assert main(["ensemble", str(members[0]), str(missing), "--out", str(tmp_path / "m.ckpt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ckpt" in err and "Traceback" not in err
