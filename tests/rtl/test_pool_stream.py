"""pool_stream: max over non-overlapping windows, odd sizes dropped, under stalls; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

NAMES = ("H", "W", "C", "KH", "KW", "ELEMS", "EBITS", "SIGNED")
CASES = {
    name: dict(zip(NAMES, values, strict=True))
    for name, values in {
        "unsigned_2x2_e1": (4, 4, 3, 2, 2, 1, 4, 0),
        "signed_odd_e2": (5, 7, 6, 2, 3, 2, 5, 1),  # last row and column dropped
        "bipolar_odd_e3": (7, 5, 3, 3, 2, 3, 1, 0),  # 1-bit: max is OR
        "unsigned_1x1_e4": (3, 2, 4, 1, 1, 4, 3, 0),
        "signed_3x3_full_e5": (6, 3, 5, 3, 3, 5, 3, 1),
        "unsigned_c16_e4": (4, 4, 16, 2, 2, 4, 4, 0),  # CF 4: the synthesis-depth cases
        "unsigned_8x8_c6_e2": (8, 8, 6, 2, 2, 2, 4, 0),
        "signed_one_column": (5, 1, 4, 2, 1, 2, 4, 1),  # W = KW = 1, last row dropped
        "unsigned_one_row": (1, 7, 2, 1, 3, 2, 3, 0),  # H = KH = 1, CF 1: a word per beat
        "signed_one_window_cf2": (4, 5, 4, 2, 2, 2, 4, 1),  # OW 2, CF 2, column dropped
    }.items()
}
SOURCES = [rtl_source("pool_stream.v")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pool_under_stalls(tmp_path, name):
    run_unit_bench(
        tmp_path,
        toplevel="pool_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_pool",
        testcase="pool_matches_reference",
        case={"frames": 3, "seed": len(name), "in_stall": 0.3, "out_stall": 0.4},
    )


@pytest.mark.parametrize("name", ["signed_odd_e2", "bipolar_odd_e3", "signed_3x3_full_e5"])
def test_pool_one_beat_per_cycle(tmp_path, name):
    """Rate and latency; CF 1 (bipolar, 3x3 full) forwards the word written the cycle before."""
    run_unit_bench(
        tmp_path,
        toplevel="pool_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_pool",
        testcase="pool_matches_reference",
        case={"frames": 3, "check_rate": True},
    )


def test_pool_verilator(tmp_path):
    run_unit_bench(
        tmp_path,
        toplevel="pool_stream",
        sources=SOURCES,
        parameters=CASES["bipolar_odd_e3"],
        bench="tests.rtl.bench_pool",
        testcase="pool_matches_reference",
        case={"frames": 4, "seed": 5, "in_stall": 0.2, "out_stall": 0.5},
        simulator="verilator",
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_pool_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run_unit_bench(
        tmp_path,
        toplevel="pool_stream",
        sources=SOURCES,
        parameters=CASES["signed_odd_e2"],
        bench="tests.rtl.bench_pool",
        testcase="pool_survives_long_stalls_and_a_reset_mid_frame",
        case={"frames": 4, "seed": 11, **LONG_STALLS, "reset_mid_frame": reset_mid_frame},
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_pool_is_lint_clean(name):
    assert_lint_clean(SOURCES, "pool_stream", CASES[name])
