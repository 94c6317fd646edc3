"""The waveform (FST) of the first mismatching vector, kept as evidence of a failed equality.

When level 2 fails, :func:`dump_first_mismatch` simulates the first mismatching vector
again, alone and from reset, with waveform dumping on (cocotb's ``waves``: Verilator
builds with ``--trace-fst``, Icarus runs with ``-fst``), and moves the FST to where the
run keeps it. One frame from reset is the smallest honest reproduction, but only if the
hardware has no state carried from earlier frames that matters; so, given the model graph,
the re-run is compared with golden again, and if the lone vector does NOT mismatch, the
run's vectors up to and including it are simulated instead (the waveform then holds
those frames, the mismatching one last). :class:`WaveDump` says which happened.

:func:`fst_header` reads the FST header block (times, timescale, counts of scopes and
signals) with nothing but ``struct``, so the report can describe the file without a
waveform library; a full reader (values) is gtkwave's ``fst2vcd`` (Debian ``gtkwave``).
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qfab.errors import ToolError
from qfab.ir import Graph
from sim.compare import compare_rtl_to_golden
from sim.runner import SimResult, load_manifest, run_cocotb

#: first byte of an FST file: the header block's type (FST_BL_HDR)
FST_HEADER_BLOCK = 0
#: the header block's length field (it counts itself, not the type byte)
FST_HEADER_LENGTH = 329


@dataclass(frozen=True)
class WaveDump:
    """The FST kept for a mismatch and how it was made."""

    path: Path
    frames: int  # frames simulated: 1 (the vector alone, from reset) or the run's prefix
    reproduced: bool | None  # the dumped run mismatches golden (None: not checked)
    first_mismatch: dict[str, Any] | None  # in the dumped run (vector = frame index)

    def as_report(self, relative_to: Path | None = None) -> dict[str, Any]:
        """For ``report.json`` ``equality.rtl_vs_golden.waveform``."""
        path = self.path.relative_to(relative_to) if relative_to else self.path
        how = (
            "the first mismatching vector alone, from reset"
            if self.frames == 1
            else f"the run's first {self.frames} vectors (the lone vector did not mismatch)"
        )
        return {
            "path": str(path),
            "simulated": how,
            "frames": self.frames,
            "reproduced": self.reproduced,
            "first_mismatch": self.first_mismatch,
            **fst_header(self.path),
        }


def dump_first_mismatch(
    design_dir: str | os.PathLike[str],
    x_int_vector: np.ndarray,
    out_fst: str | os.PathLike[str],
    *,
    simulator: str,
    build_dir: str | os.PathLike[str],
    graph: Graph | None = None,
    preceding: np.ndarray | None = None,
    backpressure: bool = False,
    seed: int = 0,
) -> WaveDump:
    """Simulate ``x_int_vector`` (one input vector, integers) alone from reset with
    waveform dumping and keep the FST at ``out_fst``.

    With ``graph`` (the model graph) the re-run is compared with golden; if the vector
    alone matches and ``preceding`` (the run's vectors before it) is given, those frames
    and the vector are simulated instead and that waveform is kept. ``build_dir`` holds
    the traced build (it differs from the run's untraced one, so it is built anew: about
    35 s on Verilator for a small MLP on this machine, 1 s on Icarus); the caller may
    delete it. ``backpressure`` and ``seed`` are the run's: a mismatch that only shows
    under the same random backpressure is reproduced the same way.
    """
    x = np.asarray(x_int_vector, dtype=np.int64).reshape(1, -1)
    pace = {"backpressure": backpressure, "seed": seed}
    dump = _simulate_with_waves(design_dir, x, out_fst, simulator, build_dir, graph, **pace)
    if dump.reproduced is False and preceding is not None and len(preceding):
        prefix = np.concatenate([np.asarray(preceding, dtype=np.int64), x])
        dump = _simulate_with_waves(
            design_dir, prefix, out_fst, simulator, build_dir, graph, **pace
        )
    return dump


def _simulate_with_waves(
    design_dir: str | os.PathLike[str],
    x: np.ndarray,
    out_fst: str | os.PathLike[str],
    simulator: str,
    build_dir: str | os.PathLike[str],
    graph: Graph | None,
    backpressure: bool = False,
    seed: int = 0,
) -> WaveDump:
    build_dir = Path(build_dir)
    manifest = load_manifest(design_dir)
    # where cocotb's runner has each simulator write it (Verilator: the test directory)
    dumped = build_dir / ("dump.fst" if simulator == "verilator" else f"{manifest['top']}.fst")
    dumped.unlink(missing_ok=True)  # never keep a stale dump of an earlier run
    result = run_cocotb(
        design_dir,
        x,
        simulator=simulator,
        build_dir=build_dir,
        waves=True,
        time_units=False,
        backpressure=backpressure,
        seed=seed,
    )
    if not dumped.is_file():
        raise ToolError(f"{simulator}: no waveform written (looked for {dumped})")
    out_fst = Path(out_fst)
    out_fst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(dumped, out_fst)
    first, reproduced = None, None
    if graph is not None:
        first, reproduced = _mismatch(graph, x, result, manifest)
    return WaveDump(out_fst, len(x), reproduced, first)


def _mismatch(
    graph: Graph, x: np.ndarray, result: SimResult, manifest: dict[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    eq = compare_rtl_to_golden(
        graph,
        x,
        result,
        manifest["output"]["model_node"],
        [t["model_node"] for t in manifest["taps"]],
    )
    return eq["first_mismatch"], eq["mismatches"] > 0


def fst_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What an FST file's header block says: start and end time (in its timescale),
    the timescale, the numbers of scopes and signals, and the writer.

    Layout (gtkwave's ``fstapi.c``, ``fstWriterEmitHdrBytes``): block type 0, the
    section length (329), start time, end time (big-endian u64), the number e as a
    double in the writer's byte order (an endianness test), then big-endian u64s: writer
    memory, scopes, variables declared, distinct signals (the largest handle), value
    change sections; the timescale exponent (i8) and the writer's name (128 bytes).
    A file that does not start so is refused.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(1 + 8 + 8 * 9 + 1 + 128)
    if len(head) < 1 + 8 + 8 * 9 + 1 + 128 or head[0] != FST_HEADER_BLOCK:
        raise ToolError(f"{path}: not an FST file (no header block at its start)")
    length, start, end = struct.unpack(">QQQ", head[1:25])
    endian = {struct.unpack(f"{order}d", head[25:33])[0] for order in "<>"}
    if length != FST_HEADER_LENGTH or not any(abs(v - np.e) < 1e-12 for v in endian):
        raise ToolError(f"{path}: not an FST file (header length {length}, no endian test)")
    _, scopes, declared, signals, blocks = struct.unpack(">QQQQQ", head[33:73])
    (exponent,) = struct.unpack(">b", head[73:74])
    return {
        "start_time": start,
        "end_time": end,
        "timescale": f"1e{exponent} s",
        "scopes": scopes,
        "signals": signals,
        "variables_declared": declared,
        "value_change_sections": blocks,
        "writer": head[74:].split(b"\0")[0].decode("ascii", "replace"),
        "bytes": path.stat().st_size,
    }
