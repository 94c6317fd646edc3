"""What every backend needs to know about a hardware graph: shapes, ranges, elements.

The Verilog and the HLS generators both read a graph through :class:`Design`, so a
stream's width or an accumulator's width is derived once (from the exact value ranges of
:mod:`qfab.ranges` and the encoding rules of :mod:`qfab.elements`) and both backends agree.
"""

from __future__ import annotations

from qfab.elements import acc_bits, acc_range, stream_elements
from qfab.ir import Graph, Node, beat_elems, infer_shapes
from qfab.ranges import node_ranges
from qfab.values import Element, IntRange


class Design:
    """What the emitters need to know about a hardware graph: shapes, ranges, elements."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.shapes = infer_shapes(graph)
        self.ranges = node_ranges(graph)
        self.elements = stream_elements(graph)

    def element(self, name: str) -> Element:
        """How the output of node ``name`` is encoded on its stream (:mod:`qfab.elements`)."""
        return self.elements[name]

    def acc_range(self, node: Node) -> IntRange:
        """The accumulator (or, for XNOR, match count) range of a compute unit."""
        return acc_range(node, self.ranges[node.inputs[0]], self.shapes)

    def acc_bits(self, node: Node) -> int:
        """Two's complement accumulator width of a compute unit."""
        return acc_bits(node, self.ranges[node.inputs[0]], self.shapes)

    def stream_bits(self, name: str) -> int:
        """Width of the data bus a node drives: elements per beat x element bits."""
        return int(beat_elems(self.graph.node(name))) * self.element(name).bits

    def readers(self, name: str) -> list[tuple[Node, int]]:
        """(reader, input index) of every stream slot reading ``name``, in graph order."""
        return [(n, i) for n in self.graph.nodes for i, src in enumerate(n.inputs) if src == name]
