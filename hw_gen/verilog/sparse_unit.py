"""The wrapper of a ``SparseMVAU`` node: ``rtl/sparse_engine.v`` and its per-PE memories.

Every memory is initialised word for word from the node's layout (:mod:`qfab.sparse`):
PE ``p``'s entry ROM holds ``code << index_bits | gap`` for its entries, its two pointer
ROMs the even and odd column pointers, and the codebook is a parameter of the engine
(16 values at 4-bit codes: registers, not a memory port). A PE that owns no non-zero
gets no entry ROM (its data is tied to 0 and never read). Direction and bias, when a
row needs them, sit in a small ROM read by the drain, one word per output beat.

The unit records its memories (:attr:`Unit.memories`) so the manifest and the sparse
benchmark count the bits the hardware holds, not a formula.
"""

from __future__ import annotations

import numpy as np

from hw_gen.verilog.rom import addr_bits, pack_word, rom_module
from hw_gen.verilog.units import Core, Design, Unit
from qfab.ir import Node
from qfab.ops import OPS
from qfab.values import signed_bits


def _bus_rom(
    unit: Unit, module: str, words: list[int], bits: int, what: str, hook: dict, abits: int
) -> None:
    unit.files[f"{module}.v"] = rom_module(module, words, bits, what, abits)
    unit.roms.append({"module": module, "port": module, **hook})


