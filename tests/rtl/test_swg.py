"""swg_stream: im2col windows of back-to-back frames, under stalls and at full rate; lint-clean.

ROWS comes from the two formulas of the module's header (``rows_min``/``rows_full``
below): the minimum is run under random stalls, the full-throughput value without stalls,
where the bench also checks the frame period (2% slack) and the latency.
"""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS


def _geometry(p: dict) -> tuple[int, int, int, int]:
    oh = (p["H"] + 2 * p["PH"] - p["KH"]) // p["SH"] + 1
    ow = (p["W"] + 2 * p["PW"] - p["KW"]) // p["SW"] + 1
    cw = p["C"] // p["ELEMS"]
    return oh, ow, cw, p["W"] * cw


def _rows(p: dict, k: int) -> tuple[int, int]:
    """Input rows [lo, hi) output row k needs, numbered across frames."""
    oh = _geometry(p)[0]
    frame, oy = divmod(k, oh)
    top = oy * p["SH"] - p["PH"]
    return frame * p["H"] + max(0, top), frame * p["H"] + min(p["H"], top + p["KH"])


def rows_min(p: dict) -> int:
    """Smallest ROWS that works (no deadlock): the most rows one output row needs."""
    oh = _geometry(p)[0]
    return max(hi - lo for lo, hi in map(lambda k: _rows(p, k), range(oh)))


def rows_full(p: dict) -> int:
    """ROWS for full throughput (header of rtl/swg_stream.v)."""
    oh, ow, cw, rw = _geometry(p)
    t_out = ow * p["KH"] * p["KW"] * cw // p["TAPS"]
    period = max(oh * t_out, p["H"] * rw)
    need = max(
        _rows(p, k)[1] - _rows(p, k - d)[0] - (d - 1) * period // (oh * rw)
        for k in range(oh)
        for d in range(1, oh + 2)
    )
    return max(rows_min(p), need)


def _params(h, w, c, k, s, pad, ebits=2, elems=1, taps=1, bipolar=False) -> dict:
    return {
        "H": h, "W": w, "C": c, "KH": k[0], "KW": k[1], "SH": s[0], "SW": s[1],
        "PH": pad[0], "PW": pad[1], "EBITS": ebits, "OBITS": 2 if bipolar else ebits,
        "IN_BIPOLAR": int(bipolar), "ELEMS": elems, "TAPS": taps,
    }  # fmt: skip


SAME3 = _params(8, 8, 2, (3, 3), (1, 1), (1, 1))
VALID3 = _params(6, 7, 2, (3, 3), (1, 1), (0, 0), elems=2)
POOL2 = _params(6, 6, 2, (2, 2), (2, 2), (0, 0))
S2_7X7 = _params(7, 7, 2, (3, 3), (2, 2), (1, 1), elems=2)
COL3 = _params(6, 5, 2, (3, 1), (1, 1), (1, 0))
ROW3 = _params(5, 6, 2, (1, 3), (1, 1), (0, 1))
ONE = _params(5, 4, 3, (1, 1), (1, 1), (0, 0))
BIG5 = _params(8, 8, 1, (5, 5), (1, 1), (2, 2), ebits=3)
BIPOLAR = _params(6, 6, 4, (3, 3), (1, 1), (1, 1), ebits=1, elems=4, bipolar=True)
TAPS3 = _params(6, 6, 2, (3, 3), (1, 1), (1, 1), elems=2, taps=3)
TAPS9 = _params(6, 6, 2, (3, 3), (1, 1), (1, 1), elems=2, taps=9)
WIDE = _params(5, 5, 4, (3, 3), (1, 1), (1, 1), ebits=4, elems=2)
# the synthesis-depth cases of the module's notes: 6 channels per beat; 3 whole taps per beat
C6E6 = _params(4, 4, 6, (3, 3), (1, 1), (1, 1), ebits=4, elems=6)
TAPS3_8X8 = _params(8, 8, 1, (3, 3), (1, 1), (1, 1), ebits=4, taps=3)
# one line-buffer row: the writer refills the row right after the read of its last beat
ROW1_S3 = _params(4, 8, 2, (1, 4), (3, 1), (0, 0), ebits=4, elems=2)

