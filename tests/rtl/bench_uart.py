"""cocotb benches of ``uart_tx`` and ``uart_rx`` against the simulated line of ``uart_line``.

``tx_sends_every_byte``: random bytes offered with random ``tvalid`` gaps come out of
``tx`` in order, correctly framed; back to back, one byte takes exactly 10 * CLKS_PER_BIT
+ 1 cycles; ``s_axis_tready`` never accepts a byte while one is being sent.
``rx_receives_every_byte``: random bytes driven with idle gaps and a line speed off by
``skew`` (a real host's baud rate never matches) arrive on ``m_axis`` in order, each as
a one-cycle ``tvalid`` pulse; a byte with a broken stop bit and a short low glitch
produce nothing, and the bytes after them are still received.
"""

from __future__ import annotations

import itertools
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from tests.rtl.harness import unit_case
from tests.rtl.uart_line import LineReceiver, send_byte

PERIOD_NS = 10


async def start(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst_n.value = 1


@cocotb.test()
async def tx_sends_every_byte(dut) -> None:
    case = unit_case()
    cpb = int(case["params"]["CLKS_PER_BIT"])
    rng = random.Random(case["seed"])
    data = [rng.randrange(256) for _ in range(case["bytes"])]
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = 0
    await start(dut)
    receiver = LineReceiver(dut.tx, cpb * PERIOD_NS)
    cocotb.start_soon(receiver.run())
    accepted: list[int] = []  # cycle of each handshake
    cycle = 0
    i = 0
    back_to_back = case["bytes"] // 2  # the second half is offered without gaps
    while i < len(data):
        gap = i < back_to_back and rng.random() < 0.5
        dut.s_axis_tvalid.value = 0 if gap else 1
        dut.s_axis_tdata.value = data[i]
        await RisingEdge(dut.clk)
        cycle += 1
        if not gap and int(dut.s_axis_tready.value):
            accepted.append(cycle)
            i += 1
    dut.s_axis_tvalid.value = 0
    await Timer(12 * cpb * PERIOD_NS, unit="ns")
    assert receiver.framing_errors == 0
    for k, (got, want) in enumerate(zip(receiver.received, data, strict=False)):
        assert got == want, f"byte {k}: line carried {got:#04x}, sent {want:#04x}"
    assert len(receiver.received) == len(data), f"{len(receiver.received)} of {len(data)} bytes"
    steady = accepted[back_to_back:]
    spacing = {b - a for a, b in itertools.pairwise(steady)}
    assert spacing == {10 * cpb + 1}, f"back-to-back bytes every {spacing} cycles"


@cocotb.test()
async def rx_receives_every_byte(dut) -> None:
    case = unit_case()
    cpb = int(case["params"]["CLKS_PER_BIT"])
    bit_ns = cpb * PERIOD_NS * (1.0 + float(case["skew"]))
    rng = random.Random(case["seed"])
    data = [rng.randrange(256) for _ in range(case["bytes"])]
    dut.rx.value = 1
    await start(dut)
    received: list[int] = []
    long_pulses = 0

    async def watch() -> None:
        nonlocal long_pulses
        previous = 0
        while True:
            await RisingEdge(dut.clk)
            valid = int(dut.m_axis_tvalid.value)
            if valid:
                received.append(int(dut.m_axis_tdata.value))
                long_pulses += previous
            previous = valid

    cocotb.start_soon(watch())
    await ClockCycles(dut.clk, 5)
    half = len(data) // 2
    for k, b in enumerate(data):
        if k == half:  # a broken byte (stop bit 0), then a glitch shorter than half a bit
            for bit in [0] + [(0xA5 >> i) & 1 for i in range(8)] + [0, 0]:
                dut.rx.value = bit
                await Timer(round(bit_ns * 1000), unit="ps")
            dut.rx.value = 1
            await Timer(round(3 * bit_ns * 1000), unit="ps")
            dut.rx.value = 0
            await Timer(round(bit_ns * 300), unit="ps")
            dut.rx.value = 1
            await Timer(round(2 * bit_ns * 1000), unit="ps")
        await send_byte(dut.rx, b, bit_ns)
        if rng.random() < 0.3:  # idle time between some bytes
            await Timer(rng.randrange(1, 4 * cpb) * PERIOD_NS, unit="ns")
    await Timer(round(2 * bit_ns), unit="ns")
    for k, (got, want) in enumerate(zip(received, data, strict=False)):
        assert got == want, f"byte {k}: received {got:#04x}, line carried {want:#04x}"
    assert len(received) == len(data), f"{len(received)} bytes received of {len(data)}"
    assert long_pulses == 0, "m_axis_tvalid stayed high for more than one cycle"
