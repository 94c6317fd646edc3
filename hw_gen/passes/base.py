"""What a lowering pass is, and the few graph edits passes share.

A pass is one small class with ``apply(graph) -> graph`` (FINN's ``Transformation`` in
spirit): it returns a new graph and never changes its input, so a test can execute the
graph before and after with golden and compare. Passes work on the node list of a
:class:`~qfab.ir.Graph`; the edits below keep it in topological order.
"""

from __future__ import annotations

from qfab.errors import HardwareError
from qfab.ir import Graph, Node


class Pass:
    """One IR -> IR step. Subclasses implement :meth:`apply`."""

    def apply(self, graph: Graph) -> Graph:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


def index_of(graph: Graph, name: str) -> int:
    for i, n in enumerate(graph.nodes):
        if n.name == name:
            return i
    raise HardwareError(f"no node '{name}' in the graph")


def rewire(graph: Graph, old: str, new: str, skip: set[str] | None = None) -> None:
    """Every reader of ``old`` (except those in ``skip``) reads ``new`` instead."""
    for n in graph.nodes:
        if skip and n.name in skip:
            continue
        n.inputs = [new if i == old else i for i in n.inputs]


def replace(graph: Graph, old: str, new_nodes: list[Node], output: str) -> None:
    """Put ``new_nodes`` where ``old`` was; its readers read ``output`` from now on."""
    at = index_of(graph, old)
    graph.nodes[at : at + 1] = new_nodes
    rewire(graph, old, output, skip={n.name for n in new_nodes})


def remove(graph: Graph, name: str) -> None:
    """Drop a one-input node; its readers read its input."""
    at = index_of(graph, name)
    node = graph.nodes.pop(at)
    rewire(graph, name, node.inputs[0])


def insert_before(graph: Graph, dst: str, index: int, node: Node) -> None:
    """Put ``node`` on input ``index`` of ``dst``: ``src -> node -> dst``."""
    target = graph.node(dst)
    node.inputs = [target.inputs[index]]
    target.inputs = [node.name if i == index else s for i, s in enumerate(target.inputs)]
    graph.nodes.insert(index_of(graph, dst), node)


def unique_name(graph: Graph, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``... if taken."""
    name, k = base, 2
    while graph.has(name):
        name, k = f"{base}_{k}", k + 1
    return name
