"""One emitter per hardware op: the node's wrapper module around its ``rtl/`` unit.

Every node of the hardware graph becomes a module ``<node>_unit`` with the same outside
(``clk``, ``rst_n``, ``s_axis_*`` or ``s0_axis_*``/``s1_axis_*``, ``m_axis_*``; a Fork has
one ``tvalid``/``tready`` bit per reader). Inside: the library unit with its parameters,
the node's ROMs (weights, thresholds, biases) and, where a bipolar stream meets a unit
that does arithmetic, the one-bit-to-two's-complement widening (``b -> {~b, 1}``: 1 is
+1 = 01, 0 is -1 = 11). Every width comes from :class:`Design`, which derives it from
the exact value ranges of :mod:`qfab.ranges`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hw_gen.design import Design
from hw_gen.verilog.rom import addr_bits, rom_module
from hw_gen.words import (
    activation_table,
    table_words,
    thresholding_acc_bits,
    weight_element,
    weight_words,
)
from qfab.ir import Node

#: Widest weight multiplied in LUTs (shifted adds, one per weight bit) rather than a DSP.
#: A k-bit weight times an n-bit input costs about k*n LUTs as k adds, fewer than the
#: fabric a DSP48 ties up for it up to k = 4 (FINN also keeps narrow MACs in LUTs);
#: without this, Yosys maps every 2x2 product to a DSP48.
LUT_MUL_MAX_WEIGHT_BITS = 4


def tree_stages(simd: int, xnor: bool) -> int:
    """Registered stages of the MVAU's product + adder tree (``mvau_pipe`` TREE_STAGES).

    The tree has ``ceil(log2 SIMD) + 1`` levels (the products count as one). Measured
    with Yosys ``ltp`` (rtl/mvau_pipe.v's bench): two levels per stage keep the longest
    path at 7-9 cells for 8-bit x bipolar and 2x2-bit products (16 in one stage at SIMD
    32); an XNOR popcount can take three (5 cells at SIMD 64, 15 in one stage).
    """
    levels = max(1, (simd - 1).bit_length()) + 1 if simd > 1 else 1
    per_stage = 3 if xnor else 2
    return -(-levels // per_stage)


@dataclass
class Core:
    module: str
    instance: str
    params: list[tuple[str, int]]
    ports: list[tuple[str, str]]


@dataclass
class Unit:
    """Everything the ``unit.v.j2`` template needs, plus extra files (ROMs)."""

    node: str
    op: str
    what: str
    inputs: list[dict]
    out_width: int
    cores: list[Core]
    library: set[str]
    fork_n: int | None = None
    wires: list[dict] = field(default_factory=list)
    assigns: list[dict] = field(default_factory=list)
    roms: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: memories the unit holds beyond its ROM files' own description (name, words, bits)
    memories: list[dict] = field(default_factory=list)

    @property
    def module(self) -> str:
        return f"{self.node}_unit"


def _ports(prefix: str) -> list[tuple[str, str]]:
    return [(f"s_axis_{k}", f"{prefix}_{k}") for k in ("tdata", "tvalid", "tready")]


def _out_ports() -> list[tuple[str, str]]:
    return [(f"m_axis_{k}", f"m_axis_{k}") for k in ("tdata", "tvalid", "tready")]


def _widen_bipolar(unit: Unit, prefix: str, elems: int) -> str:
    """Wire carrying ``prefix``'s bipolar elements as 2-bit two's complement."""
    name = f"{prefix}_wide"
    unit.wires.append({"name": name, "width": 2 * elems})
    parts = [f"~{prefix}_tdata[{e}], 1'b1" for e in reversed(range(elems))]
    unit.assigns.append({"lhs": name, "rhs": "{" + ", ".join(parts) + "}"})
    return name


def _arith_input(unit: Unit, d: Design, node: Node, index: int, prefix: str, elems: int):
    """(data signal, bits, signed) of an input, bipolar streams widened to 2-bit signed."""
    el = d.element(node.inputs[index])
    if el.bipolar:
        return _widen_bipolar(unit, prefix, elems), 2, True
    return f"{prefix}_tdata", el.bits, el.signed


def _rom(unit: Unit, port: str, words: list[int], data_bits: int, what: str) -> None:
    module = f"{unit.node}_{what}"
    unit.files[f"{module}.v"] = rom_module(module, words, data_bits, f"{what} of {unit.node}")
    ab = addr_bits(len(words))
    unit.roms.append(
        {
            "module": module,
            "port": port,
            "en": f"{port}_en",
            "addr": f"{port}_addr",
            "data": f"{port}_data",
        }
    )
    unit.wires += [
        {"name": f"{port}_en", "width": 1},
        {"name": f"{port}_addr", "width": ab},
        {"name": f"{port}_data", "width": data_bits},
    ]


def emit_compute(d: Design, node: Node) -> Unit:
    """MVAU, XnorMVAU (XNOR-popcount) and VVAU (depthwise) on ``mvau_pipe``."""
    w = node.tensors["weight"].astype(np.int64)
    depthwise = node.op == "VVAU"
    xnor = node.op == "XnorMVAU"
    pe = int(node.attrs["pe"])
    simd = 1 if depthwise else int(node.attrs["simd"])
    mh = w.shape[0]
    k = w.shape[1] if depthwise else 1
    mw = k * mh if depthwise else w.shape[1]
    in_el = d.element(node.inputs[0])
    wel = weight_element(node)
    acc_bits = d.acc_bits(node)
    has_t = "thresholds" in node.tensors
    out_el = d.element(node.name)
    in_elems = pe if depthwise else simd
    unit = Unit(
        node.name,
        node.op,
        f"{'XNOR-popcount ' if xnor else ''}{'vector (depthwise)' if depthwise else 'matrix'}"
        f" unit, {mh} outputs x {mw} inputs, PE={pe} SIMD={simd}, {node.attrs['cycles']} "
        "cycles/frame",
        [{"prefix": "s_axis", "width": in_elems * in_el.bits}],
        pe * out_el.bits,
        [],
        {"mvau_pipe.v"},
    )
    words = weight_words(node)  # layouts: hw_gen.words
    _rom(unit, "w", words, pe * simd * wel.bits, "weights")
    table, num_t = activation_table(node)
    t_words = table_words(table, pe, acc_bits)
    what = "thresholds" if has_t else "bias"
    _rom(unit, "t", t_words, pe * max(num_t, 1) * acc_bits, what)
    params = [
        ("MW", mw),
        ("MH", mh),
        ("PE", pe),
        ("SIMD", simd),
        ("DEPTHWISE", int(depthwise)),
        ("XNOR", int(xnor)),
        ("IN_BITS", in_el.bits),
        ("IN_SIGNED", int(in_el.signed and not in_el.bipolar)),
        ("IN_BIPOLAR", int(in_el.bipolar)),
        ("W_BITS", wel.bits),
        ("W_BIPOLAR", int(wel.bipolar)),
        ("ACC_BITS", acc_bits),
        ("NUM_T", num_t),
        ("OUT_BITS", out_el.bits if has_t else acc_bits),
        ("OFFSET", int(node.attrs.get("offset", 0)) if has_t else 0),
        ("HAS_BIAS", int(not has_t and "bias" in node.tensors)),
        ("LUT_MUL", int(wel.bits <= LUT_MUL_MAX_WEIGHT_BITS)),
        ("TREE_STAGES", tree_stages(simd, xnor)),
        ("WA_BITS", addr_bits(len(words))),
        ("TA_BITS", addr_bits(len(t_words))),
    ]
    ports = [
        *_ports("s_axis"),
        *_out_ports(),
        ("w_en", "w_en"),
        ("w_addr", "w_addr"),
        ("w_data", "w_data"),
        ("t_en", "t_en"),
        ("t_addr", "t_addr"),
        ("t_data", "t_data"),
    ]
    unit.cores.append(
        Core("mvau_pipe", "u_core", params, [("clk", "clk"), ("rst_n", "rst_n"), *ports])
    )
    unit.notes.append(
        f"in {in_el.bits}-bit{' bipolar' if in_el.bipolar else ' signed' if in_el.signed else ''}"
        f", weights {wel.bits}-bit{' bipolar' if wel.bipolar else ''}, acc {acc_bits}-bit, "
        + (f"{num_t} thresholds, out {out_el.bits}-bit" if has_t else "accumulator out")
    )
    return unit


def emit_thresholding(d: Design, node: Node) -> Unit:
    table = node.tensors["thresholds"].astype(np.int64)
    c, num_t = table.shape
    pe = int(node.attrs["pe"])
    out_el = d.element(node.name)
    unit = Unit(
        node.name,
        node.op,
        f"multi-threshold, {c} channels x {num_t}, PE={pe}",
        [{"prefix": "s_axis", "width": pe * d.element(node.inputs[0]).bits}],
        pe * out_el.bits,
        [],
        {"threshold_stream.v"},
    )
    data, bits, signed = _arith_input(unit, d, node, 0, "s_axis", pe)
    acc_bits = thresholding_acc_bits(table, bits, signed)
    words = table_words(table, pe, acc_bits)
    _rom(unit, "t", words, pe * num_t * acc_bits, "thresholds")
    params = [
        ("C", c),
        ("PE", pe),
        ("IN_BITS", bits),
        ("IN_SIGNED", int(signed)),
        ("ACC_BITS", acc_bits),
        ("NUM_T", num_t),
        ("OUT_BITS", out_el.bits),
        ("OFFSET", int(node.attrs["offset"])),
        ("TA_BITS", addr_bits(len(words))),
    ]
    ports = [
        ("clk", "clk"),
        ("rst_n", "rst_n"),
        ("s_axis_tdata", data),
        ("s_axis_tvalid", "s_axis_tvalid"),
        ("s_axis_tready", "s_axis_tready"),
        *_out_ports(),
        ("t_en", "t_en"),
        ("t_addr", "t_addr"),
        ("t_data", "t_data"),
    ]
    unit.cores.append(Core("threshold_stream", "u_core", params, ports))
    return unit


def swg_rows(
    h: int, kh: int, sh: int, ph: int, ow: int, kw: int, cw: int, taps: int, w: int
) -> tuple[int, int]:
    """(minimum, full-throughput) line-buffer rows of ``swg_stream`` (its header's formulas)."""
    oh = (h + 2 * ph - kh) // sh + 1

    def lo_hi(k: int) -> tuple[int, int]:
        f, oy = divmod(k, oh)
        return f * h + max(0, oy * sh - ph), f * h + min(h, oy * sh - ph + kh)

    rows_min = max(lo_hi(oy)[1] - lo_hi(oy)[0] for oy in range(oh))
    t_out = ow * kh * kw * cw // taps
    t_in = w * cw
    period = max(oh * t_out, h * t_in)
    full = rows_min
    for k in range(oh, 2 * oh):  # a steady-state frame (k - d never before frame 0)
        for dd in range(1, oh + 2):
            need = lo_hi(k)[1] - lo_hi(k - dd)[0] - ((dd - 1) * period) // (oh * t_in)
            full = max(full, need)
    return rows_min, full


def emit_window(d: Design, node: Node) -> Unit:
    h, w, c = d.shapes[node.inputs[0]]
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    simd = int(node.attrs["simd"])
    elems = min(simd, c)
    taps = 1 if simd <= c else simd // c
    in_el, out_el = d.element(node.inputs[0]), d.element(node.name)
    bipolar = in_el.bipolar and not out_el.bipolar  # widened: padding on a bipolar stream
    ow = d.shapes[node.name][1]
    _, rows = swg_rows(h, kh, sh, ph, ow, kw, c // elems, taps, w)
    unit = Unit(
        node.name,
        node.op,
        f"sliding window {kh}x{kw} stride {sh}x{sw} pad {ph}x{pw} over {h}x{w}x{c}, "
        f"{simd} elements/beat, {rows} line-buffer rows",
        [{"prefix": "s_axis", "width": elems * in_el.bits}],
        simd * out_el.bits,
        [],
        {"swg_stream.v"},
    )
    params = [
        ("H", h),
        ("W", w),
        ("C", c),
        ("KH", kh),
        ("KW", kw),
        ("SH", sh),
        ("SW", sw),
        ("PH", ph),
        ("PW", pw),
        ("EBITS", in_el.bits),
        ("OBITS", out_el.bits),
        ("IN_BIPOLAR", int(bipolar)),
        ("ELEMS", elems),
        ("TAPS", taps),
        ("ROWS", rows),
    ]
    unit.cores.append(
        Core(
            "swg_stream",
            "u_core",
            params,
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


def emit_pool(d: Design, node: Node) -> Unit:
    h, w, c = d.shapes[node.inputs[0]]
    kh, kw = node.attrs["kernel"]
    pe = int(node.attrs["pe"])
    el = d.element(node.inputs[0])
    unit = Unit(
        node.name,
        node.op,
        f"max pool {kh}x{kw} over {h}x{w}x{c}, PE={pe}"
        + (" (bipolar: an OR)" if el.bipolar else ""),
        [{"prefix": "s_axis", "width": pe * el.bits}],
        pe * el.bits,
        [],
        {"pool_stream.v"},
    )
    params = [
        ("H", h),
        ("W", w),
        ("C", c),
        ("KH", kh),
        ("KW", kw),
        ("ELEMS", pe),
        ("EBITS", el.bits),
        ("SIGNED", int(el.signed and not el.bipolar)),
    ]
    unit.cores.append(
        Core(
            "pool_stream",
            "u_core",
            params,
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


def emit_add(d: Design, node: Node) -> Unit:
    pe = int(node.attrs["pe"])
    out_el = d.element(node.name)
    unit = Unit(
        node.name,
        node.op,
        f"residual add, shifts {node.attrs['shift']}, PE={pe}",
        [
            {"prefix": f"s{i}_axis", "width": pe * d.element(s).bits}
            for i, s in enumerate(node.inputs)
        ],
        pe * out_el.bits,
        [],
        {"add_stream.v"},
    )
    a, a_bits, a_signed = _arith_input(unit, d, node, 0, "s0_axis", pe)
    b, b_bits, b_signed = _arith_input(unit, d, node, 1, "s1_axis", pe)
    sa, sb = (int(s) for s in node.attrs["shift"])
    params = [
        ("ELEMS", pe),
        ("A_BITS", a_bits),
        ("A_SIGNED", int(a_signed)),
        ("B_BITS", b_bits),
        ("B_SIGNED", int(b_signed)),
        ("SHIFT_A", sa),
        ("SHIFT_B", sb),
        ("OUT_BITS", out_el.bits),
    ]
    ports = [
        ("clk", "clk"),
        ("rst_n", "rst_n"),
        ("s0_axis_tdata", a),
        ("s0_axis_tvalid", "s0_axis_tvalid"),
        ("s0_axis_tready", "s0_axis_tready"),
        ("s1_axis_tdata", b),
        ("s1_axis_tvalid", "s1_axis_tvalid"),
        ("s1_axis_tready", "s1_axis_tready"),
        *_out_ports(),
    ]
    unit.cores.append(Core("add_stream", "u_core", params, ports))
    return unit


def emit_concat(d: Design, node: Node) -> Unit:
    """A chain of two-input ``concat_stream`` for any number of inputs."""
    pe = int(node.attrs["pe"])
    out_el = d.element(node.name)
    unit = Unit(
        node.name,
        node.op,
        f"channel concat of {len(node.inputs)} streams, PE={pe}",
        [
            {"prefix": f"s{i}_axis", "width": pe * d.element(s).bits}
            for i, s in enumerate(node.inputs)
        ],
        pe * out_el.bits,
        [],
        {"concat_stream.v"},
    )
    all_bipolar = all(d.element(s).bipolar for s in node.inputs)
    inputs = []
    for i in range(len(node.inputs)):
        if all_bipolar:
            inputs.append((f"s{i}_axis_tdata", 1, False))
        else:
            inputs.append(_arith_input(unit, d, node, i, f"s{i}_axis", pe))
    acc_prefix, acc_c = "s0_axis", d.shapes[node.inputs[0]][-1]
    acc_data, acc_bits, acc_signed = inputs[0]
    for i in range(1, len(node.inputs)):
        last = i == len(node.inputs) - 1
        out = "m_axis" if last else f"cat{i}"
        if not last:
            unit.wires += [
                {"name": f"cat{i}_tdata", "width": pe * out_el.bits},
                {"name": f"cat{i}_tvalid", "width": 1},
                {"name": f"cat{i}_tready", "width": 1},
            ]
        data, bits, signed = inputs[i]
        params = [
            ("C0", acc_c),
            ("C1", d.shapes[node.inputs[i]][-1]),
            ("ELEMS", pe),
            ("BITS0", acc_bits),
            ("SIGNED0", int(acc_signed)),
            ("BITS1", bits),
            ("SIGNED1", int(signed)),
            ("OUT_BITS", out_el.bits),
        ]
        ports = [
            ("clk", "clk"),
            ("rst_n", "rst_n"),
            ("s0_axis_tdata", acc_data),
            ("s0_axis_tvalid", f"{acc_prefix}_tvalid"),
            ("s0_axis_tready", f"{acc_prefix}_tready"),
            ("s1_axis_tdata", data),
            ("s1_axis_tvalid", f"s{i}_axis_tvalid"),
            ("s1_axis_tready", f"s{i}_axis_tready"),
            ("m_axis_tdata", f"{out}_tdata"),
            ("m_axis_tvalid", f"{out}_tvalid"),
            ("m_axis_tready", f"{out}_tready"),
        ]
        unit.cores.append(Core("concat_stream", f"u_cat{i}", params, ports))
        acc_prefix, acc_c = f"cat{i}", acc_c + d.shapes[node.inputs[i]][-1]
        acc_data, acc_bits, acc_signed = f"cat{i}_tdata", out_el.bits, out_el.signed
    return unit


def emit_shuffle(d: Design, node: Node) -> Unit:
    c = d.shapes[node.name][-1]
    pe = int(node.attrs["pe"])
    el = d.element(node.name)
    unit = Unit(
        node.name,
        node.op,
        f"channel shuffle of {c} channels in {node.attrs['groups']} groups, PE={pe}",
        [{"prefix": "s_axis", "width": pe * el.bits}],
        pe * el.bits,
        [],
        {"shuffle_stream.v"},
    )
    params = [("C", c), ("G", int(node.attrs["groups"])), ("ELEMS", pe), ("EBITS", el.bits)]
    unit.cores.append(
        Core(
            "shuffle_stream",
            "u_core",
            params,
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


def emit_fork(d: Design, node: Node) -> Unit:
    n = len(d.readers(node.name))  # one output per reading slot (Add(x, x) reads twice)
    width = d.stream_bits(node.name)
    unit = Unit(
        node.name,
        node.op,
        f"fork to {n} readers",
        [{"prefix": "s_axis", "width": width}],
        width,
        [],
        {"fork_stream.v"},
        fork_n=n,
    )
    unit.cores.append(
        Core(
            "fork_stream",
            "u_core",
            [("N", n), ("WIDTH", width)],
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


def emit_dwc(d: Design, node: Node) -> Unit:
    el = d.element(node.name)
    n_in, n_out = int(node.attrs["in_elems"]), int(node.attrs["out_elems"])
    unit = Unit(
        node.name,
        node.op,
        f"width converter {n_in} -> {n_out} elements of {el.bits} bits",
        [{"prefix": "s_axis", "width": n_in * el.bits}],
        n_out * el.bits,
        [],
        {"stream_dwc.v"},
    )
    unit.cores.append(
        Core(
            "stream_dwc",
            "u_core",
            [("EBITS", el.bits), ("IN_ELEMS", n_in), ("OUT_ELEMS", n_out)],
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


def emit_fifo(d: Design, node: Node) -> Unit:
    width = d.stream_bits(node.name)
    depth = int(node.attrs["depth"])
    unit = Unit(
        node.name,
        node.op,
        f"FIFO of {depth} beats of {width} bits",
        [{"prefix": "s_axis", "width": width}],
        width,
        [],
        {"fifo_stream.v"},
    )
    unit.cores.append(
        Core(
            "fifo_stream",
            "u_core",
            [("WIDTH", width), ("DEPTH", depth)],
            [("clk", "clk"), ("rst_n", "rst_n"), *_ports("s_axis"), *_out_ports()],
        )
    )
    return unit


#: hardware op -> emitter. A node whose op is missing here is refused by name.
EMITTERS: dict[str, Callable[[Design, Node], Unit]] = {
    "MVAU": emit_compute,
    "XnorMVAU": emit_compute,
    "VVAU": emit_compute,
    "Thresholding": emit_thresholding,
    "SlidingWindow": emit_window,
    "StreamingMaxPool": emit_pool,
    "AddStreams": emit_add,
    "ConcatStreams": emit_concat,
    "ShuffleStreams": emit_shuffle,
    "Fork": emit_fork,
    "DWC": emit_dwc,
    "FIFO": emit_fifo,
    "SparseMVAU": lambda d, node: _emit_sparse(d, node),
}


def _emit_sparse(d: Design, node: Node) -> Unit:
    from hw_gen.verilog.sparse_unit import emit_sparse  # it builds on this module

    return emit_sparse(d, node)
