"""Level 2: generated RTL == golden, integer for integer, on every simulated vector.

One small random design per hardware node kind (tests/hw_gen/designs.py: MVAU with
width converters, XNOR-popcount, signed streams, sliding windows with padding, stride,
non-square and whole-tap beats, depthwise vector units, pools, forks, FIFOs, residual
add with thresholds, three-way concat, shuffle, bipolar widening), each on Verilator
with its steady-state cycles per frame within 5% of the model, most on Icarus as a
second opinion; random backpressure changes no result; a corrupted weight is found at
its layer, channel and vector.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from qfab.golden import run_golden_int
from tests.hw_gen.designs import DESIGNS
from tests.sim.conftest import input_vectors, simulate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(DESIGNS))
def test_verilator_equals_golden(tmp_path, name):
    g, settings = DESIGNS[name]()
    m, result, eq = simulate(g, settings, tmp_path, "verilator", vectors=24)
    assert eq["vectors"] == len(input_vectors(g, 24))  # 24 random + the extremes
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.taps, "the bench taps the inner units"
    model = m["perf"]["cycles_per_frame"]
    assert result.cycles_per_frame == pytest.approx(model, rel=0.05)


@pytest.mark.parametrize(
    "name", ["mlp_dwc", "mlp_w1a1_xnor", "mlp_signed", "lenet_like", "branchy", "bipolar_conv"]
)
def test_icarus_equals_golden(tmp_path, name):
    g, settings = DESIGNS[name]()
    _, result, eq = simulate(g, settings, tmp_path, "icarus", vectors=12)
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.simulator == "icarus"


@pytest.mark.parametrize(("simulator", "name"), [("verilator", "mlp_dwc"), ("icarus", "branchy")])
def test_backpressure_and_gaps_change_no_result(tmp_path, simulator, name):
    g, settings = DESIGNS[name]()
    _, steady, eq = simulate(g, settings, tmp_path / "a", simulator, vectors=12)
    _, stalled, eq_bp = simulate(
        g, settings, tmp_path / "b", simulator, vectors=12, backpressure=True, seed=3
    )
    assert eq["mismatches"] == 0 and eq_bp["mismatches"] == 0, eq_bp["first_mismatch"]
    assert (stalled.outputs == steady.outputs).all()
    assert stalled.total_cycles > steady.total_cycles  # the stalls really happened


def test_corrupted_weight_is_reported_at_its_layer(tmp_path):
    """The check can fail: one wrong weight in conv1 is caught at its activation mt1."""
    g, settings = DESIGNS["lenet_like"]()
    bad = copy.deepcopy(g)
    w = bad.node("conv1").tensors["weight"]
    w[5, 1, 1, 2] = 1 if w[5, 1, 1, 2] != 1 else -1
    _, _, eq = simulate(g, settings, tmp_path, "icarus", vectors=40, rtl_graph=bad)
    x = input_vectors(g, 40)
    good, wrong = run_golden_int(g, x).outputs["mt1"], run_golden_int(bad, x).outputs["mt1"]
    differs = np.argwhere(good != wrong)
    assert len(differs) > 0, "the corruption must change an activation on these vectors"
    assert eq["mismatches"] > 0
    first = eq["first_mismatch"]
    v, c = differs[0]
    assert (first["layer"], first["vector"], first["channel"]) == ("mt1", v, c)
    assert c % 6 == 5  # channel 5 of some pixel (NHWC: pixel * 6 + channel)
    assert (first["golden"], first["rtl"]) == (good[v, c], wrong[v, c])
