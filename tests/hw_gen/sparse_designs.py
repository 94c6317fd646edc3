"""Small pruned (and weight-shared) MLPs for the sparse engine's tests, and their inputs.

Weights are random integers, pruned to a density by a random mask (optionally with
whole columns, rows or PE row sets zeroed) and optionally shared: snapped to ``k``
values with a codebook, as the compression pipeline's ``share`` step leaves them.
Thresholds are drawn after pruning, on the pruned accumulator ranges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qfab.ir import Graph
from qfab.random_graph import GraphBuilder


def prune_dense(
    b: GraphBuilder,
    name: str,
    density: float,
    rng: np.random.Generator,
    shared: int | None = None,
    zero_cols: tuple[int, ...] = (),
    zero_rows: tuple[int, ...] = (),
) -> None:
    """Prune the Dense ``name`` just added to ``b`` in place (and share its weights)."""
    node = next(n for n in b.nodes if n.name == name)
    w = node.tensors["weight"]
    w[rng.random(w.shape) >= density] = 0
    w[:, list(zero_cols)] = 0
    w[list(zero_rows), :] = 0
    if shared:
        nz = np.unique(w[w != 0])
        keep = rng.choice(nz, size=min(shared, len(nz)), replace=False)
        keep.sort()
        snapped = keep[np.abs(w[..., None] - keep).argmin(axis=-1)]
        w[...] = np.where(w != 0, snapped, 0)
        cb = np.unique(w[w != 0])
        node.tensors["codebook"] = cb.astype(np.int64)
        node.tensors["weight_index"] = np.where(w != 0, np.searchsorted(cb, w), -1).astype(np.int64)


def sparse_mlp(
    features: int,
    hidden: list[int],
    classes: int,
    density: float,
    *,
    weight_bits: int = 4,
    act_bits: int = 2,
    input_bits: int = 3,
    signed_input: bool = False,
    shared: int | None = None,
    seed: int = 0,
    zero_cols: tuple[int, ...] = (),
    zero_rows: tuple[int, ...] = (),
    falling: float = 0.0,
) -> Graph:
    """``InputQuant -> (Dense -> MultiThreshold)* -> Dense(+bias)``, every Dense pruned;
    ``falling``: the share of threshold channels with direction -1 (negative BN slopes)."""
    rng = np.random.default_rng(seed + 1000)
    b = GraphBuilder((features,), input_bits=input_bits, signed_input=signed_input, seed=seed)
    for i, h in enumerate(hidden):
        b.dense(h, weight_bits=weight_bits, name=f"fc{i}")
        prune_dense(b, f"fc{i}", density, rng, shared, zero_cols if i == 0 else (), zero_rows)
        b.thresholds(act_bits, name=f"mt{i}", falling=falling)
    last = f"fc{len(hidden)}"
    b.dense(classes, weight_bits=weight_bits, bias=True, name=last)
    prune_dense(b, last, density, rng, shared)
    return b.output()


def sparse_inputs(graph: Graph, vectors: int, zeros: float = 0.5, seed: int = 0) -> np.ndarray:
    """Input integers with a fraction ``zeros`` of zero activations; vector 0 all zero,
    vector 1 all at the top of the range (no zero to skip)."""
    first = graph.nodes[0]
    bits, signed = int(first.attrs["bits"]), bool(first.attrs["signed"])
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(lo, hi + 1, size=(vectors, int(first.attrs["features"])))
    x[rng.random(x.shape) < zeros] = 0
    x[0] = 0
    x[1] = hi
    return x


def engine(pes: int, queue_depth: int = 4, **kw: Any) -> dict[str, Any]:
    """Sparse settings for :func:`hw_gen.passes.lower` (every Dense on the engine)."""
    spec = {"pes": pes, "queue_depth": queue_depth, "index_bits": 4, "code_bits": 4, "simd": None}
    return {"default": {**spec, **kw}, "layers": {}}
