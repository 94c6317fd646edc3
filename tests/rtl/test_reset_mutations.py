"""Mutation tests of the reset-mid-frame benches: each can fail.

Each mutant is a real kind of reset bug, a register that only its power-on value
initialises (a Verilog ``initial`` value, no reset branch): correct from the start, so it
passes the long-stall bench, and wrong after ``rst_n`` pulled in the middle of a frame,
which the reset bench must catch (:func:`tests.rtl.streams.stalls_and_reset_mid_frame`).
The mutated copy of the library module is built instead of the real one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.rtl.harness import rtl_source, run_unit_bench
from tests.rtl.streams import LONG_STALLS
from tests.rtl.test_add_stream import CASES as ADD
from tests.rtl.test_fifo_stream import CASES as FIFO
from tests.rtl.test_pool_stream import CASES as POOL

pytestmark = pytest.mark.slow

#: name -> (library file, [(text, replacement)], run_unit_bench arguments)
MUTANTS: dict[str, tuple[str, list[tuple[str, str]], dict[str, Any]]] = {
    "pool_row_not_reset": (
        "pool_stream.v",
        [
            (
                "            x <= {XB{1'b0}};\n            y <= {YB{1'b0}};\n",
                "            x <= {XB{1'b0}};\n",
            ),
            ("    reg [YB-1:0]  y;", "    reg [YB-1:0]  y = {YB{1'b0}};"),
        ],
        {
            "toplevel": "pool_stream",
            "parameters": POOL["signed_odd_e2"],
            "bench": "tests.rtl.bench_pool",
            "testcase": "pool_survives_long_stalls_and_a_reset_mid_frame",
            "case": {"frames": 4, "seed": 11},
        },
    ),
    "add_valid_not_reset": (
        "add_stream.v",
        [
            ("if (!rst_n) m_valid <= 1'b0;", "if (!rst_n) m_valid <= m_valid;"),
            (
                "    reg                      m_valid;",
                "    reg                      m_valid = 1'b0;",
            ),
        ],
        {
            "toplevel": "add_stream",
            "parameters": ADD["signed_shift_b_e3"],
            "bench": "tests.rtl.bench_add",
            "testcase": "add_survives_long_stalls_and_a_reset_mid_frame",
            "case": {"frames": 4, "beats": 9, "seed": 5},
        },
    ),
    "fifo_read_pointer_not_reset": (
        "fifo_stream.v",
        [
            ("            rptr <= {AB{1'b0}};\n            count <= {CB{1'b0}};\n", ""),
            ("    reg [AB-1:0]    wptr, rptr;", "    reg [AB-1:0]    wptr, rptr = {AB{1'b0}};"),
            ("    reg [CB-1:0]    count;", "    reg [CB-1:0]    count = {CB{1'b0}};"),
        ],
        {
            "toplevel": "fifo_stream",
            "parameters": FIFO["d3_w5"],
            "bench": "tests.rtl.bench_fifo",
            "testcase": "fifo_survives_long_stalls_and_a_reset_mid_frame",
            "case": {"frames": 4, "beats": 12, "seed": 8},
        },
    ),
    "dwc_count_not_reset": (
        "stream_dwc.v",
        [
            (
                "                    cnt <= {CB{1'b0}};\n                    m_valid <= 1'b0;\n"
                "                end else begin\n                    if (push) cnt <= last",
                "                    m_valid <= 1'b0;\n"
                "                end else begin\n                    if (push) cnt <= last",
            ),
            (
                "            reg [CB-1:0]       cnt;",
                "            reg [CB-1:0]       cnt = {CB{1'b0}};",
            ),
        ],
        {
            "toplevel": "stream_dwc",
            "parameters": {"EBITS": 2, "IN_ELEMS": 1, "OUT_ELEMS": 4},
            "bench": "tests.rtl.bench_dwc",
            "testcase": "dwc_survives_long_stalls_and_a_reset_mid_frame",
            "case": {"frames": 6, "seed": 21},
        },
    ),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_register_without_reset_passes_stalls_and_fails_the_reset_bench(tmp_path, name):
    src, edits, kw = MUTANTS[name]
    text = rtl_source(src).read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"{name}: the mutation site moved in {src}: {old!r}"
        text = text.replace(old, new)
    (tmp_path / src).write_text(text)
    case = {**kw["case"], **LONG_STALLS}
    args = {**kw, "sources": [tmp_path / src]}
    run_unit_bench(tmp_path / "stalls", **{**args, "case": {**case, "reset_mid_frame": False}})
    with pytest.raises(AssertionError):
        run_unit_bench(tmp_path / "reset", **{**args, "case": {**case, "reset_mid_frame": True}})
