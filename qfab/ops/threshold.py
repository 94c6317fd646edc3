"""``MultiThreshold``: batch norm, bias, scales and the activation quantizer in one table.

Per channel ``c``: ``out = offset + #{k : acc >= thresholds[c, k]}`` with
``2^out_bits - 1`` sorted thresholds; ``bipolar`` (only with ``out_bits = 1``) gives
``2*count - 1`` in {-1, +1}, as BNNs. :func:`apply_thresholds` and
:func:`threshold_output_range` are shared with the hardware units that fuse thresholds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import Attr, Op, Tensor, per_pixel
from qfab.ops.registry import register
from qfab.values import IntRange

if TYPE_CHECKING:
    from qfab.ir import Node

#: The attrs of a threshold table, shared by every op that applies one.
THRESHOLD_ATTRS = {
    "out_bits": Attr("int", minimum=1, maximum=16),
    "offset": Attr("int"),
    "bipolar": Attr("bool", False),
}


def apply_thresholds(
    thresholds: np.ndarray, acc: np.ndarray, offset: int, bipolar: bool
) -> np.ndarray:
    """``offset + #{k : acc >= T[c, k]}`` (or ±1) for ``acc`` ``[N, features]`` (NHWC)."""
    t = thresholds.astype(np.int64)
    a = per_pixel(acc, t.shape[0])
    count = (a[..., None] >= t).sum(axis=-1).reshape(len(acc), -1).astype(np.int64)
    return 2 * count - 1 if bipolar else count + int(offset)


def threshold_output_range(thresholds: np.ndarray, offset: int, bipolar: bool) -> IntRange:
    """``[offset, offset + levels]`` per channel, or the bipolar {-1, +1}."""
    c, levels = thresholds.shape
    if bipolar:
        return IntRange.full(c, -1, 1, bipolar=True)
    return IntRange.full(c, int(offset), int(offset) + levels)


def check_threshold_table(node: Node, loc: str, key: str = "thresholds") -> None:
    """Sorted rows of ``2^out_bits - 1`` thresholds; bipolar only with 1 bit and offset 0."""
    t = node.tensors[key]
    nt = 2 ** int(node.attrs["out_bits"]) - 1
    if t.shape[1] != nt:
        raise IRError(
            f"{loc}: {key} must be [C, {nt}] for out_bits={node.attrs['out_bits']},"
            f" got {list(t.shape)}"
        )
    if np.any(np.diff(t, axis=1) < 0):
        raise IRError(f"{loc}: {key} must be sorted ascending per channel")
    if node.attrs.get("bipolar") and (int(node.attrs["out_bits"]) != 1 or node.attrs["offset"]):
        raise IRError(f"{loc}: bipolar needs out_bits = 1 and offset = 0")


@register
class MultiThreshold(Op):
    """Per-channel multi-threshold activation on accumulators."""

    name = "MultiThreshold"
    attrs = THRESHOLD_ATTRS
    tensors = {"thresholds": Tensor("int", 2)}

    def check(self, node, loc):
        check_threshold_table(node, loc)

    def shape(self, node, ins, loc):
        rows = node.tensors["thresholds"].shape[0]
        if rows != ins[0][-1]:
            raise IRError(f"{loc}: {rows} channel parameters for input shape {list(ins[0])}")
        return ins[0]

    def value_range(self, node, ins, in_shapes, shape):
        return threshold_output_range(
            node.tensors["thresholds"], node.attrs["offset"], bool(node.attrs.get("bipolar"))
        )

    def execute(self, node, xs, in_shapes, shape):
        return apply_thresholds(
            node.tensors["thresholds"], xs[0], node.attrs["offset"], bool(node.attrs.get("bipolar"))
        )