# id: (geometry, ROWS "min" (run under stalls) or "full" (no stalls, timing checked), simulator)
CASES = {
    "3x3s1p1-e1-min": (SAME3, "min", "icarus"),
    "3x3s1p1-e2-full": ({**SAME3, "ELEMS": 2}, "full", "verilator"),
    "3x3s1p0-min": (VALID3, "min", "icarus"),
    "3x3s1p0-full": (VALID3, "full", "icarus"),
    "2x2s2-min": (POOL2, "min", "icarus"),
    "2x2s2-full": (POOL2, "full", "icarus"),
    "3x3s2p1-7x7-min": (S2_7X7, "min", "icarus"),
    "3x3s2p1-7x7-full": ({**S2_7X7, "C": 1, "ELEMS": 1}, "full", "icarus"),
    "3x1p10-min": (COL3, "min", "icarus"),
    "1x3p01-min": (ROW3, "min", "icarus"),
    "1x1-min": (ONE, "min", "icarus"),
    "1x1-full": (ONE, "full", "icarus"),
    "5x5p2-c1-min": (BIG5, "min", "icarus"),
    "5x5p2-c1-full": (BIG5, "full", "icarus"),
    "bipolar-3x3p1-min": (BIPOLAR, "min", "icarus"),
    "taps3-min": (TAPS3, "min", "icarus"),
    "taps9-full": (TAPS9, "full", "verilator"),
    "taps9-s2-min": ({**S2_7X7, "TAPS": 9}, "min", "icarus"),
    "c4e2-ebits4-min": (WIDE, "min", "icarus"),
    "c4e2-ebits4-full": (WIDE, "full", "verilator"),
    "c6e6-min": (C6E6, "min", "icarus"),
    "c6e6-full": (C6E6, "full", "icarus"),
    "taps3-8x8-min": (TAPS3_8X8, "min", "icarus"),
    "taps3-8x8-full": (TAPS3_8X8, "full", "icarus"),
}
STALLS = {"in_stall": 0.3, "out_stall": 0.3}


def _with_rows(geometry: dict, which: str) -> dict:
    return {**geometry, "ROWS": rows_min(geometry) if which == "min" else rows_full(geometry)}


@pytest.mark.parametrize("name", list(CASES))
def test_swg_windows(tmp_path, name):
    geometry, which, simulator = CASES[name]
    timed = which == "full"
    run_unit_bench(
        tmp_path,
        toplevel="swg_stream",
        sources=[rtl_source("swg_stream.v")],
        parameters=_with_rows(geometry, which),
        bench="tests.rtl.bench_swg",
        testcase="swg_emits_every_window",
        case={"frames": 4 if timed else 3, "seed": len(name), "check_timing": timed}
        | ({} if timed else STALLS),
        simulator=simulator,
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_swg_row_refilled_right_after_its_last_read(tmp_path, seed):
    """One ring row, long output stalls: the writer refills a row as soon as its last beat
    was issued, so that beat must have been read from memory by then (seeds that caught a
    read one stage after the issue)."""
    run_unit_bench(
        tmp_path,
        toplevel="swg_stream",
        sources=[rtl_source("swg_stream.v")],
        parameters=_with_rows(ROW1_S3, "min"),
        bench="tests.rtl.bench_swg",
        testcase="swg_emits_every_window",
        case={"frames": 8, "seed": seed, "in_stall": 0.3, "out_stall": 0.6},
    )


@pytest.mark.parametrize("reset_mid_frame", [False, True], ids=["long_stalls", "reset_mid_frame"])
def test_swg_long_stalls_and_reset_mid_frame(tmp_path, reset_mid_frame):
    """Bubbles and tready drops of up to 32 cycles on every port; with a reset while a
    frame is half through: no word lost, duplicated or left over from before the reset."""
    run_unit_bench(
        tmp_path,
        toplevel="swg_stream",
        sources=[rtl_source("swg_stream.v")],
        parameters=_with_rows(S2_7X7, "min"),
        bench="tests.rtl.bench_swg",
        testcase="swg_survives_long_stalls_and_a_reset_mid_frame",
        case={"frames": 3, "seed": 12, **LONG_STALLS, "reset_mid_frame": reset_mid_frame},
    )


@pytest.mark.parametrize("name", list(CASES))
def test_swg_is_lint_clean(name):
    geometry, which, _ = CASES[name]
    assert_lint_clean([rtl_source("swg_stream.v")], "swg_stream", _with_rows(geometry, which))


def test_swg_rows_formulas():
    """The ROWS formulas on the kernels the module's header quotes."""
    expected = {"same3": (SAME3, 3, 4), "taps9": (TAPS9, 3, 4), "valid3": (VALID3, 3, 6)}
    expected |= {"pool2": (POOL2, 2, 4), "one": (ONE, 1, 2), "s2": (S2_7X7, 3, 5)}
    for name, (geometry, low, full) in expected.items():
        assert (rows_min(geometry), rows_full(geometry)) == (low, full), name
