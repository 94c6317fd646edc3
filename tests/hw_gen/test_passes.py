"""Lowering passes, each checked the FINN way: execute the graph before and after, compare."""

from __future__ import annotations

import numpy as np
import pytest

from hw_gen.passes import (
    FuseThresholds,
    LowerConv,
    LowerDense,
    LowerLayout,
    MovePoolPastThresholds,
    SetFolding,
    ToXnor,
    lower,
)
from hw_gen.passes.folding import cheapest_fold, compute_units, default_target_cycles
from hw_gen.passes.to_xnor import popcount_thresholds
from qfab.errors import HardwareError
from qfab.golden import compare_levels, run_golden_int
from qfab.ir import Graph, infer_shapes, input_range
from qfab.ops import op_of
from qfab.random_graph import GraphBuilder, random_mlp_graph
from tests.hw_gen.designs import DESIGNS
from tests.hw_gen.falling_designs import FALLING_DESIGNS


def vectors(graph: Graph, n: int = 64, seed: int = 0) -> np.ndarray:
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    x = np.random.default_rng(seed).integers(lo, hi + 1, size=(n, first.attrs["features"]))
    x[0], x[1] = lo, hi
    return x


@pytest.mark.parametrize("name", list(DESIGNS))
def test_lowering_keeps_every_value(name):
    g, kw = DESIGNS[name]()
    hw = lower(g, **kw)
    assert compare_levels(g, hw, vectors(g)) is None
    mapped = {n.attrs["model_node"] for n in hw.nodes if n.attrs.get("model_node")}
    # every activation of the model is produced somewhere in the hardware graph
    activations = {n.name for n in g.nodes if n.op == "MultiThreshold"} - {t for t in mapped}
    pooled = {n.inputs[0] for n in g.nodes if n.op == "MaxPool"}
    assert activations <= pooled  # a threshold before a pool reappears as the pool's output


def structural_sequence() -> list:
    """The lowering passes in :func:`lower`'s order, up to the folding, run one by one."""
    return [
        LowerConv(),
        LowerDense(),
        LowerLayout(),
        MovePoolPastThresholds(),
        FuseThresholds(),
        ToXnor(),
        SetFolding(target_cycles=48),
    ]


def test_each_pass_is_exact_on_its_own():
    g, _ = DESIGNS["branchy"]()
    x = vectors(g)
    want = run_golden_int(g, x).logits
    step = Graph(g.copy().nodes)
    for p in structural_sequence():
        before = [(n.name, n.op, dict(n.attrs)) for n in step.nodes]
        step = p.apply(step)
        np.testing.assert_array_equal(run_golden_int(step, x).logits, want, err_msg=repr(p))
        changed = before != [(n.name, n.op, dict(n.attrs)) for n in step.nodes]
        # this design has no bipolar layer and no pool before thresholds
        assert changed or repr(p) in ("ToXnor", "MovePoolPastThresholds"), f"{p} did nothing"


def test_conv_lowering_picks_the_unit_by_groups():
    b = GraphBuilder((5, 5, 4), seed=1)
    b.conv(4, (3, 3), groups=4, name="dw")  # depthwise -> VVAU
    b.thresholds(2)
    b.conv(8, (1, 1), padding=(0, 0), groups=2, name="grouped")  # -> block-diagonal MVAU
    b.thresholds(2)
    b.conv(4, (1, 1), padding=(0, 0), name="pointwise")  # 1x1: no window
    b.thresholds(2)
    b.dense(3, bias=True)
    g = b.output()
    hw = LowerConv().apply(g)
    ops = {n.name: n.op for n in hw.nodes}
    assert ops["dw"] == "VVAU" and ops["dw_swg"] == "SlidingWindow"
    assert ops["grouped"] == "MVAU" and "grouped_swg" not in ops
    w = hw.node("grouped").tensors["weight"]  # [8, 4]: group 0 reads channels 0-1 only
    assert not w[:4, 2:].any() and not w[4:, :2].any()
    assert ops["pointwise"] == "MVAU" and "pointwise_swg" not in ops
    assert compare_levels(g, lower(g), vectors(g)) is None


