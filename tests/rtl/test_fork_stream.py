"""fork_stream: broadcast to N outputs, each stalling on its own; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

CASES = {
    "n2_w8": {"N": 2, "WIDTH": 8},
    "n3_w5": {"N": 3, "WIDTH": 5},
    "n8_w1": {"N": 8, "WIDTH": 1},
}
SOURCES = [rtl_source("fork_stream.v")]


def run(tmp_path, name, simulator="icarus", testcase="fork_broadcasts_every_beat", **case):
    run_unit_bench(
        tmp_path,
        toplevel="fork_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_fork",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_fork_under_stalls(tmp_path, name):
    run(tmp_path, name, frames=4, beats=12, seed=len(name), in_stall=0.3, out_stall=0.4)


@pytest.mark.parametrize("name", ["n2_w8", "n3_w5"])
def test_fork_one_beat_per_cycle(tmp_path, name):
    run(tmp_path, name, frames=3, beats=10, check_rate=True)


def test_fork_verilator(tmp_path):
    run(
        tmp_path,
        "n3_w5",
        simulator="verilator",
        frames=4,
        beats=10,
        seed=2,
        in_stall=0.2,
        out_stall=0.5,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_fork_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on the input and on each output on its
    own; with a reset while a frame is half through: every output gets every word once."""
    run(
        tmp_path,
        "n3_w5",
        testcase="fork_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        beats=10,
        seed=9,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_fork_is_lint_clean(name):
    assert_lint_clean(SOURCES, "fork_stream", CASES[name])
