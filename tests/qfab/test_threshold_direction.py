"""``MultiThreshold``'s ``direction``: falling channels live in the thresholds, not the weights.

Semantics checked against a plain Python loop, validation errors that name the node and
the key, the file round trip, and the random graphs that put falling channels in front
of the lowering and the hardware.
"""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import IRError
from qfab.golden import multi_threshold, run_golden_int
from qfab.ir import Graph, Node
from qfab.ops.threshold import apply_thresholds, falling_channels
from qfab.random_graph import GraphBuilder, random_mlp_graph
from qfab.ranges import node_ranges


def _mt(t, direction=None, out_bits=2, offset=0, bipolar=False) -> Node:
    attrs = {"out_bits": out_bits, "offset": offset, **({"bipolar": True} if bipolar else {})}
    tensors = {"thresholds": np.asarray(t, np.int64)}
    if direction is not None:
        tensors["direction"] = np.asarray(direction, np.int64)
    return Node("mt", "MultiThreshold", ["x"], attrs, tensors)


def _loop(t, d, acc, offset=0, bipolar=False) -> list[list[int]]:
    """``offset + #{k : d[c] * acc >= T[c, k]}`` per channel of NHWC rows, in plain Python."""
    c = len(t)
    out = []
    for row in acc:
        vals = []
        for i, a in enumerate(row):
            count = sum(int(d[i % c]) * int(a) >= int(tk) for tk in t[i % c])
            vals.append(2 * count - 1 if bipolar else offset + count)
        out.append(vals)
    return out


def test_direction_counts_thresholds_reached_by_direction_times_acc():
    t = np.array([[-1, 2, 2], [-3, 0, 5], [0, 0, 0]])
    d = np.array([1, -1, -1])
    rng = np.random.default_rng(0)
    acc = rng.integers(-7, 8, size=(11, 2 * 3))  # two pixels of three channels (NHWC)
    got = multi_threshold(_mt(t, d, offset=-2), acc)
    np.testing.assert_array_equal(got, _loop(t, d, acc, offset=-2))
    # a falling channel's output never rises with the accumulator
    ramp = np.arange(-8, 9)[:, None].repeat(3, axis=1)
    out = multi_threshold(_mt(t, d), ramp)
    assert np.all(np.diff(out[:, 0]) >= 0) and np.all(np.diff(out[:, 1:], axis=0) <= 0)


def test_all_rising_direction_equals_no_direction_and_bipolar_falls_too():
    t = np.array([[0], [3], [-2]])
    acc = np.random.default_rng(1).integers(-5, 6, size=(20, 3))
    plain = multi_threshold(_mt(t, out_bits=1, bipolar=True), acc)
    ones = multi_threshold(_mt(t, [1, 1, 1], out_bits=1, bipolar=True), acc)
    np.testing.assert_array_equal(plain, ones)
    falling = multi_threshold(_mt(t, [1, -1, -1], out_bits=1, bipolar=True), acc)
    np.testing.assert_array_equal(falling, _loop(t, [1, -1, -1], acc, bipolar=True))
    assert set(np.unique(falling)) <= {-1, 1}
    # the hardware units' helper: direction None is "every channel rises"
    np.testing.assert_array_equal(apply_thresholds(t, acc, 0, True, None), plain)


def test_value_range_is_unchanged_by_direction():
    g = random_mlp_graph(12, [7], 3, act_bits=3, signed_acts=True, seed=2, falling=0.5)
    r = node_ranges(g)["mt0"]
    np.testing.assert_array_equal(r.lo, np.full(7, -4))
    np.testing.assert_array_equal(r.hi, np.full(7, 3))
    x = np.random.default_rng(0).integers(0, 256, size=(50, 12))
    out = run_golden_int(g, x).outputs["mt0"]
    assert out.min() >= -4 and out.max() <= 3


@pytest.mark.parametrize(
    ("direction", "message"),
    [
        (np.array([1, -1]), r"node 'mt0' \(MultiThreshold\): tensor 'direction' must be \[3\]"),
        (np.ones((3, 1), np.int64), r"node 'mt0' \(MultiThreshold\): tensor 'direction' must be"),
        (np.array([1, 0, -1]), r"tensor 'direction' holds 0 at channel 1; allowed: \+1"),
        (np.array([1, -1, 2]), r"tensor 'direction' holds 2 at channel 2"),
        (np.array([1.0, -1.0, 1.0]), r"tensor 'direction' must hold int values, got float64"),
    ],
)
def test_a_bad_direction_is_refused_naming_node_and_key(direction, message):
    g = random_mlp_graph(8, [3], 2, seed=0)
    g.node("mt0").tensors["direction"] = direction
    with pytest.raises(IRError, match=message):
        g.validate()


def test_direction_round_trips_in_the_file(tmp_path):
    g = random_mlp_graph(10, [6, 5], 3, seed=4, falling=0.5)
    d = g.node("mt0").tensors["direction"]
    assert set(np.unique(d)) == {-1, 1}
    back = Graph.load(g.save(tmp_path / "m.qfab.npz"))
    np.testing.assert_array_equal(back.node("mt0").tensors["direction"], d)
    x = np.random.default_rng(0).integers(0, 256, size=(30, 10))
    np.testing.assert_array_equal(run_golden_int(back, x).logits, run_golden_int(g, x).logits)


def test_builder_draws_falling_channels_over_minus_acc():
    b = GraphBuilder((24,), seed=5)
    b.dense(16, weight_bits=3, bias=True)
    acc_node = b.last
    b.thresholds(2, falling=0.5, name="mt")
    g = b.output()
    mt = g.node("mt")
    d = mt.tensors["direction"]
    assert 0 < len(falling_channels(mt)) < 16
    acc = node_ranges(g)[acc_node]
    lo = np.where(d < 0, -acc.hi, acc.lo)
    hi = np.where(d < 0, -acc.lo, acc.hi)
    t = mt.tensors["thresholds"]
    assert np.all(t >= lo[:, None]) and np.all(t <= hi[:, None] + 1)
    # channel 0 never fires and channel 1 always does, whichever way they face
    x = np.random.default_rng(0).integers(0, 256, size=(40, 24))
    out = run_golden_int(g, x).outputs["mt"]
    assert np.all(out[:, 0] == 0) and np.all(out[:, 1] == 3)


def test_builder_without_falling_draws_what_it_always_drew():
    """``falling`` = 0 writes no direction and consumes no random numbers, so every
    existing random design (and its RTL tests) is unchanged."""
    a = random_mlp_graph(16, [9, 7], 4, seed=3)
    b = GraphBuilder((16,), seed=3)
    for i, h in enumerate([9, 7]):
        b.dense(h, name=f"fc{i}")
        b.thresholds(2, falling=0.0, name=f"mt{i}")
    b.dense(4, bias=True, name="fc2")
    g: Graph = b.output()
    for n in a.nodes:
        assert "direction" not in n.tensors
        for k, v in n.tensors.items():
            np.testing.assert_array_equal(g.node(n.name).tensors[k], v)
