"""cocotb bench of ``mvau_pipe`` (inside ``mvau_tb_top``, next to its ROMs).

The case carries the matrices (weights, thresholds or biases) and the input frames as
integers (bipolar as -1/+1). Phase 1 sends the first frames under random input and output
stalls; phase 2, on the then idle unit, sends the rest back to back with the output always
ready and checks the latency of its first frame and the steady-state cycles per frame.
Every output word is compared with :func:`expected_outputs`; the first mismatch fails,
naming frame, output channel, expected and actual value.

The second test, ``mvau_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout

from tests.rtl.harness import unit_case
from tests.rtl.streams import (
    Stalls,
    StreamSink,
    StreamSource,
    pack,
    reset,
    stalls_and_reset_mid_frame,
    unpack,
)

#: pipeline stages after the issue cycles (S1 dot, S2 acc, S3 thr, S4 out) + the handshake,
#: with a one-stage tree and no product register; each further tree stage
#: (TREE_STAGES - 1) and the product register (PROD_REG, see :func:`prod_reg`) add one cycle
LATENCY_EXTRA = 5


def prod_reg(p: dict[str, int]) -> int:
    """Product register stages (0 or 1): ``PROD_REG``, or when it is -1 (the default, auto)
    1 exactly for shifted-add products of more than two weight bits."""
    explicit = p.get("PROD_REG", -1)
    if explicit >= 0:
        return int(explicit > 0)
    bipolar = p["XNOR"] or p["IN_BIPOLAR"] or p["W_BIPOLAR"]
    return int(not bipolar and p.get("LUT_MUL", 1) != 0 and p["W_BITS"] > 2)


def steps_per_group(p: dict[str, int]) -> int:
    """SF (dense) or K (depthwise): steps per output group."""
    return p["MW"] // p["MH"] if p["DEPTHWISE"] else p["MW"] // p["SIMD"]


def accumulate(p: dict[str, int], x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Final accumulators ``[frames, MH]``: dense ``x [F, MW]``, ``w [MH, MW]``; depthwise
    ``x [F, K, MH]``, ``w [MH, K]``; XNOR: the number of matching signs."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if p["DEPTHWISE"]:
        return np.einsum("fkc,ck->fc", x, w)
    acc = x @ w.T
    if p["XNOR"]:
        acc = (p["MW"] + acc) // 2
    return acc


def activate(
    p: dict[str, int], acc: np.ndarray, thresholds: Any = None, bias: Any = None
) -> np.ndarray:
    """Outputs as integers (not yet truncated to OUT_BITS)."""
    if p["NUM_T"]:
        t = np.asarray(thresholds, dtype=np.int64)  # [MH, NUM_T]
        return p["OFFSET"] + (acc[:, :, None] >= t[None]).sum(axis=-1)
    out = 2 * acc if p["XNOR"] else acc.copy()
    if p["HAS_BIAS"]:
        out = out + np.asarray(bias, dtype=np.int64)[None]
    return out


def expected_outputs(case: dict[str, Any]) -> np.ndarray:
    """NumPy reference of ``mvau_pipe``: ``[frames, MH]`` integers."""
    p = case["params"]
    acc = accumulate(p, case["x"], case["w"])
    return activate(p, acc, case.get("thresholds"), case.get("bias"))


def input_beats(p: dict[str, int], frames: np.ndarray) -> list[int]:
    """Frames -> input words: dense SF beats of SIMD elements; depthwise K*NF beats of PE
    channels (tap k outer, channel fold nf inner)."""
    bits = p["IN_BITS"]
    enc = (frames > 0).astype(np.int64) if p["IN_BIPOLAR"] else frames
    words = []
    for f in enc:
        if p["DEPTHWISE"]:
            pe = p["PE"]
            for row in f:  # tap k: [MH] channels
                words += [pack(list(row[i : i + pe]), bits) for i in range(0, len(row), pe)]
        else:
            simd = p["SIMD"]
            words += [pack(list(f[i : i + simd]), bits) for i in range(0, len(f), simd)]
    return words


class Handshakes:
    """Counts clock edges and records the edge of every input and output handshake."""

    def __init__(self, dut: Any) -> None:
        self.dut = dut
        self.ins: list[int] = []
        self.outs: list[int] = []

    async def run(self) -> None:
        dut, cycle = self.dut, 0
        while True:
            await RisingEdge(dut.clk)  # values read now are those sampled at the edge
            cycle += 1
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                self.ins.append(cycle)
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                self.outs.append(cycle)


def check_words(p: dict[str, int], words: list[int], want: np.ndarray, first_frame: int) -> None:
    """Every received word against the reference; the first mismatch fails."""
    pe, nf, bits = p["PE"], p["MH"] // p["PE"], p["OUT_BITS"]
    signed = p["NUM_T"] == 0 or p["OFFSET"] < 0
    mask = (1 << bits) - 1
    assert len(words) == len(want) * nf, f"{len(words)} words, expected {len(want) * nf}"
    for i, word in enumerate(words):
        f, g = divmod(i, nf)
        got = unpack(word, pe, bits, signed=signed)
        for e in range(pe):
            c = g * pe + e
            exp = int(want[f, c])
            assert (got[e] & mask) == (exp & mask), (
                f"frame {first_frame + f}, output channel {c}: expected {exp}, got {got[e]}"
            )


@cocotb.test()
async def mvau_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    nf, sfi = p["MH"] // p["PE"], steps_per_group(p)
    x = np.asarray(case["x"], dtype=np.int64)
    want = expected_outputs(case)
    n1 = case["stall_frames"]
    n2 = len(x) - n1
    beats_per_frame = len(input_beats(p, x[:1]))
    await reset(dut)
    mon = Handshakes(dut)
    cocotb.start_soon(mon.run())

    async def phase(lo: int, hi: int, in_stall: float, out_stall: float, seed: int):
        source = StreamSource(dut, "s_axis", in_stall, seed=seed)
        sink = StreamSink(dut, "m_axis", out_stall, seed=seed + 1)
        i0, o0 = len(mon.ins), len(mon.outs)
        cocotb.start_soon(source.send(input_beats(p, x[lo:hi])))
        budget = (hi - lo) * max(nf * sfi, beats_per_frame) * 10 + 400
        words = await with_timeout(sink.receive((hi - lo) * nf), budget * 10, "ns")
        check_words(p, words, want[lo:hi], lo)
        return mon.ins[i0:], mon.outs[o0:]

    # phase 1: random stalls on both sides
    seed = case.get("seed", 0)
    await phase(0, n1, case["in_stall"], case["out_stall"], seed * 10 + 1)
    for _ in range(3):
        await RisingEdge(dut.clk)
    # phase 2: idle unit, input always valid, output always ready
    ins, outs = await phase(n1, n1 + n2, 0.0, 0.0, seed * 10 + 3)
    latency = outs[0] - ins[beats_per_frame - 1]
    expect = sfi + LATENCY_EXTRA + p.get("TREE_STAGES", 1) - 1 + prod_reg(p)
    assert latency == expect, (
        f"latency {latency} cycles (last input beat -> first output beat), expected {expect}"
    )
    lasts = [outs[(f + 1) * nf - 1] for f in range(n2)]
    h = n2 // 2
    spacing = (lasts[-1] - lasts[h]) / (n2 - 1 - h)
    ideal = nf * sfi
    assert abs(spacing - ideal) <= 0.02 * ideal, (
        f"steady state {spacing:.2f} cycles/frame, expected {ideal} (NF*SF or NF*K)"
    )
    dut._log.info(f"latency {latency} cycles, {spacing:.2f} cycles/frame (ideal {ideal})")


def output_words(p: dict[str, int], want: np.ndarray) -> list[int]:
    """Reference ``[frames, MH]`` -> output words of PE channels (OUT_BITS two's complement)."""
    pe = p["PE"]
    return [pack(list(row), p["OUT_BITS"]) for row in want.reshape(-1, pe)]


@cocotb.test()
async def mvau_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    """The case's first ``frames`` frames: input beats of a frame (SF or K * NF) and its
    NF output words are a "frame" of the scenario."""
    case = unit_case()
    p = case["params"]
    frames = case["frames"]
    x = np.asarray(case["x"], dtype=np.int64)[:frames]
    want = expected_outputs(case)[:frames]
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": input_beats(p, x)},
        {"m_axis": output_words(p, want)},
        frames=frames,
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
