"""The cycle model and the folding rules."""

from __future__ import annotations

import pytest

from hw_gen.folding import (
    LayerFold,
    auto_fold,
    check_fold,
    cycles_per_frame_bound,
    explicit_fold,
    mvau_cycles,
)
from qfab.errors import HardwareError
from qfab.random_graph import random_mlp_graph


def test_cycles_formula():
    assert mvau_cycles(64, 64, 1, 1) == 4096
    assert mvau_cycles(64, 64, 4, 16) == 64
    assert mvau_cycles(24, 13, 13, 24) == 1
    assert LayerFold("fc0", 24, 13, 1, 8).cycles == 39


def test_check_fold_names_layer_and_divisors():
    with pytest.raises(
        HardwareError,
        match=r"fc1: PE = 5 must divide MH = 24; allowed: \[1, 2, 3, 4, 6, 8, 12, 24\]",
    ):
        check_fold(LayerFold("fc1", 13, 24, 5, 1))
    with pytest.raises(HardwareError, match=r"SIMD = 2 must divide MW = 13; allowed: \[1, 13\]"):
        check_fold(LayerFold("fc2", 13, 10, 1, 2))


def test_explicit_fold_needs_one_entry_per_layer():
    g = random_mlp_graph(24, [24, 13], 10)
    folds = explicit_fold(g, [4, 13, 2], [6, 2, 13])
    assert [(f.mw, f.mh) for f in folds] == [(24, 24), (24, 13), (13, 10)]
    assert cycles_per_frame_bound(folds) == max(f.cycles for f in folds) == 24
    with pytest.raises(HardwareError, match="2 entries for 3 Dense layers"):
        explicit_fold(g, [1, 1], [1, 1, 1])


@pytest.mark.parametrize("target", [1, 7, 64, 100, 10_000])
def test_auto_fold_meets_the_target_with_least_parallelism(target):
    g = random_mlp_graph(64, [64, 24], 10)
    folds = auto_fold(g, target)
    for f in folds:
        check_fold(f)
        full = f.pe == f.mh and f.simd == f.mw
        assert f.cycles <= target or full
        if f.pe == 1 and f.simd > 1:  # one step less SIMD would miss the target
            smaller = max(d for d in range(1, f.simd) if f.mw % d == 0)
            assert mvau_cycles(f.mw, f.mh, 1, smaller) > target
