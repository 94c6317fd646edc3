"""cocotb bench of a UART-wrapped design (``qfab_uart_top``): frames in as bytes, replies out.

The bench only moves bytes: the frames (already encoded by the host client's
:func:`boards.uart_client.encode_frames`) go onto ``rx`` bit by bit, and every byte on
``tx`` is decoded by a line receiver; the test decodes the replies with the client's
:func:`~boards.uart_client.decode_reply` and compares them with golden. As the client
does, a frame is sent only after the previous frame's reply is complete. ``rst_n`` stays
high: the design must come out of its own power-on reset. With ``partial_bytes`` in the
case, that many bytes of a frame go out first and then the reset button is pressed
(``rst_n`` low for 10 cycles): the half-received frame must leave no trace. With
``truncated_bytes``, that many bytes of a frame go out and then the line stays idle for
longer than the wrapper's idle timeout (``idle_timeout_bits`` + 10 bit times): the
truncated frame must be discarded, no reply may come for it, and the frames after it must
be answered as if it had never been sent. With ``short_pause_bits``, the second frame
pauses that long after its first byte (a pause below the timeout: the frame must be
kept). The bench fails on a framing error, on a reply that does not arrive within its
budget, and on bytes beyond a reply.
"""

from __future__ import annotations

import json

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer

from tests.rtl.harness import unit_case
from tests.rtl.uart_line import LineReceiver, send_byte

PERIOD_NS = 10


@cocotb.test()
async def frames_over_the_uart(dut) -> None:
    case = unit_case()
    frames = [bytes.fromhex(f) for f in case["frames"]]
    reply_bytes = int(case["reply_bytes"])
    bit_ns = int(case["clks_per_bit"]) * PERIOD_NS
    dut.rx.value = 1
    dut.rst_n.value = 1
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    receiver = LineReceiver(dut.tx, bit_ns)
    cocotb.start_soon(receiver.run())
    await ClockCycles(dut.clk, 32)  # the built-in power-on reset lasts 16 cycles
    partial = int(case.get("partial_bytes", 0))
    if partial:
        for b in frames[0][:partial]:
            await send_byte(dut.rx, b, bit_ns)
        dut.rst_n.value = 0
        await ClockCycles(dut.clk, 10)
        dut.rst_n.value = 1
        await ClockCycles(dut.clk, 10)
    truncated = int(case.get("truncated_bytes", 0))
    if truncated:
        for b in frames[0][:truncated]:
            await send_byte(dut.rx, b, bit_ns)
        await Timer((int(case["idle_timeout_bits"]) + 10) * bit_ns, unit="ns")
        assert not receiver.received, f"a reply {receiver.received} to a truncated frame"
    short_pause = int(case.get("short_pause_bits", 0))
    budget_ns = (reply_bytes * 10 + 4) * bit_ns + int(case["compute_cycles"]) * PERIOD_NS
    replies = []
    for i, frame in enumerate(frames):
        for k, b in enumerate(frame):
            if i == 1 and k == 1 and short_pause:
                await Timer(short_pause * bit_ns, unit="ns")
            await send_byte(dut.rx, b, bit_ns)
        waited = 0
        while len(receiver.received) < reply_bytes and waited < budget_ns:
            await Timer(bit_ns, unit="ns")
            waited += bit_ns
        assert receiver.framing_errors == 0, f"frame {i}: framing error on tx"
        got = receiver.received[:]
        assert len(got) == reply_bytes, (
            f"frame {i}: {len(got)} of {reply_bytes} reply bytes after {waited} ns"
        )
        replies.append(bytes(got).hex())
        receiver.received.clear()
    await Timer(20 * bit_ns, unit="ns")
    assert not receiver.received, f"{len(receiver.received)} bytes after the last reply"
    with open(case["results"], "w") as f:
        json.dump({"replies": replies}, f)
