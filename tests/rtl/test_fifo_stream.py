"""fifo_stream: order under stalls, capacity DEPTH + 1, full rate, latency 2; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

CASES = {
    "d2_w8": {"WIDTH": 8, "DEPTH": 2},
    "d3_w5": {"WIDTH": 5, "DEPTH": 3},
    "d37_w12": {"WIDTH": 12, "DEPTH": 37},
    "d64_w1": {"WIDTH": 1, "DEPTH": 64},
}
SOURCES = [rtl_source("fifo_stream.v")]


def run(tmp_path, name, simulator="icarus", testcase="fifo_keeps_every_word_in_order", **case):
    run_unit_bench(
        tmp_path,
        toplevel="fifo_stream",
        sources=SOURCES,
        parameters=CASES[name],
        bench="tests.rtl.bench_fifo",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


STALLS = [  # (case, input stall, output stall): balanced, mostly full, mostly empty
    ("d2_w8", 0.3, 0.4),
    ("d2_w8", 0.1, 0.7),
    ("d3_w5", 0.3, 0.4),
    ("d37_w12", 0.1, 0.7),
    ("d37_w12", 0.6, 0.1),
    ("d64_w1", 0.2, 0.5),
]


@pytest.mark.parametrize(("name", "in_stall", "out_stall"), STALLS)
def test_fifo_under_stalls(tmp_path, name, in_stall, out_stall):
    run(tmp_path, name, frames=3, seed=len(name), in_stall=in_stall, out_stall=out_stall)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fifo_capacity_and_rate(tmp_path, name):
    run(tmp_path, name, frames=3, check_capacity=True, check_rate=True)


def test_fifo_latency_and_rate(tmp_path):
    run(tmp_path, "d2_w8", frames=3, check_rate=True)


def test_fifo_verilator(tmp_path):
    run(
        tmp_path,
        "d37_w12",
        simulator="verilator",
        frames=4,
        seed=6,
        in_stall=0.2,
        out_stall=0.6,
        check_capacity=True,
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_fifo_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        "d3_w5",
        testcase="fifo_survives_long_stalls_and_a_reset_mid_frame",
        frames=4,
        beats=12,
        seed=8,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_fifo_is_lint_clean(name):
    assert_lint_clean(SOURCES, "fifo_stream", CASES[name])
