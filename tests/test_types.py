import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avdf.types import Prediction, Sample, ScoredSegment, Segment, read_manifest, write_manifest

times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def segments(draw):
    a, b = draw(times), draw(times)
    return Segment(min(a, b), max(a, b))


def test_iou_hand_computed():
    assert Segment(0, 2).iou(Segment(1, 3)) == pytest.approx(1 / 3)
    assert Segment(0, 1).iou(Segment(2, 3)) == 0.0
    assert Segment(0, 4).iou(Segment(1, 2)) == pytest.approx(0.25)
    assert Segment(1, 1).iou(Segment(1, 1)) == 0.0  # zero-length: no union


@given(segments(), segments())
def test_iou_is_symmetric_and_bounded(a, b):
    assert a.iou(b) == pytest.approx(b.iou(a))
    assert 0.0 <= a.iou(b) <= 1.0


@given(segments())
def test_iou_with_itself_is_one_unless_empty(a):
    assert a.iou(a) == (1.0 if a.duration > 0 else 0.0)


@given(segments(), segments())
def test_iou_matches_the_official_formula(a, b):
    union = max(a.end, b.end) - min(a.start, b.start)
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    expected = inter / union if union > 0 else 0.0
    assert math.isclose(a.iou(b), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_segment_rejects_reversed_and_non_finite_bounds():
    with pytest.raises(ValueError):
        Segment(2, 1)
    with pytest.raises(ValueError):
        Segment(0, float("nan"))


def test_sample_json_round_trip(tmp_path):
    s = Sample(
        id="test/000001",
        dataset="lavdf",
        split="test",
        path="/data/test/000001.mp4",
        duration=3.2,
        label=1,
        fake_segments=(Segment(0.6, 1.2),),
        audio_fake_segments=(),
        visual_fake_segments=(Segment(0.6, 1.2),),
        extra={"original": "test/000000.mp4"},
    )
    unknown = Sample(id="x", dataset="folder", split="test", path="x.mp4")
    path = tmp_path / "m.jsonl"
    write_manifest([s, unknown], str(path))
    assert read_manifest(str(path)) == [s, unknown]
    assert read_manifest(str(path))[1].audio_fake_segments is None


def test_prediction_round_trip_and_order():
    segs = (
        ScoredSegment(Segment(1.0, 2.0), 0.9, audio_score=0.8, visual_score=0.1),
        ScoredSegment(Segment(3.0, 3.5), 0.4),
    )
    p = Prediction("v", 5.0, 0.9, {"audio": 0.8, "visual": 0.2}, segs, {"audio": 1.0})
    assert Prediction.from_dict(p.to_dict()) == p
    assert segs[0].modality == "audio"
    with pytest.raises(ValueError):
        Prediction("v", 5.0, 0.9, segments=segs[::-1])
