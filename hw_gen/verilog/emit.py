"""Hardware graph -> a self-contained folder of Verilog plus its manifest ``design.json``.

One wrapper module per node (:mod:`hw_gen.verilog.units`), the ``rtl/`` library modules
they use, the node ROMs, and the top ``qfab_top`` wiring them with AXI-Stream
(``s_axis`` in, ``m_axis`` out with ``tlast`` per frame). The manifest describes the
edges so that simulators, drivers and boards never read Verilog: ports and their element
encoding (bits, signed, bipolar), elements per beat, beats per frame, the input scale
and output dequantization, every tap stream (a unit whose output equals a model-graph
node), the clock, and the performance model. Everything is written into a temporary
folder first and renamed into place.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from hw_gen.manifest import manifest, padded_bits, write_folder
from hw_gen.perf import perf_model
from hw_gen.verilog.units import EMITTERS, Design, Unit
from qfab.errors import HardwareError
from qfab.ir import Graph, Node, beat_elems


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("hw_gen", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def plan_units(graph: Graph) -> tuple[Design, list[Unit]]:
    """Emit every node (a node no emitter knows is refused by name, before any file)."""
    d = Design(graph)
    units = []
    for n in graph.nodes[1:]:
        if n.op == "OutputDequant":
            continue
        emit = EMITTERS.get(n.op)
        if emit is None:
            raise HardwareError(
                f"node '{n.name}' ({n.op}): the Verilog generator has no unit for it; "
                f"it maps {sorted(EMITTERS)}"
            )
        units.append(emit(d, n))
    return d, units


def _source_of(d: Design, reader: Node, index: int, src: str) -> dict[str, str]:
    """The wires input ``index`` of ``reader`` connects to: the top's s_axis, one output
    of a fork (one per reading slot), or a node's stream."""
    node = d.graph.node(src)
    if node.op == "InputQuant":
        width = d.stream_bits(src)
        return {
            "data": "s_axis_tdata"
            if width == padded_bits(width)
            else f"s_axis_tdata[{width - 1}:0]",
            "valid": "s_axis_tvalid",
            "ready": "s_axis_tready",
        }
    if node.op == "Fork":
        k = [(r.name, i) for r, i in d.readers(src)].index((reader.name, index))
        return {
            "data": f"n_{src}_tdata",
            "valid": f"n_{src}_tvalid[{k}]",
            "ready": f"n_{src}_tready[{k}]",
        }
    return {"data": f"n_{src}_tdata", "valid": f"n_{src}_tvalid", "ready": f"n_{src}_tready"}


def generate_verilog(
    graph: Graph,
    out_dir: str | os.PathLike[str],
    *,
    clock_mhz: float = 100.0,
    top: str = "qfab_top",
) -> dict[str, Any]:
    """Write the design of hardware graph ``graph`` into ``out_dir`` (replaced atomically);
    return its manifest (also written as ``design.json``)."""
    if graph.nodes[-1].op != "OutputDequant":
        raise HardwareError("the hardware graph must end in OutputDequant")
    d, units = plan_units(graph)
    env = _env()
    files: dict[str, str] = {}
    library = sorted({lib for u in units for lib in u.library})
    for lib in library:
        files[lib] = resources.files("rtl").joinpath(lib).read_text()
    unit_template = env.get_template("unit.v.j2")
    for u in units:
        files.update(u.files)
        files[f"{u.module}.v"] = unit_template.render(
            module=u.module,
            node=u.node,
            op=u.op,
            what=u.what,
            notes=u.notes,
            inputs=u.inputs,
            out_width=u.out_width,
            fork_n=u.fork_n,
            wires=u.wires,
            assigns=u.assigns,
            roms=u.roms,
            cores=u.cores,
        )
    perf = perf_model(graph, clock_mhz)
    first, last = graph.nodes[0].name, graph.nodes[-1].inputs[0]
    in_bits, out_bits = d.stream_bits(first), d.stream_bits(last)
    out_beats = int(np.prod(d.shapes[last])) // int(beat_elems(graph.node(last)))
    rows = []
    for u in units:
        n = graph.node(u.node)
        fold = "".join(f" {k.upper()}={n.attrs[k]}" for k in ("pe", "simd") if k in n.attrs)
        rows.append(
            {
                "node": u.node,
                "op": u.op,
                "shape": list(d.shapes[u.node]),
                "fold": ("," + fold) if fold else "",
                "cycles": n.attrs.get("cycles"),
                "module": u.module,
                "width": u.out_width,
                "fork_n": u.fork_n,
                "inputs": [
                    {"prefix": p["prefix"], **_source_of(d, n, i, src)}
                    for i, (p, src) in enumerate(zip(u.inputs, n.inputs, strict=True))
                ],
            }
        )
    files[f"{top}.v"] = env.get_template("top.v.j2").render(
        top=top,
        units=rows,
        ii=perf["cycles_per_frame"],
        bottleneck=perf["bottleneck"],
        in_elems=beat_elems(graph.nodes[0]),
        in_bits=d.element(first).bits,
        in_beats=perf["ports"]["input port"],
        out_elems=beat_elems(graph.node(last)),
        out_bits=d.element(last).bits,
        out_beats=out_beats,
        in_width=padded_bits(in_bits),
        in_pad=padded_bits(in_bits) - in_bits,
        out_width=padded_bits(out_bits),
        out_pad=padded_bits(out_bits) - out_bits,
        last=last,
        beat_bits=max(1, (out_beats - 1).bit_length()),
    )
    sources = [
        *library,
        *sorted(k for k in files if k not in library and k != f"{top}.v"),
        f"{top}.v",
    ]
    memories = {u.node: u.memories for u in units if u.memories}
    info = manifest(d, top, clock_mhz, sources, memories)
    files["design.json"] = json.dumps(info, indent=2) + "\n"
    write_folder(Path(out_dir), files)
    return info
