"""One kernel builder per hardware op: what the node's HLS template needs.

A builder reads the node through :class:`~hw_gen.design.Design` (shapes, stream
encodings, accumulator widths: the same derivations the Verilog units use) and the
memory words of :mod:`hw_gen.words` (the same words the Verilog ROMs hold), and returns a
:class:`Kernel`: the template of its op (``hw_gen/templates/hls/<op>.cpp.j2``), integer
parameters, constant memories and stream widths. The templates turn that into one C++
function per node; ``hw_gen.hls.emit`` wires the functions into the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw_gen.design import Design
from hw_gen.words import (
    activation_table,
    thresholding_acc_bits,
    weight_element,
    weight_words,
)
from qfab.errors import HardwareError
from qfab.ir import Node
from qfab.ops.layout import shuffle_order
from qfab.values import Element

#: Widest value a kernel computes with in ``ap_int`` arithmetic that the templates also
#: hold in C ``int`` counters and ``long long`` limbs; wider is refused by name.
MAX_ACC_BITS = 62


#: Widest ``ap_uint`` the ap_types allow (``AP_INT_MAX_W`` up to 1 << 15).
MAX_WORD_BITS = 1 << 15


@dataclass
class Kernel:
    """One node's HLS function: template, parameters, constants and stream widths."""

    node: str
    op: str
    template: str
    what: str
    in_bits: list[int]
    out_bits: int
    p: dict[str, Any]
    consts: list[dict[str, Any]] = field(default_factory=list)
    tap: bool = False
    outputs: int = 1  # a Fork has one output stream per reading slot

    def widest(self) -> tuple[int, str]:
        """(bits, what) of the widest ``ap_uint`` the kernel declares."""
        found = [(b, f"input stream {i}") for i, b in enumerate(self.in_bits)]
        found.append((self.out_bits, "output stream"))
        found += [(int(self.p[key]), what) for key, what in WORDS.items() if key in self.p]
        return max(found)


#: kernel parameters that are widths of words a kernel declares
WORDS = {"WW": "weight word", "BUF": "width-converter buffer", "RB": "sum"}


