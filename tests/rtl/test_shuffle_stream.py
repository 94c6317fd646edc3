"""shuffle_stream: per-pixel channel shuffle, ping-pong buffered, under stalls; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

CASES = {
    "c4_g2_e1": {"C": 4, "G": 2, "ELEMS": 1, "EBITS": 4},
    "c6_g3_e2": {"C": 6, "G": 3, "ELEMS": 2, "EBITS": 3},
    "c10_g2_e5_bipolar": {"C": 10, "G": 2, "ELEMS": 5, "EBITS": 1},
    "c12_g4_e12": {"C": 12, "G": 4, "ELEMS": 12, "EBITS": 2},
    "c9_g3_e3": {"C": 9, "G": 3, "ELEMS": 3, "EBITS": 5},
}
SOURCES = [rtl_source("shuffle_stream.v")]


def run(tmp_path, name, simulator="icarus", testcase="shuffle_matches_reference", **case):
    run_unit_bench(
        tmp_path,
        toplevel="shuffle_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_shuffle",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_shuffle_under_stalls(tmp_path, name):
    run(tmp_path, name, frames=3, pixels=5, seed=len(name), in_stall=0.3, out_stall=0.4)


def test_shuffle_one_beat_per_cycle(tmp_path):
    run(tmp_path, "c6_g3_e2", frames=3, pixels=4, check_rate=True)


def test_shuffle_verilator(tmp_path):
    run(
        tmp_path,
        "c9_g3_e3",
        simulator="verilator",
        frames=3,
        pixels=5,
        seed=4,
        in_stall=0.3,
        out_stall=0.5,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_shuffle_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        "c6_g3_e2",
        testcase="shuffle_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        pixels=5,
        seed=7,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_shuffle_is_lint_clean(name):
    assert_lint_clean(SOURCES, "shuffle_stream", CASES[name])
