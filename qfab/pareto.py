"""The Pareto front of a set of design points (numpy only, no plotting).

A design is on the front when no other design is at least as good in every objective
and strictly better in one. The HTML comparison report draws the front of accuracy
(to maximize) against LUTs or weight bytes (to minimize); sweeps can rank their trials
with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qfab.errors import ConfigError


def pareto_front(
    points: np.ndarray | Sequence[Sequence[float]],
    maximize: Sequence[int] = (),
    minimize: Sequence[int] = (),
) -> np.ndarray:
    """Indices (ascending) of the points no other point dominates.

    ``points`` is ``[n, k]``: one row per design, one column per objective.
    ``maximize`` and ``minimize`` name the columns that count (each column at most once;
    other columns are ignored). Point ``a`` dominates ``b`` when ``a`` is at least as good
    in every counted column and strictly better in one, so equal points are all kept
    (none is better than the other) — the report marks every one of them. Rows with a
    NaN in a counted column are never on the front and never dominate (a design whose
    accuracy or cost is unknown cannot be compared).

    O(n^2 k) with numpy broadcasting: fronts here have at most thousands of trials.
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ConfigError(f"pareto_front: points must be [n, k], got shape {p.shape}")
    maximize, minimize = [int(i) for i in maximize], [int(i) for i in minimize]
    cols = maximize + minimize
    if not cols:
        raise ConfigError("pareto_front: name at least one column in maximize or minimize")
    if len(set(cols)) != len(cols) or any(not 0 <= i < p.shape[1] for i in cols):
        raise ConfigError(
            f"pareto_front: columns {cols} must be distinct and in 0..{p.shape[1] - 1}"
        )
    # every counted objective turned into "smaller is better"
    cost = np.concatenate([-p[:, maximize], p[:, minimize]], axis=1)
    known = ~np.isnan(cost).any(axis=1)
    c = cost[known]
    no_worse = np.all(c[:, None, :] <= c[None, :, :], axis=2)  # [a, b]: a no worse than b
    better = np.any(c[:, None, :] < c[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)
    return np.flatnonzero(known)[~dominated]
