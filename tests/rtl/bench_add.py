"""cocotb bench of ``add_stream``: two random streams in, their shifted sum out, any stalls."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from tests.rtl.harness import unit_case
from tests.rtl.streams import StreamSink, StreamSource, pack, reset, unpack


def draw(rng: np.random.Generator, bits: int, signed: bool, shape: tuple[int, ...]) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, size=shape)


def wrap(v: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Integers modulo 2^bits, read back as signed or unsigned ``bits``-bit numbers."""
    v = np.asarray(v) & ((1 << bits) - 1)
    return np.where(v >> (bits - 1), v - (1 << bits), v) if signed else v


@cocotb.test()
async def add_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    elems, out_bits = p["ELEMS"], p["OUT_BITS"]
    a_bits, a_signed, b_bits, b_signed = p["A_BITS"], p["A_SIGNED"], p["B_BITS"], p["B_SIGNED"]
    frames, beats = case.get("frames", 3), case.get("beats", 8)
    seed = case.get("seed", 0)
    rng = np.random.default_rng(seed)
    a = draw(rng, a_bits, bool(a_signed), (frames, beats, elems))
    b = draw(rng, b_bits, bool(b_signed), (frames, beats, elems))
    out_signed = bool(a_signed or b_signed)
    ref = wrap((a << p["SHIFT_A"]) + (b << p["SHIFT_B"]), out_bits, out_signed)
    words_a = [pack(list(a[f, i]), a_bits) for f in range(frames) for i in range(beats)]
    words_b = [pack(list(b[f, i]), b_bits) for f in range(frames) for i in range(beats)]
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
