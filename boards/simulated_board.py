"""The PYNQ driver, unchanged, against a design's RTL in simulation.

:class:`SimulatedBoard` puts the stand-in ``pynq`` package (``boards/sim_pynq``) first on
``sys.path`` and registers the design under a bitstream path; ``Accelerator(bitfile)``
then finds an overlay whose AXI DMA feeds the bytes the driver wrote to its MM2S buffer
into the RTL and writes what the RTL streams out into the driver's S2MM buffer.

The simulator is passed in (``simulate``: :func:`sim.runner.run_cocotb`, or any function
with its signature), because boards may not import the ``sim`` stage (ARCHITECTURE.md:
only the orchestration and tests wire stages together). Between the driver's bytes and
the simulator's integers, every bit the RTL reads is checked to survive the conversion:
the beats the driver sent are unpacked to elements and packed again, and must be equal
on the element bits (bits above them are dropped by the fabric's subset converter and
ignored by the RTL; the simulator's bench then packs the same beats for ``s_axis``). The
bench checks ``m_axis_tlast`` on every beat, so the stand-in DMA may end S2MM transfers
on every frame's last beat.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from boards.catalog import BoardError
from boards.pynq_driver import dma_stream_bits, load_manifest
from qfab.elements import pack_beats, port_element, unpack_beats

SIM_PYNQ = Path(__file__).resolve().parent / "sim_pynq"

#: ``simulate(design_dir, x_int, *, simulator, build_dir, taps)`` -> object with ``.outputs``
Simulate = Callable[..., Any]


class SimulatedBoard:
    """A design folder (``design.json`` + Verilog) behind the stand-in ``pynq``.

    Use as a context manager; inside it, ``Accelerator(board.bitfile)`` runs on the RTL.
    ``runs`` counts the simulations, ``sent_beats`` records every beat the DMA delivered.
    """

    def __init__(
        self,
        design_dir: str | Path,
        simulate: Simulate,
        build_dir: str | Path,
        simulator: str = "icarus",
        bitfile: str | Path | None = None,
    ) -> None:
        self.design_dir = Path(design_dir)
        self.manifest = load_manifest(self.design_dir / "design.json")
        self.simulate = simulate
        self.simulator = simulator
        self.build_dir = Path(build_dir)
        self.bitfile = Path(bitfile or self.design_dir / "qfab_top.bit")
        self.runs = 0
        self.sent_beats: list[int] = []
        self._pynq: ModuleType | None = None

    def __enter__(self) -> SimulatedBoard:
        real = sys.modules.get("pynq")
        if real is not None and not str(getattr(real, "__file__", "")).startswith(str(SIM_PYNQ)):
            raise BoardError("simulated board: a real 'pynq' is already imported in this process")
        sys.path.insert(0, str(SIM_PYNQ))
        pynq = importlib.import_module("pynq")
        if not str(pynq.__file__).startswith(str(SIM_PYNQ)):
            sys.path.remove(str(SIM_PYNQ))
            raise BoardError(f"simulated board: imported {pynq.__file__}, not the stand-in")
        inp, out = self.manifest["input"], self.manifest["output"]
        pynq.register_design(
            self.bitfile,
            pynq.SimulatedDesign(
                in_beat_bytes=dma_stream_bits(int(inp["tdata_bits"])) // 8,
                out_beat_bytes=dma_stream_bits(int(out["tdata_bits"])) // 8,
                out_beats_per_frame=int(out["beats_per_frame"]),
                run=self.run_beats,
            ),
        )
        self._pynq = pynq
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pynq is not None:
            self._pynq.unregister_design(self.bitfile)
        sys.modules.pop("pynq", None)
        if str(SIM_PYNQ) in sys.path:
            sys.path.remove(str(SIM_PYNQ))
        self._pynq = None

    def run_beats(self, beats: list[int]) -> list[int]:
        """Input beats (as the DMA read them) -> output beats of the RTL, by simulation."""
        inp, out = self.manifest["input"], self.manifest["output"]
        elems, per_frame = int(inp["elems_per_beat"]), int(inp["beats_per_frame"])
        in_el, out_el = port_element(inp), port_element(out)
        frames, extra = divmod(len(beats), per_frame)
        if extra or not frames:
            raise BoardError(
                f"simulated board: {len(beats)} input beats is not a whole number of "
                f"{per_frame}-beat frames"
            )
        x_int = in_el.decode(unpack_beats(beats, elems, in_el.bits, frames, per_frame))
        data_mask = (1 << (elems * in_el.bits)) - 1
        again = pack_beats(in_el.encode(x_int), elems, in_el.bits)
        lost = [i for i, (a, b) in enumerate(zip(again, beats, strict=True)) if a != b & data_mask]
        if lost:
            raise BoardError(f"simulated board: input beat {lost[0]} does not survive conversion")
        self.sent_beats += beats
        self.build_dir.mkdir(parents=True, exist_ok=True)
        result = self.simulate(
            self.design_dir,
            x_int,
            simulator=self.simulator,
            build_dir=self.build_dir / f"run{self.runs}",
            taps=False,
        )
        self.runs += 1
        outputs = np.asarray(result.outputs, dtype=np.int64)
        return pack_beats(out_el.encode(outputs), int(out["elems_per_beat"]), out_el.bits)
