"""The vectorised building blocks: stable grouping and exact running sums per group."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.swap._segments import grouped_running_sum, stable_order, trailing_all


def test_stable_order_keeps_ties_in_row_order():
    keys = np.array([2, 0, 2, 1, 0, 2], np.int64)
    order, sorted_keys = stable_order(keys, 3)
    assert order.tolist() == [1, 4, 3, 0, 2, 5]
    assert sorted_keys.tolist() == [0, 0, 1, 2, 2, 2]
    # Keys too wide to pack with the row number: the argsort fallback, same answer.
    wide = keys * (2**61)
    order, sorted_keys = stable_order(wide, 2**62)
    assert order.tolist() == [1, 4, 3, 0, 2, 5]


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-3, 3)), max_size=60),
       st.floats(-5, 5))
def test_grouped_running_sum_is_the_python_loop_bit_for_bit(rows, start):
    keys = np.array([k for k, _ in rows], np.int64)
    values = np.array([v for _, v in rows], np.float64)
    offsets, sums = grouped_running_sum([keys, values], 6, start)
    for k in range(6):
        x, expected = start, []
        for key, v in rows:
            if key == k:
                x = x + v
                expected.append(x)
        assert sums[offsets[k] : offsets[k + 1]].tolist() == expected


def test_grouped_running_sum_long_groups():
    # Long groups take the cumsum path; many lengths at once.
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 40, 5000)
    keys[:1000] = 7
    values = rng.normal(size=5000)
    offsets, sums = grouped_running_sum([keys, values], 41, 0.25)
    for k in (7, 13, 40):
        x, expected = 0.25, []
        for v in values[keys == k]:
            x = x + v
            expected.append(x)
        assert sums[offsets[k] : offsets[k + 1]].tolist() == expected


def test_trailing_all():
    offsets = np.array([0, 3, 5, 5, 8])
    values = np.array([1, 5, 5, 5, 5, 5, 1, 5], float)
    got = trailing_all(values, offsets, 2, lambda v: v >= 5)
    assert got.tolist() == [True, True, False, False]