def limbs(words: list[int], bits: int) -> tuple[list[str], int]:
    """Memory words -> C initializer rows of 64-bit limbs (least significant first)."""
    n = -(-bits // 64)
    mask = (1 << 64) - 1
    rows = [", ".join(f"0x{(w >> (64 * i)) & mask:x}ULL" for i in range(n)) for w in words]
    return rows, n


def _const(node: Node, suffix: str, words: list[int], bits: int, what: str) -> dict[str, Any]:
    """A memory of packed words (the RTL ROM's words), as 64-bit limbs."""
    rows, n = limbs(words, bits)
    return {
        "kind": "words",
        "name": f"{node.name}_{suffix}",
        "rows": rows,
        "limbs": n,
        "bits": bits,
        "what": what,
    }


def _table(node: Node, table: np.ndarray, pe: int, what: str) -> dict[str, Any]:
    """Thresholds or biases as ``[NF][PE][columns]`` integers: the rows of the RTL's
    threshold words, unpacked (a word of PE x 255 thresholds can exceed the 32,768 bits an
    ``ap_uint`` may have)."""
    groups = len(table) // pe
    rows = []
    for f in range(groups):
        pes = ["{" + ", ".join(f"{int(v)}LL" for v in table[f * pe + p]) + "}" for p in range(pe)]
        rows.append(", ".join(pes))
    return {
        "kind": "table",
        "name": f"{node.name}_t",
        "rows": rows,
        "groups": groups,
        "pe": pe,
        "columns": table.shape[1],
        "what": what,
    }


def _el(prefix: str, el: Element) -> dict[str, Any]:
    """An element's template parameters: ``<prefix>B``, ``<prefix>S``, ``<prefix>BP``."""
    return {f"{prefix}B": el.bits, f"{prefix}S": el.signed, f"{prefix}BP": el.bipolar}


def _check_width(node: Node, bits: int, what: str) -> None:
    if bits > MAX_ACC_BITS:
        raise HardwareError(
            f"node '{node.name}' ({node.op}): its {what} needs {bits} bits; the HLS backend "
            f"computes with at most {MAX_ACC_BITS}"
        )


def _vectors(d: Design, node: Node) -> int:
    """Input vectors per frame of a compute unit (1 for a dense layer, OH*OW for a conv)."""
    return int(np.prod(d.shapes[node.name])) // int(node.tensors["weight"].shape[0])


def _base(d: Design, node: Node, template: str, what: str) -> Kernel:
    return Kernel(
        node.name,
        node.op,
        template,
        what,
        [d.stream_bits(s) for s in node.inputs],
        d.stream_bits(node.name),
        {},
        tap=bool(node.attrs.get("model_node")),
    )


def _activation(d: Design, node: Node, k: Kernel, acc: int) -> None:
    table, num_t = activation_table(node)
    pe = int(node.attrs["pe"])
    out = d.element(node.name)
    k.p.update(NUM_T=num_t, OFFSET=int(node.attrs.get("offset", 0)), OB=out.bits, OBP=out.bipolar)
    what = "thresholds" if num_t else "bias"
    k.consts.append(_table(node, table, pe, f"{what} of {node.name}"))


def compute_kernel(d: Design, node: Node) -> Kernel:
    """MVAU, XnorMVAU and VVAU: folded multiply-accumulate, then thresholds or bias."""
    w = node.tensors["weight"]
    pe = int(node.attrs["pe"])
    acc = d.acc_bits(node)
    _check_width(node, acc + 2, "accumulator")
    wel = weight_element(node)
    in_el = d.element(node.inputs[0])
    depthwise = node.op == "VVAU"
    simd = 1 if depthwise else int(node.attrs["simd"])
    mh = w.shape[0]
    k = _base(
        d,
        node,
        "vvau.cpp.j2" if depthwise else "mvau.cpp.j2",
        f"{node.op} {mh} outputs x {w.shape[1] if not depthwise else w.shape[1] * mh} inputs, "
        f"PE={pe} SIMD={simd}, {node.attrs['cycles']} cycles/frame",
    )
    ww = pe * simd * wel.bits
    k.consts.append(_const(node, "w", weight_words(node), ww, f"weights of {node.name}"))
    k.p.update(
        PE=pe,
        SIMD=simd,
        NF=mh // pe,
        ACC=acc,
        WW=ww,
        WL=k.consts[-1]["limbs"],
        XNOR=node.op == "XnorMVAU",
        VECTORS=_vectors(d, node),
        **_el("I", in_el),
        **_el("W", wel),
    )
    if depthwise:
        k.p["K"] = int(w.shape[1])
    else:
        k.p["SF"] = int(w.shape[1]) // simd
    _activation(d, node, k, acc)
    return k


def thresholding_kernel(d: Design, node: Node) -> Kernel:
    table = node.tensors["thresholds"].astype(np.int64)
    c, num_t = table.shape
    pe = int(node.attrs["pe"])
    in_el = d.element(node.inputs[0])
    wide = Element(2, signed=True) if in_el.bipolar else in_el
    acc = thresholding_acc_bits(table, wide.bits, wide.signed)
    _check_width(node, acc, "threshold compare")
    out = d.element(node.name)
    k = _base(d, node, "thresholding.cpp.j2", f"multi-threshold, {c} channels x {num_t}, PE={pe}")
    k.consts.append(_table(node, table, pe, f"thresholds of {node.name}"))
    k.p.update(
        PE=pe,
        NF=c // pe,
        BEATS=int(np.prod(d.shapes[node.name])) // pe,
        ACC=acc,
        NUM_T=num_t,
        OFFSET=int(node.attrs["offset"]),
        OB=out.bits,
        OBP=out.bipolar,
        **_el("I", in_el),
    )
    return k


def window_kernel(d: Design, node: Node) -> Kernel:
    h, w, c = d.shapes[node.inputs[0]]
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    simd = int(node.attrs["simd"])
    ie = min(simd, c)
    in_el, out_el = d.element(node.inputs[0]), d.element(node.name)
    oh, ow = d.shapes[node.name][:2]
    k = _base(
        d,
        node,
        "swg.cpp.j2",
        f"sliding window {kh}x{kw} stride {sh}x{sw} pad {ph}x{pw} over {h}x{w}x{c}, "
        f"{simd} elements/beat",
    )
    taps = simd // ie  # whole taps per output beat (1: one tap's channel slice)
    bpp = kh * kw * (c // ie) // taps  # output beats per pixel
    k.p.update(
        H=h, W=w, C=c, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, OH=oh, OW=ow,
        IE=ie, CB=c // ie, SIMD=simd, IB=in_el.bits, TAPS=taps, BPP=bpp, R=kh + sh,
        WIDEN=in_el.bipolar and not out_el.bipolar,
        ITERATIONS=swg_iterations(h, w * (c // ie), oh, ow * bpp, kh, sh, ph, kh + sh),
    )  # fmt: skip
    return k


def swg_iterations(
    h: int, row_beats: int, oh: int, out_row_beats: int, kh: int, sh: int, ph: int, rows: int
) -> int:
    """Iterations of the sliding window's loop per frame: its rule played out beat by beat
    (write a window beat once its rows are in; read a beat while the row it overwrites,
    ``rows`` back, is no longer needed), exactly as the template's loop runs it."""
    r = xr = oy = j = iterations = 0
    while r < h or oy < oh:
        s = oy * sh - ph
        need = min(h, s + kh)
        can_read = r < h and (oy >= oh or r - rows < s)
        if oy < oh and r >= need:
            j += 1
            if j == out_row_beats:
                j, oy = 0, oy + 1
        if can_read:
            xr += 1
            if xr == row_beats:
                xr, r = 0, r + 1
        iterations += 1
    return iterations


def pool_kernel(d: Design, node: Node) -> Kernel:
    h, w, c = d.shapes[node.inputs[0]]
    kh, kw = node.attrs["kernel"]
    pe = int(node.attrs["pe"])
    el = d.element(node.inputs[0])
    oh, ow = d.shapes[node.name][:2]
    k = _base(d, node, "pool.cpp.j2", f"max pool {kh}x{kw} over {h}x{w}x{c}, PE={pe}")
    k.p.update(H=h, W=w, KH=kh, KW=kw, OH=oh, OW=ow, PE=pe, CB=c // pe, **_el("", el))
    return k


def add_kernel(d: Design, node: Node) -> Kernel:
    pe = int(node.attrs["pe"])
    a, b = (d.element(s) for s in node.inputs)
    sa, sb = (int(s) for s in node.attrs["shift"])
    out = d.element(node.name)
    k = _base(d, node, "add.cpp.j2", f"residual add, shifts {[sa, sb]}, PE={pe}")
    rb = max(a.bits + 1 + sa, b.bits + 1 + sb) + 1
    _check_width(node, rb, "sum")
    k.p.update(
        PE=pe,
        BEATS=int(np.prod(d.shapes[node.name])) // pe,
        SA=sa,
        SB=sb,
        RB=rb,
        OB=out.bits,
        **_el("A", a),
        **_el("B", b),
    )
    return k


def concat_kernel(d: Design, node: Node) -> Kernel:
    pe = int(node.attrs["pe"])
    out = d.element(node.name)
    shape = d.shapes[node.name]
    k = _base(d, node, "concat.cpp.j2", f"channel concat of {len(node.inputs)} streams, PE={pe}")
    src, end = [], 0
    for s in node.inputs:
        el = d.element(s)
        end += d.shapes[s][-1] // pe  # beats of this input end the pixel's first `end`
        src.append({"END": end, "RAW": el == out, **_el("", el)})
    k.p.update(
        PE=pe, PIXELS=int(np.prod(shape[:-1])), BEATS=end, OB=out.bits, OBP=out.bipolar, SRC=src
    )
    return k


def shuffle_kernel(d: Design, node: Node) -> Kernel:
    shape = d.shapes[node.name]
    c, pe, groups = shape[-1], int(node.attrs["pe"]), int(node.attrs["groups"])
    k = _base(d, node, "shuffle.cpp.j2", f"channel shuffle of {c} channels in {groups} groups")
    order = ", ".join(str(int(i)) for i in shuffle_order(c, groups))
    k.p.update(
        C=c,
        PE=pe,
        CB=c // pe,
        B=d.element(node.name).bits,
        PIXELS=int(np.prod(shape[:-1])),
        ORDER=order,
    )
    return k


def fork_kernel(d: Design, node: Node) -> Kernel:
    n = len(d.readers(node.name))
    k = _base(d, node, "fork.cpp.j2", f"fork to {n} readers")
    k.outputs = n
    k.p.update(N=n, BEATS=int(np.prod(d.shapes[node.name])) // int(node.attrs["pe"]))
    return k


def dwc_kernel(d: Design, node: Node) -> Kernel:
    n_in, n_out = int(node.attrs["in_elems"]), int(node.attrs["out_elems"])
    bits = d.element(node.name).bits
    feats = int(np.prod(d.shapes[node.name]))
    k = _base(d, node, "dwc.cpp.j2", f"width converter {n_in} -> {n_out} elements of {bits} bits")
    k.p.update(
        IN=n_in,
        OUT=n_out,
        B=bits,
        BUF=(n_in + n_out) * bits,
        IN_BEATS=feats // n_in,
        ITERATIONS=dwc_iterations(n_in, n_out, feats),
    )
    return k


def dwc_iterations(n_in: int, n_out: int, features: int) -> int:
    """Iterations of the width converter's loop per frame: its read/write rule played out
    (read while fewer than ``n_out`` are held, write once ``n_out`` are). It equals the
    larger beat count, the RTL converter's cycles (checked in the tests)."""
    have = got = written = iterations = 0
    while written < features // n_out:
        if have < n_out and got < features // n_in:
            have, got = have + n_in, got + 1
        if have >= n_out:
            have, written = have - n_out, written + 1
        iterations += 1
    return iterations


#: hardware op -> kernel builder. A FIFO is no function: its stream gets the depth. A
#: node whose op is in neither is refused by name before anything is written.
KERNELS: dict[str, Callable[[Design, Node], Kernel]] = {
    "MVAU": compute_kernel,
    "XnorMVAU": compute_kernel,
    "VVAU": compute_kernel,
    "Thresholding": thresholding_kernel,
    "SlidingWindow": window_kernel,
    "StreamingMaxPool": pool_kernel,
    "AddStreams": add_kernel,
    "ConcatStreams": concat_kernel,
    "ShuffleStreams": shuffle_kernel,
    "Fork": fork_kernel,
    "DWC": dwc_kernel,
}
STREAM_ONLY = ("FIFO",)
