"""The RTL generator without a simulator: files, ROM packing, widths, errors."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from hw_gen.folding import LayerFold, explicit_fold
from hw_gen.rtl_gen import Element, generate_rtl, threshold_rom, weight_rom
from qfab.errors import HardwareError
from qfab.random_graph import random_mlp_graph
from qfab.ranges import bits_for, node_ranges


def graph_and_folds(**kwargs):
    g = random_mlp_graph(24, [24, 13], 10, weight_bits=3, act_bits=2, input_bits=4, **kwargs)
    return g, explicit_fold(g, [4, 13, 2], [6, 2, 13])


def rom_words(text: str) -> list[int]:
    """Values of a generated ROM module, by address."""
    return [int(v, 16) for _, v in re.findall(r"^\s+(\d+): data = \d+'h([0-9a-f]+);", text, re.M)]


def test_design_folder_is_self_contained_and_described(tmp_path):
    g, folds = graph_and_folds()
    d = generate_rtl(g, folds, tmp_path / "rtl")
    names = sorted(p.name for p in (tmp_path / "rtl").iterdir())
    assert names == sorted(
        [
            "mvau_stream.v",
            "stream_dwc.v",
            "fc0_weights.v",
            "fc0_thresholds.v",
            "fc1_weights.v",
            "fc1_thresholds.v",
            "fc2_weights.v",
            "fc2_bias.v",
            "qfab_top.v",
        ]
    )
    assert sorted(p.name for p in d.sources) == names
    assert not list(tmp_path.glob(".rtl.*"))  # no temp folder left behind
    assert (d.in_elems, d.in_elem, d.beats_in) == (6, Element(4), 4)
    assert (d.out_elems, d.beats_out) == (2, 5)
    assert d.in_width == 24 and d.out_width % 8 == 0 and d.out_width >= 2 * d.out_elem.bits
    assert d.cycles_bound == 24
    top = (tmp_path / "rtl" / "qfab_top.v").read_text()
    assert "stream_dwc" in top  # PE 4 of fc0 -> SIMD 2 of fc1
    assert f"input  wire [{d.in_width - 1}:0]  s_axis_tdata" in top
    assert "Packing:" in top and "`timescale" in top


def test_widths_come_from_the_exact_ranges(tmp_path):
    g, folds = graph_and_folds()
    d = generate_rtl(g, folds, tmp_path / "rtl")
    r = node_ranges(g)
    fc0 = d.layers[0]
    t = g.node("mt0").tensors["thresholds"]
    assert fc0.acc_bits == bits_for(min(r["fc0"].min, int(t.min()), -1), max(r["fc0"].max, 0))
    assert fc0.out == Element(2)  # 3 thresholds -> 0..3
    assert d.out_elem == Element(bits_for(min(r["fc2"].min, -1), r["fc2"].max), signed=True)


def test_rom_words_hold_the_weights_in_stream_order(tmp_path):
    g, folds = graph_and_folds()
    d = generate_rtl(g, folds, tmp_path / "rtl")
    layer = d.layers[1]  # MW 24, MH 13, PE 13, SIMD 2
    words = rom_words((tmp_path / "rtl" / "fc1_weights.v").read_text())
    assert len(words) == len(weight_rom(layer)) == 12
    bits, pe, simd = layer.weight.bits, layer.fold.pe, layer.fold.simd
    w = np.zeros((13, 24), np.int64)
    for addr, word in enumerate(words):  # addr = nf*SF + sf, element p*SIMD + s
        for p in range(pe):
            for s in range(simd):
                raw = (word >> ((p * simd + s) * bits)) & ((1 << bits) - 1)
                w[p, addr * simd + s] = Element(bits, signed=True).decode(np.array(raw))
    assert np.array_equal(w, g.node("fc1").tensors["weight"])
    t = rom_words((tmp_path / "rtl" / "fc2_bias.v").read_text())
    assert len(t) == len(threshold_rom(d.layers[2])) == 5


def test_element_encoding_round_trips():
    v = np.array([-4, -1, 0, 3])
    assert np.array_equal(Element(3, signed=True).decode(Element(3, signed=True).encode(v)), v)
    b = np.array([-1, 1, 1, -1])
    assert np.array_equal(Element(1, True, True).decode(Element(1, True, True).encode(b)), b)


def test_unsupported_op_is_named(tmp_path):
    g, folds = graph_and_folds()
    g.nodes[2].op = "MaxPool"
    with pytest.raises(HardwareError, match=r"node 'mt0' \(MaxPool\)"):
        generate_rtl(g, folds, tmp_path / "rtl")
    assert not (tmp_path / "rtl").exists()


def test_bias_before_thresholds_is_named(tmp_path):
    g, folds = graph_and_folds()
    g = copy.deepcopy(g)
    g.node("fc1").tensors["bias"] = np.zeros(13, np.int64)
    with pytest.raises(HardwareError, match=r"node 'fc1' \(Dense\): a bias before thresholds"):
        generate_rtl(g, folds, tmp_path / "rtl")


def test_a_non_chain_is_rejected(tmp_path):
    g, folds = graph_and_folds()
    g.node("fc1").inputs = ["input"]
    with pytest.raises(HardwareError, match=r"node .fc1. \(Dense\): the RTL generator maps"):
        generate_rtl(g, folds, tmp_path / "rtl")


def test_bad_or_missing_folding_fails_before_writing(tmp_path):
    g, folds = graph_and_folds()
    bad = [LayerFold("fc0", 24, 24, 5, 6), *folds[1:]]
    with pytest.raises(HardwareError, match=r"fc0: PE = 5 must divide MH = 24"):
        generate_rtl(g, bad, tmp_path / "x")
    with pytest.raises(HardwareError, match="no folding given for layer 'fc2'"):
        generate_rtl(g, folds[:2], tmp_path / "x")
    assert not (tmp_path / "x").exists()
