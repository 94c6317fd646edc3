"""mvau_pipe: NumPy-exact outputs under random stalls, throughput, latency; lint-clean.

Each case draws its weights, thresholds (some at the extremes of the accumulator range:
always / never reached) or biases and its input frames with NumPy, picks ACC_BITS as the
generator does (the exact range of every final accumulator and threshold, so partial sums
may wrap), writes the ROMs with ``rom_module`` and a wrapper ``mvau_tb_top`` (ROMs +
``mvau_pipe``) into ``tmp_path`` and runs ``tests.rtl.bench_mvau`` on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hw_gen.verilog.rom import addr_bits, pack_word, rom_module
from tests.rtl.bench_mvau import accumulate, activate, steps_per_group
from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

DEFAULTS = {
    "DEPTHWISE": 0,
    "XNOR": 0,
    "IN_BITS": 2,
    "IN_SIGNED": 0,
    "IN_BIPOLAR": 0,
    "W_BITS": 2,
    "W_BIPOLAR": 0,
    "NUM_T": 3,
    "OUT_BITS": 2,
    "OFFSET": 0,
    "HAS_BIAS": 0,
    "LUT_MUL": 1,
    "TREE_STAGES": 1,
}

BIPOLAR_XNOR = {"XNOR": 1, "IN_BITS": 1, "IN_BIPOLAR": 1, "W_BITS": 1, "W_BIPOLAR": 1}

#: name -> parameters (ACC_BITS, WA_BITS, TA_BITS are derived)
CASES: dict[str, dict[str, int]] = {
    "w2a2_in4": {"MW": 48, "MH": 16, "PE": 4, "SIMD": 8, "IN_BITS": 4},
    "w8a8_star": {
        "MW": 32,
        "MH": 8,
        "PE": 2,
        "SIMD": 4,
        "IN_BITS": 8,
        "W_BITS": 8,
        "NUM_T": 15,
        "OUT_BITS": 4,
        "LUT_MUL": 0,
    },
    "signed_offset": {
        "MW": 24,
        "MH": 12,
        "PE": 3,
        "SIMD": 4,
        "IN_BITS": 3,
        "IN_SIGNED": 1,
        "W_BITS": 3,
        "NUM_T": 7,
        "OUT_BITS": 3,
        "OFFSET": -4,
    },
    "bipolar_in": {"MW": 32, "MH": 8, "PE": 2, "SIMD": 8, "IN_BITS": 1, "IN_BIPOLAR": 1},
    "bipolar_w": {
        "MW": 32,
        "MH": 8,
        "PE": 4,
        "SIMD": 4,
        "IN_BITS": 8,
        "W_BITS": 1,
        "W_BIPOLAR": 1,
    },
    "xnor_thr": {
        "MW": 64,
        "MH": 16,
        "PE": 4,
        "SIMD": 16,
        "XNOR": 1,
        "IN_BITS": 1,
        "IN_BIPOLAR": 1,
        "W_BITS": 1,
        "W_BIPOLAR": 1,
        "NUM_T": 1,
        "OUT_BITS": 1,
    },
    "xnor_bias": {
        "MW": 48,
        "MH": 8,
        "PE": 2,
        "SIMD": 12,
        "XNOR": 1,
        "IN_BITS": 1,
        "IN_BIPOLAR": 1,
        "W_BITS": 1,
        "W_BIPOLAR": 1,
        "NUM_T": 0,
        "HAS_BIAS": 1,
    },
    "last_bias": {"MW": 32, "MH": 10, "PE": 5, "SIMD": 4, "NUM_T": 0, "HAS_BIAS": 1},
    "full_parallel": {"MW": 16, "MH": 8, "PE": 8, "SIMD": 16},
    "pe1_simd1": {"MW": 12, "MH": 6, "PE": 1, "SIMD": 1, "IN_SIGNED": 1, "OFFSET": -2},
    "simd6": {"MW": 24, "MH": 9, "PE": 3, "SIMD": 6, "IN_BITS": 3},
    "simd3_plain": {"MW": 9, "MH": 4, "PE": 2, "SIMD": 3, "NUM_T": 0},
    "dw_k9": {"MW": 36, "MH": 4, "PE": 2, "SIMD": 1, "DEPTHWISE": 1, "IN_BITS": 4},
    "dw_k3": {
        "MW": 18,
        "MH": 6,
        "PE": 3,
        "SIMD": 1,
        "DEPTHWISE": 1,
        "IN_SIGNED": 1,
        "W_BITS": 3,
    },
    # product + adder tree split into TREE_STAGES registered stages
    "tree2_w8a8": {
        "MW": 64,
        "MH": 8,
        "PE": 2,
        "SIMD": 32,
        "IN_BITS": 8,
        "W_BITS": 8,
        "NUM_T": 15,
        "OUT_BITS": 4,
        "LUT_MUL": 0,
        "TREE_STAGES": 2,
    },
    "tree3_bipolar_w": {
        "MW": 96,
        "MH": 12,
        "PE": 4,
        "SIMD": 32,
        "IN_BITS": 8,
        "W_BITS": 1,
        "W_BIPOLAR": 1,
        "TREE_STAGES": 3,
    },
    "tree3_xnor48": {
        "MW": 96,
        "MH": 8,
        "PE": 2,
        "SIMD": 48,
        **BIPOLAR_XNOR,
        "NUM_T": 1,
        "OUT_BITS": 1,
        "TREE_STAGES": 3,
    },
    "tree2_xnor_bias": {
        "MW": 40,
        "MH": 6,
        "PE": 3,
        "SIMD": 20,
        **BIPOLAR_XNOR,
        "NUM_T": 0,
        "HAS_BIAS": 1,
        "TREE_STAGES": 2,
    },
    "tree2_full": {"MW": 12, "MH": 4, "PE": 4, "SIMD": 12, "IN_SIGNED": 1, "TREE_STAGES": 2},
    # TREE_STAGES beyond the tree's levels (SIMD 2: 2 levels; depthwise: 1): plain stages
    "tree3_simd2": {"MW": 8, "MH": 6, "PE": 2, "SIMD": 2, "NUM_T": 0, "TREE_STAGES": 3},
    "tree3_dw": {
        "MW": 27,
        "MH": 9,
        "PE": 3,
        "SIMD": 1,
        "DEPTHWISE": 1,
        "IN_BITS": 3,
        "IN_SIGNED": 1,
        "TREE_STAGES": 3,
    },
    # shifted-add products of more than two weight bits: a product register of their own
    # (PROD_REG auto); the first two are the synthesis-depth cases of the module's notes
    "prod_w4a8_simd3": {
        "MW": 9,
        "MH": 6,
        "PE": 2,
        "SIMD": 3,
        "IN_BITS": 8,
        "W_BITS": 4,
        "NUM_T": 15,
        "OUT_BITS": 4,
        "TREE_STAGES": 2,
    },
    "prod_w4a8_simd6": {
        "MW": 54,
        "MH": 16,
        "PE": 4,
        "SIMD": 6,
        "IN_BITS": 8,
        "W_BITS": 4,
        "NUM_T": 15,
        "OUT_BITS": 4,
        "TREE_STAGES": 2,
    },
    "prod_dw_w4_tree2": {  # SIMD 1: no tree level after the products, a plain stage
        "MW": 24,
        "MH": 6,
        "PE": 3,
        "SIMD": 1,
        "DEPTHWISE": 1,
        "IN_BITS": 4,
        "W_BITS": 4,
        "TREE_STAGES": 2,
    },
    "prod_w5_signed": {  # odd weight width: the top bit alone, three pairs
        "MW": 16,
        "MH": 6,
        "PE": 2,
        "SIMD": 4,
        "IN_BITS": 4,
        "IN_SIGNED": 1,
        "W_BITS": 5,
        "NUM_T": 7,
        "OUT_BITS": 3,
    },
    "prod_w8_lut_bias": {
        "MW": 24,
        "MH": 4,
        "PE": 2,
        "SIMD": 8,
        "IN_BITS": 3,
        "W_BITS": 8,
        "NUM_T": 0,
        "HAS_BIAS": 1,
        "TREE_STAGES": 2,
    },
    # PROD_REG given: off for 4-bit weights, on for 2-bit and (0/-1) 1-bit weights
    "prod_off_w4": {
        "MW": 24,
        "MH": 8,
        "PE": 2,
        "SIMD": 4,
        "IN_BITS": 4,
        "W_BITS": 4,
        "NUM_T": 7,
        "OUT_BITS": 3,
        "PROD_REG": 0,
    },
    "prod_on_w2_tree2": {"MW": 32, "MH": 8, "PE": 4, "SIMD": 8, "PROD_REG": 1, "TREE_STAGES": 2},
    "prod_on_w1": {
        "MW": 12,
        "MH": 4,
        "PE": 2,
        "SIMD": 3,
        "IN_BITS": 3,
        "IN_SIGNED": 1,
        "W_BITS": 1,
        "PROD_REG": 1,
    },
}

#: also simulated on Verilator (all cases run on Icarus)
VERILATOR = ("xnor_thr", "w8a8_star", "dw_k9", "tree3_xnor48", "prod_w4a8_simd6")

STALL_FRAMES = 8
CLEAN_FRAMES = 8


def signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding every integer of [lo, hi]."""
    n = 1
    while lo < -(1 << (n - 1)) or hi > (1 << (n - 1)) - 1:
        n += 1
    return n


