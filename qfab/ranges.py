"""Integer value ranges and the bit widths derived from them.

Every width in qfab (accumulators, stream elements, threshold words) comes from here,
computed from the actual weights and input ranges, so the hardware can never overflow
and never carries a bit it does not need. Ranges are per channel and exact: for a
dot product with weights ``w`` and inputs in ``[lo, hi]``, the extreme values are
``sum_j min(w_j*lo, w_j*hi)`` and ``sum_j max(w_j*lo, w_j*hi)``, both reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qfab.ir import Graph, Node, infer_shapes, input_range, shuffle_order


@dataclass(frozen=True)
class IntRange:
    """Per-channel inclusive integer bounds ``lo[c] <= value[c] <= hi[c]``."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def min(self) -> int:
        return int(self.lo.min())

    @property
    def max(self) -> int:
        return int(self.hi.max())

    @property
    def signed(self) -> bool:
        return self.min < 0

    @property
    def bits(self) -> int:
        """Smallest width holding every value (two's complement if any is negative)."""
        return bits_for(self.min, self.max)


def bits_for(lo: int, hi: int) -> int:
    """Bits of the narrowest integer type holding ``[lo, hi]``.

    Unsigned when ``lo >= 0`` (``hi < 2^b``), else two's complement
    (``-2^(b-1) <= lo`` and ``hi < 2^(b-1)``). At least 1.
    """
    if lo >= 0:
        return max(1, int(hi).bit_length())

    def magnitude(v: int) -> int:  # bits of v in two's complement, sign bit excluded
        return (v if v >= 0 else -v - 1).bit_length()

    return max(magnitude(int(lo)), magnitude(int(hi))) + 1


def dense_acc_range(node: Node, x: IntRange) -> IntRange:
    """Exact accumulator range of a Dense node fed by inputs in ``x`` (per input channel)."""
    w = node.tensors["weight"].astype(np.int64)
    a = w * x.lo[None, :]
    b = w * x.hi[None, :]
    lo = np.minimum(a, b).sum(axis=1)
    hi = np.maximum(a, b).sum(axis=1)
    if "bias" in node.tensors:
        bias = node.tensors["bias"].astype(np.int64)
        lo, hi = lo + bias, hi + bias
    return IntRange(lo, hi)


def conv_acc_range(node: Node, x: IntRange) -> IntRange:
    """Accumulator range of a Conv2d over per-input-channel ranges ``x``.

    Each output channel sees its group's input channels at every kernel tap; with zero
    padding an input may also be 0, so 0 joins the input range then.
    """
    w = node.tensors["weight"].astype(np.int64)  # [OC, KH, KW, ICg]
    oc, _, _, icg = w.shape
    lo, hi = x.lo, x.hi
    if any(node.attrs["padding"]):
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    group = np.arange(oc) // (oc // int(node.attrs["groups"]))
    cols = group[:, None] * icg + np.arange(icg)[None, :]  # [OC, ICg] input channel ids
    a = w * lo[cols][:, None, None, :]
    b = w * hi[cols][:, None, None, :]
    return IntRange(np.minimum(a, b).sum(axis=(1, 2, 3)), np.maximum(a, b).sum(axis=(1, 2, 3)))


def node_ranges(graph: Graph) -> dict[str, IntRange]:
    """Output range of every integer node, per channel (OutputDequant is float: skipped).

    For a Flatten, the range is per feature (channel ranges tiled over the pixels).
    """
    shapes = infer_shapes(graph)
    out: dict[str, IntRange] = {}
    for n in graph.nodes:
        if n.op == "InputQuant":
            bits, feats = int(n.attrs["bits"]), shapes[n.name][-1]
            lo, hi = input_range(bits, bool(n.attrs["signed"]))
            out[n.name] = IntRange(np.full(feats, lo, np.int64), np.full(feats, hi, np.int64))
        elif n.op == "Dense":
            out[n.name] = dense_acc_range(n, out[n.inputs[0]])
        elif n.op == "Conv2d":
            out[n.name] = conv_acc_range(n, out[n.inputs[0]])
        elif n.op == "MaxPool":
            out[n.name] = out[n.inputs[0]]
        elif n.op == "Add":
            ins = [out[i] for i in n.inputs]
            shifts = [int(s) for s in n.attrs["shift"]]
            out[n.name] = IntRange(
                sum(r.lo << s for r, s in zip(ins, shifts, strict=True)),
                sum(r.hi << s for r, s in zip(ins, shifts, strict=True)),
            )
        elif n.op == "Concat":
            ins = [out[i] for i in n.inputs]
            out[n.name] = IntRange(
                np.concatenate([r.lo for r in ins]), np.concatenate([r.hi for r in ins])
            )
        elif n.op == "ChannelShuffle":
            x = out[n.inputs[0]]
            order = shuffle_order(len(x.lo), int(n.attrs["groups"]))
            out[n.name] = IntRange(x.lo[order], x.hi[order])
        elif n.op == "Flatten":
            x, pixels = out[n.inputs[0]], int(np.prod(shapes[n.inputs[0]][:-1]))
            out[n.name] = IntRange(np.tile(x.lo, pixels), np.tile(x.hi, pixels))
        elif n.op == "MultiThreshold":
            t = n.tensors["thresholds"]
            off = int(n.attrs["offset"])
            c = t.shape[0]
            lo, hi = (-1, 1) if n.attrs.get("bipolar") else (off, off + t.shape[1])
            out[n.name] = IntRange(np.full(c, lo, np.int64), np.full(c, hi, np.int64))
    return out
