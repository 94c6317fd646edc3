"""Integer value ranges of every node, and the bit widths derived from them.

Every width in qfab (accumulators, stream elements, threshold words) comes from here,
computed from the actual weights and input ranges, so the hardware can never overflow
and never carries a bit it does not need. Ranges are per channel and exact: each op
computes its own (:meth:`qfab.ops.base.Op.value_range`); for a dot product with weights
``w`` and inputs in ``[lo, hi]`` the extremes are ``sum_j min(w_j*lo, w_j*hi)`` and
``sum_j max(w_j*lo, w_j*hi)``, both reachable.
"""

from __future__ import annotations

from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import linear, op_of
from qfab.values import IntRange, bits_for, signed_bits

__all__ = [
    "IntRange",
    "bits_for",
    "conv_acc_range",
    "dense_acc_range",
    "node_ranges",
    "signed_bits",
]


def dense_acc_range(node: Node, x: IntRange) -> IntRange:
    """Exact accumulator range of a Dense node fed by inputs in ``x`` (per input channel)."""
    return linear.dense_acc_range(node.tensors["weight"], x, node.tensors.get("bias"))


def conv_acc_range(node: Node, x: IntRange) -> IntRange:
    """Accumulator range of a Conv2d over per-input-channel ranges ``x``."""
    return linear.conv_acc_range(
        node.tensors["weight"], int(node.attrs["groups"]), any(node.attrs["padding"]), x
    )


def node_ranges(graph: Graph) -> dict[str, IntRange]:
    """Output range of every integer node, per channel (float outputs are skipped).

    For a Flatten, the range is per feature (channel ranges tiled over the pixels).
    """
    shapes = infer_shapes(graph)
    out: dict[str, IntRange] = {}
    for n in graph.nodes:
        r = op_of(n).value_range(
            n, [out[i] for i in n.inputs], [shapes[i] for i in n.inputs], shapes[n.name]
        )
        if r is not None:
            out[n.name] = r
    return out
