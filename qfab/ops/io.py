"""The two ends of every graph: the input quantizer and the output dequantizer.

They are the only places where floats exist; both appear unchanged in the model graph
and in the hardware graph (where ``InputQuant.pe`` is the width of the input port).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import Attr, Op, Shape, Tensor
from qfab.ops.registry import register
from qfab.values import IntRange, input_range

if TYPE_CHECKING:
    from qfab.ir import Node


@register
class InputQuant(Op):
    """float input -> integers: ``clip(round_half_even(x / scale), lo, hi)``."""

    name = "InputQuant"
    level = "both"
    arity = (0, 0)
    attrs = {
        "bits": Attr("int", minimum=1, maximum=32),
        "signed": Attr("bool"),
        "scale": Attr("float", doc="a power of two for an exact pipeline"),
        "features": Attr("int", minimum=1),
        "shape": Attr("ints", None, minimum=1, doc="[H, W, C] of an image input"),
        "pe": Attr("int", None, minimum=1, doc="hardware: elements per input beat"),
    }

    def check(self, node: Node, loc: str) -> None:
        if not float(node.attrs["scale"]) > 0:
            raise IRError(f"{loc}: scale must be positive, got {node.attrs['scale']}")
        if node.attrs.get("shape") is not None and len(node.attrs["shape"]) != 3:
            raise IRError(f"{loc}: shape must be [H, W, C], got {node.attrs['shape']}")

    def shape(self, node: Node, ins: Sequence[Shape], loc: str) -> Shape:
        shape = tuple(int(v) for v in (node.attrs.get("shape") or [node.attrs["features"]]))
        if int(np.prod(shape)) != int(node.attrs["features"]):
            raise IRError(
                f"{loc}: shape {list(shape)} does not hold {node.attrs['features']} features"
            )
        if node.attrs.get("pe") is not None and int(node.attrs["features"]) % node.attrs["pe"]:
            raise IRError(
                f"{loc}: pe = {node.attrs['pe']} must divide {node.attrs['features']} features"
            )
        return shape

    def value_range(self, node, ins, in_shapes, shape):
        lo, hi = input_range(int(node.attrs["bits"]), bool(node.attrs["signed"]))
        return IntRange.full(shape[-1], lo, hi)

    def execute(self, node, xs, in_shapes, shape):
        return np.asarray(xs[0], dtype=np.int64)


@register
class OutputDequant(Op):
    """``logits = float32(acc) * scale + bias``: the last accumulators to float logits."""

    name = "OutputDequant"
    level = "both"
    tensors = {"scale": Tensor("float", 1), "bias": Tensor("float", 1)}

    def check(self, node: Node, loc: str) -> None:
        if node.tensors["scale"].shape != node.tensors["bias"].shape:
            raise IRError(f"{loc}: scale and bias shapes differ")

    def shape(self, node, ins, loc):
        rows = node.tensors["scale"].shape[0]
        if rows != ins[0][-1]:
            raise IRError(f"{loc}: {rows} channel parameters for input shape {list(ins[0])}")
        return ins[0]

    def value_range(self, node, ins, in_shapes, shape):
        return None

    def execute(self, node, xs, in_shapes, shape):
        scale = node.tensors["scale"].astype(np.float32)
        acc = xs[0].astype(np.float32).reshape(len(xs[0]), -1, len(scale))
        out = acc * scale + node.tensors["bias"].astype(np.float32)
        return out.reshape(len(xs[0]), -1)
