"""Shared helpers of the simulation tests: generate, simulate, compare."""

from __future__ import annotations

import numpy as np

from hw_gen.folding import LayerFold
from hw_gen.rtl_gen import generate_rtl
from qfab.ir import Graph
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb


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
    bits = int(graph.nodes[0].attrs["bits"])
    x = np.random.default_rng(data_seed).integers(
        0, 2**bits, size=(vectors, graph.nodes[0].attrs["features"])
    )
    x[0] = 0  # the extremes of the input range
    x[1] = 2**bits - 1
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
