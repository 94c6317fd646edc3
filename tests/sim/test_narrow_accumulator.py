"""An accumulator one bit too narrow is caught, at its layer, because the extremes are simulated.

The generator is run with :meth:`Design.acc_bits` returning one bit less for ONE unit
(``conv0`` of ``lenet_like``, a padded 3x3 convolution on 4-bit inputs: accumulator
[-300, 285], 10 bits; its thresholds fit in 9, so the narrowed design still builds and
differs only in its accumulator). Everything that derives from that width (the register,
the threshold ROM words, the comparators) follows it, as it would after a wrong formula.
On Icarus:

* the unmodified design equals golden on the random + extreme vectors;
* the narrowed one is reported at ``mt0`` (the activation conv0's unit computes), on a
  vector of the extreme set, with golden's and the RTL's values;
* the narrowed one passes the random vectors alone (the test's 12 reach only
  [-180, 155] of that accumulator, 200 would reach [-198, 184], all inside 9 bits):
  sampling does not see the bug.
"""

from __future__ import annotations

import pytest

from hw_gen.verilog.units import Design
from qfab.golden import run_golden_int
from qfab.ranges import node_ranges
from qfab.values import signed_bits
from tests.hw_gen.designs import DESIGNS
from tests.sim.conftest import input_vectors, simulate

pytestmark = pytest.mark.slow

NARROWED = "conv0"
RANDOM = 12


def narrow_one_unit(monkeypatch, name: str) -> None:
    """Make the generator size ``name``'s accumulator one bit narrower than derived."""
    derived = Design.acc_bits

    def acc_bits(self: Design, node) -> int:
        return derived(self, node) - (1 if node.name == name else 0)

    monkeypatch.setattr(Design, "acc_bits", acc_bits)


def test_the_chosen_unit_is_decided_by_its_accumulator_not_its_thresholds():
    """The premise: one bit less loses accumulator values but no threshold."""
    g, _ = DESIGNS["lenet_like"]()
    acc = node_ranges(g)[NARROWED]
    bits = signed_bits(acc.min, acc.max)
    t = g.node("mt0").tensors["thresholds"]
    assert -(2 ** (bits - 2)) <= t.min() and t.max() < 2 ** (bits - 2)
    assert acc.min < -(2 ** (bits - 2)) or acc.max >= 2 ** (bits - 2)


def test_narrowed_accumulator_is_caught_by_the_extremes_only(tmp_path, monkeypatch):
    g, settings = DESIGNS["lenet_like"]()
    _, _, eq = simulate(g, settings, tmp_path / "exact", "icarus", vectors=RANDOM)
    assert eq["mismatches"] == 0, eq["first_mismatch"]

    narrow_one_unit(monkeypatch, NARROWED)
    _, _, eq = simulate(g, settings, tmp_path / "narrow", "icarus", vectors=RANDOM)
    text = (tmp_path / "narrow" / "rtl" / f"{NARROWED}_unit.v").read_text()
    acc = node_ranges(g)[NARROWED]
    assert f".ACC_BITS({signed_bits(acc.min, acc.max) - 1})" in text
    assert eq["mismatches"] > 0
    first = eq["first_mismatch"]
    assert first["layer"] == "mt0"
    assert first["vector"] >= RANDOM, "found by an extreme vector, not a random one"
    x = input_vectors(g, RANDOM)
    want = run_golden_int(g, x).outputs["mt0"][first["vector"], first["channel"]]
    assert first["golden"] == want != first["rtl"]

    _, _, eq = simulate(g, settings, tmp_path / "random", "icarus", vectors=RANDOM, extremes=False)
    assert eq["vectors"] == RANDOM
    assert eq["mismatches"] == 0, "random vectors alone do not reach the lost range"
