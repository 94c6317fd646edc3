"""Level 2 of the equality: RTL simulation output against golden, integer for integer."""

from __future__ import annotations

from typing import Any

import numpy as np

from qfab.errors import MismatchError
from qfab.golden import first_mismatch, hardware_output, run_golden_int
from qfab.ir import Graph
from sim.runner import SimResult


def _activation_of(graph: Graph, dense: str) -> str:
    """The node whose values a layer streams out: its MultiThreshold, or itself."""
    after = graph.consumers(dense)
    return after[0].name if after and after[0].op == "MultiThreshold" else dense


def compare_rtl_to_golden(graph: Graph, x_int: np.ndarray, result: SimResult) -> dict[str, Any]:
    """Vectors compared, vectors with any differing value, and the first difference.

    The hardware streams out the last integer node (the final accumulators with their
    integer bias); golden computes the same node from the same input integers. The bench
    also taps every layer's output stream, so the first difference is searched layer by
    layer and names the layer where the hardware first went wrong, not just the output.
    A vector counts as a mismatch when its output or any tapped layer output differs
    (an inner error that happens to cancel out is still a hardware bug).
    """
    node = hardware_output(graph)
    gold = run_golden_int(graph, x_int).outputs
    want = gold[node.name]
    got = np.asarray(result.outputs, dtype=np.int64)
    if want.shape != got.shape:
        raise MismatchError(f"{node.name}: RTL output shape {got.shape} != golden {want.shape}")
    bad = np.any(want != got, axis=1)
    first = None
    for dense_name, inner in result.layers.items():
        layer_node = _activation_of(graph, dense_name)
        expected = gold[layer_node][: len(inner)]
        if expected.shape != inner.shape:
            continue
        bad[: len(inner)] |= np.any(expected != inner, axis=1)
        if first is None:
            first = first_mismatch(expected, inner, layer_node)
    if first is None:
        first = first_mismatch(want, got, node.name)
    return {
        "vectors": len(x_int),
        "mismatches": int(bad.sum()),
        "first_mismatch": None
        if first is None
        else {
            "layer": first[0],
            "vector": first[1],
            "channel": first[2],
            "golden": first[3],
            "rtl": first[4],
        },
    }
