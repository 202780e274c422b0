"""Log-mel on real speech: filterbank, framing, per-step grouping, streaming == whole."""

from __future__ import annotations

import media_fixtures as fx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.io.decode import iter_audio
from avdf.preprocess.audio import StreamingLogMel, log_mel, mel_filterbank, mel_per_step
from avdf.timebase import MediaSpec

SPEC = MediaSpec()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~3.3 s of real speech at 16 kHz mono, decoded by our decoder."""
    path = fx.speech("speechbrain_spk1_snt1.wav")
    return np.concatenate(list(iter_audio_from_wav(path)))


def iter_audio_from_wav(path):
    import av

    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SPEC.sample_rate)
        for frame in c.decode(audio=0):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1).astype(np.float32)


def test_filterbank_is_htk_triangles():
    fb = mel_filterbank(16000, 512, 64).numpy()  # (257, 64)
    assert fb.shape == (257, 64)
    # Peaks are sampled on the 31 Hz FFT grid, so narrow low bands peak a little below 1,
    # but no band is empty.
    assert np.all(fb >= 0) and np.all((fb.max(axis=0) > 0.5) & (fb.max(axis=0) <= 1.0))
    centres = fb.argmax(axis=0)
    assert np.all(np.diff(centres) >= 0) and centres[-1] > 200
    # HTK: 1000 Hz is 1000 mel.
    assert 2595 * np.log10(1 + 1000 / 700) == pytest.approx(1000.0, abs=0.1)


def test_tone_lands_in_the_right_band():
    t = np.arange(16000) / 16000
    for hz in (300.0, 1000.0, 4000.0):
        mel = log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32), SPEC)
        band = int(np.median(mel[5:-5].argmax(axis=1)))
        fb = mel_filterbank(16000, 512, 64).numpy()
        centre_hz = fb.argmax(axis=0) * 16000 / 512
        assert abs(centre_hz[band] - hz) < 0.15 * hz + 40


def test_framing_is_centred_in_each_hop():
    # An impulse at sample s is loudest in frame s // hop (the window is centred on the hop).
    for s in (1000, 1079, 1080, 1239, 5000):
        x = np.zeros(8000, np.float32)
        x[s] = 1.0
        mel = log_mel(x, SPEC)
        assert mel.sum(axis=1).argmax() == s // SPEC.mel_hop


def test_mel_per_step_shapes_and_padding(speech):
    n = SPEC.steps_in(len(speech) / SPEC.sample_rate)
    out = mel_per_step(speech, SPEC, n + 5)
    assert out.shape == (n + 5, 4, 64) and out.dtype == np.float16
    assert np.all(out[-3:] == np.float16(np.log(1e-6)))  # past the end: silence
    assert out[: n - 1].astype(np.float32).std() > 1.0  # real speech varies
    whole = log_mel(speech, SPEC, (n + 5) * 4)
    np.testing.assert_allclose(out.reshape(-1, 64), whole, atol=0.02, rtol=1e-3)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=30))
def test_streaming_equals_whole(speech, cuts):
    whole = mel_per_step(speech, SPEC, SPEC.steps_in(len(speech) / SPEC.sample_rate) + 2)
    stream = StreamingLogMel(SPEC)
    parts, i, k = [], 0, 0
    while i < len(speech):
        size = cuts[k % len(cuts)]
        stream.push(speech[i : i + size])
        i, k = i + size, k + 1
        ready = stream.ready_steps()
        if ready and k % 2:  # pop at irregular moments
            parts.append(stream.pop_steps(ready))
    done = sum(len(p) for p in parts)
    parts.append(stream.pop_steps(len(whole) - done))
    got = np.concatenate(parts)
    np.testing.assert_allclose(got.astype(np.float32), whole.astype(np.float32), atol=1e-2)


def test_talking_clip_audio_via_decoder():
    audio = np.concatenate(list(iter_audio(fx.SOURCE, SPEC)))
    mel = mel_per_step(audio, SPEC, SPEC.steps_in(6.96))
    assert mel.shape == (174, 4, 64) and np.isfinite(mel.astype(np.float32)).all()
