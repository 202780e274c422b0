"""Targets on the step grid, the window dataset and its collate, on real cached clips."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import media_fixtures as fx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.data.targets import fake_coverage, step_targets
from avdf.timebase import MediaSpec
from avdf.types import Sample, Segment

SPEC = MediaSpec()  # 25 steps/s: a step is 40 ms


def _sample(segments=(), label=1, audio=None, visual=None, **extra) -> Sample:
    return Sample(
        id="v",
        dataset="t",
        split="train",
        path="v.mp4",
        duration=4.0,
        label=label,
        fake_segments=tuple(segments),
        audio_fake_segments=audio,
        visual_fake_segments=visual,
        extra=extra,
    )


# --- targets by hand -------------------------------------------------------------------
def test_step_targets_hand_case() -> None:
    # [0.10, 0.30) s = [2.5, 7.5) in steps: centres k + 0.5 inside for k = 2..6
    seg = Segment(0.10, 0.30)
    t = step_targets(_sample([seg], audio=(seg,), visual=()), SPEC, 10)
    np.testing.assert_array_equal(t.fake, [0, 0, 1, 1, 1, 1, 1, 0, 0, 0])
    # step 2: centre 2.5 -> 0 steps from the start, 5 to the end
    np.testing.assert_allclose(t.boundaries[2], [0.0, 5.0], atol=1e-5)
    np.testing.assert_allclose(t.boundaries[6], [4.0, 1.0], atol=1e-5)
    assert (t.boundaries[[0, 1, 7, 8, 9]] == 0).all()
    np.testing.assert_array_equal(t.audio_fake, t.fake)
    assert t.visual_fake.sum() == 0
    assert t.modality_known and t.video_label == 1


def test_step_targets_real_and_unknown_modality() -> None:
    real = step_targets(_sample(label=0, audio=(), visual=()), SPEC, 8)
    assert real.fake.sum() == 0 and real.modality_known and real.video_label == 0
    # LAV-DF-style dataset that does not say which modality: heads masked
    unknown = step_targets(_sample([Segment(0.0, 0.1)]), SPEC, 8)
    assert not unknown.modality_known
    assert unknown.audio_fake.sum() == 0 and unknown.fake.sum() == 2


def test_overlapping_segments_use_the_shortest() -> None:
    long, short = Segment(0.0, 0.4), Segment(0.12, 0.2)  # steps [0, 10) and [3, 5)
    t = step_targets(_sample([long, short]), SPEC, 12)
    np.testing.assert_allclose(t.boundaries[3], [0.5, 1.5], atol=1e-5)  # the short one
    np.testing.assert_allclose(t.boundaries[1], [1.5, 8.5], atol=1e-5)  # only the long one


def test_whole_video_fake_without_segments() -> None:
    # FakeAVCeleb adapter without a probed duration: fake, no segments, audio faked (None),
    # video untouched (()).
    sample = _sample(label=1, audio=None, visual=(), whole_video_fake=True)
    t = step_targets(sample, SPEC, 6)
    assert t.fake.tolist() == [1.0] * 6
    np.testing.assert_allclose(t.boundaries[:, 0] + t.boundaries[:, 1], 6.0)
    assert t.modality_known and t.audio_fake.sum() == 6 and t.visual_fake.sum() == 0


def test_slice_keeps_true_segment_ends() -> None:
    t = step_targets(_sample([Segment(0.0, 0.4)]), SPEC, 20).slice(5, 15)
    assert t.n_steps == 10
    np.testing.assert_allclose(t.boundaries[0], [5.5, 4.5], atol=1e-5)


# --- targets: invariants -----------------------------------------------------------------
segments = st.lists(
    st.tuples(st.floats(0, 5), st.floats(0.0, 2.0)).map(lambda p: Segment(p[0], p[0] + p[1])),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(segments, st.integers(0, 150), st.sampled_from([1, 2, 5]))
def test_targets_invariants(segs, n_steps, stride) -> None:
    spec = MediaSpec(stride=stride)
    sample = _sample(segs, label=int(bool(segs)), audio=tuple(segs), visual=())
    t = step_targets(sample, spec, n_steps)
    assert t.fake.shape == (n_steps,) and t.boundaries.shape == (n_steps, 2)
    assert (t.boundaries >= 0).all()
    inside = t.fake > 0
    assert (t.boundaries[~inside] == 0).all()
    lengths = t.boundaries[inside].sum(axis=1)

    def contains(s: Segment, k: int) -> bool:
        # in step coordinates, as MediaSpec.segment_steps decides (no seconds round trip)
        return spec.seconds_to_step(s.start) <= k + 0.5 < spec.seconds_to_step(s.end)

    for k, length in zip(np.flatnonzero(inside), lengths, strict=True):
        containing = [s for s in segs if contains(s, int(k))]
        assert containing, "a positive step lies in a segment"
        shortest = min(s.duration for s in containing) * spec.steps_per_second
        assert math.isclose(length, shortest, rel_tol=1e-4, abs_tol=1e-3)
    # every step whose centre is in a segment is positive
    for k in range(n_steps):
        if any(contains(s, k) for s in segs):
            assert inside[k]
    np.testing.assert_array_equal(t.audio_fake, t.fake)


def test_fake_coverage_hand_case() -> None:
    # 100 steps of 40 ms: [1.0, 2.0) s is steps 25..49, [3.0, 3.2) s steps 75..79
    sample = _sample((Segment(1.0, 2.0), Segment(3.0, 3.2)))
    assert fake_coverage(sample, SPEC, 100) == pytest.approx(0.30)
    assert fake_coverage(_sample(label=0), SPEC, 100) == 0.0
    assert fake_coverage(_sample(), SPEC, 100) == 1.0  # labelled per video: fake all along
    assert fake_coverage(sample, SPEC, 0) == 0.0


def test_negative_steps_rejected() -> None:
    with pytest.raises(ValueError):
        step_targets(_sample(), SPEC, -1)


# --- the window dataset on a real cache ----------------------------------------------------
# Three short real clips run through the real preprocessing pipeline. Their labels are made
# up (the clips are not manipulated): the data layer only needs consistent segments.
CLIPS = {
    "real/a": ("talking-face_pc-avs_00067.mp4", 0, (), (), ()),
    "fake/b": (
        "talking-face_pc-avs_517600055.mp4",
        1,
        (Segment(1.0, 2.0),),
        (Segment(1.0, 2.0),),
        (),
    ),
    "fake/c": (
        "talking-face_pc-avs_00086.mp4",
        1,
        (Segment(0.5, 1.3), Segment(3.0, 3.6)),
        (),
        (Segment(0.5, 1.3), Segment(3.0, 3.6)),
    ),
}


def cached_samples(base: Path) -> tuple[list[Sample], Path]:
    """Samples of CLIPS with a real cache under ``base`` (built once per session; reruns skip
    finished videos)."""
    from avdf.preprocess.cache import cache_path_for
    from avdf.preprocess.pipeline import cache_video

    cache_dir = base / "cache"
    samples = []
    for vid, (name, label, segs, audio, visual) in CLIPS.items():
        path = fx.talking(name)
        cache_video(path, cache_path_for(cache_dir, vid), SPEC)
        samples.append(Sample(vid, "test", "train", str(path), None, label, segs, audio, visual))
    return samples, cache_dir


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> tuple[list[Sample], Path]:
    return cached_samples(tmp_path_factory.getbasetemp() / "avdf_real_cache")


@pytest.mark.slow
def test_training_windows_match_targets(real_cache) -> None:
    from avdf.data.dataset import WindowDataset

    samples, cache_dir = real_cache
    ds = WindowDataset(
        samples, cache_dir, SPEC, window_steps=32, windows_per_video=5, fake_window_fraction=1.0
    )
    assert len(ds) == 15 and ds.video_labels == [0, 1, 1]
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        video = i // 5
        assert item.video_index == video and item.features.n_steps == 32
        start = item.features.first_step
        full = step_targets(ds.samples[video], SPEC, ds.n_steps[video])
        np.testing.assert_array_equal(item.targets.fake, full.fake[start : start + 32])
        np.testing.assert_array_equal(item.targets.boundaries, full.boundaries[start : start + 32])
        if samples[video].label == 1:  # fake_window_fraction=1: every window shows a fake step
            assert item.targets.fake.any()
    # the cache holds real faces and real audio for these clips
    assert item.features.face_mask.mean() > 0.9 and item.features.audio_mask.all()
    assert item.features.face.std() > 10


@pytest.mark.slow
def test_whole_clip_fakes_get_more_training_windows(real_cache) -> None:
    """With whole_fake_factor 3 a whole-clip fake (here fake/b labelled per video, so fake
    all along) gives three times the windows; partial fakes and reals are unchanged."""
    from avdf.data.dataset import WindowDataset

    samples, cache_dir = real_cache
    whole = replace(samples[1], fake_segments=(), audio_fake_segments=None)
    ds = WindowDataset(
        [samples[0], whole, samples[2]], cache_dir, SPEC, window_steps=32,
        windows_per_video=2, whole_fake_factor=3.0,
    )  # fmt: skip
    videos = [ds[i].video_index for i in range(len(ds))]
    assert videos == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2]
    assert all(ds[i].targets.fake.all() for i in range(2, 8))


@pytest.mark.slow
def test_eval_tiling_covers_each_video_once_and_collates(real_cache) -> None:
    from avdf.data.dataset import WindowDataset, collate

    samples, cache_dir = real_cache
    ds = WindowDataset(samples, cache_dir, SPEC, window_steps=40, train=False)
    covered = {v: np.zeros(n, int) for v, n in enumerate(ds.n_steps)}
    items = [ds[i] for i in range(len(ds))]
    for it in items:
        covered[it.video_index][
            it.features.first_step : it.features.first_step + it.features.n_steps
        ] += 1
    assert all((c == 1).all() for c in covered.values())
    assert [ds[i].features.first_step for i in range(len(ds))] == [
        it.features.first_step for it in items
    ]

    short = [it for it in items if it.features.n_steps < 40]
    assert short, "the last tile of a video is shorter than a window"
    batch = collate([items[0], short[0]], window_steps=40)
    assert batch["face"].shape == (2, 40, 3, SPEC.face_size, SPEC.face_size)
    assert batch["boundaries"].shape == (2, 40, 2)
    n = short[0].features.n_steps
    assert batch["step_mask"][1, :n].all() and not batch["step_mask"][1, n:].any()
    assert batch["fake"][1, n:].sum() == 0 and batch["boundaries"][1, n:].abs().sum() == 0
    assert batch["video_target"][0] == float(items[0].targets.fake.any())
    assert batch["video_index"].tolist() == [items[0].video_index, short[0].video_index]


@pytest.mark.slow
def test_in_memory_windows_equal_windows_read_from_disk(real_cache) -> None:
    from avdf.data.dataset import WindowDataset

    samples, cache_dir = real_cache
    on_disk = WindowDataset(samples, cache_dir, SPEC, window_steps=40, train=False)
    in_ram = WindowDataset(samples, cache_dir, SPEC, window_steps=40, train=False, in_memory=True)
    assert len(in_ram) == len(on_disk) > len(samples)  # several windows per video
    for _ in range(2):  # the second pass is served from RAM
        for i in range(len(on_disk)):
            a, b = on_disk[i].features, in_ram[i].features
            assert (a.first_step, a.n_steps) == (b.first_step, b.n_steps)
            for name in ("face", "mouth", "mel", "face_mask", "audio_mask"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert sorted(in_ram._memory) == list(range(len(samples)))


@pytest.mark.slow
def test_missing_and_mismatched_caches(real_cache, tmp_path, caplog) -> None:
    from avdf.data.dataset import WindowDataset, missing_from_cache
    from avdf.errors import InputError

    samples, cache_dir = real_cache
    ghost = Sample("ghost/x", "test", "train", "x.mp4", 3.0, 1, (Segment(0, 1),))
    unlabelled = Sample("real/a", "test", "train", "a.mp4", 3.0, None)
    assert [s.id for s in missing_from_cache([*samples, ghost], cache_dir)] == ["ghost/x"]
    with caplog.at_level(logging.WARNING):
        ds = WindowDataset([*samples, ghost, unlabelled], cache_dir, SPEC, 32)
    assert len(ds.samples) == 3
    assert "skipping 2 of 5 videos: 1 not in the cache" in caplog.text
    with pytest.raises(InputError, match="rerun avdf preprocess"):
        WindowDataset(samples, cache_dir, MediaSpec(face_size=32), 32)


# --- augmentation ----------------------------------------------------------------------------
@pytest.mark.slow
def test_augmentation_is_one_transform_per_window_and_training_only(real_cache) -> None:
    """A window is transformed as a whole: a frame that repeats its neighbour (a frozen
    frame, the evidence of an edit) still repeats it, the mel moves by one constant, face
    and mouth flip together; validation windows are untouched."""
    from avdf.data.augment import Augmentation
    from avdf.data.dataset import WindowDataset

    samples, cache_dir = real_cache
    plain = WindowDataset(samples, cache_dir, SPEC, window_steps=32, train=False)
    original = plain[0].features
    frozen = original.face.copy()
    frozen[10] = frozen[9]
    window = original.__class__(**{**vars(original), "face": frozen})
    torch.manual_seed(1)
    flips = 0
    for _ in range(8):
        out = Augmentation(flip=0.5)(window)
        assert out.face.shape == window.face.shape and out.face.dtype == np.uint8
        np.testing.assert_array_equal(out.face[10], out.face[9])  # still frozen
        assert not np.array_equal(out.face[11], out.face[10])
        offset = out.mel.astype(np.float32) - window.mel.astype(np.float32)
        assert np.ptp(offset) < 0.02 and abs(float(offset.mean())) <= 1.0
        # Flip: with colour and shift off, the face is the mirror image or the same.
        still = Augmentation(flip=0.5, brightness=0, contrast=0, colour=0, shift=0)(window)
        mirrored = np.array_equal(still.face, window.face[:, :, ::-1])
        assert mirrored or np.array_equal(still.face, window.face)
        assert mirrored == np.array_equal(still.mouth, window.mouth[:, :, ::-1])
        flips += mirrored
    assert 0 < flips < 8
    augmented_val = WindowDataset(
        samples, cache_dir, SPEC, window_steps=32, train=False, augment=Augmentation()
    )
    np.testing.assert_array_equal(augmented_val[0].features.face, original.face)
