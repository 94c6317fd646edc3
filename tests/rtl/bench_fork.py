"""cocotb bench of ``fork_stream``: every output gets every beat once, in order, any stalls.

The second test, ``fork_survives_long_stalls_and_a_reset_mid_frame``, runs the same
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
    Port,
    Stalls,
    StreamSource,
    reset,
    stalls_and_reset_mid_frame,
)


class ForkSinks:
    """N sinks on one shared ``m_axis_tdata`` with ``m_axis_tvalid/tready[N-1:0]`` vectors.

    (``streams.StreamSink`` drives a whole ``tready`` signal, so it cannot serve one bit.)
    Each output stalls with its own seeded generator; ``words[n]``/``cycles[n]`` record
    what output ``n`` accepted and when.
    """

    def __init__(self, dut, n: int, stall: float, seed: int) -> None:
        self.dut, self.n, self.stall = dut, n, stall
        self.rngs = [random.Random(seed + k) for k in range(n)]
        self.words: list[list[int]] = [[] for _ in range(n)]
        self.cycles: list[list[int]] = [[] for _ in range(n)]
        dut.m_axis_tready.value = 0

    async def receive(self, count: int) -> None:
        cycle = 0
        while min(len(w) for w in self.words) < count:
            ready = 0
            for k in range(self.n):
                stalled = self.stall and self.rngs[k].random() < self.stall
                if len(self.words[k]) < count and not stalled:
                    ready |= 1 << k
            self.dut.m_axis_tready.value = ready
            await RisingEdge(self.dut.clk)  # values read now are those sampled at the edge
            cycle += 1
            valid = int(self.dut.m_axis_tvalid.value)
            for k in range(self.n):
                if (ready >> k) & 1 and (valid >> k) & 1:
                    self.words[k].append(int(self.dut.m_axis_tdata.value))
                    self.cycles[k].append(cycle)
        self.dut.m_axis_tready.value = 0


@cocotb.test()
async def fork_broadcasts_every_beat(dut) -> None:
    case = unit_case()
    p = case["params"]
    n_out, width = p["N"], p["WIDTH"]
    frames, beats = case.get("frames", 3), case.get("beats", 10)
    seed = case.get("seed", 0)
    rng = random.Random(seed)
    words = [rng.randrange(1 << width) for _ in range(frames * beats)]
    n = len(words)

    await reset(dut)
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=seed + 11)
    sinks = ForkSinks(dut, n_out, case.get("out_stall", 0.0), seed=seed + 23)

    async def timed_send() -> int:
        start = get_sim_time("ns")
        await source.send(words)
        return round((get_sim_time("ns") - start) / PERIOD_NS)

    sender = cocotb.start_soon(timed_send())
    try:
        await with_timeout(sinks.receive(n), 50 * n + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"output beats arrived: {[len(w) for w in sinks.words]} of {n} each"

    for k in range(n_out):
        for i, word in enumerate(sinks.words[k]):
            f, j = divmod(i, beats)
            assert word == words[i], (
                f"output {k} frame {f} beat {j}: expected {words[i]:#x}, got {word:#x}"
            )
    assert lost is None, lost
    cycles = await sender
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an output still has a beat after the last frame"
    if case.get("check_rate"):
        assert cycles == n, f"{n} input beats took {cycles} cycles (expected one per cycle)"
        want = [i + 2 for i in range(n)]
        for k in range(n_out):
            assert sinks.cycles[k] == want, (
                f"output {k} cycles {sinks.cycles[k][:8]}..., expected {want[:8]}..."
            )


@cocotb.test()
async def fork_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    """Each output its own sink on its bit of ``m_axis_tready``, stalling on its own."""
    case = unit_case()
    p = case["params"]
    rng = random.Random(case.get("seed", 0))
    words = [rng.randrange(1 << p["WIDTH"]) for _ in range(case["frames"] * case["beats"])]
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": words},
        {Port("m_axis", k): words for k in range(p["N"])},
        frames=case["frames"],
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
