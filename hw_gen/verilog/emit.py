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
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from hw_gen.perf import perf_model
from hw_gen.verilog.units import EMITTERS, Design, Unit
from qfab.errors import HardwareError
from qfab.ir import Graph, Node, beat_elems

MANIFEST_FORMAT = "qfab-design"
MANIFEST_VERSION = 1


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("hw_gen", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _bytes(bits: int) -> int:
    return -(-bits // 8) * 8


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
            "data": "s_axis_tdata" if width == _bytes(width) else f"s_axis_tdata[{width - 1}:0]",
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


def _port(d: Design, name: str, port: str) -> dict[str, Any]:
    node = d.graph.node(name)
    el = d.element(name)
    elems = int(beat_elems(node))
    feats = int(np.prod(d.shapes[name]))
    return {
        "port": port,
        "node": name,
        "tdata_bits": _bytes(elems * el.bits),
        "element": el.as_dict(),
        "elems_per_beat": elems,
        "beats_per_frame": feats // elems,
        "features": feats,
        "shape": list(d.shapes[name]),
        "packing": "element 0 at bit 0; elements in NHWC order; beat i of a frame holds "
        "elements i*elems_per_beat ...",
    }


def manifest(d: Design, units: list[Unit], top: str, clock_mhz: float, sources: list[str]):
    """The design's description for simulators, drivers and boards (``design.json``)."""
    g = d.graph
    first, out_node = g.nodes[0], g.nodes[-1]
    last = out_node.inputs[0]
    inp = _port(d, first.name, "s_axis")
    inp.update(
        scale=float(first.attrs["scale"]),
        signed_input=bool(first.attrs["signed"]),
        quantize="clip(round_half_even(x / scale), lo, hi)",
    )
    outp = _port(d, last, "m_axis")
    outp.update(
        tlast="last beat of every frame",
        model_node=_model_node(g, last),
        dequant={
            "scale": [float(v) for v in out_node.tensors["scale"]],
            "bias": [float(v) for v in out_node.tensors["bias"]],
            "formula": "float32(acc) * scale + bias (per output channel)",
        },
    )
    memories = {u.node: u.memories for u in units if u.memories}
    taps = []
    for u in units:
        node = g.node(u.node)
        if node.attrs.get("model_node"):
            tap = _port(d, u.node, f"n_{u.node}")
            taps.append({**tap, "signal": f"n_{u.node}", "model_node": node.attrs["model_node"]})
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "top": top,
        "clock": {
            "port": "ap_clk",
            "reset": "ap_rst_n",
            "reset_active": "low",
            "mhz": clock_mhz,
        },
        "sources": sources,
        "input": inp,
        "output": outp,
        "taps": taps,
        "fifos": [
            {"node": n.name, "instance": f"u_{n.name}", "depth": int(n.attrs["depth"])}
            for n in g.nodes
            if n.op == "FIFO"
        ],
        "perf": perf_model(g, clock_mhz),
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "module": f"{n.name}_unit",
                **{
                    k: n.attrs[k]
                    for k in (
                        "pe",
                        "simd",
                        "cycles",
                        "model_node",
                        "depth",
                        "in_elems",
                        "out_elems",
                    )
                    if n.attrs.get(k) is not None
                },
                **({"memories": memories[n.name]} if n.name in memories else {}),
            }
            for n in g.nodes[1:-1]
        ],
    }


def _model_node(g: Graph, name: str) -> str | None:
    node = g.node(name)
    while node.op in ("DWC", "FIFO", "Fork"):
        node = g.node(node.inputs[0])
    return node.attrs.get("model_node")


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
        in_width=_bytes(in_bits),
        in_pad=_bytes(in_bits) - in_bits,
        out_width=_bytes(out_bits),
        out_pad=_bytes(out_bits) - out_bits,
        last=last,
        beat_bits=max(1, (out_beats - 1).bit_length()),
    )
    sources = [
        *library,
        *sorted(k for k in files if k not in library and k != f"{top}.v"),
        f"{top}.v",
    ]
    info = manifest(d, units, top, clock_mhz, sources)
    files["design.json"] = json.dumps(info, indent=2) + "\n"
    _write_folder(Path(out_dir), files)
    return info


def _write_folder(out_dir: Path, files: dict[str, str]) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
