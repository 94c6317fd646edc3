"""cocotb bench of ``add_stream``: two random streams in, their shifted sum out, any stalls.

The second test, ``add_survives_long_stalls_and_a_reset_mid_frame``, runs the same
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


def draw(rng: np.random.Generator, bits: int, signed: bool, shape: tuple[int, ...]) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, size=shape)


def wrap(v: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Integers modulo 2^bits, read back as signed or unsigned ``bits``-bit numbers."""
    v = np.asarray(v) & ((1 << bits) - 1)
    return np.where(v >> (bits - 1), v - (1 << bits), v) if signed else v


def operands(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], list[int]]:
    """Random a, b [frames, beats, ELEMS] of the case, the reference sum, both word lists."""
    p = case["params"]
    elems, out_bits = p["ELEMS"], p["OUT_BITS"]
    a_bits, a_signed, b_bits, b_signed = p["A_BITS"], p["A_SIGNED"], p["B_BITS"], p["B_SIGNED"]
    frames, beats = case.get("frames", 3), case.get("beats", 8)
    rng = np.random.default_rng(case.get("seed", 0))
    a = draw(rng, a_bits, bool(a_signed), (frames, beats, elems))
    b = draw(rng, b_bits, bool(b_signed), (frames, beats, elems))
    ref = wrap((a << p["SHIFT_A"]) + (b << p["SHIFT_B"]), out_bits, bool(a_signed or b_signed))
    words_a = [pack(list(a[f, i]), a_bits) for f in range(frames) for i in range(beats)]
    words_b = [pack(list(b[f, i]), b_bits) for f in range(frames) for i in range(beats)]
    return a, b, ref, words_a, words_b


@cocotb.test()
async def add_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    elems, out_bits = p["ELEMS"], p["OUT_BITS"]
    out_signed = bool(p["A_SIGNED"] or p["B_SIGNED"])
    beats = case.get("beats", 8)
    seed = case.get("seed", 0)
    a, b, ref, words_a, words_b = operands(case)
    n = len(words_a)

    await reset(dut)
    src_a = StreamSource(dut, "s0_axis", case.get("in_stall", 0.0), seed=seed + 11)
    src_b = StreamSource(dut, "s1_axis", case.get("in_stall", 0.0), seed=seed + 12)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 23)
    send_a = cocotb.start_soon(src_a.send(words_a))
    send_b = cocotb.start_soon(src_b.send(words_b))
    try:
        await with_timeout(sink.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n} output beats arrived"

    for i, word in enumerate(sink.words):
        f, j = divmod(i, beats)
        got = unpack(word, elems, out_bits, out_signed)
        for e in range(elems):
            want = int(ref[f, j, e])
            assert got[e] == want, (
                f"frame {f} beat {j} element {e} (a = {a[f, j, e]}, b = {b[f, j, e]}): "
                f"expected {want}, got {got[e]}"
            )
    assert lost is None, lost
    await send_a
    await send_b
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra output beat after the last frame"
    if case.get("check_rate"):
        # beat i is taken from both inputs at edge i+1 and leaves one cycle later
        want = [i + 2 for i in range(n)]
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def add_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    out_bits = case["params"]["OUT_BITS"]
    _, _, ref, words_a, words_b = operands(case)
    expected = [pack(list(beat), out_bits) for beat in ref.reshape(-1, ref.shape[-1])]
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s0_axis": words_a, "s1_axis": words_b},
        {"m_axis": expected},
        frames=len(ref),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
