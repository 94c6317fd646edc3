"""Golden integer executor: the reference every other level is compared against.

It runs any graph of the IR, model or hardware level, in NumPy with int64 arithmetic
(the accumulator range is checked to fit), each node by its op's
:meth:`~qfab.ops.base.Op.execute`, and keeps every node's output, so a mismatch can be
located at its first layer, channel and vector rather than only at the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qfab.errors import IRError
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import OPS, op_of
from qfab.ranges import node_ranges
from qfab.values import input_range


@dataclass
class GoldenResult:
    """Every node's output for a batch: integers for hardware nodes, float32 logits."""

    outputs: dict[str, np.ndarray]
    logits: np.ndarray

    @property
    def prediction(self) -> np.ndarray:
        return np.argmax(self.logits, axis=1)


def quantize_input(node: Node, x: np.ndarray) -> np.ndarray:
    """``clip(round_half_even(x / scale), lo, hi)`` in float32, as Brevitas computes it.

    Dividing by a power-of-two scale is exact in float32, and NumPy's ``rint`` rounds
    half to even like ``torch.round``, so the integers equal Brevitas' ``int()`` values.
    """
    bits, signed = int(node.attrs["bits"]), bool(node.attrs["signed"])
    lo, hi = input_range(bits, signed)
    q = np.rint(x.astype(np.float32) / np.float32(node.attrs["scale"]))
    return np.clip(q, lo, hi).astype(np.int64)


def dense_weight(node: Node) -> np.ndarray:
    """The integer weight matrix, decoded from the codebook when the layer shares weights."""
    return OPS["Dense"].weight(node)


def multi_threshold(node: Node, acc: np.ndarray) -> np.ndarray:
    """``offset + number of thresholds reached`` per channel (``direction * acc >= T``,
    direction +1 unless the node has one); bipolar: ±1."""
    return OPS["MultiThreshold"].execute(node, [acc], [], ())


def conv2d(node: Node, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """NHWC integer convolution by im2col: ``[N, H*W*C]`` -> ``[N, OH*OW*OC]``."""
    return OPS["Conv2d"].execute(node, [x], [in_shape], ())


def max_pool(node: Node, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Per-channel maximum over windows (integers, so it commutes with thresholds)."""
    return OPS["MaxPool"].execute(node, [x], [in_shape], ())


def run_golden(graph: Graph, x: np.ndarray) -> GoldenResult:
    """Execute ``graph`` on float inputs ``x`` of shape ``[N, features]``."""
    first = graph.nodes[0]
    feats = int(first.attrs["features"])
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != feats:
        raise IRError(f"golden: input shape {x.shape}, graph expects [N, {feats}]")
    return run_golden_int(graph, quantize_input(first, x))


def run_golden_int(graph: Graph, x_int: np.ndarray) -> GoldenResult:
    """Execute ``graph`` from already-quantized input integers (what the hardware sees)."""
    ranges = node_ranges(graph)
    shapes = infer_shapes(graph)
    worst = max(max(abs(r.min), abs(r.max)) for r in ranges.values())
    if worst >= 2**62:
        raise IRError(f"golden: accumulator range {worst} does not fit int64")
    x_int = np.asarray(x_int, dtype=np.int64)
    feats = int(graph.nodes[0].attrs["features"])
    if x_int.ndim != 2 or x_int.shape[1] != feats:
        raise IRError(f"golden: input shape {x_int.shape}, graph expects [N, {feats}]")
    outs: dict[str, np.ndarray] = {}
    logits = None
    for n in graph.nodes:
        xs = [outs[i] for i in n.inputs] if n.inputs else [x_int]
        outs[n.name] = op_of(n).execute(n, xs, [shapes[i] for i in n.inputs], shapes[n.name])
        if n.op == "OutputDequant":
            logits = outs[n.name]
    if logits is None:
        raise IRError("golden: graph has no OutputDequant node")
    return GoldenResult(outs, logits)


def hardware_output(graph: Graph) -> Node:
    """The last integer node: what the generated hardware streams out."""
    last = graph.nodes[-1]
    return graph.node(last.inputs[0]) if last.op == "OutputDequant" else last


def first_mismatch(
    expected: np.ndarray, actual: np.ndarray, layer: str
) -> tuple[str, int, int, int, int] | None:
    """First differing (layer, vector, channel, expected, actual), or None if equal.

    Both arrays are ``[vectors, channels]`` integers; comparison is exact.
    """
    if expected.shape != actual.shape:
        raise IRError(f"{layer}: shape {actual.shape} differs from golden {expected.shape}")
    diff = np.argwhere(expected != actual)
    if diff.size == 0:
        return None
    v, c = (int(i) for i in diff[0])
    return layer, v, c, int(expected[v, c]), int(actual[v, c])


def compare_levels(
    model: Graph, hardware: Graph, x_int: np.ndarray
) -> tuple[str, int, int, float, float] | None:
    """Run both levels on the same input integers; the first differing node, or None.

    Every hardware node that names a ``model_node`` must produce exactly that node's
    output, and both graphs must end in the same logits.
    """
    m = run_golden_int(model, x_int)
    h = run_golden_int(hardware, x_int)
    for n in hardware.nodes:
        ref = n.attrs.get("model_node")
        if ref is not None:
            found = first_mismatch(m.outputs[ref], h.outputs[n.name], n.name)
            if found is not None:
                return found
    if not np.array_equal(m.logits, h.logits):
        v, c = (int(i) for i in np.argwhere(m.logits != h.logits)[0])
        return "logits", v, c, float(m.logits[v, c]), float(h.logits[v, c])
    return None
