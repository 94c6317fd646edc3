"""The Verilog generator without a simulator: files, manifest, ROM contents, widths, lint."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from hw_gen.verilog.units import Design, swg_rows, weight_element
from qfab.errors import HardwareError
from qfab.values import Element, signed_bits
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


def test_accumulator_and_threshold_widths_come_from_the_ranges(tmp_path):
    _, hw, _ = design("mlp_dwc", tmp_path)
    d = Design(hw)
    node = hw.node("fc0")
    acc = d.acc_range(node)
    t = node.tensors["thresholds"]
    want = signed_bits(min(acc.min, int(t.min())), max(acc.max, int(t.max())))
    assert d.acc_bits(node) == want
    text = (tmp_path / "rtl" / "fc0_unit.v").read_text()
    assert f".ACC_BITS({want})" in text
    assert d.element("fc0") == Element(2)  # 3 thresholds: 0..3
    last = hw.node("fc2")
    assert d.element("fc2") == Element(d.acc_bits(last), signed=True)


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
