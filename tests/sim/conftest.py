"""Shared helpers of the simulation tests: generate, simulate, compare."""

from __future__ import annotations

import numpy as np

from hw_gen.folding import LayerFold
from hw_gen.rtl_gen import generate_rtl
from qfab.ir import Graph, input_range
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb


def input_vectors(graph: Graph, vectors: int, data_seed: int = 0) -> np.ndarray:
    """Random input integers over the InputQuant's range; vectors 0 and 1 at its extremes."""
    first = graph.nodes[0]
    bits, signed = int(first.attrs["bits"]), bool(first.attrs["signed"])
    lo, hi = input_range(bits, signed)
    x = np.random.default_rng(data_seed).integers(
        lo, hi + 1, size=(vectors, first.attrs["features"])
    )
    x[0] = lo
    x[1] = hi
    return x


def simulate(
    graph: Graph,
    folds: list[LayerFold],
    tmp_path,
    simulator: str,
    vectors: int = 24,
    backpressure: bool = False,
    seed: int = 0,
    rtl_graph: Graph | None = None,
    data_seed: int = 0,
):
    """Generate RTL (from ``rtl_graph`` if given), simulate, compare with ``graph``'s golden.

    ``data_seed`` picks the input vectors, ``seed`` the backpressure pattern.
    """
    x = input_vectors(graph, vectors, data_seed)
    design = generate_rtl(rtl_graph or graph, folds, tmp_path / "rtl")
    result = run_cocotb(
        design,
        x,
        simulator=simulator,
        backpressure=backpressure,
        seed=seed,
        build_dir=tmp_path / f"build_{simulator}",
    )
    return design, result, compare_rtl_to_golden(graph, x, result)
