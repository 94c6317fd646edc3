"""Level 2 of the equality: RTL simulation output against golden, integer for integer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from qfab.errors import MismatchError
from qfab.golden import first_mismatch, run_golden_int
from qfab.ir import Graph
from sim.runner import SimResult


def compare_rtl_to_golden(
    graph: Graph,
    x_int: np.ndarray,
    result: SimResult,
    output_node: str,
    expected_taps: Iterable[str] | None = None,
    what: str = "RTL",
) -> dict[str, Any]:
    """Vectors compared, vectors with any differing value, and the first difference.

    ``graph`` is the model graph; ``output_node`` the model node the design's output
    port carries (its manifest says which). The bench also taps every unit that equals a
    model node, so the first difference is searched in graph order and names the layer
    where the hardware first went wrong, not just the output. A vector counts as a
    mismatch when its output or any tap differs (an inner error that happens to cancel
    out is still a hardware bug). Nothing is skipped: every tap must hold exactly one row
    per vector (a missing or extra beat is a mismatch), name a node of ``graph``, and
    every name in ``expected_taps`` (the manifest's tapped model nodes) must have come
    back, or :class:`MismatchError` names what is wrong. ``what`` names the compared
    side in messages (the RTL simulation, or the HLS C simulation: both are read through
    the same manifest, so one comparison serves both).
    """
    gold = run_golden_int(graph, x_int).outputs
    if output_node not in gold:
        raise MismatchError(f"the design's output '{output_node}' is no node of the model graph")
    unknown = sorted(set(result.taps) - set(gold))
    if unknown:
        raise MismatchError(
            f"{what} taps {unknown} name no integer node of the model graph; "
            f"its nodes: {sorted(gold)}"
        )
    missing = sorted(set(expected_taps or ()) - set(result.taps))
    if missing:
        raise MismatchError(f"the simulation returned no data for the tapped layers {missing}")
    want = gold[output_node]
    got = np.asarray(result.outputs, dtype=np.int64)
    if want.shape != got.shape:
        raise MismatchError(
            f"{output_node}: {what} output shape {got.shape} != golden {want.shape}"
        )
    bad = np.any(want != got, axis=1)
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    first = None
    for name in sorted(result.taps, key=lambda k: order[k]):
        inner = np.asarray(result.taps[name])
        expected = gold[name]
        if inner.shape != expected.shape:
            raise MismatchError(
                f"{name}: the {what} tap delivered {_rows(inner)}, golden has {_rows(expected)}"
            )
        bad |= np.any(expected != inner, axis=1)
        if first is None:
            first = first_mismatch(expected, inner, name)
    if first is None:
        first = first_mismatch(want, got, output_node)
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
            what.split()[0].lower(): first[4],
        },
    }


def _rows(a: np.ndarray) -> str:
    """``9 vectors of 7 values`` (or the raw shape when it is not 2-D)."""
    if a.ndim == 2:
        return f"{a.shape[0]} vectors of {a.shape[1]} values"
    return f"an array of shape {a.shape}"
