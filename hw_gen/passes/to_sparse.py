"""Fully connected layers to the EIE-style sparse engine: ``Dense`` [+ ``MultiThreshold``].

A chosen ``Dense`` becomes a ``SparseMVAU`` holding its layout for ``pes`` PEs: the
layout the compression pipeline's ``encode`` step stored in the IR when its PEs and
widths match, else :func:`qfab.sparse.sparse_encode` of the IR's own integer weights
(with the layer's shared codebook when it has one). The ``MultiThreshold`` after it
becomes a stand-alone ``Thresholding`` unit. The threshold's per-channel ``direction``
(falling channels) goes into the engine, which outputs ``direction * acc``: a shared
codebook cannot negate one row without doubling, so the weights stay as trained. The
engine then equals the model's ``Dense`` only when no channel falls, and claims
``model_node`` only then.

Runs first in the lowering, before the dense passes see the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hw_gen.passes.base import Pass, replace
from qfab.errors import HardwareError
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import OPS
from qfab.ops.base import divisors
from qfab.ops.linear import stored_layout
from qfab.ranges import node_ranges
from qfab.sparse import layout_tensors, sparse_encode

#: What one sparse layer takes (``hw.pes`` ... in the config).
SPARSE_KEYS = ("pes", "queue_depth", "index_bits", "code_bits", "simd")


class LowerSparse(Pass):
    """Put the chosen ``Dense`` layers on the sparse engine.

    ``default``: the engine settings for every ``Dense`` (None: dense hardware);
    ``layers``: per-layer settings by node name (None: this layer stays dense).
    """

    def __init__(
        self,
        default: dict[str, Any] | None = None,
        layers: dict[str, dict[str, Any] | None] | None = None,
        max_port_bits: int = 64,
    ) -> None:
        self.default = default
        self.layers = dict(layers or {})
        self.max_port_bits = max_port_bits

    def __repr__(self) -> str:
        return f"LowerSparse(default={self.default}, layers={sorted(self.layers)})"

    def chosen(self, graph: Graph) -> dict[str, dict[str, Any]]:
        """Dense node name -> its engine settings, for the layers going sparse."""
        dense = [n.name for n in graph.nodes if n.op == "Dense"]
        for name, spec in self.layers.items():
            if name in dense:
                continue
            node = graph.node(name) if graph.has(name) else None
            if node is not None and spec is not None:
                raise HardwareError(
                    f"hw.layers.{name}: the sparse engine runs fully connected (Dense) "
                    f"layers; '{name}' is {node.op}. Sparse-capable layers: {dense}"
                )
            if node is None:
                raise HardwareError(
                    f"hw.layers.{name}: no such layer in the model; allowed: {dense}"
                )
        out = {}
        for name in dense:
            spec = self.layers.get(name, self.default)  # None in layers: dense
            if spec is not None:
                out[name] = {k: spec.get(k) for k in SPARSE_KEYS}
        return out

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        chosen = self.chosen(g)
        if not chosen:
            return g
        shapes = infer_shapes(g)
        ranges = node_ranges(g)
        for name, spec in chosen.items():
            n = g.node(name)
            src = n.inputs[0]
            if ranges[src].bipolar:
                raise HardwareError(
                    f"layer '{name}': its input '{src}' is bipolar (+-1, no zeros to skip); "
                    f"the sparse engine needs zeros. Put it on the dense engine "
                    f"(hw.layers.{name}.engine: dense)"
                )
            w = OPS["Dense"].weight(n)
            rows, cols = w.shape
            stored = stored_layout(n)
            want = (int(spec["pes"]), int(spec["index_bits"]), int(spec["code_bits"]))
            if stored is not None and (stored.pes, stored.index_bits, stored.code_bits) == want:
                layout = stored  # the words the 'encode' step stored: used as they are
            else:
                layout = None
            try:
                layout = layout or sparse_encode(
                    w,
                    int(spec["pes"]),
                    int(spec["index_bits"]),
                    int(spec["code_bits"]),
                    n.tensors.get("codebook"),
                    layer=name,
                )
            except Exception as exc:
                raise HardwareError(f"layer '{name}': {exc}") from exc
            simd = spec.get("simd") or self._widest(cols, ranges[src].element.bits)
            if cols % simd:
                raise HardwareError(
                    f"hw: sparse simd = {simd} for layer '{name}' must divide its {cols} "
                    f"inputs; allowed: {divisors(cols)}"
                )
            pes = int(spec["pes"])
            out_pe = max(d for d in divisors(rows) if d <= pes)
            readers = g.consumers(name)
            mt = readers[0] if len(readers) == 1 and readers[0].op == "MultiThreshold" else None
            direction = np.ones(rows, np.int64)
            if mt is not None and "direction" in mt.tensors:
                direction = mt.tensors["direction"].astype(np.int64)
            tensors = {**layout_tensors(layout), "direction": direction}
            if "bias" in n.tensors:
                tensors["bias"] = n.tensors["bias"].astype(np.int64)
            attrs = {
                "pe": out_pe,
                "simd": int(simd),
                "pes": pes,
                "queue_depth": int(spec["queue_depth"]),
                "index_bits": int(spec["index_bits"]),
                "code_bits": int(spec["code_bits"]),
            }
            if np.all(direction > 0):
                attrs["model_node"] = name
            engine = Node(name, "SparseMVAU", [src], attrs, tensors)
            if shapes[src] != (cols,) and int(np.prod(shapes[src])) != cols:
                raise HardwareError(f"layer '{name}': input shape {shapes[src]} is not {cols}")
            replace(g, name, [engine], name)
            if mt is not None:
                thr = Node(
                    mt.name,
                    "Thresholding",
                    [name],
                    {
                        "pe": out_pe,
                        "out_bits": int(mt.attrs["out_bits"]),
                        "offset": int(mt.attrs["offset"]),
                        "bipolar": bool(mt.attrs.get("bipolar", False)),
                        "model_node": mt.name,
                    },
                    {"thresholds": mt.tensors["thresholds"].astype(np.int64)},
                )
                replace(g, mt.name, [thr], thr.name)
        return g

    def _widest(self, cols: int, bits: int) -> int:
        """Inputs per beat: the most that fit ``max_port_bits`` (the LNZD scans a beat)."""
        fit = [d for d in divisors(cols) if d * bits <= self.max_port_bits]
        return fit[-1] if fit else 1
