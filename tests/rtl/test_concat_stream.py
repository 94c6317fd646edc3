"""concat_stream: per-pixel channel concatenation of two streams, under stalls; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

NAMES = ("C0", "C1", "ELEMS", "BITS0", "SIGNED0", "BITS1", "SIGNED1", "OUT_BITS")
CASES = {
    name: dict(zip(NAMES, values, strict=True))
    for name, values in {
        "unsigned_same_e1": (2, 3, 1, 4, 0, 4, 0, 4),
        "signed_unsigned_widen_e3": (6, 3, 3, 4, 1, 2, 0, 5),
        "one_channel_signed_e1": (1, 5, 1, 3, 0, 3, 1, 4),
        "unsigned_widen_e2": (4, 6, 2, 2, 0, 3, 0, 3),
    }.items()
}
SOURCES = [rtl_source("concat_stream.v")]


def run(tmp_path, name, simulator="icarus", testcase="concat_matches_reference", **case):
    run_unit_bench(
        tmp_path,
        toplevel="concat_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_concat",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_concat_under_stalls(tmp_path, name):
    run(tmp_path, name, frames=3, pixels=5, seed=len(name), in_stall=0.3, out_stall=0.4)


def test_concat_one_beat_per_cycle(tmp_path):
    run(tmp_path, "signed_unsigned_widen_e3", frames=3, pixels=4, check_rate=True)


def test_concat_verilator(tmp_path):
    run(
        tmp_path,
        "unsigned_widen_e2",
        simulator="verilator",
        frames=3,
        pixels=4,
        seed=9,
        in_stall=0.4,
        out_stall=0.3,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_concat_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        "signed_unsigned_widen_e3",
        testcase="concat_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        pixels=5,
        seed=6,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_concat_is_lint_clean(name):
    assert_lint_clean(SOURCES, "concat_stream", CASES[name])