def test_xnor_thresholds_are_rewritten_for_the_popcount():
    t = np.array([[-5, 0, 3], [-24, 24, 25]])
    mw = 24
    tp = popcount_thresholds(t, mw)
    # acc = 2*pc - MW reaches T exactly when pc reaches the rewritten threshold
    for pc in range(mw + 1):
        acc = 2 * pc - mw
        np.testing.assert_array_equal(acc >= t, pc >= tp)


def test_xnor_only_where_input_and_weights_are_bipolar():
    g = random_mlp_graph(24, [16, 12], 5, weight_bits=1, act_bits=1, seed=3)
    hw = lower(g, target_cycles=16)
    ops = [n.op for n in compute_units(hw)]
    assert ops == ["MVAU", "XnorMVAU", "XnorMVAU"]  # the first layer reads 8-bit pixels
    assert compare_levels(g, hw, vectors(g)) is None
    generic = lower(g, target_cycles=16, xnor=False)
    assert [n.op for n in compute_units(generic)] == ["MVAU"] * 3
    assert compare_levels(g, generic, vectors(g)) is None


def test_padding_on_a_bipolar_stream_widens_it_and_keeps_the_generic_unit():
    g, kw = DESIGNS["bipolar_conv"]()
    hw = lower(g, **kw)
    from qfab.ranges import node_ranges

    r = node_ranges(hw)
    assert not r["conv1_swg"].bipolar and r["conv1_swg"].bits == 2  # padded: {-1, 0, +1}
    assert hw.node("conv1").op == "MVAU"
    assert r["conv2_swg"].bipolar and hw.node("conv2").op == "XnorMVAU"  # no padding


def test_pool_moves_past_thresholds_exactly():
    b = GraphBuilder((6, 6, 2), seed=2)
    b.conv(3, (3, 3), name="c")
    p = b.pool(2)
    b.thresholds(2, src=p, name="t")
    b.dense(4, bias=True)
    g = b.output()
    hw = lower(g, target_cycles=100)
    pool = next(n for n in hw.nodes if n.op == "StreamingMaxPool")
    assert hw.node(pool.inputs[0]).op == "MVAU"  # thresholds fused before the pool
    assert pool.attrs["model_node"] == "t"
    assert compare_levels(g, hw, vectors(g, 200)) is None


def test_an_overlapping_pool_is_refused_by_name():
    b = GraphBuilder((6, 6, 2), seed=2)
    b.conv(3, (3, 3))
    b.thresholds(2)
    b.pool(3, stride=2)
    b.dense(4, bias=True)
    g = b.output()
    with pytest.raises(
        HardwareError,
        match=r"node 'pool\d+' \(MaxPool\): kernel \[3, 3\] "
        r"with stride \[2, 2\]",
    ):
        lower(g)


def test_explicit_folding_errors_name_the_key_and_unit():
    g = random_mlp_graph(24, [24, 13], 10)
    with pytest.raises(HardwareError, match=r"hw.folding.pe\[1\] = 5 \(fc1\) must divide MH = 13"):
        lower(g, pe=[1, 5, 1], simd=[1, 1, 1])
    with pytest.raises(HardwareError, match=r"hw.folding.simd\[2\] = 2 \(fc2\) must divide MW"):
        lower(g, pe=[1, 1, 1], simd=[1, 1, 2])
    with pytest.raises(HardwareError, match="2 entries for 3 compute units"):
        lower(g, pe=[1, 1], simd=[1, 1])


