"""Extreme vectors: the derived accumulator extremes are really reached, checked by golden.

* First accumulating layers (random MLPs and convolutions of every kind, bit widths 1-8,
  signed and unsigned inputs, falling channels): every channel's derived min and max is
  reached by some vector, computed by golden; where every window of a convolution
  touches the padding, the best a window can reach (computed here tap by tap) instead.
* Deeper layers on tiny graphs (2-3 inputs, every input vector enumerated): every
  extreme that brute force shows reachable is reached, none is exceeded.
* The report (:class:`~qfab.extremes.NodeReach`) says what golden says.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.errors import IRError
from qfab.extremes import ACCUMULATING, extreme_vectors
from qfab.golden import run_golden_int
from qfab.ir import Graph, Node, infer_shapes, input_range
from qfab.random_graph import GraphBuilder, random_mlp_graph
from qfab.ranges import node_ranges
from tests.hw_gen.designs import DESIGNS


def per_channel_extremes(out: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of every channel over all vectors and pixels."""
    v = out.reshape(len(out), -1, channels)
    return v.min(axis=(0, 1)), v.max(axis=(0, 1))


def first_layers(graph: Graph) -> list[Node]:
    """Accumulating nodes fed by the input through Flatten only (no threshold between)."""
    found, linear = [], {graph.nodes[0].name}
    for n in graph.nodes[1:]:
        if n.inputs and all(i in linear for i in n.inputs):
            if n.op == "Flatten":
                linear.add(n.name)
            elif n.op in ACCUMULATING:
                found.append(n)
    return found


