"""Performance model of the EIE-style sparse engine (``rtl/sparse_engine.v``) on real inputs.

The engine's cycles depend on the data: only non-zero activations are broadcast, and
each PE spends ``max(1, entries)`` cycles on a column. This model follows the
microarchitecture token by token (EIE's own simulator does the same), with the RTL's
exact latencies:

* the broadcaster spends one cycle per non-zero activation (a push into every PE's
  queue), one per beat without any, and one per end-of-frame token; a push waits until
  every queue has room (a queue frees a slot the cycle after a PE pops it) and, for
  frame ``f``, until frame ``f - 2``'s accumulator bank has been drained;
* PE ``p`` pops token ``k`` at ``f = max(b_k + 1, t_{k-1})`` (its pointer stage is free
  once the issue stage took the previous token) and its issue stage takes it at
  ``t = max(f + 1, t_{k-1} + c_{k-1})``, ``c`` = the previous column's cycles;
* a frame's end token reaches the accumulators 4 cycles after its issue, and the drain
  starts the cycle after every PE has passed it (and the previous drain is over), taking
  one cycle per output beat; the frame's last beat leaves 2 cycles after its read.

It predicts the cycle each frame's last output beat appears with the output never
stalled and the input always offered. Beside it: the **ideal** (every PE busy all the
time: the frame's non-zero work / N) and the **dense bound** of an MVAU with the same
number of multipliers (rows x cols / N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qfab.golden import run_golden_int
from qfab.ir import Graph
from qfab.ops import OPS
from qfab.sparse import SparseLayout

#: Cycles from the issue stage taking an end token to the drain seeing it (I, E, M, A, flag).
EOF_TO_DRAIN = 5


@dataclass
class EnginePerf:
    """Per-frame completion cycles and what they are compared with."""

    done: np.ndarray  # [frames] cycle of each frame's last output beat
    work: np.ndarray  # [frames] entries read over all PEs (the PEs' useful work)
    pe_work: np.ndarray  # [frames, pes] cycles each PE's issue stage was busy
    pes: int
    dense_cycles: int  # an MVAU with pes multipliers: rows * cols / pes

    @property
    def _start(self) -> int:
        """First frame of the steady-state window (the bench's: the second half)."""
        n = len(self.done)
        return 0 if n < 3 else (n // 2 if n >= 6 else 1)

    @property
    def cycles_per_frame(self) -> float:
        """Steady state, as the simulation bench measures it: the mean spacing of frame
        completions over the second half of the run."""
        d, start = self.done, self._start
        if start == 0:
            return float(d[-1]) / max(1, len(d))
        return float(d[-1] - d[start - 1]) / (len(d) - start)

    @property
    def ideal(self) -> float:
        """Mean non-zero work per frame spread evenly over the PEs (same frames)."""
        return float(self.work[self._start :].mean()) / self.pes

    @property
    def imbalance(self) -> float:
        """Busiest PE's work / mean PE work (1.0: perfectly balanced)."""
        busy = self.pe_work.sum(axis=0)
        return float(busy.max() / max(1e-9, busy.mean()))


def engine_perf(
    layout: SparseLayout, x: np.ndarray, simd: int, out_elems: int, queue_depth: int
) -> EnginePerf:
    """Model the engine on the integer input vectors ``x [frames, cols]``."""
    x = np.asarray(x, np.int64)
    n, d = layout.pes, int(queue_depth)
    work_pc = layout.column_work  # [pes, cols]
    cost_pc = np.maximum(work_pc, 1)
    beats_out = layout.rows // out_elems
    # token streams: per frame, slots of the broadcaster (col >= 0: a push of that column,
    # -1: an empty beat, -2: the end token)
    t_prev = np.zeros(n, np.int64)  # issue stage took the previous token at this cycle
    c_prev = np.zeros(n, np.int64)  # ... and it costs this many cycles
    pops: list[np.ndarray] = []  # f_{p,k} per token k, for the queue-space condition
    slot = 0  # first cycle the broadcaster may use
    drain_fin: list[int] = []  # per frame: cycle its drain's last read moves out
    done, work, pe_work = [], [], []
    for f, v in enumerate(x):
        beats = v.reshape(-1, simd) != 0
        frame_free = drain_fin[f - 2] + 1 if f >= 2 else 0  # bank f % 2 drained
        busy = np.zeros(n, np.int64)
        eof_take = np.zeros(n, np.int64)
        for b in range(beats.shape[0]):
            lanes = np.flatnonzero(beats[b])
            if lanes.size == 0:
                slot += 1  # an empty beat: one cycle, no push
                continue
            for lane in lanes:
                col = b * simd + int(lane)
                slot = _push(slot, frame_free, pops, d)
                t_prev, c_prev = _pes_take(slot, t_prev, c_prev, pops)
                c_prev = cost_pc[:, col].copy()
                busy += c_prev
                slot += 1
        slot = _push(slot, frame_free, pops, d)  # the end token
        t_prev, c_prev = _pes_take(slot, t_prev, c_prev, pops)
        eof_take = t_prev.copy()
        c_prev = np.ones(n, np.int64)
        busy += 1
        slot += 1
        start = int(eof_take.max()) + EOF_TO_DRAIN
        if drain_fin:
            start = max(start, drain_fin[-1] + 1)
        drain_fin.append(start + beats_out)
        done.append(start + beats_out + 1)
        nz = np.flatnonzero(v)
        work.append(int(work_pc[:, nz].sum()))
        pe_work.append(busy)
    return EnginePerf(
        np.array(done, np.int64),
        np.array(work, np.int64),
        np.array(pe_work, np.int64),
        n,
        layout.rows * layout.cols // n,
    )


def _push(slot: int, frame_free: int, pops: list[np.ndarray], depth: int) -> int:
    """Cycle of the next push: the slot, once every queue has room and the bank is free."""
    c = max(slot, frame_free)
    if len(pops) >= depth:
        c = max(c, int(pops[-depth].max()) + 1)  # token k - D popped by every PE
    return c


def _pes_take(
    b: int, t_prev: np.ndarray, c_prev: np.ndarray, pops: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Token pushed at cycle ``b``: every PE's pop and issue-stage take cycles."""
    f = np.maximum(b + 1, t_prev)
    t = np.maximum(f + 1, t_prev + c_prev)
    pops.append(f)
    return t, c_prev


def design_sparse_perf(hw: Graph, x_int: np.ndarray) -> dict[str, EnginePerf]:
    """Every sparse engine of hardware graph ``hw`` modelled on the inputs it really sees
    (golden's output of its producer for the frames ``x_int``)."""
    engines = [n for n in hw.nodes if n.op == "SparseMVAU"]
    if not engines:
        return {}
    outs = run_golden_int(hw, x_int).outputs
    return {
        n.name: engine_perf(
            OPS["SparseMVAU"].layout(n),
            outs[n.inputs[0]],
            int(n.attrs["simd"]),
            int(n.attrs["pe"]),
            int(n.attrs["queue_depth"]),
        )
        for n in engines
    }


def sparse_report(hw: Graph, x_int: np.ndarray) -> list[dict[str, Any]]:
    """Per sparse layer: modelled cycles/frame, ideal, load-balance efficiency, the dense
    MVAU with as many multipliers, and the engine's memories."""
    rows = []
    for name, p in design_sparse_perf(hw, x_int).items():
        n = hw.node(name)
        layout = OPS["SparseMVAU"].layout(n)
        model = p.cycles_per_frame
        rows.append(
            {
                "layer": name,
                "pes": layout.pes,
                "queue_depth": int(n.attrs["queue_depth"]),
                "density": round(int(np.count_nonzero(layout.code)) / layout.rows / layout.cols, 4),
                "entries": int(layout.pe_entries.sum()),
                "padding_entries": layout.padding_entries,
                "entries_per_pe": layout.pe_entries.tolist(),
                "cycles_per_frame_model": round(model, 2),
                "ideal_cycles": round(p.ideal, 2),
                "efficiency_model": round(p.ideal / model, 4),
                "dense_mvau_cycles": p.dense_cycles,
                "speedup_model": round(p.dense_cycles / model, 2),
                "memory_bytes": layout.memory_bytes(),
            }
        )
    return rows
