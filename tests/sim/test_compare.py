"""The RTL-vs-golden comparison itself, on hand-made simulation results (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import MismatchError
from qfab.golden import run_golden_int
from qfab.random_graph import random_mlp_graph
from sim.compare import compare_rtl_to_golden
from sim.runner import SimResult


def fake_result(graph, x) -> SimResult:
    """What a correct simulation returns: golden's output and every tapped unit."""
    gold = run_golden_int(graph, x).outputs
    taps = {"mt0": gold["mt0"].copy(), "fc1": gold["fc1"].copy()}
    return SimResult(gold["fc1"].copy(), 10.0, 100, "verilator", taps)


def setup():
    g = random_mlp_graph(12, [7], 5, seed=3)
    return g, np.random.default_rng(0).integers(0, 256, size=(9, 12))


def test_equal_streams_have_no_mismatch():
    g, x = setup()
    eq = compare_rtl_to_golden(g, x, fake_result(g, x), "fc1")
    assert eq == {"vectors": 9, "mismatches": 0, "first_mismatch": None}


def test_first_difference_is_named_at_the_first_wrong_layer():
    g, x = setup()
    res = fake_result(g, x)
    res.taps["mt0"][4, 2] += 1  # inner layer wrong on vector 4 ...
    res.outputs[6, 1] -= 3  # ... and the output wrong on vector 6
    eq = compare_rtl_to_golden(g, x, res, "fc1")
    assert eq["mismatches"] == 2
    first = eq["first_mismatch"]
    assert (first["layer"], first["vector"], first["channel"]) == ("mt0", 4, 2)
    assert first["rtl"] == first["golden"] + 1


def test_output_only_difference_names_the_hardware_output_node():
    g, x = setup()
    res = fake_result(g, x)
    res.taps.clear()
    res.outputs[3, 4] += 1
    eq = compare_rtl_to_golden(g, x, res, "fc1")
    assert eq["mismatches"] == 1
    assert (eq["first_mismatch"]["layer"], eq["first_mismatch"]["vector"]) == ("fc1", 3)


def test_a_tap_with_missing_vectors_is_a_mismatch_not_skipped():
    g, x = setup()
    res = fake_result(g, x)
    res.taps["mt0"] = res.taps["mt0"][:-1]
    with pytest.raises(MismatchError, match="mt0: the RTL tap delivered 8 vectors"):
        compare_rtl_to_golden(g, x, res, "fc1")


def test_a_tap_that_names_no_model_node_is_refused_not_ignored():
    g, x = setup()
    res = fake_result(g, x)
    res.taps["mt9"] = res.taps["mt0"].copy()
    with pytest.raises(MismatchError, match=r"RTL taps \['mt9'\] name no integer node"):
        compare_rtl_to_golden(g, x, res, "fc1")


def test_a_tapped_layer_that_came_back_empty_or_not_at_all_is_a_mismatch():
    g, x = setup()
    res = fake_result(g, x)
    res.taps["mt0"] = res.taps["mt0"][:0]  # the runner records a tap that never fired
    with pytest.raises(MismatchError, match="mt0: the RTL tap delivered 0 vectors of 7 values"):
        compare_rtl_to_golden(g, x, res, "fc1", ["mt0", "fc1"])
    del res.taps["mt0"]
    with pytest.raises(MismatchError, match=r"no data for the tapped layers \['mt0'\]"):
        compare_rtl_to_golden(g, x, res, "fc1", ["mt0", "fc1"])
    # without the manifest's list, the remaining taps are still compared
    assert compare_rtl_to_golden(g, x, res, "fc1")["mismatches"] == 0


def test_an_output_node_missing_from_the_model_graph_is_refused():
    g, x = setup()
    with pytest.raises(MismatchError, match="output 'fc7' is no node of the model graph"):
        compare_rtl_to_golden(g, x, fake_result(g, x), "fc7")
