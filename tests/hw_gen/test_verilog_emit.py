"""The Verilog generator without a simulator: files, manifest, ROM contents, widths, lint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from hw_gen.verilog.units import Design, swg_rows, weight_element
from qfab.errors import HardwareError
from qfab.extremes import extreme_vectors
from qfab.golden import run_golden_int
from qfab.ir import input_range
from qfab.random_graph import random_mlp_graph
from qfab.values import Element
from sim.lint import verilator_lint
from tests.hw_gen.designs import DESIGNS


def rom_words(text: str) -> list[int]:
    """Values of a generated ROM module, by address."""
    return [int(v, 16) for _, v in re.findall(r"mem\[(\d+)\] = \d+'h([0-9a-f]+);", text)]


def design(name: str, tmp_path):
    g, kw = DESIGNS[name]()
    hw = lower(g, **kw)
    return g, hw, generate_verilog(hw, tmp_path / "rtl")


def test_folder_is_self_contained_and_described(tmp_path):
    _, hw, m = design("mlp_dwc", tmp_path)
    files = sorted(p.name for p in (tmp_path / "rtl").iterdir())
    assert sorted([*m["sources"], "design.json"]) == files
    assert "mvau_pipe.v" in files and "stream_dwc.v" in files and m["sources"][-1] == "qfab_top.v"
    assert json.loads((tmp_path / "rtl" / "design.json").read_text()) == m
    assert not list(tmp_path.glob(".rtl.*"))  # no temp folder left behind
    inp, out = m["input"], m["output"]
    assert inp["element"] == {"bits": 4, "signed": False, "bipolar": False}
    assert inp["features"] == 24 and inp["elems_per_beat"] * inp["beats_per_frame"] == 24
    assert inp["tdata_bits"] % 8 == 0 and inp["scale"] == 2.0**-4
    assert out["model_node"] == "fc2" and out["tlast"] and len(out["dequant"]["scale"]) == 10
    assert {t["model_node"] for t in m["taps"]} == {"mt0", "mt1", "fc2"}
    assert m["perf"]["cycles_per_frame"] == max(n.attrs.get("cycles", 0) for n in hw.nodes)
    top = (tmp_path / "rtl" / "qfab_top.v").read_text()
    assert "m_axis_tlast" in top and "Modelled throughput: one frame every 24 cycles" in top


def test_weight_rom_holds_the_matrix_in_stream_order(tmp_path):
    g, hw, _ = design("mlp_dwc", tmp_path)
    node = hw.node("fc1")  # MW 24, MH 13, PE 13, SIMD 2
    pe, simd = node.attrs["pe"], node.attrs["simd"]
    el = weight_element(node)
    words = rom_words((tmp_path / "rtl" / "fc1_weights.v").read_text())
    assert len(words) == (13 // pe) * (24 // simd)
    w = np.zeros((13, 24), np.int64)
    sf_n = 24 // simd
    for addr, word in enumerate(words):  # addr = nf*SF + sf, element p*SIMD + s
        nf, sf = divmod(addr, sf_n)
        for p in range(pe):
            for s in range(simd):
                raw = (word >> ((p * simd + s) * el.bits)) & ((1 << el.bits) - 1)
                w[nf * pe + p, sf * simd + s] = el.decode(np.array(raw))
    np.testing.assert_array_equal(w, g.node("fc1").tensors["weight"])


def generated_param(rtl: Path, unit: str, name: str) -> int:
    """A parameter the generator wrote into ``<unit>_unit.v`` (what the RTL really gets)."""
    found = re.findall(rf"\.{name}\((-?\d+)\)", (rtl / f"{unit}_unit.v").read_text())
    assert len(found) == 1, (unit, name, found)
    return int(found[0])


def register_values(hw, node, x_int: np.ndarray) -> np.ndarray:
    """Every value a compute unit's accumulator register holds at the end of a sum, on
    ``x_int``: computed here from the unit's weights and its input stream (golden's
    output of the node feeding it), not from any range or width formula."""
    xin = run_golden_int(hw, x_int).outputs[node.inputs[0]].astype(np.int64)
    w = node.tensors["weight"].astype(np.int64)
    if node.op == "VVAU":
        c, k = w.shape
        return np.einsum("npkc,ck->npc", xin.reshape(len(xin), -1, k, c), w).reshape(-1)
    vec = xin.reshape(len(xin), -1, w.shape[1])
    if node.op == "XnorMVAU":  # the unit counts agreeing signs; without thresholds 2*pc+bias
        pc = (vec[:, :, None, :] > 0) == (w[None, None] > 0)
        pc = pc.sum(axis=-1)
        if "thresholds" in node.tensors:
            return pc.reshape(-1)
        return np.concatenate([pc.reshape(-1), (2 * pc + node.tensors["bias"]).reshape(-1)])
    acc = vec @ w.T + node.tensors.get("bias", np.zeros(len(w), np.int64))
    return acc.reshape(-1)


def random_inputs(g, vectors: int = 64, seed: int = 0) -> np.ndarray:
    """Uniform random input integers over the InputQuant's range."""
    lo, hi = input_range(int(g.nodes[0].attrs["bits"]), bool(g.nodes[0].attrs["signed"]))
    return np.random.default_rng(seed).integers(lo, hi + 1, (vectors, g.nodes[0].attrs["features"]))


