"""Shared helpers of the simulation tests: lower, generate, simulate, compare."""

from __future__ import annotations

from typing import Any

import numpy as np

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.extremes import extreme_vectors
from qfab.ir import Graph, input_range
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb


def input_vectors(
    graph: Graph, vectors: int, data_seed: int = 0, extremes: bool = True
) -> np.ndarray:
    """``vectors`` random input integers over the InputQuant's range (vectors 0 and 1 at
    its ends), then the extreme vectors of :mod:`qfab.extremes` (unless ``extremes`` is
    False): the first layers' accumulators driven to their derived min and max on every
    channel (exactly), deeper ones as far as a budgeted search gets (their derived ranges
    are often unreachable). The count is ``vectors`` + the extremes'."""
    first = graph.nodes[0]
    bits, signed = int(first.attrs["bits"]), bool(first.attrs["signed"])
    lo, hi = input_range(bits, signed)
    x = np.random.default_rng(data_seed).integers(
        lo, hi + 1, size=(vectors, first.attrs["features"])
    )
    x[0] = lo
    x[1] = hi
    if not extremes:
        return x
    return np.concatenate([x, extreme_vectors(graph).vectors])


def simulate(
    graph: Graph,
    settings: dict[str, Any],
    tmp_path,
    simulator: str,
    vectors: int = 24,
    backpressure: bool = False,
    seed: int = 0,
    rtl_graph: Graph | None = None,
    data_seed: int = 0,
    extremes: bool = True,
):
    """Lower and generate (from ``rtl_graph`` if given), simulate, compare with ``graph``.

    ``data_seed`` picks the input vectors, ``seed`` the backpressure pattern; the extreme
    vectors follow the ``vectors`` random ones unless ``extremes`` is False
    (:func:`input_vectors`).
    """
    x = input_vectors(graph, vectors, data_seed, extremes)
    hw = lower(rtl_graph or graph, **settings)
    manifest = generate_verilog(hw, tmp_path / "rtl")
    result = run_cocotb(
        tmp_path / "rtl",
        x,
        simulator=simulator,
        backpressure=backpressure,
        seed=seed,
        build_dir=tmp_path / f"build_{simulator}",
    )
    tapped = [t["model_node"] for t in manifest["taps"]]
    eq = compare_rtl_to_golden(graph, x, result, manifest["output"]["model_node"], tapped)
    return manifest, result, eq
