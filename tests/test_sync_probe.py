"""scripts/sync_probe.py's Light-ASD, written from the paper with the state dict's names, is
wired right: every shipped weight loads, and on the bundled sample's own face and sound the
audio-visual "speaking" logit is higher than with the sound replaced by near-silence (the
audio path counts). Needs ``../shared/models/light-asd``; skipped without it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from avdf.io.decode import read_audio
from avdf.preprocess.pipeline import extract_features
from avdf.timebase import MediaSpec

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import sync_probe  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "models" / "light-asd"
SAMPLE = Path(__file__).resolve().parents[1] / "src" / "avdf" / "assets" / "sample.mp4"


def test_mfcc_shape_rate_and_energy() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    loud = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    feats = sync_probe.mfcc(loud, rate)
    assert feats.shape == (99, 13)  # 1 s at 100 Hz, 25 ms frames
    quiet = sync_probe.mfcc(loud * 0.01, rate)
    # c0 is the log frame energy: 40 dB quieter is log(1e4) lower; the other bins only move
    # by the (tiny) pre-emphasis and floor effects.
    np.testing.assert_allclose(feats[:, 0] - quiet[:, 0], np.log(1e4), atol=1e-3)


@pytest.mark.skipif(
    not WEIGHTS.is_dir(), reason="../shared/models/light-asd is not beside the checkout"
)
def test_light_asd_hears_the_sound() -> None:
    spec = MediaSpec()
    features = extract_features(SAMPLE, spec)
    grey = sync_probe.asd_faces(features.face)
    audio = read_audio(SAMPLE, spec)
    model = sync_probe.load_model(WEIGHTS / "pretrain_AVA_CVPR.model")
    own, _ = sync_probe.step_logits(model, grey, audio)
    rng = np.random.default_rng(0)
    hush, _ = sync_probe.step_logits(model, grey, 1e-4 * rng.standard_normal(len(audio)))
    assert own.shape == (len(grey),)
    assert own.mean() > hush.mean() + 2.0
