"""add_stream: elementwise shifted sum of two streams, under stalls on all ports; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

NAMES = ("ELEMS", "A_BITS", "A_SIGNED", "B_BITS", "B_SIGNED", "SHIFT_A", "SHIFT_B", "OUT_BITS")
CASES = {
    name: dict(zip(NAMES, values, strict=True))
    for name, values in {
        "unsigned_signed_shift_a_e1": (1, 4, 0, 4, 1, 1, 0, 7),
        "signed_shift_b_e3": (3, 5, 1, 3, 1, 0, 2, 8),
        "unsigned_same_width_e2": (2, 8, 0, 8, 0, 0, 0, 9),
        "truncated_wider_input_e2": (2, 6, 1, 4, 0, 1, 0, 5),
    }.items()
}
SOURCES = [rtl_source("add_stream.v")]


def run(tmp_path, name, simulator="icarus", testcase="add_matches_reference", **case):
    run_unit_bench(
        tmp_path,
        toplevel="add_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_add",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_add_under_stalls(tmp_path, name):
    run(tmp_path, name, frames=4, beats=9, seed=len(name), in_stall=0.3, out_stall=0.4)


def test_add_one_beat_per_cycle(tmp_path):
    run(tmp_path, "signed_shift_b_e3", frames=3, beats=8, check_rate=True)


def test_add_verilator(tmp_path):
    run(
        tmp_path,
        "unsigned_signed_shift_a_e1",
        simulator="verilator",
        frames=4,
        beats=8,
        seed=7,
        in_stall=0.5,
        out_stall=0.2,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_add_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on all three ports; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        "signed_shift_b_e3",
        testcase="add_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        beats=9,
        seed=5,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_add_is_lint_clean(name):
    assert_lint_clean(SOURCES, "add_stream", CASES[name])
