"""FIFO sizing by simulation (FINN's InsertAndSetFIFODepths, with a paced input).

The design is generated with deep FIFOs in front of every unit
(:class:`hw_gen.passes.insert.InsertStreamFIFOs`) and simulated with the input paced at
the modelled initiation interval (one frame every II cycles: the steady operating
point, at which no FIFO in front of the bottleneck fills up without bound). Every FIFO's
input and output handshakes are timed; the most beats it held at any clock edge is what
it needs (:class:`hw_gen.passes.insert.SetFIFODepths` shrinks it to that). Unit timing
does not depend on the data, so one short run sizes the FIFOs for any input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sim.runner import load_manifest, run_cocotb


def most_held(ins: np.ndarray, outs: np.ndarray) -> int:
    """Largest number of beats between a stream's input and output handshakes."""
    if len(ins) == 0:
        return 0
    times = np.union1d(ins, outs)
    entered = np.searchsorted(np.sort(ins), times, side="right")
    left = np.searchsorted(np.sort(outs), times, side="right")
    return int(np.max(entered - left))


def measure_fifo_occupancy(
    design_dir: str | os.PathLike[str],
    x_int: np.ndarray,
    *,
    build_dir: str | os.PathLike[str],
    simulator: str = "icarus",
) -> dict[str, int]:
    """FIFO node -> most beats it held, with one frame entering every II cycles."""
    manifest = load_manifest(design_dir)
    fifos = {f["instance"]: f["node"] for f in manifest.get("fifos", [])}
    if not fifos:
        return {}
    result = run_cocotb(
        Path(design_dir),
        x_int,
        simulator=simulator,
        build_dir=build_dir,
        taps=False,
        watch=list(fifos),
        frame_interval=int(manifest["perf"]["cycles_per_frame"]),
    )
    return {fifos[inst]: most_held(*result.flows[inst]) for inst in fifos}
