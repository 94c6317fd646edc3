"""Folding of the dataflow MVAUs and the cycle model that goes with it.

A fully connected layer with MH outputs and MW inputs, folded by PE (outputs computed in
parallel) and SIMD (inputs consumed in parallel), takes ``(MH/PE) * (MW/SIMD)`` cycles
per frame in the streaming MVAU (one PE x SIMD step per cycle, FINN's
``get_exp_cycles``). Layers run concurrently, so the pipeline's throughput is bounded
by its slowest layer: ``max`` over layers of that product.
"""

from __future__ import annotations

from dataclasses import dataclass

from qfab.errors import HardwareError
from qfab.ir import Graph


@dataclass(frozen=True)
class LayerFold:
    """How one Dense layer is folded: MW inputs, MH outputs, PE x SIMD parallel MACs."""

    name: str
    mw: int
    mh: int
    pe: int
    simd: int

    @property
    def cycles(self) -> int:
        return mvau_cycles(self.mw, self.mh, self.pe, self.simd)


def mvau_cycles(mw: int, mh: int, pe: int, simd: int) -> int:
    """Cycles per frame of a folded MVAU: ``(MH / PE) * (MW / SIMD)``.

    Each output beat carries PE results; each takes MW/SIMD steps (one SIMD-wide slice
    of the input per cycle); there are MH/PE of them. PE must divide MH and SIMD must
    divide MW (see :func:`check_fold`).
    """
    return (mh // pe) * (mw // simd)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_fold(fold: LayerFold, index: int | None = None) -> LayerFold:
    """Raise naming the layer (and, with ``index``, the config key ``hw.folding.pe[i]``)
    and the allowed values when PE/SIMD do not divide MH/MW."""
    for key, value, dim, size in (
        ("pe", fold.pe, "MH", fold.mh),
        ("simd", fold.simd, "MW", fold.mw),
    ):
        if value < 1 or size % value:
            where = (
                f"hw.folding.{key}[{index}] = {value} ({fold.name})"
                if index is not None
                else f"{fold.name}: {key.upper()} = {value}"
            )
            raise HardwareError(f"{where} must divide {dim} = {size}; allowed: {divisors(size)}")
    return fold


def fold_layers(
    layers: list[tuple[str, int, int]], pe: list[int], simd: list[int]
) -> list[LayerFold]:
    """The user's folding for ``(name, MW, MH)`` layers: one PE and SIMD each, checked."""
    for key, vals in (("pe", pe), ("simd", simd)):
        if len(vals) != len(layers):
            raise HardwareError(
                f"hw.folding.{key}: {len(vals)} entries for {len(layers)} "
                "Dense layers; give one per layer"
            )
    return [
        check_fold(LayerFold(name, mw, mh, p, s), i)
        for i, ((name, mw, mh), p, s) in enumerate(zip(layers, pe, simd, strict=True))
    ]


def dense_layers(graph: Graph) -> list[tuple[str, int, int]]:
    """(name, MW, MH) of every Dense node, in order."""
    return [
        (n.name, int(n.tensors["weight"].shape[1]), int(n.tensors["weight"].shape[0]))
        for n in graph.nodes
        if n.op == "Dense"
    ]


def explicit_fold(graph: Graph, pe: list[int], simd: list[int]) -> list[LayerFold]:
    """The user's folding, one PE and one SIMD per Dense layer, checked."""
    return fold_layers(dense_layers(graph), pe, simd)


def auto_fold(graph: Graph, target_cycles: int) -> list[LayerFold]:
    """Least parallelism meeting ``target_cycles`` per layer (FINN's SetFolding idea).

    SIMD grows first through the divisors of MW (input parallelism is cheap: one wider
    adder tree), then PE through the divisors of MH; a layer that cannot reach the
    target is fully unrolled.
    """
    if target_cycles < 1:
        raise HardwareError(f"hw.target_cycles = {target_cycles}; allowed: >= 1")
    folds = []
    for name, mw, mh in dense_layers(graph):
        best = LayerFold(name, mw, mh, mh, mw)
        for simd in divisors(mw):
            if mvau_cycles(mw, mh, 1, simd) <= target_cycles:
                best = LayerFold(name, mw, mh, 1, simd)
                break
        else:
            for pe in divisors(mh):
                if mvau_cycles(mw, mh, pe, mw) <= target_cycles:
                    best = LayerFold(name, mw, mh, pe, mw)
                    break
        folds.append(best)
    return folds


def cycles_per_frame_bound(folds: list[LayerFold]) -> int:
    """The pipeline's modelled cycles per frame: its slowest layer."""
    return max(f.cycles for f in folds)