def reachable_by_some_window(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the best any single output pixel of a first-layer node can reach,
    tap by tap (a padded tap contributes 0): independent of qfab.ranges. Every input
    channel has the InputQuant's range, so a group's channels need no mapping here."""
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    w = node.tensors["weight"].astype(np.int64)
    if node.op == "Dense":
        bias = node.tensors.get("bias", np.zeros(len(w), np.int64)).astype(np.int64)
        return np.minimum(w * lo, w * hi).sum(1) + bias, np.maximum(w * lo, w * hi).sum(1) + bias
    h, wd, _ = infer_shapes(graph)[node.inputs[0]]
    oh, ow, oc = infer_shapes(graph)[node.name]
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    _, kh, kw, icg = w.shape
    best_lo, best_hi = np.full(oc, np.iinfo(np.int64).max), np.full(oc, np.iinfo(np.int64).min)
    for c in range(oc):
        for y, x in itertools.product(range(oh), range(ow)):
            a = b = 0
            for ky, kx, i in itertools.product(range(kh), range(kw), range(icg)):
                iy, ix = y * sh - ph + ky, x * sw - pw + kx
                if 0 <= iy < h and 0 <= ix < wd:
                    a += min(w[c, ky, kx, i] * lo, w[c, ky, kx, i] * hi)
                    b += max(w[c, ky, kx, i] * lo, w[c, ky, kx, i] * hi)
            best_lo[c], best_hi[c] = min(best_lo[c], a), max(best_hi[c], b)
    return best_lo, best_hi


def has_interior_window(graph: Graph, node: Node) -> bool:
    """Some output pixel's window lies wholly inside the image (no padded tap)."""
    h, w, _ = infer_shapes(graph)[node.inputs[0]]
    oh, ow, _ = infer_shapes(graph)[node.name]
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    _, kh, kw, _ = node.tensors["weight"].shape
    rows = any(y * sh - ph >= 0 and y * sh - ph + kh <= h for y in range(oh))
    cols = any(x * sw - pw >= 0 and x * sw - pw + kw <= w for x in range(ow))
    return rows and cols


def check_report_matches_golden(graph: Graph, ext, gold) -> None:
    for name, r in ext.reach.items():
        got_lo, got_hi = per_channel_extremes(gold.outputs[name], r.channels)
        assert np.array_equal(r.got_lo, got_lo) and np.array_equal(r.got_hi, got_hi), name
        rng = node_ranges(graph)[name]
        assert np.array_equal(r.derived_lo, rng.lo) and np.array_equal(r.derived_hi, rng.hi)
        assert np.all(got_lo >= rng.lo) and np.all(got_hi <= rng.hi), name


def check_first_layers(graph: Graph) -> None:
    ext = extreme_vectors(graph)
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    assert ext.vectors.dtype == np.int64 and ext.vectors.shape[1] == first.attrs["features"]
    assert ext.vectors.min() >= lo and ext.vectors.max() <= hi
    assert len(np.unique(ext.vectors, axis=0)) == len(ext.vectors), "no duplicate vectors"
    gold = run_golden_int(graph, ext.vectors)
    check_report_matches_golden(graph, ext, gold)
    ranges = node_ranges(graph)
    layers = first_layers(graph)
    assert layers
    for node in layers:
        got_lo, got_hi = per_channel_extremes(gold.outputs[node.name], len(ranges[node.name].lo))
        want_lo, want_hi = reachable_by_some_window(graph, node)
        assert np.array_equal(got_hi, want_hi), (node.name, got_hi, want_hi)
        assert np.array_equal(got_lo, want_lo), (node.name, got_lo, want_lo)
        if node.op == "Dense" or has_interior_window(
            graph, node
        ):  # a window without padding exists: the derived range itself
            assert np.array_equal(got_hi, ranges[node.name].hi), node.name
            assert np.array_equal(got_lo, ranges[node.name].lo), node.name


@settings(max_examples=40, deadline=None)
@given(
    features=st.integers(1, 12),
    hidden=st.lists(st.integers(1, 8), min_size=0, max_size=2),
    classes=st.integers(1, 4),
    weight_bits=st.integers(1, 8),
    act_bits=st.integers(1, 4),
    input_bits=st.integers(1, 8),
    signed_input=st.booleans(),
    signed_acts=st.booleans(),
    falling=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_first_dense_layer_reaches_every_derived_extreme(
    features,
    hidden,
    classes,
    weight_bits,
    act_bits,
    input_bits,
    signed_input,
    signed_acts,
    falling,
    seed,
):
    g = random_mlp_graph(
        features,
        hidden,
        classes,
        weight_bits=weight_bits,
        act_bits=act_bits,
        input_bits=input_bits,
        signed_input=signed_input,
        signed_acts=signed_acts and act_bits > 1,
        falling=falling,
        seed=seed,
    )
    check_first_layers(g)


@st.composite
def conv_graphs(draw) -> Graph:
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    c = draw(st.integers(1, 4))
    b = GraphBuilder(
        (h, w, c),
        input_bits=draw(st.integers(1, 8)),
        signed_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    kh, kw = draw(st.integers(1, min(3, h + 2))), draw(st.integers(1, min(3, w + 2)))
    ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    if h + 2 * ph < kh or w + 2 * pw < kw:
        ph, pw = kh, kw  # enough padding for one window
    kind = draw(st.sampled_from(["full", "grouped", "depthwise"]))
    # grouped: a divisor of c strictly between 1 and c when there is one (c = 4: 2 groups
    # of 2 input channels each), else c groups with a channel multiplier
    between = [d for d in range(2, c) if c % d == 0]
    grouped = draw(st.sampled_from(between)) if between else c
    groups = {"full": 1, "grouped": grouped, "depthwise": c}[kind]
    mult = draw(st.integers(1, 2))
    b.conv(
        groups * mult if kind != "full" else draw(st.integers(1, 5)),
        (kh, kw),
        stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        padding=(ph, pw),
        groups=groups,
        weight_bits=draw(st.integers(1, 8)),
        name="conv0",
    )
    b.thresholds(draw(st.integers(1, 3)), falling=draw(st.sampled_from([0.0, 0.5])))
    b.dense(draw(st.integers(1, 3)), weight_bits=draw(st.integers(1, 4)), bias=True)
    return b.output()


@settings(max_examples=40, deadline=None)
@given(conv_graphs())
def test_first_conv_layer_reaches_the_best_window_and_the_derived_range(g):
    check_first_layers(g)


@st.composite
def tiny_deep_graphs(draw) -> Graph:
    """2-3 inputs of 1-3 bits, two or three accumulating layers: small enough to enumerate."""
    b = GraphBuilder(
        (draw(st.integers(2, 3)),),
        input_bits=draw(st.integers(1, 3)),
        signed_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    for i in range(draw(st.integers(1, 2))):
        b.dense(draw(st.integers(1, 4)), weight_bits=draw(st.integers(1, 4)), name=f"fc{i}")
        bits = draw(st.integers(1, 3))
        b.thresholds(
            bits,
            signed=draw(st.booleans()) and bits > 1,
            falling=draw(st.sampled_from([0.0, 0.5])),
            name=f"mt{i}",
        )
    b.dense(draw(st.integers(1, 3)), weight_bits=draw(st.integers(1, 4)), bias=True, name="out")
    return b.output()


def all_inputs(graph: Graph) -> np.ndarray:
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    grid = itertools.product(range(lo, hi + 1), repeat=int(first.attrs["features"]))
    return np.array(list(grid), dtype=np.int64)


#: Deeper layers are best effort (a greedy search on golden): random long runs of the
#: two brute-force properties below (1,500-3,000 graphs each, 5 runs, 30,000 graphs) found
#: one graph whose reachable extreme the search missed. CI draws a fixed set of graphs
#: (``derandomize``), so a red run is about the change it tests; a long run re-runs the
#: inner test (``test_...hypothesis.inner_test``) under ``@given`` with more examples.
BEST_EFFORT = settings(max_examples=60, deadline=None, derandomize=True)


@BEST_EFFORT
@given(tiny_deep_graphs())
def test_deeper_layers_reach_what_brute_force_reaches(g):
    ext = extreme_vectors(g)
    everything = run_golden_int(g, all_inputs(g))
    found = run_golden_int(g, ext.vectors)
    check_report_matches_golden(g, ext, found)
    ranges = node_ranges(g)
    for name, r in ext.reach.items():
        best_lo, best_hi = per_channel_extremes(everything.outputs[name], r.channels)
        assert np.all(r.got_hi <= best_hi) and np.all(r.got_lo >= best_lo)
        reachable_hi = best_hi == ranges[name].hi
        reachable_lo = best_lo == ranges[name].lo
        assert np.all(r.reached_hi[reachable_hi]), (name, r.got_hi, best_hi)
        assert np.all(r.reached_lo[reachable_lo]), (name, r.got_lo, best_lo)


def test_the_report_counts_reached_extremes_per_layer():
    g = random_mlp_graph(10, [6], 3, weight_bits=3, input_bits=4, seed=5)
    ext = extreme_vectors(g)
    s = ext.summary()
    assert s["vectors"] == len(ext.vectors)
    assert s["layers"]["fc0"] == {"channels": 6, "max_reached": 6, "min_reached": 6}
    assert s["extremes"] == 2 * (6 + 3)
    assert s["extremes_reached"] == sum(
        v["max_reached"] + v["min_reached"] for v in s["layers"].values()
    )
    assert ext.reach["fc0"].describe() == (
        "fc0: reached the derived max on 6/6 channels, the min on 6/6"
    )


def test_random_vectors_miss_the_extremes_that_these_reach():
    """Why this module exists: mixed-sign weights keep random sums near the middle."""
    g = random_mlp_graph(24, [16], 4, weight_bits=3, input_bits=8, seed=1)
    r = node_ranges(g)["fc0"]
    x = np.random.default_rng(0).integers(0, 256, size=(200, 24))
    x[0], x[1] = 0, 255
    rand = run_golden_int(g, x).outputs["fc0"]
    assert not np.any(rand.max(axis=0) == r.hi) and not np.any(rand.min(axis=0) == r.lo)
    ext = run_golden_int(g, extreme_vectors(g).vectors).outputs["fc0"]
    assert np.array_equal(ext.max(axis=0), r.hi) and np.array_equal(ext.min(axis=0), r.lo)


def test_a_cap_keeps_the_width_deciding_extremes_first():
    g = random_mlp_graph(16, [12, 8], 4, weight_bits=4, input_bits=6, seed=2)
    full = extreme_vectors(g)
    capped = extreme_vectors(g, max_vectors=3)
    assert len(capped.vectors) <= 3 < len(full.vectors)
    out = run_golden_int(g, capped.vectors).outputs["fc0"]
    r = node_ranges(g)["fc0"]
    assert out.max() == r.max and out.min() == r.min  # the node's overall extremes stay


def test_deeper_sign_propagation_stops_when_its_work_budget_is_spent(monkeypatch):
    """The cost is bounded by AIM_WORK (deterministic multiply-adds, not seconds): with
    no budget no backward pass goes past the first layer, and the first layer's extremes
    are still all reached exactly (they are aimed regardless)."""
    import qfab.extremes as ext_mod

    g = random_mlp_graph(64, [64, 64], 10, weight_bits=2, input_bits=8, seed=0)
    deep_passes: list[str] = []
    real = ext_mod._input_gradient

    def counting(nodes, shapes, ranges, target, *args):
        if target != "fc0":
            deep_passes.append(target)
        return real(nodes, shapes, ranges, target, *args)

    monkeypatch.setattr(ext_mod, "_input_gradient", counting)
    full = extreme_vectors(g)
    assert deep_passes, "with the default budget deeper targets are propagated"
    deep_passes.clear()
    monkeypatch.setattr(ext_mod, "AIM_WORK", 0)
    starved = extreme_vectors(g)
    assert deep_passes == []
    for ext in (full, starved):
        assert ext.summary()["layers"]["fc0"]["max_reached"] == 64
        assert ext.summary()["layers"]["fc0"]["min_reached"] == 64


def test_a_hardware_graph_is_refused_by_name():
    from hw_gen.passes import lower

    hw = lower(random_mlp_graph(4, [3], 2, seed=0))
    with pytest.raises(IRError, match=r"node 'fc0' \(MVAU\) is not a model-graph op"):
        extreme_vectors(hw)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_every_hardware_test_design_gets_exact_first_layers_and_a_true_report(name):
    """The designs of the hardware tests: residual adds with shifts, concatenations,
    shuffles, pools, depthwise and bipolar layers all route the wanted signs."""
    g, _ = DESIGNS[name]()
    check_first_layers(g)
    summary = extreme_vectors(g).summary()
    accumulating = [n.name for n in g.nodes if n.op in ACCUMULATING]
    assert list(summary["layers"]) == accumulating


@st.composite
def tiny_branchy_graphs(draw) -> Graph:
    """A 2x2 image of 1-2 bit pixels (at most 256 inputs): conv, thresholds, a residual add
    with shifts, a shuffle or concat, a max pool, a dense layer."""
    c = draw(st.integers(1, 2))
    b = GraphBuilder(
        (2, 2, c),
        input_bits=draw(st.integers(1, 2)) if c == 1 else 1,
        signed_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    b.conv(2, (2, 2), padding=(1, 1), weight_bits=draw(st.integers(1, 3)), name="stem")
    t0 = b.thresholds(2, falling=draw(st.sampled_from([0.0, 0.5])), name="t0")
    b.conv(2, (1, 1), padding=(0, 0), groups=2, weight_bits=draw(st.integers(2, 3)), name="dw")
    t1 = b.thresholds(draw(st.integers(1, 2)), name="t1")
    if draw(st.booleans()):
        join = b.add(t0, t1, shift=(draw(st.integers(0, 2)), 0)) if draw(st.booleans()) else t1
        b.shuffle(2, src=join)
    else:
        b.concat(t0, t1)
    b.pool(2)
    b.dense(2, weight_bits=draw(st.integers(1, 3)), bias=True, name="out")
    return b.output()


@BEST_EFFORT
@given(tiny_branchy_graphs())
def test_branchy_layers_reach_what_brute_force_reaches(g):
    ext = extreme_vectors(g)
    everything = run_golden_int(g, all_inputs(g))
    check_report_matches_golden(g, ext, run_golden_int(g, ext.vectors))
    ranges = node_ranges(g)
    for name, r in ext.reach.items():
        best_lo, best_hi = per_channel_extremes(everything.outputs[name], r.channels)
        assert np.all(r.reached_hi[best_hi == ranges[name].hi]), (name, r.got_hi, best_hi)
        assert np.all(r.reached_lo[best_lo == ranges[name].lo]), (name, r.got_lo, best_lo)
