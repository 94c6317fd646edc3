"""cocotb bench of ``stream_dwc``: random elements in, the same elements out, any stalls.

With ``check_rate`` (no stalls: input always valid, output always ready) it also checks
the steady-state rate, one beat per cycle on the narrower side (min(IN, OUT) elements per
cycle, from the sink's recorded cycles over whole periods of lcm(IN, OUT) elements, after
the first), and the latency of the first output word (cycles from the edge that accepted
the input beat completing it to the edge that took it): 0 for a wire, 1 when one count
divides the other, 2 otherwise.

The second test, ``dwc_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import math
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

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

RATE_SLACK = 0.02  # the measured steady-state rate may be at most 2 % below the nominal


def latency(n_in: int, n_out: int) -> int:
    """Cycles the header comment of ``stream_dwc`` states for these counts."""
    if n_in == n_out:
        return 0
    if n_in % n_out == 0 or n_out % n_in == 0:
        return 1
    return 2


async def record_accepts(dut, cycles: list[int]) -> None:
    """Append the cycle (edges counted from the start, as the sink does) of every input beat."""
    cycle = 0
    while True:
        await RisingEdge(dut.clk)  # values read now are those sampled at the edge
        cycle += 1
        if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
            cycles.append(cycle)


def random_elements(case: dict) -> list[int]:
    """IN_ELEMS * OUT_ELEMS * frames random elements: a whole number of words on both sides."""
    p = case["params"]
    total = p["IN_ELEMS"] * p["OUT_ELEMS"] * case.get("frames", 8)
    rng = random.Random(case.get("seed", 0))
    return [rng.randrange(1 << p["EBITS"]) for _ in range(total)]


@cocotb.test()
async def dwc_keeps_every_element_in_order(dut) -> None:
    case = unit_case()
    p = case["params"]
    bits, n_in, n_out = p["EBITS"], p["IN_ELEMS"], p["OUT_ELEMS"]
    total = n_in * n_out * case.get("frames", 8)
    seed = case.get("seed", 0)
    elems = random_elements(case)
    await reset(dut)
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=seed + 1)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=seed + 2)
    accepted: list[int] = []
    cocotb.start_soon(source.send([pack(elems[i : i + n_in], bits) for i in range(0, total, n_in)]))
    monitor = cocotb.start_soon(record_accepts(dut, accepted))
    words = await with_timeout(sink.receive(total // n_out), 200 * total, "ns")
    got = [e for w in words for e in unpack(w, n_out, bits)]
    for i, (want, have) in enumerate(zip(elems, got, strict=True)):
        assert want == have, f"element {i}: expected {want}, got {have}"
    await ClockCycles(dut.clk, 4)
    monitor.cancel()
    assert not int(dut.m_axis_tvalid.value), "an extra word after the last element"

    if case.get("check_rate"):
        # first word: its last element is in input beat (n_out - 1) // n_in
        first = sink.cycles[0] - accepted[(n_out - 1) // n_in]
        assert first == latency(n_in, n_out), (
            f"first word latency {first} cycles, expected {latency(n_in, n_out)}"
        )
        period = math.lcm(n_in, n_out) // n_out  # output beats per lcm(IN, OUT) elements
        periods = (len(sink.cycles) - 1) // period - 1
        assert periods >= 4, f"too few output beats ({len(sink.cycles)}) to measure a rate"
        start, end = period, period * (1 + periods)
        rate = periods * period * n_out / (sink.cycles[end] - sink.cycles[start])
        nominal = min(n_in, n_out)
        assert rate >= nominal * (1 - RATE_SLACK), (
            f"steady state {rate:.3f} elements per cycle, expected {nominal} "
            f"(one beat per cycle on the {'input' if n_in < n_out else 'output'} side)"
        )


@cocotb.test()
async def dwc_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    """A "frame" here is IN_ELEMS * OUT_ELEMS elements: OUT_ELEMS words in, IN_ELEMS out."""
    case = unit_case()
    p = case["params"]
    bits, n_in, n_out = p["EBITS"], p["IN_ELEMS"], p["OUT_ELEMS"]
    elems = random_elements(case)
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": [pack(elems[i : i + n_in], bits) for i in range(0, len(elems), n_in)]},
        {"m_axis": [pack(elems[i : i + n_out], bits) for i in range(0, len(elems), n_out)]},
        frames=case.get("frames", 8),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
