"""A simulated serial line for the UART benches: 8N1 bytes driven onto ``rx``, decoded from ``tx``.

Written from the UART framing itself (idle high; start bit 0; 8 data bits, least
significant first; stop bit 1), not from the RTL under test. Times are in nanoseconds so
a bench can drive a line slightly faster or slower than the design's ``CLKS_PER_BIT``
(a real host's baud rate never matches exactly). The receiver samples each bit at its
middle, like a real UART, and records a framing error when a stop bit reads 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cocotb.triggers import FallingEdge, Timer


async def send_byte(line: Any, value: int, bit_ns: float) -> None:
    """Drive one 8N1 byte onto ``line`` (a DUT input), ``bit_ns`` per bit; leaves it idle."""
    bits = [0] + [(value >> i) & 1 for i in range(8)] + [1]
    for b in bits:
        line.value = b
        await Timer(round(bit_ns * 1000), unit="ps")


@dataclass
class LineReceiver:
    """Decodes every byte that appears on a DUT output line (start it with ``run``)."""

    line: Any
    bit_ns: float
    received: list[int] = field(default_factory=list)
    framing_errors: int = 0

    async def run(self) -> None:
        ps = round(self.bit_ns * 1000)
        while True:
            await FallingEdge(self.line)
            await Timer(ps // 2, unit="ps")
            if int(self.line.value) != 0:  # a glitch, not a start bit
                continue
            value = 0
            for i in range(8):
                await Timer(ps, unit="ps")
                value |= int(self.line.value) << i
            await Timer(ps, unit="ps")
            if int(self.line.value) != 1:
                self.framing_errors += 1
                continue
            self.received.append(value)
