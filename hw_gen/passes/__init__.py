"""Lowering: the model graph -> the hardware graph, one small IR -> IR pass at a time.

:func:`lower` runs, in order: :class:`RemoveDeadNodes`, :class:`LowerSparse` (when
layers go on the sparse engine), :class:`LowerConv`, :class:`LowerDense`,
:class:`LowerLayout`, :class:`MovePoolPastThresholds`, :class:`FuseThresholds`,
:class:`CheckLowered`, :class:`ToXnor`, :class:`SetFolding`, :class:`InsertFork`,
:class:`InsertFIFO`, :class:`InsertDWC`, :class:`AnnotateCycles`. The result is a
validated hardware graph; :func:`qfab.golden.compare_levels` runs both graphs with golden
and compares every node that claims to equal a model node.
"""

from __future__ import annotations

from hw_gen.passes.base import Pass
from hw_gen.passes.folding import SetFolding, compute_units
from hw_gen.passes.insert import AnnotateCycles, InsertDWC, InsertFIFO, InsertFork
from hw_gen.passes.lower_compute import FuseThresholds, LowerConv, LowerDense
from hw_gen.passes.lower_streams import (
    CheckLowered,
    LowerLayout,
    MovePoolPastThresholds,
    RemoveDeadNodes,
)
from hw_gen.passes.to_sparse import LowerSparse
from hw_gen.passes.to_xnor import ToXnor
from qfab.errors import HardwareError, IRError
from qfab.ir import Graph

__all__ = [
    "AnnotateCycles",
    "CheckLowered",
    "FuseThresholds",
    "InsertDWC",
    "InsertFIFO",
    "InsertFork",
    "LowerConv",
    "LowerDense",
    "LowerLayout",
    "LowerSparse",
    "MovePoolPastThresholds",
    "Pass",
    "RemoveDeadNodes",
    "SetFolding",
    "ToXnor",
    "compute_units",
    "lower",
    "structural_passes",
    "unfolded_lowering",
    "unfolded_passes",
]


def structural_passes() -> list[Pass]:
    """The passes that do not depend on folding (model ops -> hardware units)."""
    return [
        RemoveDeadNodes(),
        LowerConv(),
        LowerDense(),
        LowerLayout(),
        MovePoolPastThresholds(),
        FuseThresholds(),
        CheckLowered(),
        ToXnor(),
    ]


def unfolded_passes(
    sparse: dict | None = None, max_port_bits: int = 64, xnor: bool = True
) -> list[Pass]:
    """:func:`structural_passes` with the lowering options: ``LowerSparse`` right after
    dead-node removal when layers go on the sparse engine, no ``ToXnor`` if ``xnor`` is
    False."""
    passes = structural_passes()
    if sparse and (sparse.get("default") or sparse.get("layers")):
        passes.insert(1, LowerSparse(sparse.get("default"), sparse.get("layers"), max_port_bits))
    if not xnor:
        passes = [p for p in passes if not isinstance(p, ToXnor)]
    return passes


def _apply(passes: list[Pass], graph: Graph) -> Graph:
    g = Graph(graph.copy().nodes, {})
    g.validate("model graph")  # a pass must never be the first to meet an invalid model
    for p in passes:
        g = p.apply(g)
    return g


def unfolded_lowering(
    graph: Graph, *, sparse: dict | None = None, max_port_bits: int = 64, xnor: bool = True
) -> Graph:
    """``graph`` lowered up to (not including) folding: its compute units, in the order
    ``hw.folding`` lists PE/SIMD for them (what a tool choosing a folding looks at)."""
    return _apply(unfolded_passes(sparse, max_port_bits, xnor), graph)


def lower(
    graph: Graph,
    *,
    pe: list[int] | None = None,
    simd: list[int] | None = None,
    target_cycles: int | None = None,
    max_port_bits: int = 64,
    xnor: bool = True,
    sparse: dict | None = None,
) -> Graph:
    """The hardware graph of ``graph`` (a model graph), folded and validated.

    ``pe``/``simd``: explicit folding, one entry per compute unit (else ``auto`` to
    ``target_cycles``; None: :func:`~hw_gen.passes.folding.default_target_cycles`).
    ``xnor=False`` keeps bipolar layers on the generic MVAU (for comparisons).
    ``sparse``: ``{"default": settings or None, "layers": {name: settings or None}}``
    puts fully connected layers on the EIE-style engine (:class:`LowerSparse`). The model
    graph is not changed; attach the result as its ``lowered``.
    """
    unfolded = unfolded_passes(sparse, max_port_bits, xnor)
    folding = SetFolding(pe, simd, target_cycles, max_port_bits)
    folded = [folding, InsertFork(), InsertFIFO(), InsertDWC(max_port_bits), AnnotateCycles()]
    g = _apply(unfolded, graph)
    for p in folded:
        g = p.apply(g)
    try:
        g.validate("hardware graph", "hardware")
    except IRError as exc:  # a pass produced something invalid: a qfab bug, say which
        raise HardwareError(f"lowering produced an invalid hardware graph: {exc}") from exc
    g.meta.update(
        {
            "passes": [repr(p) for p in unfolded + folded],
            "folding": "explicit" if pe is not None else f"auto, target {folding.target} cycles",
            "max_port_bits": max_port_bits,
        }
    )
    return g