def fits(values: np.ndarray, bits: int) -> bool:
    """Every value is a ``bits``-wide two's complement number."""
    return bool(values.min() >= -(2 ** (bits - 1)) and values.max() < 2 ** (bits - 1))


def first_units(hw) -> set[str]:
    """Compute units fed by the input through width converters/FIFOs/windows only: there
    the extreme vectors reach the exact extremes (qfab.extremes)."""
    passing = {hw.nodes[0].name}
    found = set()
    for n in hw.nodes[1:]:
        if n.inputs and n.inputs[0] in passing:
            if n.op in ("DWC", "FIFO", "SlidingWindow", "Fork"):
                passing.add(n.name)
            elif n.op in ("MVAU", "VVAU", "XnorMVAU"):
                found.add(n.name)
    return found


def check_widths_hold_and_are_tight(g, hw, rtl: Path, x_int: np.ndarray, tight: set[str]) -> int:
    """Every unit's generated ACC_BITS holds every register value reached on ``x_int`` and
    every threshold it compares with; for the units in ``tight``, one bit less would not
    hold them. Returns how many units were checked tight."""
    checked = 0
    for node in hw.nodes:
        if node.op not in ("MVAU", "VVAU", "XnorMVAU"):
            continue
        bits = generated_param(rtl, node.name, "ACC_BITS")
        held = register_values(hw, node, x_int)
        if "thresholds" in node.tensors:
            held = np.concatenate([held, node.tensors["thresholds"].reshape(-1)])
        assert fits(held, bits), (node.name, bits, held.min(), held.max())
        if node.name in tight:
            assert not fits(held, bits - 1), (node.name, bits, held.min(), held.max())
            checked += 1
    return checked


@pytest.mark.parametrize(
    "name", ["mlp_dwc", "mlp_signed", "mlp_w1a1_xnor", "lenet_like", "depthwise_cp", "bipolar_conv"]
)
def test_accumulator_widths_hold_what_the_extremes_reach_and_no_bit_more(tmp_path, name):
    """The generated ACC_BITS against values the hardware really meets, found without the
    width formula: golden's accumulators on the random and extreme vectors. Sufficient on
    every unit; tight (one bit less loses a reached value or a threshold) on the first
    layer's units, whose derived extremes the extreme vectors provably reach."""
    g, hw, _ = design(name, tmp_path)
    x = np.concatenate([random_inputs(g), extreme_vectors(g).vectors])
    assert check_widths_hold_and_are_tight(g, hw, tmp_path / "rtl", x, first_units(hw)) >= 1