@pytest.mark.parametrize("target", [1, 7, 64, 100, 10_000])
def test_auto_folding_meets_the_target_with_least_parallelism(target):
    g, _ = DESIGNS["lenet_like"]()
    hw = lower(g, target_cycles=target)
    shapes = infer_shapes(hw)
    for n in compute_units(hw):
        cycles = n.attrs["cycles"]
        pe, simd = n.attrs["pe"], n.attrs.get("simd", 1)
        assert (pe, simd) == cheapest_fold(hw, n, shapes, target)
        if cycles > target:  # only when nothing meets it: then the fastest folding
            assert all(
                op_of(n).cycles(
                    type(n)(n.name, n.op, n.inputs, {**n.attrs, "pe": p}, n.tensors),
                    [shapes[i] for i in n.inputs],
                    shapes[n.name],
                )
                >= cycles
                for p in range(1, n.tensors["weight"].shape[0] + 1)
                if n.tensors["weight"].shape[0] % p == 0
            )


def test_default_target_is_the_slowest_window_at_one_tap_per_cycle():
    g, _ = DESIGNS["lenet_like"]()
    structural = LowerLayout().apply(LowerDense().apply(LowerConv().apply(g)))
    assert default_target_cycles(structural) == 6 * 6 * 9  # conv0: 6x6 outputs, 3x3 taps
    assert default_target_cycles(random_mlp_graph(8, [4], 2)) == 64


def test_ports_are_capped_by_a_width_converter():
    g = random_mlp_graph(64, [64], 10, weight_bits=2, act_bits=2, seed=0)
    hw = lower(g, target_cycles=64, max_port_bits=64)
    first = hw.nodes[0]
    assert first.attrs["pe"] * 8 <= 64  # 8-bit pixels, at most 64 bits per beat
    assert hw.node(hw.consumers("input")[0].name).op == "DWC"
    assert compare_levels(g, hw, vectors(g)) is None


def test_join_fifos_cover_the_slow_branch():
    g, kw = DESIGNS["branchy"]()
    hw = lower(g, **kw)
    fifos = {n.name: n.attrs["depth"] for n in hw.nodes if n.op == "FIFO"}
    assert fifos, "every join input gets a FIFO"
    # the direct branch of the residual add waits for a 3x3 window: at least a row of beats
    add = next(n for n in hw.nodes if n.op == "AddStreams")
    direct = add.inputs[0]
    assert fifos[direct] >= 4 * 8 // hw.node(direct).attrs["pe"]


# ---------------------------------------------------------------- review findings


def test_grouped_binary_conv_keeps_its_zeros_as_ternary_weights():
    b = GraphBuilder((5, 3, 2), input_bits=4, signed_input=True, seed=5)
    b.conv(2, (1, 1), padding=(0, 0), weight_bits=3)
    b.thresholds(1)
    b.conv(4, (1, 2), padding=(0, 0), groups=2, weight_bits=1, name="g")
    b.thresholds(2, name="tg")
    b.dense(3, bias=True)
    g = b.output()
    hw = lower(g, pe=[1, 1, 1], simd=[1, 1, 1])
    unit = hw.node("g")
    assert unit.op == "MVAU" and unit.attrs["weight_bits"] == 2  # zeros are not ±1
    assert compare_levels(g, hw, vectors(g)) is None


def test_a_node_read_twice_by_one_unit_gets_a_fork():
    b = GraphBuilder((4, 4, 2), seed=1)
    b.conv(3, (3, 3))
    t = b.thresholds(2)
    b.add(t, t, shift=(1, 0))
    b.thresholds(2)
    b.dense(3, bias=True)
    g = b.output()
    hw = lower(g)
    fork = next(n for n in hw.nodes if n.op == "Fork")
    assert hw.node(fork.inputs[0]).attrs["model_node"] == t  # the fused unit producing t
    assert compare_levels(g, hw, vectors(g)) is None


def test_the_input_may_have_several_readers():
    b = GraphBuilder((4, 4, 2), seed=2)
    b.conv(2, (3, 3))
    c = b.thresholds(2)
    b.add("input", c)
    b.thresholds(2)
    b.dense(3, bias=True)
    g = b.output()
    hw = lower(g)
    assert hw.consumers("input")[0].op in ("Fork", "DWC")
    assert compare_levels(g, hw, vectors(g)) is None


