"""cocotb bench of ``shuffle_stream``: random pixels in, channels shuffled out, any stalls.

The second test, ``shuffle_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from tests.rtl.harness import unit_case
from tests.rtl.streams import (
    PERIOD_NS,
    Stalls,
    StreamSink,
    StreamSource,
    pack,
    reset,
    stalls_and_reset_mid_frame,
    unpack,
)


async def timed_send(source: StreamSource, words: list[int]) -> int:
    """Send ``words``; return the cycles it took (== len(words) when never stalled)."""
    start = get_sim_time("ns")
    await source.send(words)
    return round((get_sim_time("ns") - start) / PERIOD_NS)


def random_pixels(case: dict) -> np.ndarray:
    """Random [frames, pixels, C] EBITS-bit elements."""
    p = case["params"]
    rng = np.random.default_rng(case.get("seed", 0))
    shape = (case.get("frames", 3), case.get("pixels", 4), p["C"])
    return rng.integers(0, 1 << p["EBITS"], size=shape)


def shuffled_from(c: int, g: int) -> list[int]:
    """Input channel of each output channel: ChannelShuffle of G groups over C channels."""
    return [(j % g) * (c // g) + j // g for j in range(c)]


@cocotb.test()
async def shuffle_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    c, g, elems, bits = p["C"], p["G"], p["ELEMS"], p["EBITS"]
    pixels = case.get("pixels", 4)
    cf = c // elems
    seed = case.get("seed", 0)
    x, source_of = random_pixels(case), shuffled_from(c, g)
    ref = x[..., source_of]
    words_in = [pack(list(row), bits) for row in x.reshape(-1, elems)]
    n = len(words_in)

    await reset(dut)
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=seed + 11)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 23)
    sender = cocotb.start_soon(timed_send(source, words_in))
    try:
        await with_timeout(sink.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n} output beats arrived"

    for i, word in enumerate(sink.words):
        f, rest = divmod(i, pixels * cf)
        q, j = divmod(rest, cf)
        got = unpack(word, elems, bits)
        for e in range(elems):
            ch = j * elems + e
            want = int(ref[f, q, ch])
            assert got[e] == want, (
                f"frame {f} pixel {q} channel {ch} (input channel {source_of[ch]}): "
                f"expected {want}, got {got[e]}"
            )
    assert lost is None, lost
    cycles = await sender
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra output beat after the last frame"
    if case.get("check_rate"):
        assert cycles == n, f"{n} input beats took {cycles} cycles (expected one per cycle)"
        # output beat i: pixel i // cf completes at edge (i//cf + 1)*cf, then one cycle
        # to mark the buffer full and one in the output register
        want = [i + cf + 2 for i in range(n)]
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def shuffle_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    p = case["params"]
    elems, bits = p["ELEMS"], p["EBITS"]
    x = random_pixels(case)
    ref = x[..., shuffled_from(p["C"], p["G"])]
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": [pack(list(row), bits) for row in x.reshape(-1, elems)]},
        {"m_axis": [pack(list(row), bits) for row in ref.reshape(-1, elems)]},
        frames=len(x),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
