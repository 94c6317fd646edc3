"""Level 2 for the EIE-style sparse engine: RTL == golden on every vector, and its cycles.

Pruned MLPs at 50%, 10% and 3% density, with and without shared weights, chained with
dense layers; every degenerate case of the issue (an all-zero input vector, a column
without non-zeros, a PE owning no non-zero, gaps longer than the index holds, fewer
rows than PEs, PEs not dividing the rows); Verilator and Icarus; random backpressure.
The performance model (hw_gen.sparse_perf) must predict the measured steady-state
cycles per frame exactly when the engine is the design's bottleneck.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw_gen.passes import lower
from hw_gen.sparse_perf import design_sparse_perf
from hw_gen.verilog.emit import generate_verilog
from qfab.ir import Graph
from qfab.ops import OPS
from sim.compare import compare_rtl_to_golden
from sim.lint import verilator_lint
from sim.runner import run_cocotb
from tests.hw_gen.sparse_designs import engine, sparse_inputs, sparse_mlp

pytestmark = pytest.mark.slow


def run(graph: Graph, settings: dict, x: np.ndarray, tmp: Path, simulator: str, **kw):
    hw = lower(graph, **settings)
    manifest = generate_verilog(hw, tmp / "rtl")
    result = run_cocotb(tmp / "rtl", x, simulator=simulator, build_dir=tmp / "build", **kw)
    eq = compare_rtl_to_golden(graph, x, result, manifest["output"]["model_node"])
    return hw, manifest, result, eq


CASES = {
    # name: (graph, lower settings)
    "d50_pe4": lambda: (sparse_mlp(24, [16], 5, 0.5, seed=1), {"sparse": engine(4, 2)}),
    "d10_shared_pe4": lambda: (
        sparse_mlp(64, [30, 12], 10, 0.1, shared=6, seed=2),
        {"sparse": engine(4, 8)},
    ),
    "d03_pe3": lambda: (sparse_mlp(96, [40], 10, 0.03, seed=3), {"sparse": engine(3, 4)}),
    # negative batch-norm slopes: the engine applies the direction, the codebook stays K
    "falling_shared": lambda: (
        sparse_mlp(32, [16, 12], 6, 0.3, shared=5, falling=0.4, seed=13),
        {"sparse": engine(4, 2)},
    ),
    # column 5 and rows 2, 7 (PE 2 of 5) all zero; 1-bit indices force padding entries;
    # 12 rows over 5 PEs; the classifier has 3 rows for 5 PEs
    "degenerate": lambda: (
        sparse_mlp(20, [12], 3, 0.15, seed=4, zero_cols=(5,), zero_rows=(2, 7)),
        {"sparse": engine(5, 1, index_bits=1)},
    ),
    "signed_8bit": lambda: (
        sparse_mlp(16, [12], 4, 0.3, weight_bits=8, input_bits=5, signed_input=True, seed=5),
        {"sparse": engine(2, 3, code_bits=8)},
    ),
    # only the middle layer sparse: dense MVAU -> sparse engine -> dense MVAU
    "mixed_dense_sparse": lambda: (
        sparse_mlp(16, [24, 12], 6, 0.25, seed=6),
        {
            "sparse": {
                "default": None,
                "layers": {"fc1": {"pes": 4, "queue_depth": 2, "index_bits": 4, "code_bits": 4}},
            },
            "pe": [4, 2],
            "simd": [4, 4],
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_verilator_equals_golden(tmp_path, name):
    g, settings = CASES[name]()
    x = sparse_inputs(g, 24, seed=7)
    hw, manifest, _, eq = run(g, settings, x, tmp_path, "verilator")
    assert eq["vectors"] == 24
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert any(n.op == "SparseMVAU" for n in hw.nodes)
    assert (
        verilator_lint([tmp_path / "rtl" / s for s in manifest["sources"]], manifest["top"]) == []
    )


@pytest.mark.parametrize(
    "name", ["d50_pe4", "degenerate", "signed_8bit", "mixed_dense_sparse", "falling_shared"]
)
def test_icarus_equals_golden(tmp_path, name):
    g, settings = CASES[name]()
    x = sparse_inputs(g, 12, seed=8)
    *_, eq = run(g, settings, x, tmp_path, "icarus")
    assert eq["mismatches"] == 0, eq["first_mismatch"]


def test_degenerate_case_really_is_degenerate():
    g, settings = CASES["degenerate"]()
    hw = lower(g, **settings)
    fc0 = OPS["SparseMVAU"].layout(hw.node("fc0"))
    assert fc0.pe_entries[2] == 0  # PE 2 owns rows 2 and 7: all zero
    assert np.all(fc0.column_work[:, 5] == 0)  # column 5 has no non-zero
    assert fc0.padding_entries > 0  # gaps longer than 1-bit indices hold
    assert fc0.rows % fc0.pes != 0
    fc1 = OPS["SparseMVAU"].layout(hw.node("fc1"))
    assert fc1.rows < fc1.pes
    assert sparse_inputs(g, 2)[0].sum() == 0  # vector 0 is all zero


def test_falling_channels_are_applied_by_the_engine():
    g, settings = CASES["falling_shared"]()
    hw = lower(g, **settings)
    fc0 = hw.node("fc0")
    assert np.any(fc0.tensors["direction"] < 0)
    assert "model_node" not in fc0.attrs  # direction * acc is not the model's Dense output
    assert hw.node("mt0").op == "Thresholding" and hw.node("mt0").attrs["model_node"] == "mt0"
    assert len(fc0.tensors["codebook"]) <= 5 + 1  # K shared values + the padding zero


def test_backpressure_changes_no_result(tmp_path):
    g, settings = CASES["d10_shared_pe4"]()
    x = sparse_inputs(g, 12, seed=9)
    *_, steady, eq = run(g, settings, x, tmp_path / "a", "verilator")
    *_, stalled, eq_bp = run(g, settings, x, tmp_path / "b", "verilator", backpressure=True, seed=2)
    assert eq["mismatches"] == 0 and eq_bp["mismatches"] == 0, eq_bp["first_mismatch"]
    assert (stalled.outputs == steady.outputs).all()
    assert stalled.total_cycles > steady.total_cycles


@pytest.mark.parametrize(("pes", "depth"), [(1, 1), (4, 2), (16, 32)])
def test_model_predicts_measured_cycles_exactly(tmp_path, pes, depth):
    """A sparse layer that is the bottleneck (a fast dense layer after it): the model's
    steady-state cycles per frame equal the measured ones, and sit between the ideal
    (perfect balance) and the dense MVAU with as many multipliers."""
    g = sparse_mlp(64, [32], 10, 0.2, seed=11)
    settings = {
        "sparse": {"default": None, "layers": {"fc0": dict(engine(pes, depth)["default"], simd=8)}},
        "pe": [1],
        "simd": [32],
    }
    x = sparse_inputs(g, 30, seed=12)
    hw, _, result, eq = run(g, settings, x, tmp_path, "verilator")
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    model = design_sparse_perf(hw, x)["fc0"]
    assert result.cycles_per_frame == pytest.approx(model.cycles_per_frame, abs=1e-9)
    assert model.ideal <= model.cycles_per_frame < model.dense_cycles
