"""The manifest ``design.json`` every generated design carries, and its atomic folder.

The manifest describes a design's edges so that simulators, drivers and boards never read
Verilog or C++: ports and their element encoding (bits, signed, bipolar), elements per
beat, beats per frame, the input scale and output dequantization, every tap stream (a
unit whose output equals a model-graph node), the clock and the performance model. The
Verilog and the HLS backend write the same manifest (plus ``backend``), so one driver
or bench serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hw_gen.design import Design
from hw_gen.perf import perf_model
from qfab.errors import HardwareError
from qfab.folders import atomic_folder
from qfab.ir import Graph, beat_elems

MANIFEST_FORMAT = "qfab-design"
MANIFEST_VERSION = 1


def padded_bits(bits: int) -> int:
    """``bits`` rounded up to whole bytes (an AXI-Stream TDATA width)."""
    return -(-bits // 8) * 8


def _port(d: Design, name: str, port: str) -> dict[str, Any]:
    node = d.graph.node(name)
    el = d.element(name)
    elems = int(beat_elems(node))
    feats = int(np.prod(d.shapes[name]))
    return {
        "port": port,
        "node": name,
        "tdata_bits": padded_bits(elems * el.bits),
        "element": el.as_dict(),
        "elems_per_beat": elems,
        "beats_per_frame": feats // elems,
        "features": feats,
        "shape": list(d.shapes[name]),
        "packing": "element 0 at bit 0; elements in NHWC order; beat i of a frame holds "
        "elements i*elems_per_beat ...",
    }


def manifest(
    d: Design,
    top: str,
    clock_mhz: float,
    sources: list[str],
    memories: dict[str, list[dict]] | None = None,
) -> dict[str, Any]:
    """The design's description for simulators, drivers and boards (``design.json``).

    Both backends write it (the HLS top has the same ports, beats and taps); ``memories``
    lists, per node, memories beyond its ROM files' own description."""
    g = d.graph
    memories = memories or {}
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
    taps = []
    for node in g.nodes[1:-1]:
        if node.attrs.get("model_node"):
            tap = _port(d, node.name, f"n_{node.name}")
            taps.append({**tap, "signal": f"n_{node.name}", "model_node": node.attrs["model_node"]})
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


def write_folder(out_dir: Path, files: dict[str, str]) -> None:
    """Write ``files`` into ``out_dir`` at once (:func:`qfab.folders.atomic_folder`: an
    old ``out_dir`` is replaced; a failure leaves neither half-written)."""
    with atomic_folder(out_dir, error=HardwareError) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)
