"""cocotb bench of ``threshold_stream`` (behind a wrapper with its threshold ROM).

The second test, ``threshold_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

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

LATENCY = 2  # input register, compare -> output register


def inputs_and_reference(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Random accumulators [frames, pixels, C] and OFFSET + thresholds reached per channel."""
    p = case["params"]
    in_bits, in_signed = p["IN_BITS"], bool(p["IN_SIGNED"])
    thresholds = np.array(case["thresholds"], dtype=np.int64)  # [C, NUM_T]
    rng = np.random.default_rng(case.get("seed", 0))
    lo, hi = (-(1 << (in_bits - 1)), 1 << (in_bits - 1)) if in_signed else (0, 1 << in_bits)
    x = rng.integers(lo, hi, size=(case.get("frames", 3), case.get("pixels", 4), p["C"]))
    return x, p["OFFSET"] + (x[..., None] >= thresholds[None, None]).sum(axis=-1)


@cocotb.test()
async def threshold_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    c, pe, in_bits = p["C"], p["PE"], p["IN_BITS"]
    out_bits, offset = p["OUT_BITS"], p["OFFSET"]
    frames, pixels = case.get("frames", 3), case.get("pixels", 4)
    cf = c // pe
    seed = case.get("seed", 0)
    x, ref = inputs_and_reference(case)
    out_signed = offset < 0
    words_in = [
        pack(list(x[f, q, j * pe : (j + 1) * pe]), in_bits)
        for f in range(frames)
        for q in range(pixels)
        for j in range(cf)
    ]
    n = len(words_in)

    await reset(dut)
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=seed + 11)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 23)
    sender = cocotb.start_soon(source.send(words_in))
    try:
        await with_timeout(sink.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n} output beats arrived"

    for i, word in enumerate(sink.words):
        f, rest = divmod(i, pixels * cf)
        q, j = divmod(rest, cf)
        got = unpack(word, pe, out_bits, out_signed)
        for e in range(pe):
            ch = j * pe + e
            want = int(ref[f, q, ch])
            assert got[e] == want, (
                f"frame {f} pixel {q} channel {ch} (x = {x[f, q, ch]}): "
                f"expected {want}, got {got[e]}"
            )
    assert lost is None, lost
    await sender
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra output beat after the last frame"
    if case.get("check_rate"):
        # input beat i is accepted at edge i+1, its result LATENCY edges later
        want = [i + 1 + LATENCY for i in range(n)]
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def threshold_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    p = case["params"]
    pe = p["PE"]
    x, ref = inputs_and_reference(case)
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": [pack(list(row), p["IN_BITS"]) for row in x.reshape(-1, pe)]},
        {"m_axis": [pack(list(row), p["OUT_BITS"]) for row in ref.reshape(-1, pe)]},
        frames=len(x),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
