"""uart_tx / uart_rx: every byte through the line in order, framing, rate; lint-clean.

uart_top (the wrapper around a generated accelerator) is simulated and linted with a real
design in tests/boards/test_uart.py.
"""

from __future__ import annotations

import pytest

from tests.rtl.harness import assert_lint_clean, rtl_source, run_unit_bench


@pytest.mark.parametrize("clks", [4, 7])
def test_uart_tx_sends_every_byte_at_its_rate(tmp_path, clks):
    run_unit_bench(
        tmp_path,
        toplevel="uart_tx",
        sources=[rtl_source("uart_tx.v")],
        parameters={"CLKS_PER_BIT": clks},
        bench="tests.rtl.bench_uart",
        case={"seed": clks, "bytes": 40},
        testcase="tx_sends_every_byte",
    )


@pytest.mark.parametrize(("clks", "skew"), [(4, 0.0), (8, 0.03), (8, -0.03), (16, 0.04)])
def test_uart_rx_receives_every_byte_and_drops_broken_ones(tmp_path, clks, skew):
    run_unit_bench(
        tmp_path,
        toplevel="uart_rx",
        sources=[rtl_source("uart_rx.v")],
        parameters={"CLKS_PER_BIT": clks},
        bench="tests.rtl.bench_uart",
        case={"seed": clks, "bytes": 40, "skew": skew},
        testcase="rx_receives_every_byte",
    )


@pytest.mark.parametrize("module", ["uart_rx", "uart_tx"])
@pytest.mark.parametrize("clks", [4, 5, 104, 1250])
def test_uart_lint_clean(module, clks):
    assert_lint_clean([rtl_source(f"{module}.v")], module, {"CLKS_PER_BIT": clks})
