"""sparse_engine: its generated wrapper under long stalls and a reset mid-frame; lint-clean."""

from __future__ import annotations

import numpy as np
import pytest

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.golden import run_golden_int
from qfab.ir import infer_shapes
from qfab.ranges import node_ranges
from tests.hw_gen.sparse_designs import engine, sparse_inputs, sparse_mlp
from tests.rtl.harness import assert_lint_clean, run_unit_bench
from tests.rtl.streams import pack


@pytest.mark.parametrize(
    ("pes", "depth", "in_stall", "out_stall"), [(3, 1, 0.3, 0.6), (4, 4, 0.6, 0.3)]
)
def test_stalls_and_reset_mid_frame_lose_nothing(tmp_path, pes, depth, in_stall, out_stall):
    g = sparse_mlp(24, [10], 4, 0.3, weight_bits=4, input_bits=3, seed=pes)
    hw = lower(g, sparse=engine(pes, depth))
    node = hw.node("fc0")
    manifest = generate_verilog(hw, tmp_path / "rtl")
    x = sparse_inputs(g, 6, seed=pes)
    outs = run_golden_int(hw, x).outputs
    el_in = node_ranges(hw)["input"].element
    simd, out_e = int(node.attrs["simd"]), int(node.attrs["pe"])
    out_bits = node_ranges(hw)["fc0"].element.bits
    inputs = [pack(list(f[i : i + simd]), el_in.bits) for f in x for i in range(0, 24, simd)]
    acc = outs["fc0"]
    expected = [pack(list(f[i : i + out_e]), out_bits) for f in acc for i in range(0, 10, out_e)]
    sources = [tmp_path / "rtl" / s for s in manifest["sources"] if s != "qfab_top.v"]
    assert infer_shapes(hw)["fc0"] == (10,)
    run_unit_bench(
        tmp_path,
        toplevel="fc0_unit",
        sources=sources,
        parameters={},
        bench="tests.rtl.bench_sparse",
        case={
            "inputs": inputs,
            "expected": expected,
            "beats_in": 24 // simd,
            "beats_out": 10 // out_e,
            "in_stall": in_stall,
            "out_stall": out_stall,
            "reset_after": 7,
        },
    )
    assert_lint_clean(sources, "fc0_unit", {})
    assert np.any(acc != 0) and np.any(x == 0)