def test_a_port_narrower_than_one_element_is_refused_by_key():
    g = random_mlp_graph(16, [8], 4, input_bits=8, weight_bits=8)
    with pytest.raises(HardwareError, match=r"hw.max_port_bits = 8 is narrower than one \d+-bit"):
        lower(g, max_port_bits=8)


def test_nodes_that_reach_no_output_are_not_built():
    b = GraphBuilder((4, 4, 2), seed=3)
    b.conv(3, (3, 3))
    t = b.thresholds(2)
    b.conv(2, (1, 1), padding=(0, 0), src=t, name="dead")
    b.dense(3, src=t, bias=True)
    g = b.output()
    hw = lower(g)
    assert not hw.has("dead") and compare_levels(g, hw, vectors(g)) is None


# ------------------------------------------------------------ falling channels (direction)
def _plain_units(g: Graph) -> Graph:
    """The model's compute units before any threshold is fused (rows as in the model)."""
    return LowerDense().apply(LowerConv().apply(g))


@pytest.mark.parametrize("name", list(FALLING_DESIGNS))
def test_falling_channels_lower_exactly_at_both_levels(name):
    """Every fused unit negates its falling rows; every claimed node still equals its
    model node; no hardware node keeps a direction."""
    g, kw = FALLING_DESIGNS[name]()
    falling = {n.name: n for n in g.nodes if n.op == "MultiThreshold" and "direction" in n.tensors}
    assert falling and all((n.tensors["direction"] < 0).any() for n in falling.values())
    hw = lower(g, **kw)
    assert compare_levels(g, hw, vectors(g, 200)) is None
    assert not [n.name for n in hw.nodes if "direction" in n.tensors]
    plain = _plain_units(g)
    for mt in falling.values():
        unit = next(n for n in hw.nodes if n.attrs.get("model_node") == mt.name)
        assert unit.op in ("MVAU", "VVAU", "XnorMVAU"), (mt.name, unit.op)
        d = mt.tensors["direction"]
        want = plain.node(unit.name).tensors["weight"] * d[:, None]
        np.testing.assert_array_equal(unit.tensors["weight"], want, err_msg=unit.name)


def test_falling_designs_use_every_fusing_unit():
    ops = set()
    for make in FALLING_DESIGNS.values():
        g, kw = make()
        ops |= {n.op for n in compute_units(lower(g, **kw))}
    assert ops >= {"MVAU", "VVAU", "XnorMVAU"}


def test_each_pass_is_exact_on_its_own_with_falling_channels():
    """Between LowerLayout and FuseThresholds a falling MultiThreshold is still a model op,
    so golden runs every intermediate graph exactly."""
    g, _ = FALLING_DESIGNS["branchy_falling"]()
    x = vectors(g)
    want = run_golden_int(g, x).logits
    step = Graph(g.copy().nodes)
    for p in structural_sequence():
        step = p.apply(step)
        np.testing.assert_array_equal(run_golden_int(step, x).logits, want, err_msg=repr(p))
        assert compare_levels(g, step, x) is None, repr(p)
        if repr(p) == "LowerLayout":
            left = {n.name for n in step.nodes if n.op == "MultiThreshold"}
            assert left == {"mt_stem", "mt_g1", "mt_dw2", "mt_e1", "mt_e3"}  # mt_add rises
    assert not [n for n in step.nodes if n.op == "MultiThreshold"]


def test_a_falling_bias_is_negated_with_its_row():
    g, kw = FALLING_DESIGNS["mlp_bias_falling"]()
    hw = lower(g, **kw)
    fc0, mt0 = g.node("fc0"), g.node("mt0")
    d = mt0.tensors["direction"]
    # d*(acc + b) >= T  <=>  (d*acc) >= T - d*b: the fused table holds T - d*b
    want = mt0.tensors["thresholds"] - (d * fc0.tensors["bias"])[:, None]
    np.testing.assert_array_equal(hw.node("fc0").tensors["thresholds"], want)
    assert "bias" not in hw.node("fc0").tensors


