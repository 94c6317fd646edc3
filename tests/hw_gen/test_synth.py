"""Yosys synthesis: real cell counts, and clear errors for parts it cannot target."""

from __future__ import annotations

import pytest

from hw_gen.folding import explicit_fold
from hw_gen.rtl_gen import generate_rtl
from hw_gen.synth_yosys import family_of, parse_stat, summarize, synth_xilinx
from qfab.errors import HardwareError, ToolError
from qfab.random_graph import random_mlp_graph


def test_family_of_parts():
    assert family_of("xc7z020") == "xc7"
    assert family_of("XC7A35T") == "xc7"
    assert family_of("xczu3eg") == "xcup"
    with pytest.raises(HardwareError, match="synth.part = 'ice40up5k' is not supported"):
        family_of("ice40up5k")


def test_summary_counts_from_a_stat_block():
    log = """
   Number of cells:                 10
     CARRY4                          1
     FDRE                            3
     FDSE                            1
     LUT2                            2
     LUT6                            1
     RAMB18E1                        3
     DSP48E1                         1
"""
    s = summarize(parse_stat(log))
    assert (s["LUT"], s["FF"], s["BRAM36"], s["DSP"], s["CARRY"]) == (3, 4, 2, 1, 1)


@pytest.mark.slow
def test_synth_xilinx_on_a_generated_design(tmp_path):
    g = random_mlp_graph(24, [13], 10, weight_bits=3, act_bits=2, seed=1)
    design = generate_rtl(g, explicit_fold(g, [13, 5], [4, 13]), tmp_path / "rtl")
    res = synth_xilinx(design, "xc7z020", tmp_path / "synth")
    assert res["tool"] == "yosys" and res["part"] == "xc7z020"
    assert res["LUT"] > 0 and res["FF"] > 0
    # the flip-flops hold at least the two input frames of the ping-pong buffer
    assert res["FF"] >= 2 * 24 * 8
    assert (tmp_path / "synth" / "yosys.log").exists()
    assert (tmp_path / "synth" / "stat.json").exists()  # counts read from stat -json


def test_missing_yosys_is_a_tool_error(tmp_path, monkeypatch):
    from hw_gen import synth_yosys

    g = random_mlp_graph(12, [7], 5, seed=1)
    design = generate_rtl(g, explicit_fold(g, [1, 1], [1, 1]), tmp_path / "rtl")
    monkeypatch.setattr(synth_yosys.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match="yosys not found"):
        synth_xilinx(design, "xc7z020", tmp_path / "synth")
