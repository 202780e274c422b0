"""The model must learn to localize: a tiny MMMS-BA trained for a few hundred real training
steps (the training losses, AdamW) on a tiny planted-fake corpus must find most planted
0.2-0.4 s edits with a proposal of IoU > 0.5, decoded by the Detector exactly as
``avdf detect`` decodes a video.

A model whose boundaries collapse to one length (the failure measured on the first bundled
checkpoint: 1.36 s predicted for every segment) fails this: a 0.3 s segment needs a
proposal between 0.15 and 0.6 s long to reach IoU 0.5.
"""

from __future__ import annotations

import numpy as np
import torch

from avdf.data.dataset import WindowItem, collate
from avdf.data.targets import step_targets
from avdf.inference.detector import Detector
from avdf.preprocess.features import N_LANDMARKS, VideoFeatures
from avdf.timebase import MediaSpec
from avdf.training.losses import LossWeights, detection_losses
from avdf.training.module import AVDFModule
from avdf.types import Sample, Segment

SPEC = MediaSpec(face_size=16, mouth_size=16)
STEPS = 64  # one training window per video


def window_features(face: np.ndarray, mouth: np.ndarray, mel: np.ndarray) -> VideoFeatures:
    """One window of STEPS steps with these crops and mel, every modality present."""
    return VideoFeatures(
        SPEC,
        0,
        face,
        mouth,
        mel,
        np.ones(STEPS, bool),
        np.ones(STEPS, bool),
        np.zeros((STEPS, N_LANDMARKS, 2), np.float16),
    )


def planted_video(rng: np.random.Generator, index: int) -> tuple[VideoFeatures, Sample]:
    """64 steps of noise; fake videos (4 in 5) carry one edit of 5-10 steps (0.2-0.4 s)
    where the face crops are brightened and the mel raised, audio and visual alike."""
    s = SPEC
    face = rng.integers(0, 120, (STEPS, s.face_size, s.face_size, 3), dtype=np.uint8)
    mouth = rng.integers(0, 120, (STEPS, s.mouth_size, s.mouth_size, 3), dtype=np.uint8)
    mel = rng.normal(0.0, 1.0, (STEPS, s.mel_frames_per_step, s.n_mels)).astype(np.float16)
    segments: tuple[Segment, ...] = ()
    if rng.random() < 0.8:
        length = int(rng.integers(5, 11))
        start = int(rng.integers(4, STEPS - length - 4))
        face[start : start + length] += 120
        mouth[start : start + length] += 120
        mel[start : start + length] += 3.0
        segments = (Segment(s.steps_to_seconds(start), s.steps_to_seconds(start + length)),)
    features = window_features(face, mouth, mel)
    sample = Sample(
        id=f"planted{index}",
        dataset="planted",
        split="train",
        path="",
        duration=s.steps_to_seconds(STEPS),
        label=int(bool(segments)),
        fake_segments=segments,
        audio_fake_segments=segments,
        visual_fake_segments=segments,
    )
    return features, sample


def best_iou(segment: Segment, proposals) -> float:
    return max((segment.iou(p.segment) for p in proposals), default=0.0)


def test_a_tiny_model_learns_to_localize_short_planted_edits() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the model is tiny: a second thread only adds overhead here
    try:
        _train_and_localize()
    finally:
        torch.set_num_threads(threads)


