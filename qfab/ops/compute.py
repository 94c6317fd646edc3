"""Compute units of the hardware graph: MVAU, XNOR-popcount MVAU, VVAU, Thresholding.

Each is a streaming unit folded by ``pe`` (output channels in parallel) and ``simd``
(input elements in parallel), FINN's MatrixVectorActivation / VectorVectorActivation /
Thresholding in spirit. Golden executes them directly, so the lowered graph can be run
and compared with the model graph it came from, node for node.

Cycle model (FINN's ``get_exp_cycles``): a matrix-vector unit takes ``(MH/PE)*(MW/SIMD)``
cycles per input vector; a convolution lowered to it gets one vector per output pixel,
``OH*OW`` of them, with ``MW = KH*KW*IC``; a depthwise (vector) unit takes
``(C/PE)*K`` per pixel (one tap per cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import HARDWARE_ATTRS, Attr, Shape, StreamOp, Tensor, must_divide, pixels
from qfab.ops.linear import dense_acc_range
from qfab.ops.registry import register
from qfab.ops.threshold import (
    apply_thresholds,
    check_threshold_table,
    threshold_output_range,
)
from qfab.values import IntRange, weight_range

if TYPE_CHECKING:
    from qfab.ir import Node

#: Optional fused activation of a compute unit (present iff ``thresholds`` is).
FUSED_THRESHOLD_ATTRS = {
    "out_bits": Attr("int", None, minimum=1, maximum=16),
    "offset": Attr("int", 0),
    "bipolar": Attr("bool", False),
}


def _check_fused(node: Node, loc: str) -> None:
    has_t = "thresholds" in node.tensors
    if has_t and "bias" in node.tensors:
        raise IRError(f"{loc}: a bias before thresholds must be folded into them")
    if has_t != (node.attrs.get("out_bits") is not None):
        raise IRError(f"{loc}: out_bits goes with thresholds (both or neither)")
    if has_t:
        check_threshold_table(node, loc)
        if node.tensors["thresholds"].shape[0] != node.tensors["weight"].shape[0]:
            raise IRError(f"{loc}: one threshold row per output channel")
    if "bias" in node.tensors and node.tensors["bias"].shape != (node.tensors["weight"].shape[0],):
        raise IRError(f"{loc}: bias must have one entry per output channel")


def _activate(node: Node, acc: np.ndarray) -> np.ndarray:
    if "thresholds" in node.tensors:
        return apply_thresholds(
            node.tensors["thresholds"],
            acc,
            int(node.attrs.get("offset", 0)),
            bool(node.attrs.get("bipolar", False)),
        )
    return acc


def _activated_range(node: Node, acc: IntRange) -> IntRange:
    if "thresholds" in node.tensors:
        return threshold_output_range(
            node.tensors["thresholds"],
            int(node.attrs.get("offset", 0)),
            bool(node.attrs.get("bipolar", False)),
        )
    return acc


def _vectors(node: Node, x: Shape, loc: str) -> Shape:
    """Output shape of a matrix unit: one MW vector per pixel, or the whole input as one."""
    mh, mw = node.tensors["weight"].shape
    if x[-1] == mw:
        return (*x[:-1], int(mh))
    if int(np.prod(x)) == mw:
        return (int(mh),)
    raise IRError(f"{loc}: weight has {mw} inputs, the input stream has shape {list(x)}")


@register
class MVAU(StreamOp):
    """Matrix-vector(-threshold) unit: ``acc = x @ weight.T (+ bias)``, thresholds fused.

    The input is a stream of MW-element vectors (a dense layer's input, or the windows
    of a sliding-window unit); ``pe`` rows and ``simd`` inputs per cycle.
    """

    name = "MVAU"
    attrs = {
        "pe": Attr("int", 1, minimum=1),
        "simd": Attr("int", 1, minimum=1),
        "weight_bits": Attr("int", minimum=1, maximum=32),
        **FUSED_THRESHOLD_ATTRS,
        **HARDWARE_ATTRS,
    }
    tensors = {
        "weight": Tensor("int", 2),
        "thresholds": Tensor("int", 2, required=False),
        "bias": Tensor("int", 1, required=False),
    }

    def check(self, node, loc):
        w = node.tensors["weight"]
        lo, hi = weight_range(int(node.attrs["weight_bits"]))
        if w.size and (w.min() < lo or w.max() > hi):
            raise IRError(f"{loc}: weights outside [{lo}, {hi}]")
        _check_fused(node, loc)

    def in_elems(self, node, index, in_shape):
        return int(node.attrs.get("simd", 1))

    def shape(self, node, ins, loc):
        return _vectors(node, ins[0], loc)

    def check_folding(self, node, in_shapes, shape, loc):
        mh, mw = node.tensors["weight"].shape
        must_divide(int(node.attrs.get("pe", 1)), mh, "PE", "MH", loc)
        must_divide(int(node.attrs.get("simd", 1)), mw, "SIMD", "MW", loc)

    def value_range(self, node, ins, in_shapes, shape):
        acc = dense_acc_range(node.tensors["weight"], ins[0], node.tensors.get("bias"))
        return _activated_range(node, acc)

    def accumulate(self, node: Node, x: np.ndarray) -> np.ndarray:
        w = node.tensors["weight"].astype(np.int64)
        acc = x.reshape(len(x), -1, w.shape[1]).astype(np.int64) @ w.T
        if "bias" in node.tensors:
            acc = acc + node.tensors["bias"].astype(np.int64)
        return acc.reshape(len(x), -1)

    def execute(self, node, xs, in_shapes, shape):
        return _activate(node, self.accumulate(node, xs[0]))

    def cycles(self, node, in_shapes, shape):
        mh, mw = node.tensors["weight"].shape
        pe, simd = int(node.attrs.get("pe", 1)), int(node.attrs.get("simd", 1))
        return pixels(shape) * (mh // pe) * (mw // simd)


@register
class XnorMVAU(MVAU):
    """MVAU for bipolar weights and inputs: XNOR and popcount instead of multiply-add.

    With ±1 values, ``x . w = 2*popcount(xnor(x, w)) - MW``; the unit counts matching
    signs ``pc`` and its tensors are rewritten for that count: ``acc >= T`` becomes
    ``pc >= ceil((T + MW) / 2)``, and without thresholds the output is ``2*pc + bias``
    with ``bias = bias_acc - MW``. Golden counts matches directly (not through that
    identity), so running both graphs checks the rewrite.
    """

    name = "XnorMVAU"

    def check(self, node, loc):
        super().check(node, loc)
        if int(node.attrs["weight_bits"]) != 1 or np.any(node.tensors["weight"] == 0):
            raise IRError(f"{loc}: an XNOR unit needs bipolar (±1, weight_bits = 1) weights")

    def value_range(self, node, ins, in_shapes, shape):
        if not ins[0].bipolar:
            raise IRError(
                f"node '{node.name}' (XnorMVAU): its input '{node.inputs[0]}' is not bipolar"
            )
        mh, mw = node.tensors["weight"].shape
        bias = node.tensors.get("bias", np.zeros(mh, np.int64)).astype(np.int64)
        has_t = "thresholds" in node.tensors
        lo, hi = (np.zeros(mh, np.int64), np.full(mh, mw, np.int64))
        acc = IntRange(lo, hi) if has_t else IntRange(2 * lo + bias, 2 * hi + bias)
        return _activated_range(node, acc)

    def matches(self, node: Node, x: np.ndarray) -> np.ndarray:
        """``pc[n, p, r]`` = number of positions where input and weight row agree."""
        w = node.tensors["weight"]
        xb = (x.reshape(len(x), -1, w.shape[1]) > 0).astype(np.int64)
        wb = (w > 0).astype(np.int64)
        return xb @ wb.T + (1 - xb) @ (1 - wb).T

    def execute(self, node, xs, in_shapes, shape):
        pc = self.matches(node, xs[0]).reshape(len(xs[0]), -1)
        if "thresholds" in node.tensors:
            return _activate(node, pc)
        mh = node.tensors["weight"].shape[0]
        bias = node.tensors.get("bias", np.zeros(mh, np.int64)).astype(np.int64)
        return (2 * pc.reshape(len(pc), -1, mh) + bias).reshape(len(pc), -1)


@register
class VVAU(StreamOp):
    """Vector unit of a depthwise convolution: ``out[c] = sum_k x[k, c] * weight[c, k]``.

    The input is the sliding-window stream (``K = KH*KW`` taps x ``C`` channels per
    pixel); ``pe`` channels in parallel, one tap per cycle (``simd`` = 1: the window unit
    emits one tap per beat, so more would not be fed).
    """

    name = "VVAU"
    attrs = {
        "pe": Attr("int", 1, minimum=1),
        "simd": Attr("int", 1, minimum=1, choices=(1,)),
        "weight_bits": Attr("int", minimum=1, maximum=32),
        "kernel": Attr("ints", length=2, minimum=1),
        **FUSED_THRESHOLD_ATTRS,
        **HARDWARE_ATTRS,
    }
    tensors = {"weight": Tensor("int", 2), "thresholds": Tensor("int", 2, required=False)}

    def check(self, node, loc):
        w = node.tensors["weight"]
        lo, hi = weight_range(int(node.attrs["weight_bits"]))
        if w.size and (w.min() < lo or w.max() > hi):
            raise IRError(f"{loc}: weights outside [{lo}, {hi}]")
        kh, kw = node.attrs["kernel"]
        if w.shape[1] != kh * kw:
            raise IRError(f"{loc}: weight must be [C, {kh * kw}] for kernel {[kh, kw]}")
        _check_fused(node, loc)

    def shape(self, node, ins, loc):
        c, k = node.tensors["weight"].shape
        if len(ins[0]) != 3 or ins[0][-1] != k * c:
            raise IRError(f"{loc}: needs windows [OH, OW, {k}*{c}], got {list(ins[0])}")
        return (*ins[0][:-1], int(c))

    def check_folding(self, node, in_shapes, shape, loc):
        must_divide(int(node.attrs.get("pe", 1)), shape[-1], "PE", "channels", loc)

    def value_range(self, node, ins, in_shapes, shape):
        w = node.tensors["weight"].astype(np.int64)  # [C, K]
        c, k = w.shape
        x = ins[0].tiled(k * c) if len(ins[0].lo) != k * c else ins[0]
        lo, hi = x.lo.reshape(k, c).T, x.hi.reshape(k, c).T  # [C, K]
        a, b = w * lo, w * hi
        acc = IntRange(np.minimum(a, b).sum(axis=1), np.maximum(a, b).sum(axis=1))
        return _activated_range(node, acc)

    def execute(self, node, xs, in_shapes, shape):
        w = node.tensors["weight"].astype(np.int64)  # [C, K]
        c, k = w.shape
        x = xs[0].reshape(len(xs[0]), -1, k, c)
        acc = np.einsum("npkc,ck->npc", x, w).reshape(len(xs[0]), -1)
        return _activate(node, acc)

    def cycles(self, node, in_shapes, shape):
        c, k = node.tensors["weight"].shape
        return pixels(shape) * (c // int(node.attrs.get("pe", 1))) * k


@register
class Thresholding(StreamOp):
    """A stand-alone multi-threshold unit (after an add, or where nothing can fuse it)."""

    name = "Thresholding"
    attrs = {
        "pe": Attr("int", 1, minimum=1),
        "out_bits": Attr("int", minimum=1, maximum=16),
        "offset": Attr("int"),
        "bipolar": Attr("bool", False),
        **HARDWARE_ATTRS,
    }
    tensors = {"thresholds": Tensor("int", 2)}

    def check(self, node, loc):
        check_threshold_table(node, loc)

    def shape(self, node, ins, loc):
        if node.tensors["thresholds"].shape[0] != ins[0][-1]:
            raise IRError(f"{loc}: one threshold row per channel of {list(ins[0])}")
        return ins[0]

    def check_folding(self, node, in_shapes, shape, loc):
        must_divide(int(node.attrs.get("pe", 1)), shape[-1], "PE", "channels", loc)

    def value_range(self, node, ins, in_shapes, shape):
        return _activated_range(node, ins[0])

    def execute(self, node, xs, in_shapes, shape):
        return _activate(node, xs[0])

    def cycles(self, node, in_shapes, shape):
        return int(np.prod(shape)) // int(node.attrs.get("pe", 1))
