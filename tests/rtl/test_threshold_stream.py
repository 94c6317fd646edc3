"""threshold_stream: multi-threshold per channel with its ROM, under stalls; lint-clean."""

from __future__ import annotations

import numpy as np
import pytest

from hw_gen.verilog.rom import addr_bits, pack_word, rom_module
from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

PARAM_NAMES = ("C", "PE", "IN_BITS", "IN_SIGNED", "ACC_BITS", "NUM_T", "OUT_BITS", "OFFSET")
CASES = {
    # name: C, PE, IN_BITS, IN_SIGNED, ACC_BITS, NUM_T, OUT_BITS, OFFSET
    "unsigned_pe2": (4, 2, 4, 0, 6, 3, 2, 0),
    "signed_pe1_c5_negoffset": (5, 1, 5, 1, 7, 7, 3, -4),
    "signed_binarize_pe3": (3, 3, 8, 1, 8, 1, 1, 0),
    # 4-bit activations: 15 thresholds summed in a tree (ShuffleNet's add -> thresholds)
    "unsigned_15t_pe4": (8, 4, 6, 0, 7, 15, 4, 0),
    "signed_15t_negoffset": (4, 2, 8, 1, 8, 15, 4, -8),
    "unsigned_c6_pe3_offset": (6, 3, 3, 0, 5, 2, 3, 1),
}


def build(tmp_path, name):
    """Thresholds, ROM and wrapper top for case ``name``: (sources, params, thresholds)."""
    params = dict(zip(PARAM_NAMES, CASES[name], strict=True))
    c, pe, in_bits, in_signed = params["C"], params["PE"], params["IN_BITS"], params["IN_SIGNED"]
    acc, num_t = params["ACC_BITS"], params["NUM_T"]
    cf = c // pe
    params["TA_BITS"] = addr_bits(cf)
    rng = np.random.default_rng(len(name))
    lo, hi = (-(1 << (in_bits - 1)), 1 << (in_bits - 1)) if in_signed else (0, 1 << in_bits)
    t = np.sort(rng.integers(lo - 2, hi + 2, size=(c, num_t)), axis=1)
    t = np.clip(t, -(1 << (acc - 1)), (1 << (acc - 1)) - 1)
    words = [pack_word(t[j * pe : (j + 1) * pe].reshape(-1), acc) for j in range(cf)]
    rom = tmp_path / "thr_rom.v"
    rom.write_text(rom_module("thr_rom", words, pe * num_t * acc, "test thresholds"))
    decl = ",\n".join(f"    parameter integer {k} = {v}" for k, v in params.items())
    conn = ", ".join(f".{k}({k})" for k in params)
    top = tmp_path / "threshold_top.v"
    top.write_text(f"""`timescale 1ns/1ps
module threshold_top #(
{decl}
) (
    input  wire                   clk,
    input  wire                   rst_n,
    input  wire [PE*IN_BITS-1:0]  s_axis_tdata,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    output wire [PE*OUT_BITS-1:0] m_axis_tdata,
    output wire                   m_axis_tvalid,
    input  wire                   m_axis_tready
);
    wire t_en;
    wire [TA_BITS-1:0] t_addr;
    wire [PE*NUM_T*ACC_BITS-1:0] t_data;
    threshold_stream #({conn}) u_thr (
        .clk(clk), .rst_n(rst_n),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready),
        .t_en(t_en), .t_addr(t_addr), .t_data(t_data)
    );
    thr_rom u_rom (.clk(clk), .en(t_en), .addr(t_addr), .data(t_data));
endmodule
""")
    return [top, rom, rtl_source("threshold_stream.v")], params, t.tolist()


def run(tmp_path, name, simulator="icarus", testcase="threshold_matches_reference", **case):
    sources, params, thresholds = build(tmp_path, name)
    run_unit_bench(
        tmp_path,
        toplevel="threshold_top",
        sources=sources,
        parameters=params,
        bench="tests.rtl.bench_threshold",
        case={"thresholds": thresholds, **case},
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_threshold_under_stalls(tmp_path, name):
    run(tmp_path, name, frames=3, pixels=5, seed=len(name), in_stall=0.3, out_stall=0.4)


def test_threshold_one_beat_per_cycle(tmp_path):
    run(tmp_path, "unsigned_pe2", frames=3, pixels=4, check_rate=True)


def test_threshold_verilator(tmp_path):
    run(
        tmp_path,
        "signed_pe1_c5_negoffset",
        simulator="verilator",
        frames=4,
        pixels=4,
        seed=3,
        in_stall=0.4,
        out_stall=0.3,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_threshold_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        "unsigned_15t_pe4",
        testcase="threshold_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        pixels=5,
        seed=10,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_threshold_is_lint_clean(tmp_path, name):
    sources, params, _ = build(tmp_path, name)
    assert_lint_clean(sources, "threshold_top", params)
    assert_lint_clean([rtl_source("threshold_stream.v")], "threshold_stream", params)