def _train_and_localize() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = [planted_video(rng, i) for i in range(48)]
    module = AVDFModule(
        "mmms_ba",
        {
            "block_dim": 16,
            "block_width": 4,
            "gru_hidden": 16,
            "context_dim": 16,
            "fusion_dim": 32,
            "head_kwargs": {"width": 16},
        },
        SPEC.to_dict(),
    )
    optimizer = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
    module.train()
    for _ in range(150):  # ~30 s on one idle core
        picks = rng.choice(len(train), 8, replace=False)
        batch = collate(
            [WindowItem(train[i][0], step_targets(train[i][1], SPEC, STEPS), int(i)) for i in picks]
        )
        loss = detection_losses(module(batch), batch, LossWeights())["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), 1.0)
        optimizer.step()

    detector = Detector(module.model, SPEC, window_steps=STEPS, num_threads=None)
    test = [planted_video(np.random.default_rng(1000 + i), i) for i in range(24)]
    ious = []
    for features, sample in test:
        prediction = detector.detect_features([features], sample.duration, sample.id)
        ious += [best_iou(segment, prediction.segments[:10]) for segment in sample.fake_segments]
    found = np.mean(np.array(ious) > 0.5)
    assert len(ious) >= 15
    assert found >= 0.7, f"only {found:.0%} of planted edits found (IoU > 0.5 in the top 10)"


def synced_video(rng: np.random.Generator, index: int, swap: slice | None = None):
    """64 steps whose mouth brightness and audio loudness follow one random per-step
    signal (speech moving the lips); ``swap`` replaces the audio's signal there by another
    one (a replaced or shifted track), leaving its statistics unchanged."""
    s = SPEC
    speech = rng.random(STEPS)
    heard = speech.copy()
    if swap is not None:
        heard[swap] = rng.random(len(heard[swap]))
    noise = rng.integers(0, 40, (STEPS, s.mouth_size, s.mouth_size, 3))
    mouth = (noise + (150 * speech)[:, None, None, None]).astype(np.uint8)
    mel = rng.normal(0.0, 0.5, (STEPS, s.mel_frames_per_step, s.n_mels)) + 3 * heard[:, None, None]
    face = rng.integers(0, 255, (STEPS, s.face_size, s.face_size, 3), dtype=np.uint8)
    features = window_features(face, mouth, mel.astype(np.float16))
    sample = Sample(f"synced{index}", "planted", "train", "", s.steps_to_seconds(STEPS), 0)
    return features, sample


def test_the_sync_stream_learns_lip_audio_synchrony_from_genuine_videos() -> None:
    """Trained with its contrastive loss alone on genuine (synchronised) videos, the sync
    stream must rank a step's own audio above shifted audio, and score a stretch whose
    audio was replaced below the synchronised rest of the same video."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        train = [synced_video(rng, i) for i in range(32)]
        module = AVDFModule(
            "mmms_ba",
            {
                "block_dim": 16,
                "block_width": 4,
                "gru_hidden": 8,
                "context_dim": 8,
                "fusion_dim": 8,
                "sync_dim": 16,
                "modality_dropout": 0.0,
            },
            SPEC.to_dict(),
        )
        weights = LossWeights(
            classification=0,
            level_classification=0,
            regression=0,
            boundary=0,
            modality=0,
            video=0,
            sync=1.0,
        )
        optimizer = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
        module.train()
        for _ in range(80):
            picks = rng.choice(len(train), 8, replace=False)
            batch = collate(
                [WindowItem(train[i][0], step_targets(train[i][1], SPEC, STEPS), 0) for i in picks]
            )
            loss = detection_losses(module(batch), batch, weights)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        module.eval()
        swap = slice(20, 40)
        test = [synced_video(np.random.default_rng(500 + i), i, swap) for i in range(8)]
        batch = collate([WindowItem(f, step_targets(s, SPEC, STEPS), 0) for f, s in test])
        with torch.no_grad():
            out = module(batch)
        similarity = (out.sync_audio * out.sync_lips).sum(-1)  # (B, T) lag-0 cosine
        shifted = (out.sync_audio[:, 3:] * out.sync_lips[:, :-3]).sum(-1)
        in_sync = torch.cat([similarity[:, 2:18], similarity[:, 42:62]], dim=1)
        assert float(in_sync.mean()) > float(shifted[:, 40:58].mean()) + 0.2
        assert float(in_sync.mean()) > float(similarity[:, 23:37].mean()) + 0.2
    finally:
        torch.set_num_threads(threads)
