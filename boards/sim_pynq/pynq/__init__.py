"""Stand-in for the ``pynq`` package: ``Overlay``, ``allocate`` and an AXI DMA, in simulation.

Only :mod:`boards.simulated_board` puts this on ``sys.path``, so the PYNQ driver runs
unchanged. It keeps what the driver must get right on a real board:

* a buffer from :func:`allocate` has a host side (the NumPy array the CPU writes) and a
  DRAM side (what the DMA reads and writes), as a cached CPU sees DRAM: ``flush``
  copies host to DRAM, ``invalidate`` DRAM to host. A driver that forgets either
  sends stale bytes or reads stale results; the DRAM side starts filled with ``0xA5``
  so stale data is never zeros that happen to look right;
* a channel must be idle to take a transfer, refuses transfers over the length
  register's limit or not a whole number of stream beats, and S2MM ends a transfer at
  ``TLAST`` (the last beat of a frame) or when its buffer is full;
* a ``wait`` that real hardware would never return from (no output will ever come)
  raises instead of hanging.

The stream between MM2S and S2MM is a design registered by the simulated board under
the bitstream path the driver opens: a function from input beats to output beats.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "qfab-simulated"


@dataclass
class SimulatedDesign:
    """What sits between the DMA channels: stream widths in bytes and the beat function."""

    in_beat_bytes: int
    out_beat_bytes: int
    out_beats_per_frame: int  # TLAST on every such beat (the RTL bench checks it does)
    run: Callable[[list[int]], list[int]]
    max_transfer: int = (1 << 26) - 1


_DESIGNS: dict[str, SimulatedDesign] = {}


def register_design(bitfile: str | Path, design: SimulatedDesign) -> None:
    """Make ``Overlay(bitfile)`` load ``design`` (the simulated board calls this)."""
    _DESIGNS[str(Path(bitfile).resolve())] = design


def unregister_design(bitfile: str | Path) -> None:
    _DESIGNS.pop(str(Path(bitfile).resolve()), None)


class PynqBuffer(np.ndarray):
    """A contiguous buffer: the array is the host view, ``dram`` what the DMA sees."""

    dram: np.ndarray
    physical_address: int

    def __array_finalize__(self, obj: Any) -> None:
        self._owner = getattr(obj, "_owner", None)

    def flush(self) -> None:
        """CPU cache -> DRAM (before the DMA reads the buffer)."""
        owner = self._owner
        owner.dram[:] = np.asarray(owner).view(np.uint8).reshape(-1)

    def invalidate(self) -> None:
        """DRAM -> CPU (after the DMA wrote the buffer)."""
        owner = self._owner
        np.asarray(owner).view(np.uint8).reshape(-1)[:] = owner.dram

    def freebuffer(self) -> None:
        self._owner.freed = True

    def close(self) -> None:
        self.freebuffer()


_next_address = 0x1000_0000


def allocate(shape: Any, dtype: Any = "u4", target: Any = None, **kwargs: Any) -> PynqBuffer:
    """A zeroed host array whose DRAM side holds ``0xA5`` until flushed."""
    global _next_address
    buf = np.zeros(shape, dtype=dtype).view(PynqBuffer)
    buf._owner = buf
    buf.dram = np.full(buf.nbytes, 0xA5, dtype=np.uint8)
    buf.physical_address = _next_address
    buf.freed = False
    _next_address += -(-buf.nbytes // 4096) * 4096
    return buf


class _Channel:
    def __init__(self, dma: _DMA, direction: str) -> None:
        self._dma = dma
        self._direction = direction
        self._pending: tuple[PynqBuffer, int, int] | None = None

    @property
    def idle(self) -> bool:
        return self._pending is None

    @property
    def running(self) -> bool:
        return True

    def transfer(self, array: PynqBuffer, start: int = 0, nbytes: int = 0) -> None:
        """Start a transfer of ``nbytes`` (0: to the end) at byte ``start`` of ``array``."""
        if not isinstance(array, PynqBuffer) or array._owner is not array:
            raise TypeError("DMA transfer: pass a buffer from pynq.allocate (not a view)")
        if array.freed:
            raise RuntimeError("DMA transfer: buffer was freed")
        if not self.idle:
            raise RuntimeError("DMA channel not idle")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes > self._dma.buffer_max_size:
            raise ValueError(
                f"Transfer size is {nbytes} bytes, which exceeds the maximum DMA buffer "
                f"size {self._dma.buffer_max_size}."
            )
        beat = self._dma.beat_bytes(self._direction)
        if start < 0 or start + nbytes > array.nbytes or nbytes % beat:
            raise ValueError(
                f"DMA transfer of {nbytes} bytes at {start} in a {array.nbytes}-byte buffer "
                f"(beats of {beat} bytes)"
            )
        self._pending = (array, start, nbytes)
        if self._direction == "send":
            self._dma.mm2s(array.dram[start : start + nbytes])

    def wait(self) -> None:
        if self._pending is None:
            return
        array, start, nbytes = self._pending
        if self._direction == "recv":
            data = self._dma.s2mm(nbytes)
            array.dram[start : start + len(data)] = np.frombuffer(data, np.uint8)
        else:
            self._dma.drain_input()
        self._pending = None


class _DMA:
    """The AXI DMA (simple mode) in front of the simulated design."""

    def __init__(self, design: SimulatedDesign) -> None:
        self._design = design
        self.buffer_max_size = design.max_transfer
        self.sendchannel = _Channel(self, "send")
        self.recvchannel = _Channel(self, "recv")
        self._in: list[int] = []
        self._out: deque[int] = deque()
        self._out_count = 0

    def beat_bytes(self, direction: str) -> int:
        d = self._design
        return d.in_beat_bytes if direction == "send" else d.out_beat_bytes

    def mm2s(self, data: np.ndarray) -> None:
        b = self._design.in_beat_bytes
        raw = np.asarray(data, np.uint8).reshape(-1, b)
        self._in += [int.from_bytes(bytes(row), "little") for row in raw]

    def drain_input(self) -> None:
        """Everything sent so far goes through the design (once)."""
        if self._in:
            beats, self._in = self._in, []
            self._out.extend(self._design.run(beats))

    def s2mm(self, nbytes: int) -> bytes:
        """Beats up to and including the next TLAST, or ``nbytes`` worth."""
        self.drain_input()
        b, per_frame = self._design.out_beat_bytes, self._design.out_beats_per_frame
        if not self._out:
            raise RuntimeError(
                "S2MM wait: no output beat will ever arrive (all input consumed): "
                "on a board this wait would hang"
            )
        data = bytearray()
        while self._out and len(data) < nbytes:
            data += self._out.popleft().to_bytes(b, "little")
            self._out_count += 1
            if self._out_count % per_frame == 0:  # TLAST
                break
        return bytes(data)


class Overlay:
    """``pynq.Overlay``: the simulated board's design behind ``axi_dma_0``."""

    def __init__(self, bitfile_name: str, download: bool = True, **kwargs: Any) -> None:
        key = str(Path(bitfile_name).resolve())
        if key not in _DESIGNS:
            raise OSError(f"{bitfile_name}: no simulated design registered for this bitstream")
        self.bitfile_name = bitfile_name
        self.axi_dma_0 = _DMA(_DESIGNS[key])
        self.ip_dict = {"axi_dma_0": {"type": "xilinx.com:ip:axi_dma:7.1"}}

    def download(self) -> None:
        pass
