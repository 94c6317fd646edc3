"""Weight layers of the model graph: ``Dense`` and ``Conv2d`` (grouped, depthwise, non-square).

Weights are integers (``weight_bits``: 1 means bipolar ±1, otherwise narrow-range
signed). Shared weights (Deep Compression) add ``codebook`` and ``weight_index``; then
``weight`` must equal ``codebook[weight_index]`` and golden computes with the codebook.
A ``Dense`` encoded by the compression pipeline's ``encode`` step also holds its
sparse-engine layout (:mod:`qfab.sparse`: ``sparse_codebook``, ``sparse_code``,
``sparse_gap``, ``sparse_ptr`` and attrs ``sparse_pes``, ``sparse_index_bits``,
``sparse_code_bits``); it must decode to ``weight``, and golden computes from it.
The numeric helpers here (:func:`dense_acc_range`, :func:`im2col`) are also what the
hardware units of :mod:`qfab.ops.compute` use, so both levels share one formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import Attr, Op, Shape, Tensor
from qfab.ops.registry import register
from qfab.sparse import layout_of, sparse_decode
from qfab.values import IntRange, decode_codebook, weight_range

if TYPE_CHECKING:
    from qfab.ir import Node


def dense_acc_range(weight: np.ndarray, x: IntRange, bias: np.ndarray | None = None) -> IntRange:
    """Exact accumulator range of ``x @ weight.T (+ bias)`` for per-input bounds ``x``.

    For each row, the extremes are ``sum_j min(w_j*lo_j, w_j*hi_j)`` and the same with
    ``max``; both are reachable because every input varies independently.
    """
    w = weight.astype(np.int64)
    x = x.tiled(w.shape[1]) if len(x.lo) != w.shape[1] else x
    a, b = w * x.lo[None, :], w * x.hi[None, :]
    lo, hi = np.minimum(a, b).sum(axis=1), np.maximum(a, b).sum(axis=1)
    if bias is not None:
        lo, hi = lo + bias.astype(np.int64), hi + bias.astype(np.int64)
    return IntRange(lo, hi)


def conv_acc_range(weight: np.ndarray, groups: int, padded: bool, x: IntRange) -> IntRange:
    """Accumulator range of an NHWC convolution (weight ``[OC, KH, KW, IC/groups]``).

    Each output channel sees its group's input channels at every kernel tap; with zero
    padding an input may also be 0, so 0 joins the input range then.
    """
    w = weight.astype(np.int64)
    oc, _, _, icg = w.shape
    lo, hi = x.lo, x.hi
    if padded:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    group = np.arange(oc) // (oc // groups)
    cols = group[:, None] * icg + np.arange(icg)[None, :]  # [OC, ICg] input channel ids
    a = w * lo[cols][:, None, None, :]
    b = w * hi[cols][:, None, None, :]
    return IntRange(np.minimum(a, b).sum(axis=(1, 2, 3)), np.maximum(a, b).sum(axis=(1, 2, 3)))


def im2col(
    x: np.ndarray,
    in_shape: Shape,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
) -> np.ndarray:
    """Sliding windows of an NHWC batch: ``[N, H*W*C]`` -> ``[N, OH, OW, KH, KW, C]``.

    Taps outside the image read 0 (zero padding). This is the exact order the
    sliding-window unit streams: output pixels in raster order, then taps (ky, kx)
    row-major, channels innermost.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    h, w, c = in_shape
    img = np.pad(x.reshape(-1, h, w, c), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :]  # [OH, KH]
    cols = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :]  # [OW, KW]
    return img[:, rows[:, None, :, None], cols[None, :, None, :], :]


