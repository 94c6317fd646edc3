"""Widths derived from data: the extremes of the range are reachable and fit the width."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.ir import Node
from qfab.ranges import IntRange, bits_for, dense_acc_range


def test_bits_for_examples():
    assert bits_for(0, 0) == 1
    assert bits_for(0, 1) == 1
    assert bits_for(0, 255) == 8
    assert bits_for(0, 256) == 9
    assert bits_for(-1, 0) == 1
    assert bits_for(-128, 127) == 8
    assert bits_for(-129, 127) == 9
    assert bits_for(-128, 128) == 9


@given(st.integers(-(2**40), 2**40), st.integers(0, 2**40))
def test_bits_for_is_tight(lo, span):
    hi = lo + span
    b = bits_for(lo, hi)
    if lo >= 0:
        assert hi < 2**b and (b == 1 or hi >= 2 ** (b - 1))
    else:
        assert -(2 ** (b - 1)) <= lo and hi < 2 ** (b - 1)
        assert b == 1 or lo < -(2 ** (b - 2)) or hi >= 2 ** (b - 2)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_dense_range_extremes_are_reached(rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, size=(rows, cols))
    x = IntRange(np.full(cols, -3), np.full(cols, 5))
    r = dense_acc_range(Node("fc", "Dense", [], {}, {"weight": w}), x)
    # the input that maximizes row c picks hi where w > 0, lo where w < 0
    for c in range(rows):
        best = np.where(w[c] > 0, 5, -3)
        worst = np.where(w[c] > 0, -3, 5)
        assert int(w[c] @ best) == r.hi[c]
        assert int(w[c] @ worst) == r.lo[c]
