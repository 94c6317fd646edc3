"""stream_dwc: element order kept across beats, any ratio, under random stalls; full rate
on the narrower side and the stated latency without stalls; lint-clean."""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS

# (EBITS, IN_ELEMS, OUT_ELEMS): up (OUT a multiple of IN), down (IN a multiple of OUT),
# neither (buffer of lcm elements), equal (a wire)
CASES = [
    (2, 1, 4),  # up x4
    (3, 4, 2),  # down x2
    (1, 6, 4),  # neither, 6 > 4
    (4, 4, 6),  # neither, 4 < 6
    (2, 3, 3),  # equal: a wire
    (16, 10, 5),  # down x2, wide elements
    (16, 5, 10),  # up x2, wide elements
    (2, 13, 24),  # neither, coprime, lcm 312
    (2, 24, 13),  # neither, coprime, lcm 312
    (8, 1, 8),  # up x8
    (8, 8, 1),  # down x8
    (3, 6, 4),  # neither, 6 > 4
    (2, 2, 3),  # neither, 2 < 3
]
VERILATOR = [(16, 10, 5), (2, 13, 24)]  # the others on Icarus
SOURCES = [rtl_source("stream_dwc.v")]
LONG_STALL_CASES = [(2, 1, 4), (3, 4, 2), (1, 6, 4), (2, 2, 3)]  # up, down, neither (> and <)


def run(
    tmp_path,
    ebits,
    n_in,
    n_out,
    simulator="icarus",
    testcase="dwc_keeps_every_element_in_order",
    **case,
):
    run_unit_bench(
        tmp_path,
        toplevel="stream_dwc",
        sources=SOURCES,
        parameters={"EBITS": ebits, "IN_ELEMS": n_in, "OUT_ELEMS": n_out},
        bench="tests.rtl.bench_dwc",
        case=case,
        simulator=simulator,
        testcase=testcase,
    )


@pytest.mark.parametrize(("ebits", "n_in", "n_out"), CASES)
def test_dwc_keeps_order_under_stalls(tmp_path, ebits, n_in, n_out):
    simulator = "verilator" if (ebits, n_in, n_out) in VERILATOR else "icarus"
    frames = max(3, 48 // max(n_in, n_out))  # at least ~48 beats on the narrower side
    run(
        tmp_path,
        ebits,
        n_in,
        n_out,
        simulator=simulator,
        frames=frames,
        seed=n_in + 7 * n_out,
        in_stall=0.3,
        out_stall=0.4,
    )


@pytest.mark.parametrize(("ebits", "n_in", "n_out"), CASES)
def test_dwc_rate_and_latency(tmp_path, ebits, n_in, n_out):
    # >= 200 beats on the narrower side, >= 4 whole lcm(IN, OUT) periods measured after the
    # first (startup); one lost cycle per period (<= 24 narrow beats here) costs >= 4 %
    frames = max(6, -(-200 // max(n_in, n_out)))
    run(tmp_path, ebits, n_in, n_out, frames=frames, check_rate=True)


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
@pytest.mark.parametrize(("ebits", "n_in", "n_out"), LONG_STALL_CASES)
def test_dwc_long_stalls_and_reset_mid_frame(tmp_path, ebits, n_in, n_out, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run(
        tmp_path,
        ebits,
        n_in,
        n_out,
        testcase="dwc_survives_long_stalls_and_a_reset_mid_frame",
        frames=max(4, 24 // max(n_in, n_out)),
        seed=n_in + 5 * n_out,
        **LONG_STALLS,
        reset_mid_frame=reset_mid_frame,
    )


@pytest.mark.parametrize(("ebits", "n_in", "n_out"), CASES)
def test_dwc_is_lint_clean(ebits, n_in, n_out):
    assert_lint_clean(SOURCES, "stream_dwc", {"EBITS": ebits, "IN_ELEMS": n_in, "OUT_ELEMS": n_out})
