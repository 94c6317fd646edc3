"""pareto_front against a brute-force definition of dominance, on random point sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.errors import ConfigError
from qfab.pareto import pareto_front


def brute_force(points: np.ndarray, maximize: list[int], minimize: list[int]) -> list[int]:
    """The definition, one pair at a time: i is on the front unless some j is no worse
    in every counted column and better in one; rows with a NaN there take no part."""

    def no_worse(a, b, col):
        return a[col] >= b[col] if col in maximize else a[col] <= b[col]

    def better(a, b, col):
        return a[col] > b[col] if col in maximize else a[col] < b[col]

    cols = maximize + minimize
    known = [i for i, p in enumerate(points) if not any(np.isnan(p[c]) for c in cols)]
    front = []
    for i in known:
        dominated = any(
            all(no_worse(points[j], points[i], c) for c in cols)
            and any(better(points[j], points[i], c) for c in cols)
            for j in known
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


# small integer values make ties (equal points, equal columns) common
values = st.one_of(st.integers(0, 4).map(float), st.just(float("nan")))


@st.composite
def problems(draw):
    k = draw(st.integers(1, 4))
    n = draw(st.integers(0, 25))
    points = np.array([[draw(values) for _ in range(k)] for _ in range(n)], dtype=float).reshape(
        n, k
    )
    cols = draw(st.permutations(range(k)))
    counted = draw(st.integers(1, k))
    split = draw(st.integers(0, counted))
    return points, list(cols[:split]), list(cols[split:counted])


@settings(max_examples=300, deadline=None)
@given(problems())
def test_front_equals_brute_force(problem):
    points, maximize, minimize = problem
    got = pareto_front(points, maximize=maximize, minimize=minimize)
    assert got.tolist() == brute_force(points, maximize, minimize)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_every_point_off_the_front_is_dominated_by_one_on_it(problem):
    points, maximize, minimize = problem
    front = set(pareto_front(points, maximize=maximize, minimize=minimize).tolist())
    cols = maximize + minimize
    sign = np.array([-1.0] * len(maximize) + [1.0] * len(minimize))
    cost = points[:, cols] * sign if len(points) else np.zeros((0, len(cols)))
    for i in range(len(points)):
        if i in front or np.isnan(cost[i]).any():
            continue
        assert any(np.all(cost[j] <= cost[i]) and np.any(cost[j] < cost[i]) for j in front), (
            f"point {i} is off the front but no front point dominates it"
        )


def test_accuracy_against_luts():
    # (accuracy, LUT): b is better than c in both; a and b trade off; d ties a exactly
    pts = [[0.90, 1000], [0.95, 2000], [0.94, 2500], [0.90, 1000], [0.80, 500]]
    assert pareto_front(pts, maximize=[0], minimize=[1]).tolist() == [0, 1, 3, 4]


@pytest.mark.parametrize(
    ("points", "maximize", "minimize", "says"),
    [
        ([1, 2, 3], [0], [], "must be \\[n, k\\]"),
        ([[1, 2]], [], [], "at least one column"),
        ([[1, 2]], [0], [0], "distinct"),
        ([[1, 2]], [2], [], "in 0..1"),
    ],
)
def test_bad_arguments_are_refused(points, maximize, minimize, says):
    with pytest.raises(ConfigError, match=says):
        pareto_front(points, maximize=maximize, minimize=minimize)
