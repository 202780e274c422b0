"""The one segment-IoU definition: scalar and array forms agree, dtypes and empties."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from avdf.intervals import interval_iou, interval_iou_array
from avdf.metrics import temporal_iou
from avdf.types import Segment

times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
intervals = st.lists(st.tuples(times, times).map(sorted), min_size=1, max_size=8)


@given(intervals, intervals)
def test_array_form_equals_the_scalar_form_pair_by_pair(a, b):
    a_arr, b_arr = np.asarray(a, np.float64), np.asarray(b, np.float64)  # (K, 2), (L, 2)
    a_start, a_end = a_arr[:, None, 0], a_arr[:, None, 1]  # (K, 1)
    every = interval_iou_array(a_start, a_end, b_arr[None, :, 0], b_arr[None, :, 1], empty=0.0)
    assert every.shape == (len(a), len(b))
    for i, (s1, e1) in enumerate(a):
        for j, (s2, e2) in enumerate(b):
            scalar = interval_iou(s1, e1, s2, e2)
            assert every[i, j] == scalar == Segment(s1, e1).iou(Segment(s2, e2))
    # The metrics' proposal x label matrix is the same function (NaN where the union is empty).
    matrix = temporal_iou(a_arr, b_arr)
    np.testing.assert_array_equal(np.nan_to_num(matrix), every)


def test_hand_computed_dtype_and_empty_union():
    starts = np.array([1.0, 2.0, 0.0, 5.0], np.float32)
    ends = np.array([3.0, 3.0, 4.0, 5.0], np.float32)
    iou = interval_iou_array(np.float32(0.0), np.float32(2.0), starts, ends, empty=0.0)
    assert iou.dtype == np.float32  # the reference computes in float32
    np.testing.assert_allclose(iou, [1 / 3, 0.0, 0.5, 0.0])
    assert np.isnan(interval_iou_array(1.0, 1.0, 1.0, 1.0))  # zero-length union: no IoU
    assert interval_iou(1.0, 1.0, 1.0, 1.0) == 0.0
    assert np.isnan(interval_iou_array(0.0, 1.0, np.nan, np.nan))  # padding is never a hit