def test_an_all_rising_direction_is_dropped_and_the_pool_still_moves():
    b = GraphBuilder((6, 6, 2), seed=2)
    b.conv(3, (3, 3), name="c")
    p = b.pool(2)
    b.thresholds(2, src=p, name="t")
    b.dense(4, bias=True)
    g = b.output()
    g.node("t").tensors["direction"] = np.ones(3, np.int64)
    g.validate()
    hw = lower(g, target_cycles=100)
    pool = next(n for n in hw.nodes if n.op == "StreamingMaxPool")
    assert hw.node(pool.inputs[0]).op == "MVAU" and pool.attrs["model_node"] == "t"
    assert compare_levels(g, hw, vectors(g, 200)) is None


def _pool_then_falling() -> Graph:
    b = GraphBuilder((6, 6, 2), seed=2)
    b.conv(3, (3, 3), name="c")
    p = b.pool(2)
    b.thresholds(2, src=p, falling=0.5, name="t")
    b.dense(4, bias=True)
    return b.output()


def test_a_pool_does_not_move_past_falling_thresholds():
    """max(acc) into a falling threshold is the *minimum* of the thresholded values: the
    swap would be wrong, so the pass leaves the pool in place (and golden agrees)."""
    g = _pool_then_falling()
    x = vectors(g, 200)
    step = LowerLayout().apply(_plain_units(g))
    moved = MovePoolPastThresholds().apply(step)
    assert [(n.name, n.op, n.inputs) for n in moved.nodes] == [
        (n.name, n.op, n.inputs) for n in step.nodes
    ]
    assert compare_levels(g, moved, x) is None
    # what the swap would compute (thresholds, then max) differs: the guard matters
    pool = next(n for n in g.nodes if n.op == "MaxPool")
    out = run_golden_int(g, x).outputs
    shapes = infer_shapes(g)
    thresholded = op_of(g.node("t")).execute(g.node("t"), [out["c"]], [], ())
    swapped = op_of(pool).execute(pool, [thresholded], [shapes["c"]], shapes[pool.name])
    assert not np.array_equal(swapped, out["t"])


def test_falling_thresholds_after_a_pool_are_refused_by_name():
    with pytest.raises(
        HardwareError,
        match=r"node 't' \(MultiThreshold\): channels \[[\d, ]+\] fall as the accumulator "
        r"rises \(direction -1\), and its input 'pool\d+' is a max pool",
    ):
        lower(_pool_then_falling())


def test_falling_thresholds_after_an_add_are_refused_by_name():
    """A stand-alone Thresholding unit never receives a direction (the exporter refuses
    a falling activation after a sum; a hand-made graph is refused here)."""
    b = GraphBuilder((4, 4, 2), seed=2)
    b.conv(2, (3, 3))
    c = b.thresholds(2)
    s = b.add("input", c)
    b.thresholds(2, src=s, falling=0.5, name="after_add")
    b.dense(3, bias=True)
    with pytest.raises(
        HardwareError,
        match=r"node 'after_add' \(MultiThreshold\): channels .* its input 'add\d+' "
        r"\(AddStreams\) is not an MVAU or VVAU; a stand-alone Thresholding unit has no "
        r"direction input",
    ):
        lower(b.output())


def test_falling_thresholds_on_a_shared_accumulator_are_refused_by_name():
    """Negating the rows of a unit that a second reader also reads would change what that
    reader sees, so a falling threshold there is not fused and is refused."""
    b = GraphBuilder((4, 4, 2), seed=4)
    c = b.conv(4, (1, 1), padding=(0, 0), name="c")
    t1 = b.thresholds(2, src=c, falling=0.5, name="t_fall")
    t2 = b.thresholds(2, src=c, name="t_rise")
    b.concat(t1, t2)
    b.dense(3, bias=True)
    with pytest.raises(
        HardwareError, match=r"node 't_fall' .* its input 'c' is also read by \['t_rise'\]"
    ):
        lower(b.output())
