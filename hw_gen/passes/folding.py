"""Folding: how many channels (PE) and inputs (SIMD) every unit handles per cycle.

Compute units (MVAU, XnorMVAU, VVAU) get the user's explicit PE/SIMD lists (one entry
per compute unit, in graph order: ``hw.folding``), or ``auto``: the fewest parallel MACs
(PE x SIMD) that meet ``target_cycles`` per frame (FINN's SetFolding idea; ties go to
the larger SIMD, as input parallelism only widens an adder tree), or full parallelism
when the target cannot be met. A conv unit's cycles are ``OH*OW * (OC/PE) * (K*K*IC/SIMD)``.
A sliding window emits what its unit takes per cycle, so its SIMD follows the unit
(and must divide IC, or be whole taps: a multiple of IC dividing K*K). The streaming
units between them take the beat width of their producer when that meets the target,
else the narrowest that does. The input port carries as many elements per beat as its
first unit takes, up to ``max_port_bits`` (wider ports get a width converter).
"""

from __future__ import annotations

import numpy as np

from hw_gen.passes.base import Pass
from qfab.errors import HardwareError
from qfab.ir import Graph, Node, beat_elems, infer_shapes
from qfab.ops import StreamOp, op_of
from qfab.ops.base import divisors
from qfab.ranges import node_ranges

COMPUTE_OPS = ("MVAU", "XnorMVAU", "VVAU")
#: Units whose folding their own lowering pass sets (the sparse engine: ``hw.pes``).
SELF_FOLDED_OPS = ("SparseMVAU",)


def compute_units(graph: Graph) -> list[Node]:
    """The units ``hw.folding`` lists PE/SIMD for, in graph order."""
    return [n for n in graph.nodes if n.op in COMPUTE_OPS]


def pe_choices(node: Node) -> list[int]:
    """Allowed PE of a compute unit: divisors of its output channels."""
    return divisors(int(node.tensors["weight"].shape[0]))


def simd_choices(graph: Graph, node: Node, shapes: dict) -> list[int]:
    """Allowed SIMD: divisors of MW, restricted by a sliding window feeding the unit."""
    if node.op == "VVAU":
        return [1]
    src = graph.node(node.inputs[0])
    if src.op == "SlidingWindow":
        c = shapes[src.inputs[0]][-1]
        kh, kw = src.attrs["kernel"]
        return sorted({*divisors(c), *(c * m for m in divisors(kh * kw))})
    return divisors(int(node.tensors["weight"].shape[1]))


def unit_cycles(node: Node, pe: int, simd: int, shapes: dict, graph: Graph) -> int:
    trial = Node(
        node.name, node.op, node.inputs, {**node.attrs, "pe": pe, "simd": simd}, node.tensors
    )
    return op_of(trial).cycles(trial, [shapes[i] for i in node.inputs], shapes[node.name])


def cheapest_fold(graph: Graph, node: Node, shapes: dict, target: int) -> tuple[int, int]:
    """Fewest PE*SIMD meeting ``target`` (ties: larger SIMD); else the most parallel."""
    best: tuple[int, int, int] | None = None
    fastest: tuple[int, int, int] | None = None
    for pe in pe_choices(node):
        for simd in simd_choices(graph, node, shapes):
            c = unit_cycles(node, pe, simd, shapes, graph)
            if fastest is None or (c, pe * simd) < (fastest[0], fastest[1] * fastest[2]):
                fastest = (c, pe, simd)
            if c <= target and (best is None or (pe * simd, -simd) < (best[1] * best[2], -best[2])):
                best = (c, pe, simd)
    chosen = best or fastest
    assert chosen is not None
    return chosen[1], chosen[2]


#: Default target of a fully connected net: 64 cycles per frame (FINN's TFC-class budget).
DEFAULT_TARGET_CYCLES = 64


def default_target_cycles(graph: Graph) -> int:
    """``auto`` target: 64 cycles, or for image nets the slowest sliding window emitting one
    tap (all channels) per cycle, ``max OH*OW*KH*KW``: a budget every window can meet
    without whole-window (multi-tap) beats."""
    shapes = infer_shapes(graph)
    windows = [
        int(np.prod(shapes[n.name][:2])) * int(np.prod(n.attrs["kernel"]))
        for n in graph.nodes
        if n.op == "SlidingWindow"
    ]
    return max([DEFAULT_TARGET_CYCLES, *windows])


def port_elems(features: int, bits: int, max_bits: int, port: str) -> int:
    """Most elements per beat (a divisor of ``features``) within ``max_bits``."""
    fit = [d for d in divisors(features) if d * bits <= max_bits]
    if not fit:
        raise HardwareError(
            f"hw.max_port_bits = {max_bits} is narrower than one {bits}-bit element of the "
            f"{port} port; allowed: >= {bits}"
        )
    return fit[-1]


