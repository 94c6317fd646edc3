"""Performance model of a lowered (hardware) graph: initiation interval, latency, frames/s.

Every unit's cycles per frame come from its op's formula (recorded in the graph's
``cycles`` attrs by :class:`~hw_gen.passes.AnnotateCycles`): an MVAU takes
``OH*OW * (MH/PE) * (MW/SIMD)``, a sliding window one beat per cycle on its busier side,
and so on. The units run concurrently, so the pipeline accepts a frame every

    II = max(units' cycles, input port beats, output port beats)

cycles (FINN's bound: the slowest node), and runs at ``clock / II`` frames per second.
The latency bound adds, along the longest path, each unit's cycles per frame plus a
few pipeline stages: a unit never holds a frame longer than it takes to process it
when nothing downstream stalls, so the first frame is out no later than that sum
(measured latency is usually far lower, as units overlap within a frame).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qfab.ir import Graph, beat_elems, infer_shapes
from qfab.ops import StreamOp, op_of

#: Pipeline registers a unit adds beyond its per-frame cycles (the MVAU's five stages plus
#: up to five adder-tree stages).
STAGES_PER_UNIT = 10


def perf_model(graph: Graph, clock_mhz: float = 100.0) -> dict[str, Any]:
    """II, bottleneck, per-unit cycles, frames/s at ``clock_mhz`` and a latency bound."""
    shapes = infer_shapes(graph)
    cycles: dict[str, int] = {}
    for n in graph.nodes:
        op = op_of(n)
        if isinstance(op, StreamOp):
            cycles[n.name] = int(
                n.attrs.get("cycles") or op.cycles(n, [shapes[i] for i in n.inputs], shapes[n.name])
            )
    first = graph.nodes[0]
    in_beats = int(np.prod(shapes[first.name])) // int(first.attrs.get("pe") or 1)
    last = graph.node(graph.nodes[-1].inputs[0])
    out_beats = int(np.prod(shapes[last.name])) // int(beat_elems(last) or 1)
    ports = {"input port": in_beats, "output port": out_beats}
    everything = {**cycles, **ports}
    bottleneck = max(everything, key=everything.__getitem__)
    ii = everything[bottleneck]
    longest: dict[str, int] = {first.name: in_beats}
    for n in graph.nodes[1:]:
        own = cycles.get(n.name, 0) + (STAGES_PER_UNIT if n.name in cycles else 0)
        longest[n.name] = max(longest[i] for i in n.inputs) + own
    latency = longest[graph.nodes[-1].name] + out_beats
    return {
        "cycles_per_frame": ii,
        "bottleneck": bottleneck,
        "clock_mhz": clock_mhz,
        "frames_per_s": clock_mhz * 1e6 / ii,
        "latency_bound": latency,
        "nodes": cycles,
        "ports": ports,
    }
