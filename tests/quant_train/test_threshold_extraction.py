"""``thresholds_from_brevitas`` against a brute-force scan, on random step functions.

The exporter finds each threshold by bisection. Here the level function is a random
non-decreasing step table (levels already reached at ``lo``, steps anywhere inside the
range, levels never reached before ``hi``; ranges of any sign), and the thresholds must be
exactly what scanning every accumulator finds: ``T[c, k-1]`` = the smallest ``a`` in
``[lo, hi]`` with ``level(a) >= k``, or ``hi + 1`` when no ``a`` reaches it.

The extraction does not check monotonicity (bisection cannot see a non-monotone function,
and eval-mode batch norm + round/clamp are monotone in float32); that the thresholds
reproduce the model is proved by enumerating every accumulator
(``test_threshold_theorem.py``), not by the extraction.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.ranges import IntRange
from quant_train.export_ir import thresholds_from_brevitas


class TableLevels:
    """A level function given by a table per channel, defined on ``[lo, hi]`` only.

    ``table[c, a - lo[c]]`` is channel ``c``'s level at accumulator ``a``; asking outside
    the range fails the test (the extraction must never look there).
    """

    def __init__(self, lo: np.ndarray, tables: list[list[int]]) -> None:
        self.lo = lo
        self.hi = lo + np.array([len(t) for t in tables]) - 1
        width = max(len(t) for t in tables)
        self.table = np.array([t + [t[-1]] * (width - len(t)) for t in tables], np.int64)

    def __call__(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.int64)
        assert a.shape[-1] == len(self.lo), "level function called with the wrong channels"
        assert np.all(a >= self.lo) and np.all(a <= self.hi), "asked outside [lo, hi]"
        return self.table[np.arange(len(self.lo)), a - self.lo]


def brute_force_thresholds(levels_of: TableLevels, levels: int) -> np.ndarray:
    """``T[c, k-1]`` by scanning every accumulator of every channel, one by one."""
    channels = len(levels_of.lo)
    t = np.empty((channels, levels), np.int64)
    for c in range(channels):
        lo, hi = int(levels_of.lo[c]), int(levels_of.hi[c])
        for k in range(1, levels + 1):
            t[c, k - 1] = hi + 1
            for a in range(lo, hi + 1):
                if levels_of.table[c, a - lo] >= k:
                    t[c, k - 1] = a
                    break
    return t


@st.composite
def step_functions(draw: st.DrawFn) -> tuple[TableLevels, int]:
    """(level function, number of levels): 1-4 channels, 1-31 levels, ranges up to 200 wide.

    Each channel starts at a random level at ``lo`` (0 or more: levels reached at ``lo``)
    and rises by random jumps at random positions, capped at the top level; whatever
    the jumps do not reach is never reached (its threshold lies beyond ``hi``).
    """
    levels = draw(st.sampled_from([1, 2, 3, 7, 15, 31]))
    channels = draw(st.integers(1, 4))
    lo, tables = [], []
    for _ in range(channels):
        lo.append(draw(st.integers(-10_000, 10_000)))
        width = draw(st.integers(1, 200))
        level = draw(st.integers(0, levels)) if draw(st.booleans()) else 0
        jumps = draw(st.lists(st.tuples(st.integers(1, width), st.integers(1, levels)), max_size=8))
        steps = np.zeros(width + 1, np.int64)
        for pos, size in jumps:
            steps[pos] += size
        table = np.minimum(level + np.cumsum(steps[:width]), levels)
        tables.append([int(v) for v in table])
    return TableLevels(np.array(lo, np.int64), tables), levels


@settings(max_examples=300, deadline=None)
@given(step_functions())
def test_bisection_finds_exactly_the_brute_force_thresholds(case):
    levels_of, levels = case
    acc = IntRange(levels_of.lo.copy(), levels_of.hi.copy())
    got = thresholds_from_brevitas(levels_of, acc, levels)
    want = brute_force_thresholds(levels_of, levels)
    assert got.shape == want.shape == (len(acc.lo), levels)
    assert got.dtype.kind == "i"
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"channel {bad[0][0]}, level {bad[0][1] + 1}: bisection {got[tuple(bad[0])]}, "
        f"scan {want[tuple(bad[0])]}"
    )


def test_levels_reached_at_lo_and_never_reached_are_at_the_range_edges():
    """The two edge cases by hand: level 2 already at ``lo``, level 3 never."""
    levels_of = TableLevels(np.array([-5]), [[2, 2, 2, 2]])
    t = thresholds_from_brevitas(levels_of, IntRange(np.array([-5]), np.array([-2])), 3)
    np.testing.assert_array_equal(t, [[-5, -5, -1]])
