"""Streaming units of the hardware graph that move data: sliding window, max pool, add,
concat, shuffle, fork, width converter and FIFO.

Their golden execution is the model op they implement (or the identity for plumbing),
so the lowered graph runs like the model graph. Cycles are per frame, in steady state,
for the unit alone: one beat per cycle on its busiest port.
"""

from __future__ import annotations

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import HARDWARE_ATTRS, Attr, StreamOp, must_divide
from qfab.ops.layout import (
    add_range,
    add_shifted,
    check_branches,
    check_groups,
    concat_channels,
    concat_range,
    max_pool,
    pool_shape,
    shuffle_order,
)
from qfab.ops.linear import conv_output_hw, im2col
from qfab.ops.registry import register
from qfab.values import IntRange


def _features(shape) -> int:
    return int(np.prod(shape))


@register
class SlidingWindow(StreamOp):
    """Sliding-window (im2col) unit: ``[H, W, C]`` -> ``[OH, OW, KH*KW*C]`` windows.

    Per output pixel it streams the window's taps (ky, kx) row-major, channels
    innermost; taps outside the image are 0 (zero padding). ``simd`` elements per
    output beat: a divisor of C (one tap's channel slice per beat), or a multiple
    ``m*C`` with m dividing KH*KW (m whole taps per beat). A bipolar input with padding
    becomes a signed 2-bit stream (a bipolar stream cannot carry the padding zero).
    """

    name = "SlidingWindow"
    attrs = {
        "kernel": Attr("ints", length=2, minimum=1),
        "stride": Attr("ints", length=2, minimum=1),
        "padding": Attr("ints", length=2, minimum=0),
        "simd": Attr("int", 1, minimum=1),
        **HARDWARE_ATTRS,
    }

    def taps_per_beat(self, node, channels: int) -> int:
        """Whole taps per output beat (1 when a beat is one tap's channel slice)."""
        simd = int(node.attrs.get("simd", 1))
        return 1 if simd <= channels else simd // channels

    def in_elems(self, node, index, in_shape):
        """Elements per input beat, which is also one line-buffer word."""
        return min(int(node.attrs.get("simd", 1)), int(in_shape[-1]))

    def out_elems(self, node):
        return int(node.attrs.get("simd", 1))

    def shape(self, node, ins, loc):
        x = ins[0]
        if len(x) != 3:
            raise IRError(f"{loc}: needs an [H, W, C] input, got {list(x)}")
        (kh, kw), (ph, pw) = node.attrs["kernel"], node.attrs["padding"]
        oh, ow = conv_output_hw(x, (kh, kw), node.attrs["stride"], (ph, pw))
        if oh < 1 or ow < 1:
            raise IRError(f"{loc}: kernel {[kh, kw]} does not fit input {list(x[:2])}")
        if ph >= kh or pw >= kw:
            raise IRError(f"{loc}: padding {[ph, pw]} must be smaller than kernel {[kh, kw]}")
        return oh, ow, kh * kw * x[2]

    def check_folding(self, node, in_shapes, shape, loc):
        c = in_shapes[0][-1]
        simd = int(node.attrs.get("simd", 1))
        kh, kw = node.attrs["kernel"]
        if simd <= c:
            must_divide(simd, c, "SIMD", "channels", loc)
        elif simd % c or (kh * kw) % (simd // c):
            allowed = [d for d in range(1, c + 1) if c % d == 0]
            allowed += [c * m for m in range(2, kh * kw + 1) if (kh * kw) % m == 0]
            raise IRError(
                f"{loc}: SIMD = {simd} must divide the {c} channels or be whole taps "
                f"(a multiple of {c} dividing {kh * kw} taps); allowed: {allowed}"
            )

    def value_range(self, node, ins, in_shapes, shape):
        x = ins[0]
        padded = any(node.attrs["padding"])
        lo, hi = (np.minimum(x.lo, 0), np.maximum(x.hi, 0)) if padded else (x.lo, x.hi)
        return IntRange(lo, hi, x.bipolar and not padded).tiled(shape[-1])

    def execute(self, node, xs, in_shapes, shape):
        p = im2col(
            xs[0], in_shapes[0], node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
        )
        return p.reshape(len(xs[0]), -1)

    def cycles(self, node, in_shapes, shape):
        c = in_shapes[0][-1]
        simd = int(node.attrs.get("simd", 1))
        beats_out = _features(shape) // simd
        beats_in = _features(in_shapes[0]) // min(simd, c)
        return max(beats_out, beats_in)


@register
class StreamingMaxPool(StreamOp):
    """Non-overlapping max pool on a pixel stream (kernel = stride), one beat per cycle."""

    name = "StreamingMaxPool"
    attrs = {
        "kernel": Attr("ints", length=2, minimum=1),
        "stride": Attr("ints", length=2, minimum=1),
        "pe": Attr("int", 1, minimum=1),
        **HARDWARE_ATTRS,
    }

    def check(self, node, loc):
        if list(node.attrs["kernel"]) != list(node.attrs["stride"]):
            raise IRError(
                f"{loc}: the streaming max pool needs stride = kernel, got kernel "
                f"{node.attrs['kernel']} stride {node.attrs['stride']}"
            )

    def shape(self, node, ins, loc):
        return pool_shape(node.attrs, ins[0], loc)

    def check_folding(self, node, in_shapes, shape, loc):
        must_divide(int(node.attrs.get("pe", 1)), shape[-1], "PE", "channels", loc)

    def value_range(self, node, ins, in_shapes, shape):
        return ins[0]

    def execute(self, node, xs, in_shapes, shape):
        return max_pool(xs[0], in_shapes[0], node.attrs["kernel"], node.attrs["stride"])

    def cycles(self, node, in_shapes, shape):
        return _features(in_shapes[0]) // int(node.attrs.get("pe", 1))


@register
class AddStreams(StreamOp):
    """Residual add of two streams: ``(a << shift[0]) + (b << shift[1])``."""

    name = "AddStreams"
    arity = (2, 2)
    attrs = {
        "shift": Attr("ints", length=2, minimum=0),
        "pe": Attr("int", 1, minimum=1),
        **HARDWARE_ATTRS,
    }

    def shape(self, node, ins, loc):
        check_branches(node, ins, loc, channels_may_differ=False)
        return ins[0]

    def check_folding(self, node, in_shapes, shape, loc):
        must_divide(int(node.attrs.get("pe", 1)), shape[-1], "PE", "channels", loc)

    def value_range(self, node, ins, in_shapes, shape):
        return add_range(ins, node.attrs["shift"])

    def execute(self, node, xs, in_shapes, shape):
        return add_shifted(xs, node.attrs["shift"])

    def cycles(self, node, in_shapes, shape):
        return _features(shape) // int(node.attrs.get("pe", 1))


@register
class ConcatStreams(StreamOp):
    """Per pixel, the channels of input 0, then of input 1, ... (``pe`` per beat)."""

    name = "ConcatStreams"
    arity = (2, None)
    attrs = {"pe": Attr("int", 1, minimum=1), **HARDWARE_ATTRS}

    def shape(self, node, ins, loc):
        check_branches(node, ins, loc, channels_may_differ=True)
        return (*ins[0][:-1], sum(s[-1] for s in ins))

    def check_folding(self, node, in_shapes, shape, loc):
        for name, s in zip(node.inputs, in_shapes, strict=True):
            must_divide(int(node.attrs.get("pe", 1)), s[-1], "PE", f"channels of {name}", loc)

    def value_range(self, node, ins, in_shapes, shape):
        return concat_range(ins)

    def execute(self, node, xs, in_shapes, shape):
        return concat_channels(xs, [s[-1] for s in in_shapes])

    def cycles(self, node, in_shapes, shape):
        return _features(shape) // int(node.attrs.get("pe", 1))


@register
class ShuffleStreams(StreamOp):
    """ShuffleNet's channel shuffle within each pixel of a stream."""

    name = "ShuffleStreams"
    attrs = {"groups": Attr("int", minimum=1), "pe": Attr("int", 1, minimum=1), **HARDWARE_ATTRS}

    def shape(self, node, ins, loc):
        check_groups(int(node.attrs["groups"]), ins[0][-1], loc)
        return ins[0]

    def check_folding(self, node, in_shapes, shape, loc):
        must_divide(int(node.attrs.get("pe", 1)), shape[-1], "PE", "channels", loc)

    def value_range(self, node, ins, in_shapes, shape):
        order = shuffle_order(len(ins[0].lo), int(node.attrs["groups"]))
        return IntRange(ins[0].lo[order], ins[0].hi[order], ins[0].bipolar)

    def execute(self, node, xs, in_shapes, shape):
        c = shape[-1]
        order = shuffle_order(c, int(node.attrs["groups"]))
        return xs[0].reshape(len(xs[0]), -1, c)[:, :, order].reshape(len(xs[0]), -1)

    def cycles(self, node, in_shapes, shape):
        return _features(shape) // int(node.attrs.get("pe", 1))


class _Plumbing(StreamOp):
    """Units that pass every element through unchanged (golden: the identity)."""

    def shape(self, node, ins, loc):
        return ins[0]

    def value_range(self, node, ins, in_shapes, shape):
        return ins[0]

    def execute(self, node, xs, in_shapes, shape):
        return xs[0]

    def check_folding(self, node, in_shapes, shape, loc):
        size = _features(shape)
        must_divide(self.in_elems(node, 0, shape), size, "elements per beat", "features", loc)
        must_divide(self.out_elems(node), size, "elements per beat", "features", loc)

    def cycles(self, node, in_shapes, shape):
        return _features(shape) // min(self.in_elems(node, 0, shape), self.out_elems(node))


@register
class Fork(_Plumbing):
    """One stream to every consumer of a node (each sees every beat, in order)."""

    name = "Fork"
    attrs = {"pe": Attr("int", 1, minimum=1), **HARDWARE_ATTRS}


@register
class DWC(_Plumbing):
    """Data width converter: ``in_elems`` elements per input beat -> ``out_elems``."""

    name = "DWC"
    attrs = {
        "in_elems": Attr("int", minimum=1),
        "out_elems": Attr("int", minimum=1),
        **HARDWARE_ATTRS,
    }

    def in_elems(self, node, index, in_shape):
        return int(node.attrs["in_elems"])

    def out_elems(self, node):
        return int(node.attrs["out_elems"])


@register
class FIFO(_Plumbing):
    """A stream FIFO of ``depth`` beats (on a branch that must wait for its join)."""

    name = "FIFO"
    attrs = {"depth": Attr("int", minimum=2), "pe": Attr("int", 1, minimum=1), **HARDWARE_ATTRS}