def test_accumulator_widths_on_every_input_of_a_tiny_design(tmp_path):
    """Exhaustively (all 4096 inputs of 3 x 4 bits): every unit holds every value any input
    produces, and the first layer's width is tight on them.

    Deeper units are only checked to hold: their widths come from per-layer ranges that
    assume every input of a layer varies on its own, which the thresholds before them do
    not allow (here fc2 gets 7 bits while every reachable value fits 6): safe, not tight.
    """
    g = random_mlp_graph(3, [4, 3], 2, weight_bits=4, act_bits=2, input_bits=4, seed=9)
    hw = lower(g)
    generate_verilog(hw, tmp_path / "rtl")
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert check_widths_hold_and_are_tight(g, hw, tmp_path / "rtl", grid, {"fc0"}) == 1


def test_an_output_unit_streams_its_whole_register(tmp_path):
    """A unit without thresholds streams the accumulator: the output element the manifest
    announces is exactly the register the RTL computes in."""
    _, hw, m = design("mlp_dwc", tmp_path)
    rtl = tmp_path / "rtl"
    bits = generated_param(rtl, "fc2", "ACC_BITS")
    assert generated_param(rtl, "fc2", "OUT_BITS") == bits
    assert m["output"]["element"] == {"bits": bits, "signed": True, "bipolar": False}
    assert Design(hw).element("fc0") == Element(2)  # 3 thresholds: 0..3


def test_bipolar_streams_are_one_bit_and_widened_where_arithmetic_needs_it(tmp_path):
    _, hw, _ = design("bipolar_conv", tmp_path)
    d = Design(hw)
    pool = next(n for n in hw.nodes if n.op == "StreamingMaxPool")
    assert d.element(pool.name) == Element(1, signed=True, bipolar=True)
    text = (tmp_path / "rtl" / f"{pool.name}_unit.v").read_text()
    assert ".EBITS(1)" in text and ".SIGNED(0)" in text  # max of 1 -> +1, 0 -> -1 is an OR
    swg = (tmp_path / "rtl" / "conv1_swg_unit.v").read_text()
    assert ".IN_BIPOLAR(1)" in swg and ".OBITS(2)" in swg
    assert ".XNOR(1)" in (tmp_path / "rtl" / "fc3_unit.v").read_text()


def test_the_generator_sizes_line_buffers_with_the_unit_benchs_formula():
    """swg_rows (generator) and rows_min/rows_full (unit bench, checked against the RTL)
    agree on every window geometry the unit bench simulates."""
    from tests.rtl import test_swg

    cases = [v for k, v in vars(test_swg).items() if isinstance(v, dict) and "KH" in v]
    assert len(cases) >= 10
    for p in cases:
        _, ow, cw, _ = test_swg._geometry(p)
        got = swg_rows(p["H"], p["KH"], p["SH"], p["PH"], ow, p["KW"], cw, p["TAPS"], p["W"])
        assert got == (test_swg.rows_min(p), test_swg.rows_full(p)), p


def test_line_buffer_rows_follow_the_window_formula():
    # 3x3, stride 1, pad 1 over 8 rows, one tap per beat: the header's example, KH + 1
    lo, full = swg_rows(8, 3, 1, 1, 8, 3, 1, 1, 8)
    assert (lo, full) == (3, 4)
    # 2x2 stride 2 without padding: each row is used once
    assert swg_rows(6, 2, 2, 0, 3, 2, 1, 1, 6)[0] == 2


def test_a_node_kind_without_an_emitter_is_refused_before_any_file(tmp_path, monkeypatch):
    from hw_gen.verilog import units

    g, kw = DESIGNS["branchy"]()
    hw = lower(g, **kw)
    monkeypatch.delitem(units.EMITTERS, "ShuffleStreams")
    with pytest.raises(HardwareError, match=r"node 'shuffle\d+' \(ShuffleStreams\): the Verilog"):
        generate_verilog(hw, tmp_path / "rtl")
    assert not (tmp_path / "rtl").exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DESIGNS))
def test_generated_rtl_is_lint_clean(tmp_path, name):
    """``verilator --lint-only -Wall`` reports nothing, with no warning switched off."""
    _, _, m = design(name, tmp_path)
    warnings = verilator_lint([tmp_path / "rtl" / s for s in m["sources"]], m["top"])
    assert not warnings, "\n".join(warnings[:10])
