"""Per-unit cycles measured at each unit's output in the checking run, and the layer table.

On the lenet-like design (SWG -> MVAU -> pool -> SWG -> MVAU -> DWC -> MVAU, model
bottleneck fc2 at 40 cycles) the Icarus run that checks the results also times every
unit's output stream: every stream carries frames at the pipeline's rate (the one
measured at ``m_axis``), and with the cycles each stream was blocked taken out, the
bottleneck shows its own modelled cycles while the units before it show fewer than the
pipeline rate (they were held back by their consumers, and the blocking was counted).
"""

from __future__ import annotations

import json

import pytest

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from sim.layers import cycles_at_outputs, layer_table, steady_cycles_per_frame
from sim.runner import run_cocotb
from tests.hw_gen.designs import lenet_like
from tests.sim.conftest import input_vectors


def test_steady_spacing_leaves_out_the_fill_and_takes_out_blocked_cycles():
    done = [100, 130, 140, 150, 160, 170, 180, 190]  # slow first frames, then every 10
    assert steady_cycles_per_frame(done) == 10.0  # frames 4..7 against frame 3
    blocked = [0, 0, 0, 0, 3, 6, 9, 12]  # 3 blocked cycles in each late frame
    assert steady_cycles_per_frame(done, blocked) == 7.0
    assert steady_cycles_per_frame([5, 25, 35]) == 15.0  # 3 to 5 frames: only the first out
    assert steady_cycles_per_frame([5, 25]) is None
    late = [0, 36, 72, 108, 144, 180, 216, 253, 293, 333, 373, 413]  # a unit before the
    assert steady_cycles_per_frame(late, fill=0.75) == 40.0  # bottleneck: its buffers fill
    assert steady_cycles_per_frame(late) == (413 - 180) / 6  # frames 6..11: fill mixed in


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layers")
    g, settings = lenet_like()
    hw = lower(g, **settings)
    manifest = generate_verilog(hw, tmp / "rtl")
    x = input_vectors(g, 24, extremes=False)
    result = run_cocotb(tmp / "rtl", x, simulator="icarus", build_dir=tmp / "build")
    return tmp, hw, manifest, x, result


@pytest.mark.slow
def test_every_unit_output_runs_at_the_pipeline_rate(lenet_run):
    _, hw, manifest, _, result = lenet_run
    units = [n["name"] for n in manifest["nodes"]]
    assert sorted(result.unit_handshakes) == sorted(units)  # lenet_like has no Fork
    rates = cycles_at_outputs(hw, result.unit_handshakes)
    assert json.loads(json.dumps(rates)) == rates  # storable in a stage's JSON part
    rows = layer_table(hw, rates)
    assert [r["unit"] for r in rows] == units
    bottleneck = max(rows, key=lambda r: r["cycles_model"])
    assert result.cycles_per_frame == bottleneck["cycles_model"]  # the model's bottleneck
    for row in rows:
        assert row["cycles_measured_at_output"] == result.cycles_per_frame, row
        assert row["cycles_unblocked_at_output"] <= row["cycles_measured_at_output"], row
        assert row["LUT"] is None  # no synthesis given
    assert bottleneck["cycles_unblocked_at_output"] == bottleneck["cycles_model"]
    upstream = [r for r in rows if r is not bottleneck]
    assert all(r["cycles_unblocked_at_output"] < r["cycles_measured_at_output"] for r in upstream)
    # units that stall whenever blocked show their own modelled cycles
    assert rows[0]["op"] == "SlidingWindow"
    assert rows[0]["cycles_unblocked_at_output"] == rows[0]["cycles_model"]


@pytest.mark.slow
def test_with_backpressure_nothing_is_claimed_as_steady_state(lenet_run):
    tmp, hw, _, x, _ = lenet_run
    stalled = run_cocotb(
        tmp / "rtl", x[:6], simulator="icarus", build_dir=tmp / "bp", backpressure=True
    )
    assert stalled.unit_handshakes == {} and stalled.cycles_per_frame is None
    assert cycles_at_outputs(hw, stalled.unit_handshakes) == {}
    rows = layer_table(hw, cycles_at_outputs(hw, stalled.unit_handshakes))
    assert all(r["cycles_measured_at_output"] is None for r in rows)
