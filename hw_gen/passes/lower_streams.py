"""Activation and layout ops to streaming units, and the max pool moved past thresholds.

``MultiThreshold`` -> ``Thresholding`` (fused into its compute unit later when it can be),
``MaxPool`` -> ``StreamingMaxPool``, ``Add`` -> ``AddStreams``, ``Concat`` ->
``ConcatStreams``, ``ChannelShuffle`` -> ``ShuffleStreams``; a ``Flatten`` disappears
(the NHWC stream is already in flattened order; the MVAU after it takes the whole frame
as one vector).

A ``MultiThreshold`` with falling channels (``direction`` -1) has no stand-alone unit:
no threshold unit has a direction input. It stays a model op (golden still runs it, so
every intermediate graph stays exact) until ``FuseThresholds`` folds the direction into
its compute unit's weight rows; one that cannot be fused is refused by
:class:`CheckLowered`, naming the node and why.
"""

from __future__ import annotations

from hw_gen.passes.base import Pass, remove, replace
from qfab.errors import HardwareError
from qfab.ir import Graph, Node
from qfab.ops.threshold import falling_channels

#: model op -> (hardware op, attrs carried over)
_STREAM_UNITS = {
    "MultiThreshold": ("Thresholding", ("out_bits", "offset", "bipolar")),
    "MaxPool": ("StreamingMaxPool", ("kernel", "stride")),
    "Add": ("AddStreams", ("shift",)),
    "Concat": ("ConcatStreams", ()),
    "ChannelShuffle": ("ShuffleStreams", ("groups",)),
}


class LowerLayout(Pass):
    """One streaming unit per activation/layout op; Flatten removed.

    A rising ``MultiThreshold`` loses an all-+1 ``direction`` (it changes nothing); a
    falling one is left for ``FuseThresholds`` (see the module docstring).
    """

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for n in list(g.nodes):
            if n.op == "Flatten":
                remove(g, n.name)
                continue
            if n.op not in _STREAM_UNITS:
                continue
            if n.op == "MultiThreshold" and falling_channels(n).size:
                continue
            op, keep = _STREAM_UNITS[n.op]
            if n.op == "MaxPool" and list(n.attrs["kernel"]) != list(n.attrs["stride"]):
                raise HardwareError(
                    f"node '{n.name}' (MaxPool): kernel {n.attrs['kernel']} with stride "
                    f"{n.attrs['stride']}; the streaming max pool takes non-overlapping "
                    "windows only (stride = kernel)"
                )
            attrs = {k: n.attrs[k] for k in keep if k in n.attrs}
            tensors = {k: v for k, v in n.tensors.items() if k != "direction"}
            unit = Node(
                n.name,
                op,
                list(n.inputs),
                {**attrs, "pe": 1, "model_node": n.name},
                tensors,
            )
            replace(g, n.name, [unit], unit.name)
        return g


class MovePoolPastThresholds(Pass):
    """``pool(acc) -> thresholds`` becomes ``thresholds(acc) -> pool``.

    Rising thresholds are non-decreasing per channel, so ``T(max(a, b)) = max(T(a),
    T(b))``: the swap is exact, and it lets the thresholds fuse into the compute unit and
    the pool run on narrow activations (for 1-bit data a max is an OR). The pool then
    produces what the thresholds produced in the model graph.

    Only rising thresholds move. A falling channel's output is non-increasing, so
    ``T(max(a, b)) = min(T(a), T(b))``: after a swap the max pool would have to take a
    minimum for that channel, and negating the weight rows first does not help either
    (the pool would then see ``-acc`` and take ``max(-acc) = -min(acc)``). Falling
    thresholds stay ``MultiThreshold`` model ops (``LowerLayout``), so they are never
    matched here; the guard below keeps that true if a ``Thresholding`` ever carried a
    direction.
    """

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for pool in [n for n in g.nodes if n.op == "StreamingMaxPool"]:
            readers = g.consumers(pool.name)
            if len(readers) != 1 or readers[0].op != "Thresholding":
                continue
            thr = readers[0]
            if falling_channels(thr).size:
                continue
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
    """Every node is now a hardware op (or the input/output ends).

    A ``MultiThreshold`` left here with falling channels is one ``FuseThresholds``
    could not put into a compute unit; the stand-alone ``Thresholding`` unit compares
    ``acc >= T`` only, so it is refused with the reason rather than built wrong.
    """

    def apply(self, graph: Graph) -> Graph:
        for n in graph.nodes:
            if n.op == "MultiThreshold" and falling_channels(n).size:
                raise HardwareError(_unfusable_falling(graph, n))
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


def _unfusable_falling(graph: Graph, node: Node) -> str:
    """Why the falling thresholds ``node`` found no compute unit to fold into, in words."""
    falling = falling_channels(node)
    shown = ", ".join(str(int(c)) for c in falling[:8]) + (", ..." if len(falling) > 8 else "")
    src = graph.node(node.inputs[0])
    if src.op == "StreamingMaxPool":
        why = (
            f"its input '{src.name}' is a max pool, which does not commute with a falling "
            "threshold (the max of the accumulators gives the minimum output)"
        )
    elif src.op not in ("MVAU", "VVAU"):
        why = f"its input '{src.name}' ({src.op}) is not an MVAU or VVAU"
    elif "thresholds" in src.tensors:
        why = f"its input '{src.name}' already applies thresholds"
    else:
        readers = [r.name for r in graph.consumers(src.name)]
        why = f"its input '{src.name}' is also read by {sorted(set(readers) - {node.name})}"
    return (
        f"node '{node.name}' (MultiThreshold): channels [{shown}] fall as the accumulator "
        f"rises (direction -1), and {why}; a stand-alone Thresholding unit has no direction "
        "input (it compares acc >= T only), so only a compute unit whose weight rows can be "
        "negated takes falling thresholds"
    )
