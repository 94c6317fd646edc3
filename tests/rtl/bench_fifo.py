"""cocotb bench of ``fifo_stream``: words out in order under stalls; capacity, rate, latency.

The second test, ``fifo_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from tests.rtl.harness import unit_case
from tests.rtl.streams import (
    PERIOD_NS,
    Stalls,
    StreamSink,
    StreamSource,
    reset,
    stalls_and_reset_mid_frame,
)

LATENCY = 2  # memory write, memory read into the output register


async def fill_blocked(dut, words: list[int], cycles: int) -> int:
    """Offer ``words`` with the output stalled for ``cycles``; return how many went in."""
    dut.m_axis_tready.value = 0
    taken = 0
    for _ in range(cycles):
        if taken == len(words):
            break
        dut.s_axis_tdata.value = words[taken]
        dut.s_axis_tvalid.value = 1
        await RisingEdge(dut.clk)
        if int(dut.s_axis_tready.value):
            taken += 1
    dut.s_axis_tvalid.value = 0
    return taken


def random_words(case: dict) -> list[int]:
    """``frames`` frames of ``beats`` random WIDTH-bit words (default 2 * DEPTH + 5 beats)."""
    p = case["params"]
    n = case.get("frames", 3) * case.get("beats", 2 * p["DEPTH"] + 5)
    rng = random.Random(case.get("seed", 0))
    return [rng.randrange(1 << p["WIDTH"]) for _ in range(n)]


@cocotb.test()
async def fifo_keeps_every_word_in_order(dut) -> None:
    case = unit_case()
    p = case["params"]
    depth = p["DEPTH"]
    beats = case.get("beats", 2 * depth + 5)
    seed = case.get("seed", 0)
    words = random_words(case)
    n = len(words)

    await reset(dut)
    first = 0
    if case.get("check_capacity"):
        first = await fill_blocked(dut, words, 3 * depth + 10)
        assert first == depth + 1, (
            f"with the output stalled the FIFO took {first} words, expected DEPTH + 1 = {depth + 1}"
        )
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=seed + 11)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 23)

    async def timed_send() -> int:
        start = get_sim_time("ns")
        await source.send(words[first:])
        return round((get_sim_time("ns") - start) / PERIOD_NS)

    sender = cocotb.start_soon(timed_send())
    try:
        await with_timeout(sink.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n} words came out"

    for i, word in enumerate(sink.words):
        f, j = divmod(i, beats)
        assert word == words[i], f"frame {f} word {j}: expected {words[i]:#x}, got {word:#x}"
    assert lost is None, lost
    cycles = await sender
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra word after the last frame"
    if case.get("check_rate"):
        sent = n - first
        # from full, s_axis_tready (a register) rises one cycle after the first word left
        want_in = sent + (1 if first else 0)
        assert cycles == want_in, f"{sent} input words took {cycles} cycles, expected {want_in}"
        # from full (drained while refilled) one word per cycle from the first edge on;
        # from empty, word i goes in at edge i+1 and comes out LATENCY edges later
        want = [i + 1 + (0 if first else LATENCY) for i in range(n)]
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def fifo_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    words = random_words(case)
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": words},
        {"m_axis": words},
        frames=case.get("frames", 3),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
