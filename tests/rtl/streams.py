"""Stream drivers for the unit benches: a source and a sink with random stalls, plain cocotb.

Both work on one AXI-Stream port given by its signal prefix (``s_axis``, ``m_axis``,
``s0_axis``...), beat by beat, so benches see exactly which word went in or came out in
which cycle. Handshakes are read right after the rising edge, when the simulator still
shows the values the design sampled at that edge (as cocotbext-axi does). Stalls are
random with a given probability (0 = never): the source drops ``tvalid`` between beats
(bubbles), the sink drops ``tready``; both are seeded. With ``burst`` > 1 a stall, once
drawn, lasts a geometric number of cycles of mean ``burst`` (at most ``4 * burst``), so
benches also see long stalls, not only the one-cycle gaps of per-beat coin flips.

:func:`stalls_and_reset_mid_frame` is the scenario every unit bench runs under long
stalls: frames go in, ``rst_n`` drops while a frame is half in and half out, every frame
is sent again and the output must be exactly the reference, with no stale word.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Combine, RisingEdge, SimTimeoutError, with_timeout

PERIOD_NS = 10
#: The unit tests' long-stall setting: a stall starts on 15% of input and 10% of output
#: beats and lasts 8 cycles on average (at most 32): bubbles and tready drops, not flicker.
LONG_STALLS = {"in_stall": 0.15, "out_stall": 0.1, "burst": 8}


async def reset(dut: Any, cycles: int = 4) -> None:
    """Start a 10 ns clock on ``dut.clk`` and hold ``rst_n`` low for ``cycles``."""
    import cocotb

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, cycles)
    dut.rst_n.value = 1


def stall_run(rng: random.Random, burst: float) -> int:
    """Length of one stall: 1 for ``burst`` <= 1 (no random draw, so per-beat coin-flip
    benches keep their sequences), else geometric of mean ``burst``, at most ``4 * burst``."""
    if burst <= 1:
        return 1
    u = rng.random()
    length = 1 + int(math.log(1.0 - u) / math.log(1.0 - 1.0 / burst))
    return min(length, int(4 * burst))


class StreamSource:
    """Drives ``<prefix>_tdata/tvalid`` and watches ``<prefix>_tready``."""

    def __init__(
        self, dut: Any, prefix: str, stall: float = 0.0, seed: int = 0, burst: float = 1
    ) -> None:
        self.clk = dut.clk
        self.data = getattr(dut, f"{prefix}_tdata")
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.stall = stall
        self.burst = burst
        self.rng = random.Random(seed)
        self.valid.value = 0

    async def send(self, words: Sequence[int]) -> None:
        """Send every word in order; returns after the last one was accepted."""
        for word in words:
            while self.stall and self.rng.random() < self.stall:
                self.valid.value = 0
                await ClockCycles(self.clk, stall_run(self.rng, self.burst))
                if self.burst > 1:
                    break  # one long bubble per beat at most
            self.data.value = word
            self.valid.value = 1
            while True:
                await RisingEdge(self.clk)  # values read now are those sampled at the edge
                if int(self.ready.value):
                    break
        self.valid.value = 0


class StreamSink:
    """Drives ``<prefix>_tready`` and records every accepted ``tdata`` with its cycle.

    ``lane`` selects one bit of vector ``tvalid``/``tready`` (``fork_stream``'s outputs
    share one ``tdata``); sinks on the lanes of one vector drive it together.
    """

    _lane_bits: ClassVar[dict[int, int]] = {}  # id(tready vector) -> bits its lanes drive

    def __init__(
        self,
        dut: Any,
        prefix: str,
        stall: float = 0.0,
        seed: int = 1,
        burst: float = 1,
        lane: int | None = None,
    ) -> None:
        self.clk = dut.clk
        self.data = getattr(dut, f"{prefix}_tdata")
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.stall = stall
        self.burst = burst
        self.lane = lane
        self.rng = random.Random(seed)
        self.words: list[int] = []
        self.cycles: list[int] = []
        self.drive_ready(False)

    def drive_ready(self, ready: bool) -> None:
        """``tready`` (this sink's lane of it) high or low."""
        if self.lane is None:
            self.ready.value = int(ready)
            return
        bits = self._lane_bits.get(id(self.ready), 0) & ~(1 << self.lane)
        bits |= int(ready) << self.lane
        self._lane_bits[id(self.ready)] = bits
        self.ready.value = bits

    def valid_now(self) -> bool:
        valid = int(self.valid.value)
        return bool(valid if self.lane is None else (valid >> self.lane) & 1)

    async def receive(self, count: int) -> list[int]:
        """Accept ``count`` words (recorded in ``words``/``cycles``) and return them."""
        cycle = 0
        hold = 0
        while len(self.words) < count:
            if hold:
                hold -= 1
                ready = False
            else:
                ready = not (self.stall and self.rng.random() < self.stall)
                if not ready:
                    hold = stall_run(self.rng, self.burst) - 1
            self.drive_ready(ready)
            await RisingEdge(self.clk)  # values read now are those sampled at the edge
            cycle += 1
            if ready and self.valid_now():
                self.words.append(int(self.data.value))
                self.cycles.append(cycle)
        self.drive_ready(False)
        return self.words


@dataclass(frozen=True)
class Port:
    """One AXI-Stream port: its signal prefix and, for vector ``tvalid``/``tready`` with one
    bit per consumer (``fork_stream``), the bit."""

    prefix: str
    lane: int | None = None

    def fired(self, dut: Any) -> bool:
        """Handshake at the edge just passed (read right after it)."""
        valid = int(getattr(dut, f"{self.prefix}_tvalid").value)
        ready = int(getattr(dut, f"{self.prefix}_tready").value)
        if self.lane is not None:
            valid, ready = valid >> self.lane, ready >> self.lane
        return bool(valid & ready & 1)

    def __str__(self) -> str:
        return self.prefix if self.lane is None else f"{self.prefix}[{self.lane}]"


def as_port(port: str | Port) -> Port:
    return port if isinstance(port, Port) else Port(port)


class HandshakeLog:
    """Cycle (and word) of every handshake on the given ports, one counter for all."""

    def __init__(self, dut: Any, inputs: Sequence[Port], outputs: Sequence[Port]) -> None:
        self.dut = dut
        self.cycle = 0
        self.ins: dict[Port, list[int]] = {p: [] for p in inputs}
        self.outs: dict[Port, list[tuple[int, str]]] = {p: [] for p in outputs}

    async def run(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)  # values read now are those sampled at the edge
            self.cycle += 1
            for port, cycles in self.ins.items():
                if port.fired(self.dut):
                    cycles.append(self.cycle)
            for port, seen in self.outs.items():
                if port.fired(self.dut):
                    seen.append((self.cycle, str(getattr(self.dut, f"{port.prefix}_tdata").value)))

    def outs_since(self, cycle: int) -> dict[Port, list[tuple[int, str]]]:
        """Output handshakes after ``cycle`` (non-empty ports only)."""
        late = {p: [(c, w) for c, w in seen if c > cycle] for p, seen in self.outs.items()}
        return {p: v for p, v in late.items() if v}


@dataclass(frozen=True)
class Stalls:
    """Random stalls of a run: per-beat probability of a bubble on each input, per-cycle
    probability of a ``tready`` drop on each output, mean stall length (``burst``)."""

    in_stall: float = 0.0
    out_stall: float = 0.0
    burst: float = 1

    @classmethod
    def from_case(cls, case: Mapping[str, Any]) -> Stalls:
        return cls(case.get("in_stall", 0.0), case.get("out_stall", 0.0), case.get("burst", 1))


async def stalls_and_reset_mid_frame(
    dut: Any,
    inputs: Mapping[str | Port, Sequence[int]],
    expected: Mapping[str | Port, Sequence[int]],
    *,
    frames: int,
    stalls: Stalls,
    seed: int,
    reset_mid_frame: bool = True,
    reset_cycles: int = 3,
    idle_cycles: int = 24,
    timeout_cycles: int | None = None,
) -> None:
    """Long stalls on every port, a reset mid-frame, every frame again: exact output.

    Call after :func:`reset`. ``inputs`` are the words of all ``frames`` per input port,
    ``expected`` the reference words per output port. With ``reset_mid_frame``, the frames
    first go in under ``stalls`` until the first output port has given half of frame 2
    (its first ``1.5 * frame`` words) while an input is inside a frame (or all input was
    taken); then the drivers stop (``tvalid``/``tready`` low) and ``rst_n`` is low for
    ``reset_cycles``: words that came out so far are discarded. Then, in every case:

    - for ``idle_cycles`` no input is offered and every output is ready: no word may come
      out (a stale word of the interrupted frame would);
    - every frame is sent again under ``stalls`` (new seeds) and each output port must give
      exactly its expected words: same count, same values, in order (the first mismatch
      fails, naming the port, word and frame); no output word before the first input
      word; after the last expected word, ``idle_cycles`` more with ``tready`` high give
      nothing.
    """
    import cocotb

    in_ports = {as_port(k): list(v) for k, v in inputs.items()}
    out_ports = {as_port(k): list(v) for k, v in expected.items()}
    total = sum(map(len, in_ports.values())) + sum(map(len, out_ports.values()))
    limit = timeout_cycles or 60 * int(stalls.burst) * total + 4000
    log = HandshakeLog(dut, list(in_ports), list(out_ports))
    monitor = cocotb.start_soon(log.run())

    def drivers(salt: int) -> tuple[list[StreamSource], list[StreamSink]]:
        sources = [
            StreamSource(dut, p.prefix, stalls.in_stall, seed * 1000 + salt + i, stalls.burst)
            for i, p in enumerate(in_ports)
        ]
        sinks = [
            StreamSink(
                dut, p.prefix, stalls.out_stall, seed * 1000 + salt + 50 + i, stalls.burst, p.lane
            )
            for i, p in enumerate(out_ports)
        ]
        return sources, sinks

    first_out = next(iter(out_ports))
    if reset_mid_frame:
        sources, sinks = drivers(1)
        tasks = [
            cocotb.start_soon(s.send(w)) for s, w in zip(sources, in_ports.values(), strict=True)
        ]
        tasks += [cocotb.start_soon(s.receive(10**9)) for s in sinks]
        frame_out = len(out_ports[first_out]) // frames
        cut = frame_out + (frame_out + 1) // 2

        def mid_frame() -> bool:
            for port, words in in_ports.items():
                taken = len(log.ins[port])
                if taken % (len(words) // frames) or taken == len(words):
                    return True
            return False

        for _ in range(limit):
            await RisingEdge(dut.clk)
            if len(log.outs[first_out]) >= cut and mid_frame():
                break
        else:
            raise AssertionError(
                f"no reset point: {len(log.outs[first_out])} of {cut} words out on "
                f"{first_out} after {limit} cycles"
            )
        for task in tasks:
            task.cancel()
        for source in sources:
            source.valid.value = 0
        for sink in sinks:
            sink.drive_ready(False)
        dut.rst_n.value = 0
        for sink, (port, want) in zip(sinks, out_ports.items(), strict=True):
            check_words(port, want, sink.words, frames, "before the reset: ")
        dut._log.info(
            "reset at cycle %d: in %s, out %s",
            log.cycle,
            {str(p): len(c) for p, c in log.ins.items()},
            {str(p): len(c) for p, c in log.outs.items()},
        )
        await ClockCycles(dut.clk, reset_cycles)
        dut.rst_n.value = 1

    released = log.cycle
    sources, sinks = drivers(500)
    for sink in sinks:
        sink.drive_ready(True)
    await ClockCycles(dut.clk, idle_cycles)
    stale = log.outs_since(released)
    assert not stale, f"words out after the reset with no input: {_show(stale)}"
    for sink in sinks:
        sink.drive_ready(False)

    start = log.cycle
    senders = [
        cocotb.start_soon(s.send(w)) for s, w in zip(sources, in_ports.values(), strict=True)
    ]
    receivers = [
        cocotb.start_soon(s.receive(len(out_ports[p])))
        for s, p in zip(sinks, out_ports, strict=True)
    ]
    try:
        await with_timeout(Combine(*senders, *receivers), limit * PERIOD_NS, "ns")
    except SimTimeoutError:
        raise AssertionError(
            f"timeout after {limit} cycles: words out "
            + ", ".join(
                f"{p}: {len(s.words)} of {len(out_ports[p])}"
                for s, p in zip(sinks, out_ports, strict=True)
            )
            + "; words in "
            + ", ".join(f"{p}: {len(log.ins[p]) - _before(log.ins[p], start)}" for p in in_ports)
        ) from None
    for sink, (port, want) in zip(sinks, out_ports.items(), strict=True):
        check_words(port, want, sink.words, frames)
    first_in = min(c[_before(c, start)] for c in log.ins.values() if len(c) > _before(c, start))
    for port in out_ports:
        first = next(c for c, _ in log.outs[port] if c > start)
        assert first >= first_in, (
            f"{port}: first word out at cycle {first}, before the first word in ({first_in})"
        )
    done = log.cycle
    for sink in sinks:
        sink.drive_ready(True)
    await ClockCycles(dut.clk, idle_cycles)
    extra = log.outs_since(done)
    assert not extra, f"words after the last expected one: {_show(extra)}"
    monitor.cancel()


def check_words(
    port: Port, want: Sequence[int], got: Sequence[int], frames: int, when: str = ""
) -> None:
    """``got`` is ``want`` or (words before a reset) the start of it; the first difference
    fails, naming the word and its frame."""
    assert len(got) <= len(want), f"{when}{port}: {len(got)} words, expected {len(want)}"
    per_frame = max(1, len(want) // frames)
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        assert w == g, (
            f"{when}{port} word {i} (frame {i // per_frame}, word {i % per_frame} of it): "
            f"expected {w:#x}, got {g:#x}"
        )


def _before(cycles: list[int], cycle: int) -> int:
    """How many entries of the sorted ``cycles`` are <= ``cycle``."""
    return sum(1 for c in cycles if c <= cycle)


def _show(seen: Mapping[Port, list[tuple[int, str]]]) -> str:
    return "; ".join(f"{p}: {v[:4]} ({len(v)} words)" for p, v in seen.items())


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
