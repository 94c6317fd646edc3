"""Random but valid IR graphs, for tests and benchmarks of the stages after export.

Hardware and golden tests should not need a trained network: a random graph with the
same operator mix exercises every width and folding corner (odd sizes, 8-bit weights,
thresholds at the edges of the accumulator range) in milliseconds. :class:`GraphBuilder`
builds any arrangement of the model ops (convolutions of every kind, pools, residual
adds, concatenations, shuffles, dense layers) with random integer weights and
thresholds drawn inside each channel's reachable accumulator range;
:func:`random_mlp_graph` is the common MLP case.
"""

from __future__ import annotations

import numpy as np

from qfab.ir import Graph, Node, infer_shapes, input_range, weight_range
from qfab.ranges import node_ranges


class GraphBuilder:
    """Append model ops one by one; every method returns the new node's name.

    Thresholds are drawn around each channel's accumulator range, and a few channels
    get thresholds at ``hi + 1`` (never reached) and ``lo`` (always reached), so every
    output level and both extremes occur. ``thresholds(falling=p)`` also draws a
    ``direction`` (each channel falls with probability ``p``, at least one does), so the
    lowering and the hardware meet channels whose output falls as the accumulator rises.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        input_bits: int = 8,
        signed_input: bool = False,
        seed: int = 0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        feats = int(np.prod(shape))
        attrs = {
            "bits": input_bits,
            "signed": signed_input,
            "scale": 2.0**-input_bits,
            "features": feats,
        }
        if len(shape) == 3:
            attrs["shape"] = list(shape)
        self.nodes = [Node("input", "InputQuant", [], attrs)]
        self.meta = {"source": "GraphBuilder", "seed": seed}

    @property
    def last(self) -> str:
        return self.nodes[-1].name

    def _graph(self) -> Graph:
        return Graph(list(self.nodes), dict(self.meta))

    def _shape(self, name: str) -> tuple[int, ...]:
        return infer_shapes(self._graph())[name]

    def _weights(self, shape: tuple[int, ...], bits: int) -> np.ndarray:
        lo, hi = weight_range(bits)
        w = self.rng.integers(lo, hi + 1, size=shape)
        return np.where(w >= 0, 1, -1) if bits == 1 else w.astype(np.int64)

    def conv(
        self,
        channels: int,
        kernel: tuple[int, int] = (3, 3),
        *,
        src: str | None = None,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (1, 1),
        groups: int = 1,
        weight_bits: int = 2,
        name: str | None = None,
    ) -> str:
        src = src or self.last
        c_in = self._shape(src)[-1]
        name = name or f"conv{len(self.nodes)}"
        w = self._weights((channels, kernel[0], kernel[1], c_in // groups), weight_bits)
        attrs = {
            "weight_bits": weight_bits,
            "stride": list(stride),
            "padding": list(padding),
            "groups": groups,
        }
        self.nodes.append(Node(name, "Conv2d", [src], attrs, {"weight": w}))
        return name

    def dense(
        self,
        outputs: int,
        *,
        src: str | None = None,
        weight_bits: int = 2,
        bias: bool = False,
        name: str | None = None,
    ) -> str:
        src = src or self.last
        if len(self._shape(src)) == 3:
            src = self.flatten(src)
        w = self._weights((outputs, self._shape(src)[0]), weight_bits)
        tensors = {"weight": w}
        if bias:
            tensors["bias"] = self.rng.integers(-4, 5, size=outputs).astype(np.int64)
        name = name or f"fc{len(self.nodes)}"
        self.nodes.append(Node(name, "Dense", [src], {"weight_bits": weight_bits}, tensors))
        return name

    def flatten(self, src: str | None = None) -> str:
        src = src or self.last
        name = f"flat{len(self.nodes)}"
        self.nodes.append(Node(name, "Flatten", [src]))
        return name

    def thresholds(
        self,
        bits: int = 2,
        *,
        src: str | None = None,
        signed: bool = False,
        falling: float = 0.0,
        name: str | None = None,
    ) -> str:
        """A MultiThreshold on ``src``'s accumulators (``bits = 1``: bipolar).

        ``falling`` > 0: each channel gets ``direction`` -1 with that probability (at
        least one channel does), and its thresholds are drawn over ``-acc``. With the
        default 0 no direction is written and the random draws are exactly those of a
        builder without this option, so existing designs stay what they were.
        """
        src = src or self.last
        acc = node_ranges(self._graph())[src]
        c = len(acc.lo)
        lo, hi = acc.lo, acc.hi
        direction = None
        if falling > 0:
            direction = np.where(self.rng.random(c) < falling, -1, 1).astype(np.int64)
            if not np.any(direction < 0):
                direction[-1] = -1
            # thresholds compare direction * acc: draw them over that range
            lo, hi = np.where(direction < 0, -acc.hi, lo), np.where(direction < 0, -acc.lo, hi)
        centre = (lo + hi) / 2
        spread = np.maximum((hi - lo) / 6, 1)
        nt = 2**bits - 1
        t = self.rng.normal(centre[:, None], spread[:, None], size=(c, nt))
        t = np.clip(np.rint(t), lo[:, None], hi[:, None] + 1).astype(np.int64)
        t[0, :] = hi[0] + 1  # a channel that never fires
        if c > 1:
            t[1, :] = lo[1]  # a channel always saturated
        t.sort(axis=1)
        bipolar = bits == 1
        offset = -(2 ** (bits - 1)) if signed and not bipolar else 0
        attrs = {"out_bits": bits, "offset": offset, **({"bipolar": True} if bipolar else {})}
        name = name or f"mt{len(self.nodes)}"
        tensors = {"thresholds": t}
        if direction is not None:
            tensors["direction"] = direction
        self.nodes.append(Node(name, "MultiThreshold", [src], attrs, tensors))
        return name

    def pool(self, k: int = 2, *, src: str | None = None, stride: int | None = None) -> str:
        src = src or self.last
        name = f"pool{len(self.nodes)}"
        attrs = {"kernel": [k, k], "stride": [stride or k, stride or k]}
        self.nodes.append(Node(name, "MaxPool", [src], attrs))
        return name

    def add(self, a: str, b: str, shift: tuple[int, int] = (0, 0)) -> str:
        name = f"add{len(self.nodes)}"
        self.nodes.append(Node(name, "Add", [a, b], {"shift": list(shift)}))
        return name

    def concat(self, *srcs: str) -> str:
        name = f"cat{len(self.nodes)}"
        self.nodes.append(Node(name, "Concat", list(srcs)))
        return name

    def shuffle(self, groups: int, src: str | None = None) -> str:
        src = src or self.last
        name = f"shuffle{len(self.nodes)}"
        self.nodes.append(Node(name, "ChannelShuffle", [src], {"groups": groups}))
        return name

    def output(self, src: str | None = None) -> Graph:
        """Close with OutputDequant and return the validated graph."""
        src = src or self.last
        c = self._shape(src)[-1]
        self.nodes.append(
            Node(
                "output",
                "OutputDequant",
                [src],
                {},
                {"scale": np.full(c, 2.0**-6, np.float32), "bias": np.zeros(c, np.float32)},
            )
        )
        return self._graph().validate()


def random_mlp_graph(
    features: int,
    hidden: list[int],
    classes: int,
    *,
    weight_bits: int = 2,
    act_bits: int = 2,
    input_bits: int = 8,
    seed: int = 0,
    signed_acts: bool = False,
    signed_input: bool = False,
    falling: float = 0.0,
) -> Graph:
    """An MLP ``InputQuant -> (Dense -> MultiThreshold)* -> Dense(+bias) -> OutputDequant``.

    ``act_bits = 1`` gives bipolar (±1) activations; ``signed_acts`` gives signed ones
    (offset ``-2^(b-1)``), as between factored layers; ``signed_input`` a signed
    ``InputQuant`` (``[-2^(b-1), 2^(b-1) - 1]``); ``falling`` > 0 gives every activation
    channels that fall as the accumulator rises (see :meth:`GraphBuilder.thresholds`).
    """
    b = GraphBuilder((features,), input_bits=input_bits, signed_input=signed_input, seed=seed)
    b.meta["source"] = "random_mlp_graph"
    for i, h in enumerate(hidden):
        b.dense(h, weight_bits=weight_bits, name=f"fc{i}")
        b.thresholds(act_bits, signed=signed_acts, falling=falling, name=f"mt{i}")
    b.dense(classes, weight_bits=weight_bits, bias=True, name=f"fc{len(hidden)}")
    return b.output()


__all__ = ["GraphBuilder", "input_range", "random_mlp_graph"]
