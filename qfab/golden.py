"""Golden integer executor: the reference every other level is compared against.

It runs the IR in NumPy with int64 arithmetic (the accumulator range is checked to fit)
and keeps every node's output, so a mismatch can be located at its first layer,
channel and vector rather than only at the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qfab.errors import IRError
from qfab.ir import Graph, Node, decode_codebook, infer_shapes, input_range, shuffle_order
from qfab.ranges import node_ranges


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
    if "codebook" in node.tensors:
        return decode_codebook(node.tensors["codebook"], node.tensors["weight_index"])
    return node.tensors["weight"].astype(np.int64)


def dense(node: Node, x: np.ndarray) -> np.ndarray:
    """Integer matrix product ``x @ W.T (+ bias)`` in int64."""
    acc = x.astype(np.int64) @ dense_weight(node).T
    if "bias" in node.tensors:
        acc = acc + node.tensors["bias"].astype(np.int64)
    return acc


def conv2d(node: Node, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """NHWC integer convolution by im2col: ``[N, H*W*C]`` -> ``[N, OH*OW*OC]``."""
    w = dense_weight(node)  # [OC, KH, KW, ICg]
    oc, kh, kw, icg = w.shape
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    groups = int(node.attrs["groups"])
    h, wd, c = in_shape
    img = np.pad(x.reshape(-1, h, wd, c), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    # patches[n, oy, ox, ky, kx, c]
    rows = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :]  # [OH, KH]
    cols = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :]  # [OW, KW]
    patches = img[:, rows[:, None, :, None], cols[None, :, None, :], :]  # [N, OH, OW, KH, KW, C]
    out = np.empty((len(img), oh, ow, oc), np.int64)
    og = oc // groups
    for g in range(groups):
        p = patches[..., g * icg : (g + 1) * icg].reshape(len(img), oh, ow, -1)
        wg = w[g * og : (g + 1) * og].reshape(og, -1)
        out[..., g * og : (g + 1) * og] = p @ wg.T
    return out.reshape(len(img), -1)


def max_pool(node: Node, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Per-channel maximum over windows (integers, so it commutes with thresholds)."""
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
    h, wd, c = in_shape
    img = x.reshape(-1, h, wd, c)
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.full((len(img), oh, ow, c), np.iinfo(np.int64).min)
    for dy in range(kh):
        for dx in range(kw):
            out = np.maximum(out, img[:, dy : dy + sh * oh : sh, dx : dx + sw * ow : sw, :])
    return out.reshape(len(img), -1)


def multi_threshold(node: Node, acc: np.ndarray) -> np.ndarray:
    """``offset + number of thresholds reached`` per channel (``acc >= T``); bipolar: ±1.

    ``acc`` is ``[N, features]`` with channels innermost (NHWC), so it is viewed as
    ``[N, pixels, C]`` against the ``[C, levels]`` thresholds.
    """
    t = node.tensors["thresholds"].astype(np.int64)
    a = acc.reshape(len(acc), -1, t.shape[0])
    count = (a[..., None] >= t).sum(axis=-1).reshape(len(acc), -1).astype(np.int64)
    if node.attrs.get("bipolar"):
        return 2 * count - 1
    return count + int(node.attrs["offset"])


def output_dequant(node: Node, acc: np.ndarray) -> np.ndarray:
    """``float32(acc) * scale + bias`` in float32, the only float step after the input."""
    scale = node.tensors["scale"].astype(np.float32)
    return acc.astype(np.float32) * scale + node.tensors["bias"].astype(np.float32)


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
    outs: dict[str, np.ndarray] = {graph.nodes[0].name: np.asarray(x_int, dtype=np.int64)}
    logits = None
    for n in graph.nodes[1:]:
        x = outs[n.inputs[0]]
        if n.op == "Dense":
            outs[n.name] = dense(n, x)
        elif n.op == "MultiThreshold":
            outs[n.name] = multi_threshold(n, x)
        elif n.op == "Conv2d":
            outs[n.name] = conv2d(n, x, shapes[n.inputs[0]])
        elif n.op == "MaxPool":
            outs[n.name] = max_pool(n, x, shapes[n.inputs[0]])
        elif n.op == "Flatten":
            outs[n.name] = x
        elif n.op == "Add":
            outs[n.name] = sum(
                outs[i] << int(s) for i, s in zip(n.inputs, n.attrs["shift"], strict=True)
            )
        elif n.op == "Concat":
            parts = [outs[i].reshape(len(x), -1, shapes[i][-1]) for i in n.inputs]
            outs[n.name] = np.concatenate(parts, axis=2).reshape(len(x), -1)
        elif n.op == "ChannelShuffle":
            c = shapes[n.name][-1]
            order = shuffle_order(c, int(n.attrs["groups"]))
            outs[n.name] = x.reshape(len(x), -1, c)[:, :, order].reshape(len(x), -1)
        elif n.op == "OutputDequant":
            logits = output_dequant(n, x)
            outs[n.name] = logits
        else:  # validate() guarantees the op set; a new op must be added here
            raise IRError(f"golden: op {n.op} of node '{n.name}' is not implemented")
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
