"""Level 2: generated RTL == golden, integer for integer, on every simulated vector.

Designs are random IR graphs (no training needed) covering odd layer sizes, bit widths
2/3/4/8, bipolar (w1a1) and signed activations, signed inputs, PE != next SIMD (width
converters 4->2, 2->24, 4->6, 6->4), no folding and full folding; each runs on
Verilator, and most on Icarus as a second opinion.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hw_gen.folding import auto_fold, explicit_fold
from qfab.golden import run_golden_int
from qfab.random_graph import random_mlp_graph
from tests.sim.conftest import input_vectors, simulate

pytestmark = pytest.mark.slow

DESIGNS = {
    # name: (graph kwargs, pe, simd)
    "w3a2_24_13_dwc": (
        dict(features=24, hidden=[24, 13], classes=10, weight_bits=3, act_bits=2, input_bits=4),
        [4, 13, 2],
        [6, 2, 13],
    ),
    "w8a8_24_13": (
        dict(features=24, hidden=[24, 13], classes=10, weight_bits=8, act_bits=8, input_bits=8),
        [2, 1, 5],
        [3, 24, 1],
    ),
    "w4a4_unfolded": (
        dict(features=12, hidden=[13], classes=5, weight_bits=4, act_bits=4, input_bits=6),
        [1, 1],
        [1, 1],
    ),
    "w2a2_full_parallel": (
        dict(features=24, hidden=[13], classes=10, weight_bits=2, act_bits=2, input_bits=8),
        [13, 10],
        [24, 13],
    ),
    "w1a1_bipolar": (
        dict(features=24, hidden=[24, 16], classes=10, weight_bits=1, act_bits=1, input_bits=8),
        [4, 8, 5],
        [8, 4, 8],
    ),
    "w4a3_signed": (
        dict(
            features=16,
            hidden=[13, 12],
            classes=7,
            weight_bits=4,
            act_bits=3,
            input_bits=5,
            signed_acts=True,
        ),
        [13, 4, 7],
        [4, 13, 6],
    ),
    "w2a3_signed_input_dwc_down": (
        dict(
            features=20,
            hidden=[12],
            classes=6,
            weight_bits=2,
            act_bits=3,
            input_bits=6,
            signed_input=True,
        ),
        [6, 3],
        [5, 4],
    ),
}


def design(name, seed=1):
    kwargs, pe, simd = DESIGNS[name]
    kwargs = dict(kwargs)
    g = random_mlp_graph(
        kwargs.pop("features"), kwargs.pop("hidden"), kwargs.pop("classes"), seed=seed, **kwargs
    )
    return g, explicit_fold(g, pe, simd)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_verilator_equals_golden(tmp_path, name):
    g, folds = design(name)
    d, result, eq = simulate(g, folds, tmp_path, "verilator", vectors=40)
    assert eq["vectors"] == 40
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    # steady state within 5% of the model's bound, max over layers of (MH/PE)*(MW/SIMD)
    assert result.cycles_per_frame == pytest.approx(d.cycles_bound, rel=0.05)


@pytest.mark.parametrize(
    "name",
    ["w3a2_24_13_dwc", "w8a8_24_13", "w1a1_bipolar", "w4a3_signed", "w2a3_signed_input_dwc_down"],
)
def test_icarus_equals_golden(tmp_path, name):
    g, folds = design(name)
    _, result, eq = simulate(g, folds, tmp_path, "icarus", vectors=16)
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert result.simulator == "icarus"


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_backpressure_and_gaps_change_no_result(tmp_path, simulator):
    g, folds = design("w3a2_24_13_dwc")
    _, steady, eq = simulate(g, folds, tmp_path / "a", simulator, vectors=20)
    _, stalled, eq_bp = simulate(
        g, folds, tmp_path / "b", simulator, vectors=20, backpressure=True, seed=3
    )
    assert eq["mismatches"] == 0 and eq_bp["mismatches"] == 0, eq_bp["first_mismatch"]
    assert (stalled.outputs == steady.outputs).all()
    assert stalled.total_cycles > steady.total_cycles  # the stalls really happened


def test_corrupted_weight_is_reported_at_its_layer(tmp_path):
    """The check can fail: one wrong weight in the generated ROM of fc1 is caught at mt1."""
    g, folds = design("w3a2_24_13_dwc")
    bad = copy.deepcopy(g)
    w = bad.node("fc1").tensors["weight"]
    w[5, 3] = w[5, 3] + 1 if w[5, 3] < 3 else w[5, 3] - 1
    _, _, eq = simulate(g, folds, tmp_path, "icarus", vectors=40, rtl_graph=bad)
    # where the corrupted network first differs from the true one, by golden
    x = input_vectors(g, 40)
    good, wrong = run_golden_int(g, x).outputs["mt1"], run_golden_int(bad, x).outputs["mt1"]
    differs = np.flatnonzero((good != wrong).any(axis=1))
    assert len(differs) > 0, "the corruption must change an activation on these vectors"
    assert eq["mismatches"] > 0
    first = eq["first_mismatch"]
    assert (first["layer"], first["vector"], first["channel"]) == ("mt1", differs[0], 5)
    assert (first["golden"], first["rtl"]) == (good[differs[0], 5], wrong[differs[0], 5])


def test_auto_folded_mlp_hits_the_bound(tmp_path):
    g = random_mlp_graph(64, [64, 64], 10, weight_bits=2, act_bits=2, seed=2)
    folds = auto_fold(g, 64)
    d, result, eq = simulate(g, folds, tmp_path, "verilator", vectors=24)
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    assert d.cycles_bound == 64
    assert result.cycles_per_frame == pytest.approx(64, rel=0.05)
