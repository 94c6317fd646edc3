"""Operator registry (see :mod:`qfab.ops.base`): one class per op, looked up by name.

Model-graph ops (what the exporter writes): ``InputQuant``, ``Dense``, ``Conv2d``,
``MultiThreshold``, ``MaxPool``, ``Flatten``, ``Add``, ``Concat``, ``ChannelShuffle``,
``OutputDequant``. Hardware-graph ops (what the lowering passes of ``hw_gen`` produce):
see :mod:`qfab.ops.compute` and :mod:`qfab.ops.streams`.
"""

from __future__ import annotations

from qfab.ops import compute, io, layout, linear, sparse, streams, threshold  # noqa: F401  (register)
from qfab.ops.base import Attr, Op, StreamOp, Tensor
from qfab.ops.registry import OPS, op_of, register

__all__ = ["OPS", "Attr", "Op", "StreamOp", "Tensor", "op_of", "register"]
