"""Stream drivers for the unit benches: a source and a sink with random stalls, plain cocotb.

Both work on one AXI-Stream port given by its signal prefix (``s_axis``, ``m_axis``,
``s0_axis``...), beat by beat, so benches see exactly which word went in or came out in
which cycle. Handshakes are read right after the rising edge, when the simulator still
shows the values the design sampled at that edge (as cocotbext-axi does). Stalls are
random with a given probability (0 = never): the source drops ``tvalid`` between beats,
the sink drops ``tready``; both are seeded.
"""

from __future__ import annotations

import random
from typing import Any

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


async def reset(dut: Any, cycles: int = 4) -> None:
    """Start a 10 ns clock on ``dut.clk`` and hold ``rst_n`` low for ``cycles``."""
    import cocotb

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, cycles)
    dut.rst_n.value = 1


class StreamSource:
    """Drives ``<prefix>_tdata/tvalid`` and watches ``<prefix>_tready``."""

    def __init__(self, dut: Any, prefix: str, stall: float = 0.0, seed: int = 0) -> None:
        self.clk = dut.clk
        self.data = getattr(dut, f"{prefix}_tdata")
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.stall = stall
        self.rng = random.Random(seed)
        self.valid.value = 0

    async def send(self, words: list[int]) -> None:
        """Send every word in order; returns after the last one was accepted."""
        for word in words:
            while self.stall and self.rng.random() < self.stall:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.data.value = word
            self.valid.value = 1
            while True:
                await RisingEdge(self.clk)  # values read now are those sampled at the edge
                if int(self.ready.value):
                    break
        self.valid.value = 0


class StreamSink:
    """Drives ``<prefix>_tready`` and records every accepted ``tdata`` with its cycle."""

    def __init__(self, dut: Any, prefix: str, stall: float = 0.0, seed: int = 1) -> None:
        self.clk = dut.clk
        self.data = getattr(dut, f"{prefix}_tdata")
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.stall = stall
        self.rng = random.Random(seed)
        self.words: list[int] = []
        self.cycles: list[int] = []
        self.ready.value = 0

    async def receive(self, count: int) -> list[int]:
        """Accept ``count`` words (recorded in ``words``/``cycles``) and return them."""
        cycle = 0
        while len(self.words) < count:
            ready = not (self.stall and self.rng.random() < self.stall)
            self.ready.value = int(ready)
            await RisingEdge(self.clk)  # values read now are those sampled at the edge
            cycle += 1
            if ready and int(self.valid.value):
                self.words.append(int(self.data.value))
                self.cycles.append(cycle)
        self.ready.value = 0
        return self.words


def pack(values: list[int], bits: int) -> int:
    """Elements -> one word, element 0 at the least significant bits (two's complement)."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, count: int, bits: int, signed: bool = False) -> list[int]:
    """One word -> ``count`` elements (sign-extended when ``signed``)."""
    mask = (1 << bits) - 1
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out