def value_range(bits: int, signed: bool, bipolar: bool) -> tuple[int, int]:
    if bipolar:
        return -1, 1
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def draw(rng: np.random.Generator, lo: int, hi: int, bipolar: bool, shape) -> np.ndarray:
    if bipolar:
        return rng.choice(np.array([-1, 1]), size=shape)
    return rng.integers(lo, hi + 1, size=shape)


def make_case(name: str, seed: int) -> tuple[dict[str, int], dict[str, Any]]:
    """Parameters and the bench's case (matrices, frames) of one named case."""
    p = {**DEFAULTS, **CASES[name]}
    rng = np.random.default_rng(seed)
    mw, mh, pe = p["MW"], p["MH"], p["PE"]
    dw, xnor = bool(p["DEPTHWISE"]), bool(p["XNOR"])
    xlo, xhi = value_range(p["IN_BITS"], bool(p["IN_SIGNED"]), bool(p["IN_BIPOLAR"]))
    wlo, whi = value_range(p["W_BITS"], True, bool(p["W_BIPOLAR"]))
    k = mw // mh
    frames = STALL_FRAMES + CLEAN_FRAMES
    wshape = (mh, k) if dw else (mh, mw)
    w = draw(rng, wlo, whi, bool(p["W_BIPOLAR"]), wshape)
    xshape = (frames, k, mh) if dw else (frames, mw)
    x = draw(rng, xlo, xhi, bool(p["IN_BIPOLAR"]), xshape)
    # exact range of each row's final accumulator
    lo = np.minimum(xlo * w, xhi * w).sum(axis=1)
    hi = np.maximum(xlo * w, xhi * w).sum(axis=1)
    if xnor:
        lo, hi = np.zeros(mh, dtype=np.int64), np.full(mh, mw, dtype=np.int64)
    # frames 0 and 1 reach row 0's maximum and row 1's minimum exactly
    for f, row, top in ((0, 0, True), (1, 1, False)):
        best = np.where((w[row] > 0) == top, xhi, xlo)
        if dw:
            x[f, :, row] = best
        else:
            x[f] = best
    acc = accumulate(p, x, w)
    case: dict[str, Any] = {"x": x.tolist(), "w": w.tolist()}
    span_lo, span_hi = int(lo.min()), int(hi.max())
    if p["NUM_T"]:
        nt = p["NUM_T"]
        t = np.stack(
            [
                np.sort(rng.integers(acc[:, r].min() - 1, acc[:, r].max() + 2, size=nt))
                for r in range(mh)
            ]
        )
        t[0, 0] = lo[0]  # always reached (exact bound)
        t[1, -1] = hi[1] + 1  # never reached
        acc_bits = signed_bits(min(span_lo, int(t.min())), max(span_hi, int(t.max())))
        t[2, 0] = -(1 << (acc_bits - 1))  # always reached: the accumulator's most negative
        t[3, -1] = (1 << (acc_bits - 1)) - 1  # never reached: its most positive
        t.sort(axis=1)
        case["thresholds"] = t.tolist()
        rom_words = [
            pack_word(t[g * pe : (g + 1) * pe].reshape(-1).tolist(), acc_bits)
            for g in range(mh // pe)
        ]
    else:
        b = np.zeros(mh, dtype=np.int64)
        if p["HAS_BIAS"]:
            b = rng.integers(-4, 5, size=mh) - (mw if xnor else 0)
            case["bias"] = b.tolist()
        out = activate(p, np.stack([lo, hi]), bias=b if p["HAS_BIAS"] else None)
        acc_bits = signed_bits(min(span_lo, int(out.min())), max(span_hi, int(out.max())))
        p["OUT_BITS"] = acc_bits
        rom_words = [
            pack_word(b[g * pe : (g + 1) * pe].tolist(), acc_bits) for g in range(mh // pe)
        ]
    p["ACC_BITS"] = acc_bits
    sfi, nf = steps_per_group(p), mh // pe
    wbits = 1 if p["W_BIPOLAR"] else p["W_BITS"]
    wenc = (w > 0).astype(np.int64) if p["W_BIPOLAR"] else w
    if dw:  # word nf*K + k: w[nf*PE + e][k] at element e
        wwords = [
            pack_word(wenc[g * pe : (g + 1) * pe, j].tolist(), wbits)
            for g in range(nf)
            for j in range(k)
        ]
    else:  # word nf*SF + sf: W[nf*PE + e][sf*SIMD + s] at element e*SIMD + s
        simd = p["SIMD"]
        wwords = [
            pack_word(
                wenc[g * pe : (g + 1) * pe, s * simd : (s + 1) * simd].reshape(-1).tolist(), wbits
            )
            for g in range(nf)
            for s in range(sfi)
        ]
    p["WA_BITS"] = addr_bits(len(wwords))
    p["TA_BITS"] = addr_bits(nf)
    case["w_words"] = wwords
    case["t_words"] = rom_words
    return p, case


def write_design(tmp_path: Path, p: dict[str, int], case: dict[str, Any]) -> list[Path]:
    """ROMs + wrapper ``mvau_tb_top`` (parameters forwarded to ``mvau_pipe``)."""
    nt = max(p["NUM_T"], 1)
    uses_t = p["NUM_T"] > 0 or p["HAS_BIAS"]
    wrom = tmp_path / "mvau_tb_wrom.v"
    wrom.write_text(
        rom_module("mvau_tb_wrom", case["w_words"], p["PE"] * p["SIMD"] * p["W_BITS"], "weights")
    )
    files = [wrom]
    if uses_t:
        trom = tmp_path / "mvau_tb_trom.v"
        trom.write_text(
            rom_module("mvau_tb_trom", case["t_words"], p["PE"] * nt * p["ACC_BITS"], "thresholds")
        )
        files.append(trom)
        t_side = "    mvau_tb_trom trom (.clk(clk), .en(t_en), .addr(t_addr), .data(t_data));"
    else:
        t_side = (
            "    assign t_data = {(PE*NT*ACC_BITS){1'b0}};\n    wire unused_t = t_en ^ (^t_addr);"
        )
    params = "\n".join(f"    parameter integer {k} = {v}," for k, v in p.items()).rstrip(",")
    forward = ", ".join(f".{k}({k})" for k in p)
    top = tmp_path / "mvau_tb_top.v"
    top.write_text(f"""`timescale 1ns/1ps
// mvau_tb_top: unit-bench wrapper, weight ROM + threshold/bias ROM + mvau_pipe.
module mvau_tb_top #(
{params}
) (
    input  wire clk,
    input  wire rst_n,
    input  wire [((DEPTHWISE != 0) ? PE : SIMD)*IN_BITS-1:0] s_axis_tdata,
    input  wire s_axis_tvalid,
    output wire s_axis_tready,
    output wire [PE*OUT_BITS-1:0] m_axis_tdata,
    output wire m_axis_tvalid,
    input  wire m_axis_tready
);
    localparam integer NT = (NUM_T > 0) ? NUM_T : 1;
    wire w_en, t_en;
    wire [WA_BITS-1:0] w_addr;
    wire [TA_BITS-1:0] t_addr;
    wire [PE*SIMD*W_BITS-1:0] w_data;
    wire [PE*NT*ACC_BITS-1:0] t_data;
    mvau_tb_wrom wrom (.clk(clk), .en(w_en), .addr(w_addr), .data(w_data));
{t_side}
    mvau_pipe #({forward}) dut (
        .clk(clk), .rst_n(rst_n),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .w_en(w_en), .w_addr(w_addr), .w_data(w_data),
        .t_en(t_en), .t_addr(t_addr), .t_data(t_data)
    );
endmodule
""")
    return [top, *files, rtl_source("mvau_pipe.v")]


def run_case(tmp_path: Path, name: str, simulator: str) -> None:
    p, case = make_case(name, seed=sorted(CASES).index(name))
    sources = write_design(tmp_path, p, case)
    bench_case = {k: v for k, v in case.items() if not k.endswith("_words")}
    run_unit_bench(
        tmp_path,
        toplevel="mvau_tb_top",
        sources=sources,
        parameters=p,
        bench="tests.rtl.bench_mvau",
        case={**bench_case, "stall_frames": STALL_FRAMES, "in_stall": 0.3, "out_stall": 0.4},
        simulator=simulator,
        testcase="mvau_matches_reference",
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
@pytest.mark.parametrize("name", ["signed_offset", "xnor_bias", "dw_k3"])
def test_mvau_long_stalls_and_reset_mid_frame(tmp_path, name, reset_mid_frame):
    """Dense, XNOR and depthwise: bubbles and tready drops of up to 32 cycles; with a reset
    while a frame is half through (accumulators, threshold/bias pipeline and output
    register all busy): no word lost, duplicated or left over from before the reset."""
    p, case = make_case(name, seed=sorted(CASES).index(name))
    sources = write_design(tmp_path, p, case)
    bench_case = {k: v for k, v in case.items() if not k.endswith("_words")}
    run_unit_bench(
        tmp_path,
        toplevel="mvau_tb_top",
        sources=sources,
        parameters=p,
        bench="tests.rtl.bench_mvau",
        case={**bench_case, "frames": 5, **LONG_STALLS, "reset_mid_frame": reset_mid_frame},
        testcase="mvau_survives_long_stalls_and_a_reset_mid_frame",
    )


@pytest.mark.parametrize("name", list(CASES))
def test_mvau_matches_reference_icarus(tmp_path, name):
    run_case(tmp_path, name, "icarus")


@pytest.mark.parametrize("name", VERILATOR)
def test_mvau_matches_reference_verilator(tmp_path, name):
    run_case(tmp_path, name, "verilator")


@pytest.mark.parametrize("name", list(CASES))
def test_mvau_is_lint_clean(tmp_path, name):
    p, case = make_case(name, seed=sorted(CASES).index(name))
    sources = write_design(tmp_path, p, case)
    assert_lint_clean(sources, "mvau_tb_top", p)  # wrapper + ROMs + mvau_pipe
    assert_lint_clean([rtl_source("mvau_pipe.v")], "mvau_pipe", p)  # the unit as a top
