"""Ops that move or combine activations without weights: pooling, flatten, residual add,
channel concatenation and ShuffleNet's channel shuffle.

The helpers (:func:`max_pool`, :func:`add_shifted`, :func:`concat_channels`,
:func:`shuffle_order`) are shared with the streaming units of :mod:`qfab.ops.streams`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import Attr, Op, Shape, divisors, per_pixel
from qfab.ops.registry import register
from qfab.values import IntRange


def max_pool(x: np.ndarray, in_shape: Shape, kernel: Sequence[int], stride: Sequence[int]):
    """Per-channel maximum over windows; partial windows at the edge are dropped."""
    (kh, kw), (sh, sw) = kernel, stride
    h, w, c = in_shape
    img = x.reshape(-1, h, w, c)
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((len(img), oh, ow, c), np.iinfo(np.int64).min)
    for dy in range(kh):
        for dx in range(kw):
            out = np.maximum(out, img[:, dy : dy + sh * oh : sh, dx : dx + sw * ow : sw, :])
    return out.reshape(len(img), -1)


def pool_shape(node_attrs: dict, x: Shape, loc: str) -> Shape:
    if len(x) != 3:
        raise IRError(f"{loc}: needs an [H, W, C] input, got {list(x)}")
    (kh, kw), (sh, sw) = node_attrs["kernel"], node_attrs["stride"]
    if kh > x[0] or kw > x[1]:
        raise IRError(f"{loc}: kernel {[kh, kw]} larger than input {list(x[:2])}")
    return (x[0] - kh) // sh + 1, (x[1] - kw) // sw + 1, x[2]


def shuffle_order(channels: int, groups: int) -> np.ndarray:
    """ShuffleNet's channel shuffle: output channel j reads input channel ``order[j]``.

    View the channels as ``[groups, channels / groups]``, transpose, flatten.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def add_shifted(xs: Sequence[np.ndarray], shifts: Sequence[int]) -> np.ndarray:
    """``sum_i x_i << shift_i``: branches with power-of-two scales meet on the finest."""
    return sum(x.astype(np.int64) << int(s) for x, s in zip(xs, shifts, strict=True))


def add_range(ins: Sequence[IntRange], shifts: Sequence[int]) -> IntRange:
    return IntRange(
        sum(r.lo << int(s) for r, s in zip(ins, shifts, strict=True)),
        sum(r.hi << int(s) for r, s in zip(ins, shifts, strict=True)),
    )


def concat_channels(xs: Sequence[np.ndarray], channels: Sequence[int]) -> np.ndarray:
    """Per pixel, the channels of every input one after the other."""
    n = len(xs[0])
    parts = [per_pixel(x, c) for x, c in zip(xs, channels, strict=True)]
    return np.concatenate(parts, axis=2).reshape(n, -1)


def concat_range(ins: Sequence[IntRange]) -> IntRange:
    return IntRange(
        np.concatenate([r.lo for r in ins]),
        np.concatenate([r.hi for r in ins]),
        all(r.bipolar for r in ins),
    )


def check_branches(node, ins: Sequence[Shape], loc: str, channels_may_differ: bool) -> None:
    keep = (lambda s: s[:-1]) if channels_may_differ else (lambda s: s)
    if any(keep(s) != keep(ins[0]) for s in ins):
        what = "shapes apart from channels" if channels_may_differ else "shapes"
        raise IRError(
            f"{loc}: branch {what} differ: "
            + ", ".join(f"{i} {list(s)}" for i, s in zip(node.inputs, ins, strict=True))
        )


def check_groups(groups: int, channels: int, loc: str) -> None:
    if groups < 1 or channels % groups:
        raise IRError(
            f"{loc}: groups={groups} does not divide {channels} channels; allowed: "
            f"{divisors(channels)}"
        )


@register
class MaxPool(Op):
    """Per-channel maximum over ``kernel`` windows with ``stride`` (integers, so it
    commutes with thresholds)."""

    name = "MaxPool"
    attrs = {
        "kernel": Attr("ints", length=2, minimum=1),
        "stride": Attr("ints", length=2, minimum=1),
    }

    def shape(self, node, ins, loc):
        return pool_shape(node.attrs, ins[0], loc)

    def value_range(self, node, ins, in_shapes, shape):
        return ins[0]

    def execute(self, node, xs, in_shapes, shape):
        return max_pool(xs[0], in_shapes[0], node.attrs["kernel"], node.attrs["stride"])


@register
class Flatten(Op):
    """``[H, W, C]`` -> ``[H*W*C]`` in NHWC order (the exporter permutes the next layer's
    weight columns from PyTorch's NCHW order)."""

    name = "Flatten"

    def shape(self, node, ins, loc):
        return (int(np.prod(ins[0])),)

    def value_range(self, node, ins, in_shapes, shape):
        return ins[0].tiled(shape[0])

    def execute(self, node, xs, in_shapes, shape):
        return xs[0]


@register
class Add(Op):
    """``sum_i (x_i << shift[i])`` over two branches of the same shape."""

    name = "Add"
    arity = (2, 2)
    attrs = {"shift": Attr("ints", minimum=0)}

    def shape(self, node, ins, loc):
        check_branches(node, ins, loc, channels_may_differ=False)
        if len(node.attrs["shift"]) != len(node.inputs):
            raise IRError(f"{loc}: one shift per input, got {node.attrs['shift']}")
        return ins[0]

    def value_range(self, node, ins, in_shapes, shape):
        return add_range(ins, node.attrs["shift"])

    def execute(self, node, xs, in_shapes, shape):
        return add_shifted(xs, node.attrs["shift"])


@register
class Concat(Op):
    """Channel concatenation of its inputs (same spatial shape; one shared scale)."""

    name = "Concat"
    arity = (2, None)

    def shape(self, node, ins, loc):
        check_branches(node, ins, loc, channels_may_differ=True)
        return (*ins[0][:-1], sum(s[-1] for s in ins))

    def value_range(self, node, ins, in_shapes, shape):
        return concat_range(ins)

    def execute(self, node, xs, in_shapes, shape):
        return concat_channels(xs, [s[-1] for s in in_shapes])


@register
class ChannelShuffle(Op):
    """ShuffleNet's permutation of channels (:func:`shuffle_order`)."""

    name = "ChannelShuffle"
    attrs = {"groups": Attr("int")}

    def shape(self, node, ins, loc):
        check_groups(int(node.attrs["groups"]), ins[0][-1], loc)
        return ins[0]

    def value_range(self, node, ins, in_shapes, shape):
        order = shuffle_order(len(ins[0].lo), int(node.attrs["groups"]))
        return IntRange(ins[0].lo[order], ins[0].hi[order], ins[0].bipolar)

    def execute(self, node, xs, in_shapes, shape):
        c = shape[-1]
        order = shuffle_order(c, int(node.attrs["groups"]))
        return per_pixel(xs[0], c)[:, :, order].reshape(len(xs[0]), -1)