class SetFolding(Pass):
    """Set ``pe``/``simd`` on every unit and ``pe`` on the input port."""

    def __init__(
        self,
        pe: list[int] | None = None,
        simd: list[int] | None = None,
        target_cycles: int | None = None,
        max_port_bits: int = 64,
    ) -> None:
        if (pe is None) != (simd is None):
            raise HardwareError("hw.folding: give both 'pe' and 'simd' lists, or 'auto'")
        if target_cycles is not None and target_cycles < 1:
            raise HardwareError(f"hw.target_cycles = {target_cycles}; allowed: >= 1")
        self.pe, self.simd = pe, simd
        self.target = target_cycles
        self.max_port_bits = max_port_bits

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        shapes = infer_shapes(g)
        units = compute_units(g)
        if self.target is None:
            self.target = default_target_cycles(g)
        if self.pe is not None:
            self._explicit(g, units, shapes)
        else:
            for n in units:
                n.attrs["pe"], n.attrs["simd"] = cheapest_fold(g, n, shapes, self.target)
        for n in g.nodes:
            if n.op == "SlidingWindow":
                (reader,) = g.consumers(n.name)
                n.attrs["simd"] = int(
                    reader.attrs["pe"] if reader.op == "VVAU" else reader.attrs["simd"]
                )
        for n in g.nodes:
            op = op_of(n)
            fixed = n.op in COMPUTE_OPS or n.op in SELF_FOLDED_OPS
            if isinstance(op, StreamOp) and not fixed and "pe" in op.attrs:
                n.attrs["pe"] = self._stream_pe(g, n, shapes)
        g.nodes[0].attrs["pe"] = self._port_pe(g, shapes)
        return g

    def _explicit(self, g: Graph, units: list[Node], shapes: dict) -> None:
        for key, values in (("pe", self.pe), ("simd", self.simd)):
            if len(values) != len(units):
                raise HardwareError(
                    f"hw.folding.{key}: {len(values)} entries for {len(units)} compute units "
                    f"({', '.join(n.name for n in units)}); give one per unit"
                )
        for i, (n, pe, simd) in enumerate(zip(units, self.pe, self.simd, strict=True)):
            mh = int(n.tensors["weight"].shape[0])
            if pe not in pe_choices(n):
                raise HardwareError(
                    f"hw.folding.pe[{i}] = {pe} ({n.name}) must divide MH = {mh}; "
                    f"allowed: {pe_choices(n)}"
                )
            allowed = simd_choices(g, n, shapes)
            if simd not in allowed:
                windowed = g.node(n.inputs[0]).op == "SlidingWindow"
                what = (
                    "must be 1 (depthwise: one tap per cycle)"
                    if n.op == "VVAU"
                    else "must divide the input channels or be whole window taps"
                    if windowed
                    else f"must divide MW = {n.tensors['weight'].shape[1]}"
                )
                raise HardwareError(
                    f"hw.folding.simd[{i}] = {simd} ({n.name}) {what}; allowed: {allowed}"
                )
            n.attrs["pe"], n.attrs["simd"] = int(pe), int(simd)

    def _stream_pe(self, g: Graph, n: Node, shapes: dict) -> int:
        """The producer's beat width if it fits and meets the target, else the narrowest
        width that meets it (or full width)."""
        op = op_of(n)
        channels = min(shapes[i][-1] for i in n.inputs) if n.op == "ConcatStreams" else None
        base = shapes[n.name][-1] if channels is None else channels
        fits = [d for d in divisors(base) if all(shapes[i][-1] % d == 0 for i in n.inputs)]

        def cycles(pe: int) -> int:
            trial = Node(n.name, n.op, n.inputs, {**n.attrs, "pe": pe}, n.tensors)
            return op.cycles(trial, [shapes[i] for i in n.inputs], shapes[n.name])

        producer = beat_elems(g.node(n.inputs[0]))
        if producer in fits and cycles(producer) <= self.target:
            return int(producer)
        meeting = [d for d in fits if cycles(d) <= self.target]
        return int(meeting[0] if meeting else fits[-1])

    def _port_pe(self, g: Graph, shapes: dict) -> int:
        """Input port: the first unit's beat, or the widest divisor within the port cap."""
        first = g.nodes[0]
        reader = g.consumers(first.name)[0]  # with several readers a fork follows
        want = op_of(reader).in_elems(reader, reader.inputs.index(first.name), shapes[first.name])
        bits = node_ranges(g)[first.name].element.bits
        if want * bits <= self.max_port_bits:
            return int(want)
        return port_elems(int(np.prod(shapes[first.name])), bits, self.max_port_bits, "input")
