"""Tests for the speaker-consistency expert (avdf.preprocess.speaker) on real speech, and for
expert streams in the pipeline, the cache and the data layer."""

from __future__ import annotations

import json
import zipfile

import media_fixtures as fx
import numpy as np
import pytest
import torch

from avdf.data.batch import features_to_inputs
from avdf.data.dataset import WindowDataset
from avdf.errors import InputError
from avdf.experts import EXPERTS
from avdf.preprocess.cache import CacheReader, CacheWriter, read_meta
from avdf.preprocess.features import VideoFeatures
from avdf.preprocess.pipeline import cache_video, empty_features
from avdf.preprocess.speaker import SpeakerEmbedder, speaker_consistency
from avdf.timebase import MediaSpec
from avdf.types import Sample

SPEC = MediaSpec()
STEP = SPEC.samples_per_step
MEDIAN, BEFORE, AFTER, SPEECH = range(4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def talk() -> np.ndarray:
    """7 s of one speaker: the talking clip's own audio (16 kHz)."""
    audio, rate = fx.source_audio(fx.SOURCE)
    assert rate == 16000
    return audio


def per_step(audio: np.ndarray) -> np.ndarray:
    chunks = [audio[i : i + 16000] for i in range(0, len(audio), 16000)]  # as decoded: 1 s
    return speaker_consistency(chunks).steps(SPEC, 0, len(audio) // STEP)


def test_a_splice_of_another_speaker_drops_the_consistency(talk) -> None:
    """2 s of another person's speech inside a 7 s clip: the spliced steps' voice is far
    from the video's median voice, the rest stays close to it."""
    other, _ = fx.source_audio(fx.speech("speechbrain_spk2_snt1.wav"))
    cut = int(2.5 * 16000)
    values = per_step(np.concatenate([talk[:cut], other, talk[cut:]]))
    first, stop = cut // STEP, (cut + len(other)) // STEP
    # Steps within 0.8 s (half a window) of a seam hear both voices: left out.
    margin = 20
    spliced = values[first + 5 : stop - 5, MEDIAN]
    genuine = np.concatenate([values[: first - margin], values[stop + margin :]])[:, MEDIAN]
    assert spliced.min() < 0.65 and genuine.min() > 0.78, (spliced.min(), genuine.min())
    assert genuine.mean() - spliced.mean() > 0.2
    # The context channels see the seams: right after the splice starts, the voice 1.6-2.4 s
    # before is the genuine speaker's.
    assert values[first + margin, BEFORE] < genuine.mean() - 0.2
    assert values[:, SPEECH].min() == 1.0  # speech throughout


def test_same_speaker_halves_stay_consistent(talk) -> None:
    """The clip's two halves swapped: a seam, but one voice; nothing drops."""
    half = len(talk) // 2
    values = per_step(np.concatenate([talk[half:], talk[:half]]))
    assert values[:, MEDIAN].min() > 0.8
    assert values[:, [BEFORE, AFTER]].min() > 0.65


def test_chunking_does_not_change_the_embeddings(talk) -> None:
    whole, chunked = SpeakerEmbedder(), SpeakerEmbedder()
    whole.push(talk)
    for i in range(0, len(talk), 3000):  # chunks shorter than a window
        chunked.push(talk[i : i + 3000])
    a, b = whole.finish(), chunked.finish()
    np.testing.assert_allclose(a.centres, b.centres)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a.embeddings, axis=1), 1.0, atol=1e-5)
    assert a.centres[-1] == pytest.approx(len(talk) / 16000 - 0.8)  # a window ends at the end


def test_silence_and_short_audio() -> None:
    assert not per_step(np.zeros(3 * 16000, np.float32)).any()  # no speech: all zero
    short, _ = fx.source_audio(fx.speech("speechbrain_spk1_snt1.wav"))
    values = per_step(short[:8000])  # 0.5 s: one window over all of it
    assert values.shape == (12, 4) and (values[:, MEDIAN] > 0.99).all()


# --- pipeline, cache and data --------------------------------------------------------------
@pytest.fixture(scope="module")
def tracker():
    from avdf.preprocess.face import FaceTracker

    return FaceTracker(SPEC)


class CountingTracker:
    """The real tracker, counting the frames it is asked to track."""

    def __init__(self, tracker) -> None:
        self.tracker, self.frames = tracker, 0
        self.settings = tracker.settings

    def reset(self) -> None:
        self.tracker.reset()

    def process(self, frames):
        self.frames += len(frames)
        return self.tracker.process(frames)