def conv_output_hw(in_shape: Shape, kernel: Sequence[int], stride, padding) -> tuple[int, int]:
    """``(OH, OW)`` of a window over ``in_shape`` (no rounding up: a partial window is dropped)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return (in_shape[0] + 2 * ph - kh) // sh + 1, (in_shape[1] + 2 * pw - kw) // sw + 1


class WeightOp(Op):
    """Shared schema and checks of the weight layers."""

    def weight(self, node: Node) -> np.ndarray:
        """The integer weights, decoded from the codebook when the layer shares weights."""
        if "codebook" in node.tensors:
            return decode_codebook(node.tensors["codebook"], node.tensors["weight_index"])
        return node.tensors["weight"].astype(np.int64)

    def check(self, node: Node, loc: str) -> None:
        w = node.tensors["weight"]
        bits = int(node.attrs["weight_bits"])
        lo, hi = weight_range(bits)
        if w.size and (w.min() < lo or w.max() > hi):
            raise IRError(f"{loc}: weights outside [{lo}, {hi}] for weight_bits={bits}")
        if bits == 1 and w.size and np.any(w == 0):
            raise IRError(f"{loc}: 1-bit weights are bipolar: -1 or +1, not 0")
        if ("codebook" in node.tensors) != ("weight_index" in node.tensors):
            raise IRError(f"{loc}: codebook and weight_index come together")
        if "codebook" in node.tensors:
            idx = node.tensors["weight_index"]
            k = len(node.tensors["codebook"])
            if idx.shape != w.shape or idx.min(initial=0) < -1 or idx.max(initial=-1) >= k:
                raise IRError(f"{loc}: weight_index must be {list(w.shape)} in -1..{k - 1}")
            if not np.array_equal(decode_codebook(node.tensors["codebook"], idx), w):
                raise IRError(f"{loc}: weight differs from codebook[weight_index]")


#: IR names of a Dense node's stored sparse layout (tensor name -> layout key).
SPARSE_TENSORS = {
    "sparse_codebook": "codebook",
    "sparse_code": "sparse_code",
    "sparse_gap": "sparse_gap",
    "sparse_ptr": "sparse_ptr",
}
SPARSE_ATTRS = {
    "sparse_pes": "pes",
    "sparse_index_bits": "index_bits",
    "sparse_code_bits": "code_bits",
}


def stored_layout(node: Node):
    """The layout the ``encode`` step stored on a Dense node, or None."""
    if "sparse_code" not in node.tensors:
        return None
    tensors = {key: node.tensors[name] for name, key in SPARSE_TENSORS.items()}
    attrs = {key: node.attrs[name] for name, key in SPARSE_ATTRS.items()}
    return layout_of(tensors, attrs, int(node.tensors["weight"].shape[0]))


@register
class Dense(WeightOp):
    """``acc = x @ weight.T (+ bias)``: weight ``[out, in]``, bias in accumulator units."""

    name = "Dense"
    attrs = {
        "weight_bits": Attr("int", minimum=1, maximum=32),
        "sparse_pes": Attr("int", None, minimum=1, maximum=256),
        "sparse_index_bits": Attr("int", None, minimum=1, maximum=16),
        "sparse_code_bits": Attr("int", None, minimum=1, maximum=16),
    }
    tensors = {
        "weight": Tensor("int", 2),
        "bias": Tensor("int", 1, required=False),
        "codebook": Tensor("int", 1, required=False),
        "weight_index": Tensor("int", 2, required=False),
        **{
            name: Tensor("int", 2 if name == "sparse_ptr" else 1, required=False)
            for name in SPARSE_TENSORS
        },
    }

    def weight(self, node: Node) -> np.ndarray:
        """From the stored sparse words when the layer was encoded (golden runs what the
        engine's memories hold), else as :class:`WeightOp`."""
        layout = stored_layout(node)
        return sparse_decode(layout) if layout is not None else super().weight(node)

    def check(self, node: Node, loc: str) -> None:
        super().check(node, loc)
        w = node.tensors["weight"]
        if "bias" in node.tensors and node.tensors["bias"].shape != (w.shape[0],):
            raise IRError(f"{loc}: bias shape {node.tensors['bias'].shape} != ({w.shape[0]},)")
        present = [
            k
            for k in (*SPARSE_TENSORS, *SPARSE_ATTRS)
            if k in node.tensors or node.attrs.get(k) is not None
        ]
        if present and len(present) != len(SPARSE_TENSORS) + len(SPARSE_ATTRS):
            raise IRError(
                f"{loc}: a stored sparse layout needs all of "
                f"{[*SPARSE_TENSORS, *SPARSE_ATTRS]}, got {present}"
            )
        if present:
            try:
                decoded = sparse_decode(stored_layout(node))
            except IRError as exc:
                raise IRError(f"{loc}: stored sparse layout: {exc}") from exc
            if not np.array_equal(decoded, w.astype(np.int64)):
                raise IRError(f"{loc}: the stored sparse layout does not decode to the weights")

    def shape(self, node, ins, loc):
        x, w = ins[0], node.tensors["weight"]
        if len(x) != 1 or w.shape[1] != x[0]:
            raise IRError(
                f"{loc}: weight has {w.shape[1]} inputs, input '{node.inputs[0]}' "
                f"gives shape {list(x)}" + (" (Flatten first)" if len(x) == 3 else "")
            )
        return (int(w.shape[0]),)

    def value_range(self, node, ins, in_shapes, shape):
        return dense_acc_range(self.weight(node), ins[0], node.tensors.get("bias"))

    def execute(self, node, xs, in_shapes, shape):
        acc = xs[0].astype(np.int64) @ self.weight(node).T
        if "bias" in node.tensors:
            acc = acc + node.tensors["bias"].astype(np.int64)
        return acc


@register
class Conv2d(WeightOp):
    """NHWC convolution: weight ``[OC, KH, KW, IC/groups]``, zero padding, groups."""

    name = "Conv2d"
    attrs = {
        "weight_bits": Attr("int", minimum=1, maximum=32),
        "stride": Attr("ints", length=2, minimum=1),
        "padding": Attr("ints", length=2, minimum=0),
        "groups": Attr("int", minimum=1),
    }
    tensors = {
        "weight": Tensor("int", 4),
        "codebook": Tensor("int", 1, required=False),
        "weight_index": Tensor("int", 4, required=False),
    }

    def shape(self, node, ins, loc):
        x, w = ins[0], node.tensors["weight"]
        if len(x) != 3:
            raise IRError(f"{loc}: needs an [H, W, C] input, got {list(x)}")
        groups = int(node.attrs["groups"])
        if x[2] % groups or w.shape[0] % groups or w.shape[3] * groups != x[2]:
            raise IRError(
                f"{loc}: groups={groups} does not fit {x[2]} input and {w.shape[0]} "
                f"output channels with weight {list(w.shape)}"
            )
        oh, ow = conv_output_hw(x, w.shape[1:3], node.attrs["stride"], node.attrs["padding"])
        if oh < 1 or ow < 1:
            raise IRError(f"{loc}: kernel {list(w.shape[1:3])} does not fit input {list(x[:2])}")
        return oh, ow, int(w.shape[0])

    def value_range(self, node, ins, in_shapes, shape):
        return conv_acc_range(
            self.weight(node), int(node.attrs["groups"]), any(node.attrs["padding"]), ins[0]
        )

    def execute(self, node, xs, in_shapes, shape):
        w = self.weight(node)  # [OC, KH, KW, ICg]
        oc, kh, kw, icg = w.shape
        groups = int(node.attrs["groups"])
        patches = im2col(xs[0], in_shapes[0], (kh, kw), node.attrs["stride"], node.attrs["padding"])
        n, oh, ow = patches.shape[:3]
        out = np.empty((n, oh, ow, oc), np.int64)
        og = oc // groups
        for g in range(groups):
            p = patches[..., g * icg : (g + 1) * icg].reshape(n, oh, ow, -1)
            wg = w[g * og : (g + 1) * og].reshape(og, -1)
            out[..., g * og : (g + 1) * og] = p @ wg.T
        return out.reshape(n, -1)
