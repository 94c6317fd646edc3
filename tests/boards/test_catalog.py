"""The board catalog: the issue's boards with their parts and budgets, clear refusals of
unknown boards, and the fit check's numbers and folding suggestion."""

from __future__ import annotations

import math

import pytest

from boards.catalog import (
    BOARDS,
    ZYNQ_HEADROOM,
    Board,
    BoardError,
    check_fit,
    get_board,
    require_fit,
    zynq_boards,
)


def test_catalog_holds_the_issues_boards_and_parts():
    parts = {name: b.part for name, b in BOARDS.items()}
    assert parts == {
        "pynq-z1": "xc7z020clg400-1",
        "pynq-z2": "xc7z020clg400-1",
        "ultra96-v2": "xczu3eg-sbva484-1-e",
        "zcu104": "xczu7ev-ffvc1156-2-e",
        "kv260": "xck26-sfvc784-2LV-c",
        "icebreaker": "iCE40UP5K-SG48",
    }
    ice = get_board("iCEBreaker")
    assert ice.family == "ice40" and ice.ps is None
    assert (ice.budget["LUT"], ice.budget["EBR"], ice.budget["SPRAM"]) == (5280, 30, 4)
    for b in zynq_boards():
        assert b.ps == ("processing_system7" if b.family == "zynq" else "zynq_ultra_ps_e")
        assert b.fabric_clock == ("FCLK_CLK0" if b.family == "zynq" else "pl_clk0")
        assert {"LUT", "FF", "BRAM36", "DSP"} <= set(b.budget) and b.clock_mhz > 0
        # datasheet ratios: 7-series and UltraScale+ CLBs hold two flip-flops per LUT
        assert b.budget["FF"] == 2 * b.budget["LUT"]
    assert [b.name for b in zynq_boards()] == [
        "pynq-z1",
        "pynq-z2",
        "ultra96-v2",
        "zcu104",
        "kv260",
    ]


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(BoardError) as exc:
        get_board("pynq-z3")
    assert "'pynq-z3'" in str(exc.value)
    assert all(name in str(exc.value) for name in BOARDS)


def test_a_design_that_fits_passes_with_its_numbers():
    fit = require_fit(get_board("pynq-z2"), {"LUT": 4499, "FF": 2753, "BRAM36": 0, "DSP": 0}, 8)
    assert (
        fit.fits and fit.need_have["LUT"] == (4499, 53_200) and fit.suggested_target_cycles is None
    )


def test_a_design_over_budget_is_refused_with_need_have_and_a_folding():
    board = get_board("pynq-z2")
    need = {"LUT": 90_000, "FF": 30_000, "BRAM36": 10, "DSP": 0}
    with pytest.raises(BoardError) as exc:
        require_fit(board, need, 64)
    msg = str(exc.value)
    assert "LUT need 90,000 have 53,200" in msg and "<- over" in msg
    limit = int(53_200 * ZYNQ_HEADROOM)
    want = math.ceil(64 * 90_000 / limit)
    assert f"hw.target_cycles: {want} (now 64 cycles/frame)" in msg and "estimate" in msg
    assert check_fit(board, need, 64).suggested_target_cycles == want


def test_block_ram_over_budget_has_no_folding_fix():
    fit = check_fit(get_board("ultra96-v2"), {"LUT": 100, "FF": 100, "BRAM36": 300, "DSP": 0}, 64)
    assert fit.over == ["BRAM36"] and fit.suggested_target_cycles is None
    assert "the weights' bits stay" in fit.describe()


def test_ice40_budget_is_compared_on_its_own_resource_names():
    fit = check_fit(get_board("icebreaker"), {"LUT": 6000, "EBR": 12, "DSP": 2}, 100, "nextpnr")
    assert fit.over == ["LUT"] and fit.need_have["EBR"] == (12, 30)
    assert fit.suggested_target_cycles == math.ceil(100 * 6000 / 5280)  # no shell on an iCE40


@pytest.mark.slow
def test_folding_search_verifies_a_target_that_fits_by_resynthesis(tmp_path):
    """The estimate is checked for real: re-lower the IR at the suggested target,
    re-synthesize with Yosys, repeat until a small board's LUT limit holds."""
    from rich.console import Console

    from hw_gen.passes import lower
    from hw_gen.synth_yosys import synth_xilinx
    from hw_gen.verilog.emit import generate_verilog
    from qfab.board_flow import find_folding
    from qfab.random_graph import random_mlp_graph

    g = random_mlp_graph(16, [8], 4, weight_bits=2, act_bits=2, input_bits=4, seed=1)
    g.lowered = lower(g, target_cycles=2)
    g.save(tmp_path / "model.qfab.npz")
    manifest = generate_verilog(g.lowered, tmp_path / "rtl")
    res = synth_xilinx(tmp_path / "rtl", "xc7z020clg400-1", tmp_path / "synth")
    tiny = Board(
        "tiny",
        "a board a third of this design",
        "xc7z020clg400-1",
        "zynq",
        None,
        100.0,
        {"LUT": int(res["LUT"] / 3 / ZYNQ_HEADROOM), "FF": 10**6, "BRAM36": 10, "DSP": 10},
    )
    fit = check_fit(tiny, res, manifest["perf"]["cycles_per_frame"])
    assert fit.over == ["LUT"] and fit.suggested_target_cycles >= 3 * 2
    start = (manifest["perf"]["cycles_per_frame"], res)
    found = find_folding(tmp_path, tiny, start, tmp_path / "fold", Console(quiet=True))
    assert found["tried"][0] == fit.suggested_target_cycles  # the estimate is tried first
    assert found["resources"]["LUT"] <= int(tiny.budget["LUT"] * ZYNQ_HEADROOM)
    assert check_fit(tiny, found["resources"], found["cycles_per_frame"]).fits