def test_cache_gets_the_stream_added_and_reads_it_back(tmp_path, tracker) -> None:
    video = fx.reencode(tmp_path / "v.mp4", seconds=2.0)
    cache = tmp_path / "v.npz"
    counting = CountingTracker(tracker)
    first = cache_video(video, cache, SPEC, tracker=counting, chunk_steps=20)
    assert "experts" not in read_meta(cache) and counting.frames == 50
    faces = CacheReader(cache).read().face

    # An up-to-date cache without the stream gets it added; the faces are not tracked again.
    second = cache_video(video, cache, SPEC, tracker=counting, chunk_steps=20, experts=["speaker"])
    assert counting.frames == 50 and not second.skipped and first.n_steps == second.n_steps
    assert read_meta(cache)["experts"] == {"speaker": EXPERTS["speaker"].version}
    reader = CacheReader(cache)
    whole = reader.read()
    np.testing.assert_array_equal(whole.face, faces)
    stream = whole.experts["speaker"]
    assert stream.shape == (50, 4) and stream.dtype == np.float16
    assert (stream[whole.audio_mask, MEDIAN] > 0.5).all() and not stream[~whole.audio_mask].any()
    # Windows across the chunk seams read the same values.
    np.testing.assert_array_equal(reader.read(13, 37).experts["speaker"], stream[13:37])
    assert cache_video(video, cache, SPEC, tracker=counting, experts=["speaker"]).skipped

    # A fresh run with the expert writes the same stream as the upgrade added.
    fresh = tmp_path / "fresh.npz"
    cache_video(video, fresh, SPEC, tracker=tracker, chunk_steps=20, experts=["speaker"])
    np.testing.assert_array_equal(CacheReader(fresh).read().experts["speaker"], stream)
    with zipfile.ZipFile(fresh) as archive:
        assert "c00001/experts/speaker.npy" in archive.namelist()
        assert json.loads(archive.read("meta.json"))["experts"] == read_meta(cache)["experts"]


def blank_features(n: int, experts: dict[str, np.ndarray] | None = None) -> VideoFeatures:
    """``n`` steps of zero crops and mel, every modality present."""
    return VideoFeatures(
        SPEC,
        0,
        np.zeros((n, SPEC.face_size, SPEC.face_size, 3), np.uint8),
        np.zeros((n, SPEC.mouth_size, SPEC.mouth_size, 3), np.uint8),
        np.zeros((n, SPEC.mel_frames_per_step, SPEC.n_mels), np.float16),
        np.ones(n, bool),
        np.ones(n, bool),
        np.zeros((n, 468, 2), np.float16),
        experts or {},
    )


def test_a_cache_without_the_stream_is_a_one_line_error_for_a_model_that_needs_it(
    tmp_path,
) -> None:
    features = blank_features(30)
    sample = Sample(id="old", dataset="folder", split="test", path="old.mp4", label=0)
    with CacheWriter(tmp_path / "old.npz") as writer:
        writer.append(features)
    # Old caches keep working for models without experts ...
    assert len(WindowDataset([sample], tmp_path, SPEC, window_steps=16, train=False)) == 2
    # ... and name the file for one that needs the stream.
    with pytest.raises(InputError) as error:
        WindowDataset([sample], tmp_path, SPEC, window_steps=16, experts=["speaker"])
    message = str(error.value)
    assert "old.npz" in message and "speaker" in message and "\n" not in message
    with pytest.raises(ValueError, match="speaker"):
        features_to_inputs([features], experts=["speaker"])


def test_features_to_inputs_pads_the_stream() -> None:
    base = empty_features(SPEC, experts=["speaker"])
    assert base.experts["speaker"].shape == (0, 4)
    n = 5
    stream = np.full((n, 4), 0.5, np.float16)
    window = blank_features(n, {"speaker": stream})
    inputs = features_to_inputs([window, window.slice(0, 3)], window_steps=8)
    got = inputs["experts"]["speaker"]
    assert got.shape == (2, 8, 4) and got.dtype == torch.float32
    assert got[0, :5].eq(0.5).all() and not got[0, 5:].any() and not got[1, 3:].any()
    assert "experts" not in features_to_inputs([window], experts=[])


def test_detector_computes_the_stream_for_a_model_that_reads_it(tmp_path, tracker) -> None:
    from avdf.inference.detector import Detector
    from avdf.models import create_model

    video = fx.reencode(tmp_path / "v.mp4", seconds=2.0)
    model = create_model("mmms_ba", spec=SPEC, experts=["speaker"], block_dim=16, gru_hidden=16)
    detector = Detector(model, SPEC, window_steps=32, chunk_steps=20)
    detector._tracker = tracker  # reuse the module's tracker (its models are loaded)
    assert detector.detect_steps(video).n_steps == 50
    # Cached features without the stream: one line naming the source.
    cache = tmp_path / "v.npz"
    cache_video(video, cache, SPEC, tracker=tracker, chunk_steps=20)
    with pytest.raises(InputError, match=r"v\.npz: .*speaker"):
        detector.steps_from_features([CacheReader(cache).read()], source=cache)
