"""cocotb bench of ``sparse_engine`` (through its generated wrapper with the ROMs).

Frames go in and the engine's output words come out under random ``tvalid`` gaps and
``tready`` stalls on both sides; in the middle of a frame ``rst_n`` drops for a few
cycles; after the reset every frame is sent again and every output word must equal the
expected one (golden's, from the pytest side): no word lost or duplicated, and nothing
left over from the interrupted frame in the accumulators.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from tests.rtl.harness import unit_case
from tests.rtl.streams import StreamSink, StreamSource, reset


async def watch_outputs(dut, seen: list[int]) -> None:
    """Every output handshake (also before the reset: those words are discarded)."""
    while True:
        await RisingEdge(dut.clk)
        if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
            seen.append(int(dut.m_axis_tdata.value))


@cocotb.test()
async def engine_survives_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    words, expected = case["inputs"], case["expected"]
    beats_in = case["beats_in"]
    await reset(dut)
    # part one: one and a half frames under stalls, then a reset in the middle of frame 2
    source = StreamSource(dut, "s_axis", case["in_stall"], seed=1)
    sink = StreamSink(dut, "m_axis", case["out_stall"], seed=2)
    sending = cocotb.start_soon(source.send(words[: beats_in + beats_in // 2 + 1]))
    receiving = cocotb.start_soon(sink.receive(10**9))
    await with_timeout(sending, 100_000, "ns")
    await ClockCycles(dut.clk, case["reset_after"])
    sending.cancel()
    receiving.cancel()
    dut.s_axis_tvalid.value = 0
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst_n.value = 1
    # part two: every frame again, with stalls
    source = StreamSource(dut, "s_axis", case["in_stall"], seed=3)
    sink = StreamSink(dut, "m_axis", case["out_stall"], seed=4)
    cocotb.start_soon(source.send(words))
    got = await with_timeout(sink.receive(len(expected)), 400 * len(words) * 100, "ns")
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert want == have, f"output word {i} (frame {i // case['beats_out']}): {want} != {have}"
    await ClockCycles(dut.clk, 50)
    assert not int(dut.m_axis_tvalid.value), "a word after the last expected one"
