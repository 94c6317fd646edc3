"""Per-unit resources from one Yosys run that keeps the hierarchy.

The relation claimed: the design's totals (the mapped netlist flattened afterwards, read
from ``stat -json``) are exactly the sum of every unit instance's cells (read from the
per-module text ``stat``, submodules expanded) plus the top's own glue. Two different
Yosys reports of the same run must agree, so a unit dropped, counted twice, or a
submodule not expanded is caught. (BRAM36 rounds RAMB18 halves up per unit, so its sum
may exceed the total; the other counts are exact.)
"""

from __future__ import annotations

import pytest

from hw_gen.passes import lower
from hw_gen.synth_yosys import instance_cells, module_cells, synth_xilinx, unit_resources
from hw_gen.verilog.emit import generate_verilog
from qfab.errors import ToolError
from qfab.random_graph import random_mlp_graph
from sim.layers import layer_table

STAT = """
=== lib$paramod\\mvau ===

   Number of wires:                 10
   Number of cells:                  5
     FDRE                            3
     LUT2                            2

   Estimated number of LCs:          2

=== a_unit ===

   Number of wires:                  4
   Number of cells:                  3
     lib$paramod\\mvau               2
     a_rom                           1

=== a_rom ===

   Number of cells:                  1
     RAMB18E1                        1

=== b_unit ===

   Number of cells:                  1
     LUT6                            4

=== top ===

   Number of cells:                  4
     IBUF                            2
     a_unit                          1
     b_unit                          1

=== design hierarchy ===

   top                               1
     a_unit                          1

   Number of cells:                 99
     LUT6                           99
"""


def test_units_expand_their_submodules_per_instance():
    modules = module_cells(STAT)
    assert set(modules) == {"lib$paramod\\mvau", "a_unit", "a_rom", "b_unit", "top"}
    assert instance_cells(modules, "a_unit") == {"FDRE": 6, "LUT2": 4, "RAMB18E1": 1}
    units, glue = unit_resources(STAT, "top", {"a": "a_unit", "b": "b_unit", "c": "c_unit"})
    assert set(units) == {"a", "b"}  # c has no instance in the top
    assert (units["a"]["LUT"], units["a"]["FF"], units["a"]["BRAM36"]) == (4, 6, 1)
    assert units["b"]["LUT"] == 4 and glue == {"IBUF": 2}
    with pytest.raises(ToolError, match="no stat block for the top module 'qfab_top'"):
        unit_resources(STAT, "qfab_top", {})


@pytest.mark.slow
def test_unit_cells_add_up_to_the_design_totals(tmp_path):
    g = random_mlp_graph(12, [8], 5, weight_bits=3, act_bits=2, seed=1)
    hw = lower(g, pe=[2, 5], simd=[3, 4])  # fc0 streams 2 per beat, fc1 takes 4: a DWC
    manifest = generate_verilog(hw, tmp_path / "rtl")
    res = synth_xilinx(tmp_path / "rtl", "xc7z020", tmp_path / "synth", per_unit=True)
    units = [n["name"] for n in manifest["nodes"]]
    assert any(n["op"] == "DWC" for n in manifest["nodes"])
    assert sorted(res["units"]) == sorted(units)
    for key in ("LUT", "FF", "DSP", "LUTRAM", "CARRY"):
        assert sum(u[key] for u in res["units"].values()) + res["top_glue"][key] == res[key], key
    assert sum(u["BRAM36"] for u in res["units"].values()) >= res["BRAM36"]
    assert all(res["units"][n]["LUT"] > 0 for n in ("fc0", "fc1"))
    assert res["hierarchy"] == "kept per unit, then flattened"
    assert isinstance(res["logic_depth"], int) and res["logic_depth"] > 0
    assert (tmp_path / "synth" / "stat_units.txt").exists()
    rows = layer_table(hw, None, res)
    assert [r["unit"] for r in rows] == units
    assert all(r["LUT"] == res["units"][r["unit"]]["LUT"] for r in rows)
    assert all(r["cycles_measured_at_output"] is None for r in rows)  # no simulation given
