"""``MultiThreshold``: batch norm, bias, scales and the activation quantizer in one table.

Per channel ``c``: ``out = offset + #{k : direction[c] * acc >= thresholds[c, k]}`` with
``2^out_bits - 1`` sorted thresholds; ``bipolar`` (only with ``out_bits = 1``) gives
``2*count - 1`` in {-1, +1}, as BNNs. :func:`apply_thresholds` and
:func:`threshold_output_range` are shared with the hardware units that fuse thresholds.

``direction`` (optional, +1 or -1 per channel, absent = all +1) marks channels whose
output *falls* as the accumulator rises (a negative batch-norm slope). It lives here and
not in the weights: negating a weight row instead would double a shared layer's
codebook (K values and their negatives), which a 4-bit codebook index cannot hold. Dense
hardware units without a direction input fold it back into their weight rows when they
fuse the thresholds (``hw_gen.passes.FuseThresholds``).
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
    thresholds: np.ndarray,
    acc: np.ndarray,
    offset: int,
    bipolar: bool,
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """``offset + #{k : d[c]*acc >= T[c, k]}`` (or ±1) for ``acc`` ``[N, features]`` (NHWC).

    ``direction`` None means every channel rises (``d = +1``), which is all a hardware
    unit without a direction input may pass.
    """
    t = thresholds.astype(np.int64)
    a = per_pixel(acc, t.shape[0]).astype(np.int64)
    if direction is not None:
        a = a * direction.astype(np.int64)
    count = (a[..., None] >= t).sum(axis=-1).reshape(len(acc), -1).astype(np.int64)
    return 2 * count - 1 if bipolar else count + int(offset)


def threshold_output_range(thresholds: np.ndarray, offset: int, bipolar: bool) -> IntRange:
    """``[offset, offset + levels]`` per channel, or the bipolar {-1, +1}."""
    c, levels = thresholds.shape
    if bipolar:
        return IntRange.full(c, -1, 1, bipolar=True)
    return IntRange.full(c, int(offset), int(offset) + levels)


def falling_channels(node: Node) -> np.ndarray:
    """Indices of the channels whose output falls as the accumulator rises (may be empty)."""
    d = node.tensors.get("direction")
    return np.zeros(0, np.int64) if d is None else np.flatnonzero(d < 0)


def check_direction(node: Node, loc: str, key: str = "direction") -> None:
    """``direction``, if present: one entry per threshold row, each +1 or -1.

    A 0 (or any other value) would silently turn a channel into a constant or a scaled
    comparison the thresholds were not computed for, so it is refused by name.
    """
    if key not in node.tensors:
        return
    d = node.tensors[key]
    rows = node.tensors["thresholds"].shape[0]
    if d.shape != (rows,):
        raise IRError(
            f"{loc}: tensor '{key}' must be [{rows}] (one entry per threshold row),"
            f" got {list(d.shape)}"
        )
    bad = np.flatnonzero((d != 1) & (d != -1))
    if bad.size:
        c = int(bad[0])
        raise IRError(
            f"{loc}: tensor '{key}' holds {int(d[c])} at channel {c}; allowed: +1 (output rises"
            " with the accumulator) or -1 (falls)"
        )


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
    """Per-channel multi-threshold activation on accumulators, rising or falling."""

    name = "MultiThreshold"
    attrs = THRESHOLD_ATTRS
    tensors = {"thresholds": Tensor("int", 2), "direction": Tensor("int", 1, required=False)}

    def check(self, node, loc):
        check_threshold_table(node, loc)
        check_direction(node, loc)

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
            node.tensors["thresholds"],
            xs[0],
            node.attrs["offset"],
            bool(node.attrs.get("bipolar")),
            node.tensors.get("direction"),
        )
