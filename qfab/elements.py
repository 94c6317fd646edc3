"""How every stream of a hardware graph is encoded: one rule per unit kind, in one place.

A stream element is (bits, signed, bipolar) (:class:`~qfab.values.Element`). Most
streams carry exactly their value range's narrowest encoding, but not all:

* a compute unit without thresholds streams its accumulator register, two's complement
  of :func:`acc_bits` (the width its arithmetic runs at), not the range's narrowest;
* units that only move values (fork, width converter, FIFO, max pool, shuffle) keep
  their input's encoding, whatever it is;
* a sliding window over a bipolar stream with padding widens it to 2-bit signed (a
  bipolar stream cannot carry the padding zero);
* a concatenation needs one encoding that holds every input's (a bipolar input counts
  as 2-bit signed unless all are bipolar).

The generator, the width-converter pass, the manifest and ``qfab info`` all read this
table, so the wires can never disagree with what a reader expects.
"""

from __future__ import annotations

import numpy as np

from qfab.errors import ToolError
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import OPS
from qfab.ops.linear import dense_acc_range
from qfab.ranges import node_ranges
from qfab.values import Element, IntRange, signed_bits

COMPUTE = ("MVAU", "XnorMVAU", "VVAU")
PASS_THROUGH = ("Fork", "DWC", "FIFO", "StreamingMaxPool", "ShuffleStreams")


def acc_range(node: Node, x: IntRange, shapes: dict) -> IntRange:
    """The accumulator (for XNOR: match count) range of a compute unit fed ``x``."""
    w = node.tensors["weight"]
    if node.op == "MVAU":
        return dense_acc_range(w, x, node.tensors.get("bias"))
    if node.op == "XnorMVAU":
        mh, mw = w.shape
        return IntRange(np.zeros(mh, np.int64), np.full(mh, mw, np.int64))
    bare = Node(
        node.name,
        "VVAU",
        node.inputs,
        {k: v for k, v in node.attrs.items() if k not in ("out_bits", "offset", "bipolar")},
        {"weight": w},
    )
    return OPS["VVAU"].value_range(bare, [x], [shapes[node.inputs[0]]], shapes[node.name])


def acc_bits(node: Node, x: IntRange, shapes: dict) -> int:
    """Two's complement accumulator width of a compute unit: every final sum, output and
    threshold fits (partial sums may wrap; the final value cannot)."""
    acc = acc_range(node, x, shapes)
    lo, hi = acc.min, acc.max
    if "thresholds" in node.tensors:
        t = node.tensors["thresholds"]
        lo, hi = min(lo, int(t.min())), max(hi, int(t.max()))
    elif node.op == "XnorMVAU":
        bias = node.tensors.get("bias", np.zeros(len(acc.lo), np.int64))
        lo = min(lo, int((2 * acc.lo + bias).min()))
        hi = max(hi, int((2 * acc.hi + bias).max()))
    return signed_bits(lo, hi)


def common_element(elements: list[Element]) -> Element:
    """One encoding holding every value of each of ``elements`` (bipolar -> 2-bit signed
    unless all are bipolar)."""
    if all(e.bipolar for e in elements):
        return Element(1, signed=True, bipolar=True)
    wide = [Element(2, signed=True) if e.bipolar else e for e in elements]
    signed = any(e.signed for e in wide)
    bits = max(e.bits + (1 if signed and not e.signed else 0) for e in wide)
    return Element(bits, signed=signed)


def stream_elements(graph: Graph) -> dict[str, Element]:
    """Every integer node's output encoding on its stream, in graph order."""
    shapes = infer_shapes(graph)
    ranges = node_ranges(graph)
    out: dict[str, Element] = {}
    for n in graph.nodes:
        if n.name not in ranges:
            continue  # a float output (OutputDequant)
        ins = [out[i] for i in n.inputs]
        if n.op in PASS_THROUGH:
            out[n.name] = ins[0]
        elif n.op in COMPUTE and "thresholds" not in n.tensors:
            out[n.name] = Element(acc_bits(n, ranges[n.inputs[0]], shapes), signed=True)
        elif n.op == "SlidingWindow":
            padded = any(n.attrs["padding"])
            out[n.name] = Element(2, signed=True) if ins[0].bipolar and padded else ins[0]
        elif n.op == "ConcatStreams":
            out[n.name] = common_element(ins)
        else:
            out[n.name] = ranges[n.name].element
    return out


def pack_beats(codes: np.ndarray, elems: int, bits: int) -> list[int]:
    """Encoded vectors ``[N, features]`` -> beats of ``elems`` elements, element 0 at the LSBs."""
    enc = np.asarray(codes, dtype=np.int64).reshape(len(codes), -1, elems)
    beats = []
    for frame in enc:
        for beat in frame:
            word = 0
            for i, v in enumerate(beat.tolist()):
                word |= int(v) << (i * bits)
            beats.append(word)
    return beats


def unpack_beats(
    beats: list[int], elems: int, bits: int, frames: int, beats_per_frame: int
) -> np.ndarray:
    """Beats -> ``[frames, beats_per_frame * elems]`` unsigned element patterns."""
    if len(beats) != frames * beats_per_frame:
        raise ToolError(f"got {len(beats)} beats, expected {frames * beats_per_frame}")
    mask = (1 << bits) - 1
    out = np.array(
        [[(int(b) >> (i * bits)) & mask for i in range(elems)] for b in beats], dtype=np.int64
    )
    return out.reshape(frames, beats_per_frame * elems)


def port_element(port: dict) -> Element:
    """The element encoding of a stream as a design's manifest (``design.json``) gives it
    (its ``element`` entry: bits, signed, bipolar)."""
    e = port["element"]
    return Element(int(e["bits"]), bool(e["signed"]), bool(e["bipolar"]))