def emit_sparse(d: Design, node: Node) -> Unit:
    op = OPS["SparseMVAU"]
    layout = op.layout(node)
    n, rows, cols = layout.pes, layout.rows, layout.cols
    simd, e = int(node.attrs["simd"]), int(node.attrs["pe"])
    depth = int(node.attrs["queue_depth"])
    in_el = d.element(node.inputs[0])
    out_el = d.element(node.name)
    acc = op.acc_range(node, d.ranges[node.inputs[0]])
    acc_bits = signed_bits(acc.min, acc.max)
    cb, ib = layout.code_bits, layout.index_bits
    vb = layout.value_bits
    rpp = -(-rows // n)
    rb = addr_bits(rpp)
    entries = layout.pe_entries
    ea = addr_bits(max(1, int(entries.max(initial=0))))
    pb = max(layout.ptr_bits, ea)
    even_n, odd_n = (cols + 2) // 2, (cols + 1) // 2
    pa = max(addr_bits(even_n), addr_bits(odd_n))
    direction = node.tensors["direction"].astype(np.int64)
    bias = node.tensors.get("bias")
    has_post = bool(np.any(direction < 0)) or bias is not None
    bias_bits = 0 if bias is None else signed_bits(int(bias.min()), int(bias.max()))
    post_bits = 1 + bias_bits
    unit = Unit(
        node.name,
        node.op,
        f"EIE-style sparse engine, {rows} rows x {cols} inputs, {n} PEs, queue depth "
        f"{depth}, {simd} inputs / {e} outputs per beat, {int(entries.sum())} entries "
        f"({layout.padding_entries} padding)",
        [{"prefix": "s_axis", "width": simd * in_el.bits}],
        e * out_el.bits,
        [],
        {"sparse_engine.v"},
    )
    ew = cb + ib
    qa = addr_bits(rows // e)
    unit.wires += [
        # a PE without entries has no entry ROM to read its enable and address
        {"name": "e_en", "width": n, "unused": bool(np.any(entries == 0))},
        {"name": "e_addr", "width": n * ea, "unused": bool(np.any(entries == 0))},
        {"name": "e_data", "width": n * ew},
        {"name": "pe_en", "width": n},
        {"name": "pe_addr", "width": n * pa},
        {"name": "pe_data", "width": n * pb},
        {"name": "po_en", "width": n},
        {"name": "po_addr", "width": n * pa},
        {"name": "po_data", "width": n * pb},
        {"name": "q_en", "width": 1, "unused": not has_post},
        {"name": "q_addr", "width": qa, "unused": not has_post},
        {"name": "q_data", "width": e * post_bits},
    ]

    def sl(bus: str, i: int, w: int) -> str:
        """Element ``i`` of a per-PE bus (``w`` bits each, 0: one bit, no range)."""
        if n * max(w, 1) == 1:
            return bus  # a one-bit wire has no range to select from
        return f"{bus}[{i}]" if w == 0 else f"{bus}[{(i + 1) * w - 1}:{i * w}]"

    for p in range(n):
        words = layout.entry_words(p)
        if words:
            _bus_rom(
                unit,
                f"{node.name}_pe{p}_entries",
                words,
                ew,
                f"PE {p} entries {{code[{cb}], gap[{ib}]}} of {node.name}",
                {"en": sl("e_en", p, 0), "addr": sl("e_addr", p, ea), "data": sl("e_data", p, ew)},
                ea,
            )
            unit.memories.append({"name": f"pe{p}_entries", "words": len(words), "bits": ew})
        else:
            unit.assigns.append({"lhs": sl("e_data", p, ew), "rhs": f"{ew}'d0"})
        ptr = layout.ptr[p].astype(np.int64)
        for bank, what, vals in (("pe", "even", ptr[0::2]), ("po", "odd", ptr[1::2])):
            _bus_rom(
                unit,
                f"{node.name}_pe{p}_ptr_{what}",
                [int(v) for v in vals],
                pb,
                f"PE {p} column pointers at {what} indices of {node.name}",
                {
                    "en": sl(f"{bank}_en", p, 0),
                    "addr": sl(f"{bank}_addr", p, pa),
                    "data": sl(f"{bank}_data", p, pb),
                },
                pa,
            )
        unit.memories.append({"name": f"pe{p}_col_ptr", "words": cols + 1, "bits": pb})
    unit.memories.append({"name": "codebook", "words": len(layout.codebook), "bits": vb})
    codebook = np.zeros(2**cb, np.int64)
    codebook[: len(layout.codebook)] = layout.codebook
    if has_post:
        b = np.zeros(rows, np.int64) if bias is None else bias.astype(np.int64)
        lanes = ((b << 1) | (direction < 0)).astype(np.int64)  # {bias, dir}
        words = [pack_word(lanes[k * e : (k + 1) * e], post_bits) for k in range(rows // e)]
        _bus_rom(
            unit,
            f"{node.name}_post",
            words,
            e * post_bits,
            f"per output beat: {{bias, direction}} of {node.name}",
            {"en": "q_en", "addr": "q_addr", "data": "q_data"},
            qa,
        )
    else:
        unit.assigns.append({"lhs": "q_data", "rhs": f"{e * post_bits}'d0"})
    params = [
        ("N", n),
        ("COLS", cols),
        ("ROWS", rows),
        ("SIMD", simd),
        ("IN_BITS", in_el.bits),
        ("IN_SIGNED", int(in_el.signed)),
        ("CB", cb),
        ("IB", ib),
        ("VB", vb),
        ("CODEBOOK", f"{2**cb * vb}'h{pack_word(codebook, vb):x}"),
        ("ACC_BITS", acc_bits),
        ("OUT_BITS", out_el.bits),
        ("E", e),
        ("QDEPTH", depth),
        ("RPP", rpp),
        ("RB", rb),
        ("EA", ea),
        ("PA", pa),
        ("PB", pb),
        ("HAS_POST", int(has_post)),
        ("POST_BITS", post_bits),
        ("QA", qa),
    ]
    ports = [
        ("clk", "clk"),
        ("rst_n", "rst_n"),
        ("s_axis_tdata", "s_axis_tdata"),
        ("s_axis_tvalid", "s_axis_tvalid"),
        ("s_axis_tready", "s_axis_tready"),
        ("m_axis_tdata", "m_axis_tdata"),
        ("m_axis_tvalid", "m_axis_tvalid"),
        ("m_axis_tready", "m_axis_tready"),
        *[(f"{k}_{s}", f"{k}_{s}") for k in ("e", "pe", "po") for s in ("en", "addr", "data")],
        ("q_en", "q_en"),
        ("q_addr", "q_addr"),
        ("q_data", "q_data"),
    ]
    unit.cores.append(Core("sparse_engine", "u_core", params, ports))
    unit.notes.append(
        f"in {in_el.bits}-bit{' signed' if in_el.signed else ''}, codes {cb}-bit, row index "
        f"{ib}-bit, codebook {len(layout.codebook)} x {vb}-bit, acc {acc_bits}-bit, out "
        f"{out_el.bits}-bit; entries per PE {entries.tolist()}"
    )
    return unit
