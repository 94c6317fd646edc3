"""cocotb bench of ``concat_stream``: two random pixel streams in, channels concatenated out.

The second test, ``concat_survives_long_stalls_and_a_reset_mid_frame``, runs the same
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


def beats(x: np.ndarray, bits: int, elems: int) -> list[int]:
    """[..., C] -> words of ``elems`` channels each, in stream order."""
    return [pack(list(row), bits) for row in x.reshape(-1, elems)]


def streams(case: dict) -> tuple[np.ndarray, list[int], list[int]]:
    """The case's reference ``[frames, pixels, C0 + C1]`` and both input word lists."""
    p = case["params"]
    frames, pixels = case.get("frames", 3), case.get("pixels", 4)
    rng = np.random.default_rng(case.get("seed", 0))
    x0 = draw(rng, p["BITS0"], bool(p["SIGNED0"]), (frames, pixels, p["C0"]))
    x1 = draw(rng, p["BITS1"], bool(p["SIGNED1"]), (frames, pixels, p["C1"]))
    ref = np.concatenate([x0, x1], axis=-1)
    return ref, beats(x0, p["BITS0"], p["ELEMS"]), beats(x1, p["BITS1"], p["ELEMS"])


@cocotb.test()
async def concat_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    c0, c1, elems, out_bits = p["C0"], p["C1"], p["ELEMS"], p["OUT_BITS"]
    frames, pixels = case.get("frames", 3), case.get("pixels", 4)
    seed = case.get("seed", 0)
    ref, words0, words1 = streams(case)
    out_signed = bool(p["SIGNED0"] or p["SIGNED1"])
    per_pixel = (c0 + c1) // elems
    n = frames * pixels * per_pixel

    await reset(dut)
    src0 = StreamSource(dut, "s0_axis", case.get("in_stall", 0.0), seed=seed + 11)
    src1 = StreamSource(dut, "s1_axis", case.get("in_stall", 0.0), seed=seed + 12)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 23)
    send0 = cocotb.start_soon(src0.send(words0))
    send1 = cocotb.start_soon(src1.send(words1))
    try:
        await with_timeout(sink.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n} output beats arrived"

    for i, word in enumerate(sink.words):
        f, rest = divmod(i, pixels * per_pixel)
        q, j = divmod(rest, per_pixel)
        got = unpack(word, elems, out_bits, out_signed)
        for e in range(elems):
            ch = j * elems + e
            want = int(ref[f, q, ch])
            assert got[e] == want, (
                f"frame {f} pixel {q} channel {ch}: expected {want}, got {got[e]}"
            )
    assert lost is None, lost
    await send0
    await send1
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra output beat after the last frame"
    if case.get("check_rate"):
        # one output beat per cycle: beat i accepted at edge i+1, on m_axis one cycle later
        want = [i + 2 for i in range(n)]
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def concat_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    p = case["params"]
    ref, words0, words1 = streams(case)
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s0_axis": words0, "s1_axis": words1},
        {"m_axis": beats(ref, p["OUT_BITS"], p["ELEMS"])},
        frames=len(ref),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
