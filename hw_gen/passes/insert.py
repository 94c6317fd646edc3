"""Plumbing passes: forks, width converters, FIFOs on join branches, cycle annotations.

* :class:`InsertFork`: a stream has one reader, so a node read by several gets a Fork.
* :class:`InsertDWC`: wherever a producer's beat width differs from what its reader
  takes (and before an output port wider than ``max_port_bits``), a width converter.
* :class:`InsertFIFO`: every input of a join (AddStreams, ConcatStreams) gets a FIFO deep
  enough that the join never deadlocks (see :func:`join_fifo_depth`).
* :class:`AnnotateCycles`: each unit's cycles per frame, from its op's formula.
"""

from __future__ import annotations

import math

import numpy as np

from hw_gen.passes.base import Pass, insert_before, remove, unique_name
from hw_gen.passes.folding import port_elems
from qfab.ir import Graph, Node, beat_elems, infer_shapes
from qfab.ops import StreamOp, op_of
from qfab.ranges import node_ranges


class InsertFork(Pass):
    """``src -> {a, b}`` becomes ``src -> fork -> {a, b}``."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for n in list(g.nodes):
            readers = g.consumers(n.name)
            slots = sum(r.inputs.count(n.name) for r in readers)  # Add(x, x) reads twice
            if slots < 2 or n.op == "Fork":
                continue
            fork = Node(
                unique_name(g, f"{n.name}_fork"), "Fork", [n.name], {"pe": int(beat_elems(n) or 1)}
            )
            for r in readers:
                r.inputs = [fork.name if i == n.name else i for i in r.inputs]
            g.nodes.insert(g.nodes.index(n) + 1, fork)
        return g


class InsertDWC(Pass):
    """A width converter on every edge whose beat widths differ; output port capped."""

    def __init__(self, max_port_bits: int = 64) -> None:
        self.max_port_bits = max_port_bits

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        for n in list(g.nodes):
            op = op_of(n)
            if not isinstance(op, StreamOp):
                continue
            for i, src in enumerate(list(n.inputs)):
                got = beat_elems(g.node(src))
                want = op.in_elems(n, i, shapes[src])
                if got is not None and got != want:
                    suffix = "dwc" if len(n.inputs) == 1 else f"dwc{i}"
                    dwc = Node(
                        unique_name(g, f"{n.name}_{suffix}"),
                        "DWC",
                        [],
                        {"in_elems": int(got), "out_elems": int(want)},
                    )
                    insert_before(g, n.name, i, dwc)
        last = g.nodes[-1]
        if last.op == "OutputDequant":
            src = g.node(last.inputs[0])
            elems = beat_elems(src)
            bits = node_ranges(g)[src.name].element.bits
            if elems is not None and elems * bits > self.max_port_bits:
                feats = int(np.prod(shapes[src.name]))
                fit = [port_elems(feats, bits, self.max_port_bits, "output")]
                dwc = Node(
                    unique_name(g, "output_dwc"),
                    "DWC",
                    [],
                    {"in_elems": int(elems), "out_elems": int(fit[-1])},
                )
                insert_before(g, last.name, 0, dwc)
        return g


def own_lag(node: Node, in_shape: tuple[int, ...], graph: Graph) -> int:
    """Upper bound of the input elements a unit takes in before its first output.

    A window unit needs its first window's rows (plus one row, as its reader starts a
    row only when all the rows it needs are in); a pool the rows of its window; a matrix
    unit one vector; a vector unit one window; the rest a pixel or a beat.
    """
    feats = int(np.prod(in_shape))
    if node.op == "SlidingWindow":
        _, w, c = in_shape
        return min(feats, (int(node.attrs["kernel"][0]) + 1) * w * c)
    if node.op == "StreamingMaxPool":
        _, w, c = in_shape
        return min(feats, int(node.attrs["kernel"][0]) * w * c)
    if node.op in ("MVAU", "XnorMVAU"):
        return int(node.tensors["weight"].shape[1])
    if node.op == "VVAU":
        return int(in_shape[-1])
    if node.op in ("ShuffleStreams", "ConcatStreams"):
        return 2 * int(in_shape[-1])
    return 2 * max(1, beat_elems(node) or 1)


def join_fifo_depth(graph: Graph, join: str, index: int, shapes: dict) -> int:
    """Beats a FIFO on input ``index`` of ``join`` must hold so the join never deadlocks.

    The branches of a join start at a common ancestor (a fork). Until the slowest branch
    delivers its first beat, everything the fork pushes into the other branches must be
    held somewhere on them; the FIFO alone is sized for it: the largest upper bound, over
    all branches, of what a branch takes in before its first output (in the fork's
    elements, scaled to this input's elements), plus two pixels of this input and two
    beats of slack. The other branches' own buffers are not counted, so it is safe.
    """
    j = graph.node(join)
    ancestors = [_ancestors(graph, src) | {src} for src in j.inputs]
    common = set.intersection(*ancestors)
    order = {n.name: k for k, n in enumerate(graph.nodes)}
    fork = max(common, key=order.__getitem__)
    fork_feats = int(np.prod(shapes[fork]))
    worst = max(_branch_lag(graph, src, fork, shapes, fork_feats) for src in j.inputs)
    src = j.inputs[index]
    feats = int(np.prod(shapes[src]))
    elems = op_of(j).in_elems(j, index, shapes[src])
    per_pixel = max(1, shapes[src][-1] // elems)
    return math.ceil(worst * feats / fork_feats / elems) + 2 * per_pixel + 2


def _ancestors(graph: Graph, name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.node(name).inputs)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(graph.node(n).inputs)
    return seen


def _branch_lag(graph: Graph, name: str, fork: str, shapes: dict, fork_feats: int) -> float:
    """Upper bound of fork elements taken in by the path ``fork -> ... -> name``."""
    if name == fork:
        return 0.0
    node = graph.node(name)
    own = sum(
        own_lag(node, shapes[i], graph) * fork_feats / int(np.prod(shapes[i])) for i in node.inputs
    )
    return own + max(
        (_branch_lag(graph, i, fork, shapes, fork_feats) for i in node.inputs), default=0.0
    )


class InsertFIFO(Pass):
    """A FIFO of :func:`join_fifo_depth` beats on every input of every join."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        for j in [n for n in g.nodes if n.op in ("AddStreams", "ConcatStreams")]:
            shapes = infer_shapes(g)
            for i, src in enumerate(list(j.inputs)):
                if g.node(src).op == "FIFO":
                    continue
                depth = join_fifo_depth(g, j.name, i, shapes)
                elems = op_of(j).in_elems(j, i, shapes[src])
                fifo = Node(
                    unique_name(g, f"{j.name}_fifo{i}"),
                    "FIFO",
                    [],
                    {"depth": int(max(2, depth)), "pe": int(elems)},
                )
                insert_before(g, j.name, i, fifo)
        return g


class AnnotateCycles(Pass):
    """Record every unit's modelled cycles per frame in its ``cycles`` attr."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        for n in g.nodes:
            op = op_of(n)
            if isinstance(op, StreamOp):
                n.attrs["cycles"] = int(op.cycles(n, [shapes[i] for i in n.inputs], shapes[n.name]))
        return g


#: Units that buffer nothing worth sizing: they never need a FIFO in front of them.
_PLUMBING = ("FIFO", "DWC", "Fork")


class InsertStreamFIFOs(Pass):
    """A FIFO on every stream leaving a unit (before any width converter), for sizing.

    FINN's recipe (InsertAndSetFIFODepths): simulate with deep FIFOs, record the most
    beats each one ever held, then shrink each to that (:class:`SetFIFODepths`). Units
    whose bursts do not match then never stall the bottleneck: a sliding window emitting
    a row at once, a pool emitting on every other row, an MVAU consuming a pixel every
    NF cycles, and above all a burst into a down-converting DWC, which takes one input
    beat every ``in/out`` cycles (measured: a 2x2 pool emitting 32-beat bursts into a
    2 -> 1 converter ran at 632 instead of 576 cycles per frame without this FIFO). The
    FIFO sits right behind the producer, at its width, so it absorbs the burst before
    the converter. The input port's stream gets none (the sender waits, harmlessly).
    The sizing depth is two frames of the edge's beats (capped): far more than a
    frame-paced input can pile up anywhere.
    """

    def __init__(self, cap: int = 4096) -> None:
        self.cap = cap

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        for n in list(g.nodes):
            op = op_of(n)
            if not isinstance(op, StreamOp) or n.op in ("FIFO", "Fork"):
                continue
            for i, src in enumerate(list(n.inputs)):
                source = g.node(src)
                if source.op in ("DWC", "InputQuant"):
                    continue  # a converter: the FIFO sits before it; the port needs none
                elems = op.in_elems(n, i, shapes[src])
                depth = int(min(self.cap, max(2, 2 * int(np.prod(shapes[src])) // elems)))
                if source.op == "FIFO":  # a join's: deep too, so nothing constrains
                    source.attrs["depth"] = max(int(source.attrs["depth"]), depth)
                    continue
                fifo = Node(
                    unique_name(g, f"{n.name}_fifo{i}"),
                    "FIFO",
                    [],
                    {"depth": depth, "pe": int(elems)},
                )
                insert_before(g, n.name, i, fifo)
        return g


class SetFIFODepths(Pass):
    """FIFO depths from measured occupancy: ``depth = max(2, most held + margin)``.

    ``held`` maps FIFO names to the most beats they held in the sizing simulation. A
    FIFO that never held more than ``shallow`` beats is removed (the unit behind it
    takes a beat every cycle or two anyway), except in front of a join, where the
    analytic deadlock bound of :class:`InsertFIFO` stays the minimum.
    """

    def __init__(self, held: dict[str, int], margin: int = 2, shallow: int = 2) -> None:
        self.held, self.margin, self.shallow = held, margin, shallow

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        for n in [n for n in g.nodes if n.op == "FIFO"]:
            if n.name not in self.held:
                continue
            (reader,) = g.consumers(n.name)
            join = reader.op in ("AddStreams", "ConcatStreams")
            most = int(self.held[n.name])
            if not join and most <= self.shallow:
                remove(g, n.name)
                continue
            depth = max(2, most + self.margin)
            if join:
                depth = max(
                    depth, join_fifo_depth(g, reader.name, reader.inputs.index(n.name), shapes)
                )
            n.attrs["depth"] = int(depth)
        return g
