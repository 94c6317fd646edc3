"""Designs that once went wrong in RTL while golden accepted their lowering (found by a
review with random graphs): each simulates on Icarus and must equal golden."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.random_graph import GraphBuilder
from tests.sim.conftest import input_vectors, simulate

pytestmark = pytest.mark.slow


def unsigned_accumulator(then: str):
    """A 1x1 conv with non-negative weights and no thresholds: its accumulator stream is
    wider (two's complement register) than its value range's narrowest encoding."""
    b = GraphBuilder((4, 4, 2), input_bits=3, seed=2)
    c = b.conv(4, (1, 1), padding=(0, 0), weight_bits=3, name="c0")
    b.nodes[-1].tensors["weight"] = np.abs(b.nodes[-1].tensors["weight"])
    if then == "pool":
        b.pool(2)
    elif then == "shuffle":
        b.shuffle(2)
    elif then == "concat":
        b.concat(c, b.thresholds(2, src=c))
    elif then == "window":
        b.conv(2, (3, 3), padding=(0, 0))
    b.dense(3, bias=True)
    return b.output()


@pytest.mark.parametrize("then", ["pool", "shuffle", "concat", "window"])
def test_accumulator_streams_keep_their_width_through_every_reader(tmp_path, then):
    g = unsigned_accumulator(then)
    _, _, eq = simulate(g, {}, tmp_path, "icarus", vectors=12)
    assert eq["mismatches"] == 0, eq["first_mismatch"]


def test_taps_before_dropped_rows_are_complete(tmp_path):
    """A 2x2 pool over 3x4 drops the last row: the output finishes before the inner
    stream does; the bench waits for every tap instead of reporting it short."""
    b = GraphBuilder((3, 4, 1), input_bits=4, seed=0)
    b.conv(2, (3, 3), name="conv0")
    b.thresholds(2, name="mt0")
    b.pool(2)
    b.dense(3, bias=True)
    g = b.output()
    _, result, eq = simulate(g, {"pe": [1, 1], "simd": [1, 1]}, tmp_path, "icarus", vectors=12)
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.taps["mt0"].shape[0] == len(input_vectors(g, 12))  # 12 random + extremes
