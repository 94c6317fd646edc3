"""Hardware graph -> a self-contained folder of Vitis HLS C++ plus its manifest.

The HLS backend reads the same lowered graph as the Verilog one, with its folding: one
C++ function per node (``hw_gen/templates/hls/<op>.cpp.j2``, one template per node
kind), streams of the RTL's beat words between them, a top ``qfab_top`` with AXI-Stream
ports (TLAST on the output) under ``DATAFLOW``, the C-simulation harness
``csim_main.cpp`` and a Vitis HLS script ``run_hls.tcl``. A node kind the backend lacks
is refused by name before any file is written; the folder is written atomically.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from hw_gen.design import Design
from hw_gen.hls.kernels import KERNELS, MAX_WORD_BITS, STREAM_ONLY, Kernel
from hw_gen.manifest import manifest, padded_bits, write_folder
from hw_gen.perf import perf_model
from qfab.errors import HardwareError
from qfab.ir import Graph, beat_elems

#: Depth of a stream between two units that has no FIFO node (Vitis' default is 2).
DEFAULT_DEPTH = 2
#: Part and clock Vitis HLS synthesizes for when the caller names none (PYNQ-Z2's part).
DEFAULT_PART = "xc7z020clg400-1"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("hw_gen", "templates/hls"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["c"] = lambda v: "true" if v else "false"  # a C++ bool literal
    return env


def plan_kernels(graph: Graph) -> tuple[Design, list[Kernel]]:
    """One kernel per node; an op without a kernel is refused by name, before any file."""
    if graph.nodes[-1].op != "OutputDequant":
        raise HardwareError("the hardware graph must end in OutputDequant")
    missing = [n for n in graph.nodes[1:-1] if n.op not in KERNELS and n.op not in STREAM_ONLY]
    if missing:
        n = missing[0]
        raise HardwareError(
            f"node '{n.name}' ({n.op}): the HLS backend has no kernel for it; it maps "
            f"{sorted([*KERNELS, *STREAM_ONLY])} (use hw.backend: rtl for this design)"
        )
    d = Design(graph)
    kernels = [KERNELS[n.op](d, n) for n in graph.nodes[1:-1] if n.op in KERNELS]
    for k in kernels:
        bits, what = k.widest()
        if bits > MAX_WORD_BITS:
            raise HardwareError(
                f"node '{k.node}' ({k.op}): its {what} is {bits} bits wide; ap_uint allows at "
                f"most {MAX_WORD_BITS} (fold it with a smaller PE or SIMD)"
            )
    return d, kernels


def ap_int_max_w(kernels: list[Kernel]) -> int:
    """``AP_INT_MAX_W`` for a design: its widest word, rounded up to 1024 (the default)."""
    widest = max([1024, *(k.widest()[0] for k in kernels)])
    return -(-widest // 1024) * 1024


def _wiring(d: Design, kernels: list[Kernel]) -> tuple[list[dict], list[str], str]:
    """(streams, call lines, the last unit's stream). A FIFO node is its input's stream
    with the FIFO's depth; a Fork writes one stream per reading slot."""
    g = d.graph
    stream_of: dict[tuple[str, int], str] = {}  # (reader, input index) -> stream variable
    streams: dict[str, dict] = {}
    produced: dict[str, list[str]] = {}  # node -> its output stream(s)
    for n in g.nodes[1:-1]:
        if n.op == "Fork":
            outs = []
            for k, (reader, i) in enumerate(d.readers(n.name)):
                name = f"s_{n.name}_{k}"
                outs.append(name)
                stream_of[(reader.name, i)] = name
            produced[n.name] = outs
        else:
            produced[n.name] = [f"s_{n.name}"]
        for name in produced[n.name]:
            if n.op != "FIFO":
                streams[name] = {
                    "name": name,
                    "bits": d.stream_bits(n.name),
                    "depth": DEFAULT_DEPTH,
                }

    first = g.nodes[0].name  # the input stage's stream (s_axis, trimmed to its elements)
    streams[f"s_{first}"] = {
        "name": f"s_{first}",
        "bits": d.stream_bits(first),
        "depth": DEFAULT_DEPTH,
    }

    def source(node_name: str, index: int, src: str) -> str:
        if (node_name, index) in stream_of:
            return stream_of[(node_name, index)]
        node = g.node(src)
        if node.op == "InputQuant":
            return f"s_{first}"
        if node.op == "FIFO":
            inner = source(node.name, 0, node.inputs[0])
            if inner in streams:
                streams[inner]["depth"] = max(streams[inner]["depth"], int(node.attrs["depth"]))
            return inner
        return produced[src][0]

    calls = []
    for k in kernels:
        n = g.node(k.node)
        args = [source(n.name, i, s) for i, s in enumerate(n.inputs)]
        calls.append(f"{k.node}({', '.join([*args, *produced[n.name]])});")
    last = g.nodes[-1].inputs[0]
    final = source(g.nodes[-1].name, 0, last)
    return list(streams.values()), calls, final


def generate_hls(
    graph: Graph,
    out_dir: str | os.PathLike[str],
    *,
    clock_mhz: float = 100.0,
    part: str = DEFAULT_PART,
    top: str = "qfab_top",
) -> dict[str, Any]:
    """Write the HLS design of hardware graph ``graph`` into ``out_dir`` (replaced
    atomically); return its manifest (also written as ``design.json``)."""
    d, kernels = plan_kernels(graph)
    env = _env()
    bodies = [env.get_template(k.template).render(k=k, p=k.p) for k in kernels]
    streams, calls, final = _wiring(d, kernels)
    if final == f"s_{graph.nodes[0].name}":
        raise HardwareError("the hardware graph has no unit between its input and output")
    perf = perf_model(graph, clock_mhz)
    first, last = graph.nodes[0].name, graph.nodes[-1].inputs[0]
    in_bits, out_bits = d.stream_bits(first), d.stream_bits(last)
    in_beats = int(np.prod(d.shapes[first])) // int(beat_elems(graph.nodes[0]))
    out_beats = int(np.prod(d.shapes[last])) // int(beat_elems(graph.node(last)))
    calls.insert(0, f"{top}_input(s_axis, s_{first});")
    calls.append(f"{top}_output({final}, m_axis);")
    ctx = {
        "top": top,
        "in_bits": in_bits,
        "out_bits": out_bits,
        # the ports' TDATA is whole bytes, as the Verilog top's (design.json's tdata_bits)
        "in_port_bits": padded_bits(in_bits),
        "out_port_bits": padded_bits(out_bits),
        "in_beats": in_beats,
        "out_beats": out_beats,
        "in_elems": beat_elems(graph.nodes[0]),
        "out_elems": beat_elems(graph.node(last)),
        "in_el": d.element(first),
        "out_el": d.element(last),
        "ii": perf["cycles_per_frame"],
        "bottleneck": perf["bottleneck"],
        "ap_int_max_w": ap_int_max_w(kernels),
    }
    files = {
        "qfab_hls.h": resources.files("hw_gen").joinpath("templates/hls/qfab_hls.h").read_text(),
        f"{top}.h": env.get_template("top.h.j2").render(**ctx),
        f"{top}.cpp": env.get_template("top.cpp.j2").render(
            **ctx, bodies=bodies, streams=streams, calls=calls
        ),
        "csim_main.cpp": env.get_template("csim_main.cpp.j2").render(**ctx),
        "run_hls.tcl": env.get_template("run_hls.tcl.j2").render(
            top=top,
            project=f"{top}_hls",
            part=part,
            clock_mhz=clock_mhz,
            period_ns=round(1000.0 / clock_mhz, 3),
        ),
    }
    info = manifest(d, top, clock_mhz, ["qfab_hls.h", f"{top}.h", f"{top}.cpp"])
    info["backend"] = "hls"
    info["testbench"] = ["csim_main.cpp"]
    info["vitis"] = {"script": "run_hls.tcl", "part": part, "command": "vitis_hls -f run_hls.tcl"}
    files["design.json"] = json.dumps(info, indent=2) + "\n"
    write_folder(Path(out_dir), files)
    return info
