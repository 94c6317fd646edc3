"""Weight layers to compute units: Dense -> MVAU; Conv2d -> sliding window + MVAU or VVAU.

A convolution becomes a matrix-vector product per output pixel (FINN's lowering): the
sliding-window unit streams each pixel's window (taps (ky, kx), channels innermost) and
the MVAU multiplies it by the ``[OC, KH*KW*IC]`` matrix in the same order. A depthwise
convolution (groups = in = out channels) goes to a vector unit instead, which keeps one
weight per (channel, tap). Other grouped convolutions (ShuffleNet's grouped 1x1) become
an MVAU with a block-diagonal matrix: exact, at the cost of multiplying the zeros
(``groups`` times the MACs); a dedicated grouped unit is future work. A 1x1 convolution
with stride 1 and no padding needs no window: the pixel stream is already its input.
Shared weights (a codebook) are decoded: dense hardware bakes the integer weights in.
"""

from __future__ import annotations

import numpy as np

from hw_gen.passes.base import Pass, replace
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import OPS
from qfab.ops.threshold import falling_channels


class LowerDense(Pass):
    """``Dense`` -> ``MVAU`` (bias kept; thresholds are fused later)."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for n in [n for n in g.nodes if n.op == "Dense"]:
            tensors = {"weight": OPS["Dense"].weight(n)}
            if "bias" in n.tensors:
                tensors["bias"] = n.tensors["bias"].astype(np.int64)
            attrs = {"pe": 1, "simd": 1, "weight_bits": int(n.attrs["weight_bits"])}
            unit = Node(n.name, "MVAU", list(n.inputs), {**attrs, "model_node": n.name}, tensors)
            replace(g, n.name, [unit], unit.name)
        return g


class LowerConv(Pass):
    """``Conv2d`` -> [``SlidingWindow``] + ``MVAU`` (or ``VVAU`` when depthwise)."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        for n in [n for n in g.nodes if n.op == "Conv2d"]:
            w = OPS["Conv2d"].weight(n)  # [OC, KH, KW, IC/groups]
            oc, kh, kw, icg = w.shape
            c_in = shapes[n.inputs[0]][-1]
            groups = int(n.attrs["groups"])
            stride, padding = list(n.attrs["stride"]), list(n.attrs["padding"])
            new: list[Node] = []
            src = n.inputs[0]
            if (kh, kw) != (1, 1) or stride != [1, 1] or padding != [0, 0]:
                window = Node(
                    f"{n.name}_swg",
                    "SlidingWindow",
                    [src],
                    {"kernel": [kh, kw], "stride": stride, "padding": padding, "simd": 1},
                )
                new.append(window)
                src = window.name
            common = {"pe": 1, "simd": 1, "weight_bits": int(n.attrs["weight_bits"])}
            if groups == c_in == oc and icg == 1:
                unit = Node(
                    n.name,
                    "VVAU",
                    [src],
                    {**common, "kernel": [kh, kw], "model_node": n.name},
                    {"weight": w.reshape(oc, kh * kw)},
                )
            else:
                full = np.zeros((oc, kh, kw, c_in), np.int64)
                og = oc // groups
                for k in range(groups):
                    rows, cols = slice(k * og, (k + 1) * og), slice(k * icg, (k + 1) * icg)
                    full[rows, :, :, cols] = w[rows]
                if groups > 1 and common["weight_bits"] == 1:
                    # the block-diagonal zeros are not bipolar: store ternary {-1, 0, +1}
                    common = {**common, "weight_bits": 2}
                unit = Node(
                    n.name,
                    "MVAU",
                    [src],
                    {**common, "model_node": n.name},
                    {"weight": full.reshape(oc, -1)},
                )
            replace(g, n.name, [*new, unit], unit.name)
        return g


class FuseThresholds(Pass):
    """A threshold node that is the only reader of an MVAU/VVAU goes into that unit.

    A bias before the thresholds is folded into them exactly: ``acc + b >= T`` is
    ``acc >= T - b``.

    Falling channels (a ``MultiThreshold`` whose ``direction`` holds -1, which
    ``LowerLayout`` leaves as a model op) compare ``-acc >= T``. The dense units have no
    direction input, so the unit's weight rows (and bias entries) of those channels are
    negated, making its accumulator ``direction * acc``, and the direction is dropped:
    what the exporter once wrote into the IR, done here so the IR keeps a shared layer's
    K weights. The negated unit no longer equals the model's ``Dense``/``Conv2d``, but
    once fused it claims the thresholds' output instead, which is unchanged.
    """

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for t in [n for n in g.nodes if n.op in ("Thresholding", "MultiThreshold")]:
            src = g.node(t.inputs[0])
            if src.op not in ("MVAU", "VVAU") or "thresholds" in src.tensors:
                continue
            if len(g.consumers(src.name)) != 1:
                continue
            falling = falling_channels(t)
            if falling.size:
                _negate_rows(src, falling)
            table = t.tensors["thresholds"].astype(np.int64)
            if "bias" in src.tensors:
                table = table - src.tensors.pop("bias").astype(np.int64)[:, None]
            src.tensors["thresholds"] = table
            src.attrs.update(
                out_bits=int(t.attrs["out_bits"]),
                offset=int(t.attrs["offset"]),
                bipolar=bool(t.attrs.get("bipolar", False)),
            )
            # a Thresholding names the model node it came from; a MultiThreshold is one
            src.attrs["model_node"] = (
                t.attrs.get("model_node") if t.op == "Thresholding" else t.name
            )
            replace(g, t.name, [], src.name)
        return g


def _negate_rows(unit: Node, rows: np.ndarray) -> None:
    """Negate output channels ``rows`` of ``unit``: its accumulator becomes ``-acc`` there.

    Weights are symmetric (narrow signed, or bipolar), so a negated row keeps its width;
    a bias is negated with its row so ``-(w.x + b)`` is what the thresholds see.
    """
    w = unit.tensors["weight"].astype(np.int64)
    w[rows] = -w[rows]
    unit.tensors["weight"] = w
    if "bias" in unit.tensors:
        b = unit.tensors["bias"].astype(np.int64)
        b[rows] = -b[rows]
        unit.tensors["bias"] = b
