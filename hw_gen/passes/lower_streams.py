"""Activation and layout ops to streaming units, and the max pool moved past thresholds.

``MultiThreshold`` -> ``Thresholding`` (fused into its compute unit later when it can be),
``MaxPool`` -> ``StreamingMaxPool``, ``Add`` -> ``AddStreams``, ``Concat`` ->
``ConcatStreams``, ``ChannelShuffle`` -> ``ShuffleStreams``; a ``Flatten`` disappears
(the NHWC stream is already in flattened order; the MVAU after it takes the whole frame
as one vector).
"""

from __future__ import annotations

from hw_gen.passes.base import Pass, remove, replace
from qfab.errors import HardwareError
from qfab.ir import Graph, Node

#: model op -> (hardware op, attrs carried over)
_STREAM_UNITS = {
    "MultiThreshold": ("Thresholding", ("out_bits", "offset", "bipolar")),
    "MaxPool": ("StreamingMaxPool", ("kernel", "stride")),
    "Add": ("AddStreams", ("shift",)),
    "Concat": ("ConcatStreams", ()),
    "ChannelShuffle": ("ShuffleStreams", ("groups",)),
}


class LowerLayout(Pass):
    """One streaming unit per activation/layout op; Flatten removed."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for n in list(g.nodes):
            if n.op == "Flatten":
                remove(g, n.name)
                continue
            if n.op not in _STREAM_UNITS:
                continue
            op, keep = _STREAM_UNITS[n.op]
            if n.op == "MaxPool" and list(n.attrs["kernel"]) != list(n.attrs["stride"]):
                raise HardwareError(
                    f"node '{n.name}' (MaxPool): kernel {n.attrs['kernel']} with stride "
                    f"{n.attrs['stride']}; the streaming max pool takes non-overlapping "
                    "windows only (stride = kernel)"
                )
            attrs = {k: n.attrs[k] for k in keep if k in n.attrs}
            unit = Node(
                n.name,
                op,
                list(n.inputs),
                {**attrs, "pe": 1, "model_node": n.name},
                dict(n.tensors),
            )
            replace(g, n.name, [unit], unit.name)
        return g


class MovePoolPastThresholds(Pass):
    """``pool(acc) -> thresholds`` becomes ``thresholds(acc) -> pool``.

    Thresholds are non-decreasing per channel, so ``T(max(a, b)) = max(T(a), T(b))``:
    the swap is exact, and it lets the thresholds fuse into the compute unit and the
    pool run on narrow activations (for 1-bit data a max is an OR). The pool then
    produces what the thresholds produced in the model graph.
    """

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for pool in [n for n in g.nodes if n.op == "StreamingMaxPool"]:
            readers = g.consumers(pool.name)
            if len(readers) != 1 or readers[0].op != "Thresholding":
                continue
            thr = readers[0]
            if len(g.consumers(pool.inputs[0])) != 1:
                continue
            moved = Node(
                f"{thr.name}_{pool.name}",
                "Thresholding",
                list(pool.inputs),
                {**thr.attrs, "model_node": None},
                dict(thr.tensors),
            )
            new_pool = Node(
                pool.name,
                "StreamingMaxPool",
                [moved.name],
                {**pool.attrs, "model_node": thr.attrs.get("model_node")},
            )
            replace(g, thr.name, [], pool.name)
            replace(g, pool.name, [moved, new_pool], new_pool.name)
        return g


class RemoveDeadNodes(Pass):
    """Drop nodes whose output never reaches the graph's output (golden computes them; in
    hardware a stream nobody reads never drains and stalls its producer forever)."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        live = {g.nodes[-1].name}
        for n in reversed(g.nodes):
            if n.name in live:
                live.update(n.inputs)
        g.nodes = [n for n in g.nodes if n.name in live]
        return g


class CheckLowered(Pass):
    """Every node is now a hardware op (or the input/output ends)."""

    def apply(self, graph: Graph) -> Graph:
        for n in graph.nodes:
            if n.op in (
                "Dense",
                "Conv2d",
                "MultiThreshold",
                "MaxPool",
                "Flatten",
                "Add",
                "Concat",
                "ChannelShuffle",
            ):
                raise HardwareError(
                    f"node '{n.name}' ({n.op}): no lowering pass maps it to hardware"
                )
        return graph
