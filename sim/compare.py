"""Level 2 of the equality: RTL simulation output against golden, integer for integer."""

from __future__ import annotations

from typing import Any

import numpy as np

from qfab.golden import first_mismatch, hardware_output, run_golden_int
from qfab.ir import Graph
from sim.runner import SimResult


def compare_rtl_to_golden(graph: Graph, x_int: np.ndarray, result: SimResult) -> dict[str, Any]:
    """Vectors compared, vectors with any differing output, and the first difference.

    The hardware streams out the last integer node (the final accumulators with their
    integer bias); golden computes the same node from the same input integers.
    """
    node = hardware_output(graph)
    want = run_golden_int(graph, x_int).outputs[node.name]
    got = np.asarray(result.outputs, dtype=np.int64)
    first = first_mismatch(want, got, node.name)
    bad = int(np.any(want != got, axis=1).sum()) if want.shape == got.shape else len(want)
    return {
        "vectors": int(len(x_int)),
        "mismatches": bad,
        "first_mismatch": None if first is None else {
            "layer": first[0], "vector": first[1], "channel": first[2],
            "golden": first[3], "rtl": first[4]},
    }
