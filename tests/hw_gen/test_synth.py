"""Yosys synthesis: real cell counts, and clear errors for parts it cannot target."""

from __future__ import annotations

import pytest

from hw_gen.passes import lower
from hw_gen.synth_yosys import family_of, parse_ltp, parse_stat, summarize, synth_xilinx
from hw_gen.verilog.emit import generate_verilog
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


def test_logic_depth_is_read_from_ltp():
    log = "Longest topological path in qfab_top (length=3):\n  0: a\n"
    assert parse_ltp(log) == 3 and parse_ltp("nothing") is None


@pytest.mark.slow
def test_synth_xilinx_on_a_generated_design(tmp_path):
    g = random_mlp_graph(24, [13], 10, weight_bits=3, act_bits=2, seed=1)
    generate_verilog(lower(g, pe=[13, 5], simd=[4, 13]), tmp_path / "rtl")
    res = synth_xilinx(tmp_path / "rtl", "xc7z020", tmp_path / "synth")
    assert res["tool"] == "yosys" and res["part"] == "xc7z020"
    assert res["LUT"] > 0 and res["FF"] > 0
    # pipelined units: registers between ROM, product tree, accumulator and thresholds
    assert 1 <= res["logic_depth"] < 40
    assert (tmp_path / "synth" / "yosys.log").exists()
    assert (tmp_path / "synth" / "stat.json").exists()  # counts read from stat -json


def test_missing_yosys_or_design_is_a_tool_error(tmp_path, monkeypatch):
    from hw_gen import synth_yosys

    with pytest.raises(ToolError, match="no readable design.json"):
        synth_xilinx(tmp_path, "xc7z020", tmp_path / "synth")
    g = random_mlp_graph(12, [7], 5, seed=1)
    generate_verilog(lower(g), tmp_path / "rtl")
    monkeypatch.setattr(synth_yosys.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match="yosys not found"):
        synth_xilinx(tmp_path / "rtl", "xc7z020", tmp_path / "synth")
