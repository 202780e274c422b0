import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from avdf.timebase import MediaSpec, exact_div
from avdf.types import Segment


def test_default_spec_derived_sizes():
    spec = MediaSpec()
    assert spec.samples_per_frame == 640
    assert spec.mel_frames_per_frame == 4
    assert spec.samples_per_step == 640
    assert spec.step_seconds == pytest.approx(0.04)


def test_inexact_divisions_fail_loudly():
    with pytest.raises(ValueError):
        exact_div(16000, 30)
    with pytest.raises(ValueError):
        MediaSpec(fps=30)  # 16000 / 30 is not whole
    MediaSpec(fps=50, sample_rate=16000, mel_hop=160)  # 320 samples, 2 mel frames: fine


def test_frames_in_rounds_float_durations():
    spec = MediaSpec()
    assert spec.frames_in(6.96) == 174
    assert spec.frames_in(4.56) == 114
    assert MediaSpec(stride=2).steps_in(6.96) == 87


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from([1, 2, 4, 5]))
def test_step_seconds_round_trip(step, stride):
    spec = MediaSpec(stride=stride)
    assert spec.seconds_to_step(spec.step_start(step)) == pytest.approx(step)
    assert spec.steps_to_seconds(spec.seconds_to_step(step * 0.1)) == pytest.approx(step * 0.1)


@given(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.floats(min_value=0, max_value=10, allow_nan=False),
    st.integers(min_value=1, max_value=4000),
)
def test_segment_steps_are_exactly_the_steps_whose_centre_is_inside(start, length, n_steps):
    spec = MediaSpec()
    seg = Segment(start, start + length)
    inside = set(spec.segment_steps(seg, n_steps))
    # Centres within a float-rounding hair of a boundary may go either way.
    for k in range(n_steps):
        c = spec.step_center(k)
        if seg.start + 1e-9 < c < seg.end - 1e-9:
            assert k in inside
        elif c < seg.start - 1e-9 or c > seg.end + 1e-9:
            assert k not in inside


def test_spec_dict_round_trip():
    spec = MediaSpec(stride=2, face_size=96)
    assert MediaSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        MediaSpec.from_dict({"fps": 25, "bogus": 1})


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1, max_value=100, allow_nan=False),
            st.floats(min_value=0, max_value=10, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=0, max_value=3000),
    st.sampled_from([1, 2]),
)
def test_segment_step_bounds_equal_segment_steps(pairs, n_steps, stride):
    """The vectorised rule and the scalar one give the same steps for every segment."""
    spec = MediaSpec(stride=stride)
    starts = np.array([max(0.0, s) for s, _ in pairs])
    ends = starts + np.array([length for _, length in pairs])
    first, stop = spec.segment_step_bounds(starts, ends, n_steps)
    assert first.dtype == stop.dtype == np.int64 and (first <= stop).all()
    for s, e, lo, hi in zip(starts, ends, first, stop, strict=True):
        assert list(range(lo, hi)) == list(spec.segment_steps(Segment(s, e), n_steps))


def test_segments_mask_is_the_union_of_their_steps() -> None:
    spec = MediaSpec()  # 25 steps a second: step k's centre is at (k + 0.5) * 0.04 s
    # 0.05-0.13 s holds the centres 0.06, 0.10 (steps 1, 2); 0.20-0.30 s holds 0.22, 0.26
    # (steps 5, 6); the last segment runs past the 8 steps and is clipped.
    segments = [Segment(0.05, 0.13), Segment(0.20, 0.30), Segment(0.29, 1.0)]
    mask = spec.segments_mask(segments, 8)
    assert mask.dtype == bool
    assert mask.tolist() == [False, True, True, False, False, True, True, True]
    assert not spec.segments_mask([], 3).any()
