"""Level 2 with falling channels: the RTL of designs whose thresholds carry a direction.

The exporter keeps a layer's weights as trained and marks channels that fall as the
accumulator rises with ``MultiThreshold.direction`` -1; the lowering negates those weight
rows (and bias entries) of the unit the thresholds fuse into, since the dense units have
no direction input. These random designs (tests/hw_gen/falling_designs.py) put falling
channels into MVAU (with bias, behind windows, block-diagonal), VVAU and XnorMVAU units;
the generated Verilog must equal golden on the *model* graph, integer for integer.
"""

from __future__ import annotations

import pytest

from tests.hw_gen.falling_designs import FALLING_DESIGNS
from tests.sim.conftest import input_vectors, simulate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(FALLING_DESIGNS))
def test_verilator_equals_golden_with_falling_channels(tmp_path, name):
    g, settings = FALLING_DESIGNS[name]()
    m, result, eq = simulate(g, settings, tmp_path, "verilator", vectors=24)
    assert eq["vectors"] == len(input_vectors(g, 24))  # 24 random + the extremes
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.taps, "the bench taps the inner units"
    assert result.cycles_per_frame == pytest.approx(m["perf"]["cycles_per_frame"], rel=0.05)


@pytest.mark.parametrize("name", ["lenet_falling", "xnor_falling"])
def test_icarus_equals_golden_with_falling_channels(tmp_path, name):
    g, settings = FALLING_DESIGNS[name]()
    _, result, eq = simulate(g, settings, tmp_path, "icarus", vectors=12)
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.simulator == "icarus"
