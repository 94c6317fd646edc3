"""The open iCE40 flow builds a real iCEBreaker bitstream of the digits MLP (w2a2).

The slow test runs the whole flow (Yosys synth_ice40, nextpnr-ice40, icepack: the pinned
YoWASP tools) on the UART-wrapped design that tests/boards/test_uart.py simulates, and
checks the bitstream is one an iCE40UP5K accepts, that nextpnr's Fmax meets the 12 MHz
board clock, and that the numbers parsed from nextpnr's log equal its own JSON report.
A second slow test simulates Yosys' synthesized netlist of the same design (iCE40 cells,
block RAMs with their initial contents, the power-on reset from flip-flop init values)
over the UART against golden: what nextpnr places computes what golden computes. It
runs at 4 clocks per bit (the bitstream's 104 would take a gate-level simulator minutes
per frame), the only difference from the bitstream's netlist.
The fast tests check the refusals: bad device, package, pins, line speeds, designs the
byte protocol cannot carry.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from boards.ice40 import (
    ICEBREAKER_CLOCK_MHZ,
    build_ice40,
    fit_numbers,
    ice40_cells_sim,
    synthesize_ice40,
)
from boards.uart_client import load_manifest
from boards.uart_design import clks_per_bit, uart_parameters, write_uart_design
from qfab.errors import HardwareError
from qfab.golden import quantize_input
from tests.boards.designs import ICE40_TARGET_CYCLES, digits_mlp_w2a2, edges
from tests.boards.uart_sim import assert_uart_equals_golden, simulate_uart

#: configuration bytes of an uncompressed iCE40UP5K image: the device's CRAM and BRAM
#: contents, the same for every design (what iceprog/openFPGALoader write to flash)
UP5K_BITSTREAM_BYTES = 104_090
#: the iCE40 synchronization word every bitstream carries before its commands
ICE40_SYNC = bytes([0x7E, 0xAA, 0x99, 0x7E])


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, digits):
    """(model graph with its hardware graph, folder of its generated Verilog)."""
    folder = tmp_path_factory.mktemp("mlp") / "design"
    graph = digits_mlp_w2a2(
        digits, folder, target_cycles=ICE40_TARGET_CYCLES, clock_mhz=ICEBREAKER_CLOCK_MHZ
    )
    return graph, folder


@pytest.mark.slow
def test_icebreaker_bitstream_of_the_digits_mlp(tmp_path, mlp):
    result = build_ice40(mlp[1], tmp_path / "build", clock_mhz=ICEBREAKER_CLOCK_MHZ)
    out = Path(result["out_dir"])
    data = (out / result["bitstream"]).read_bytes()
    assert len(data) == result["bitstream_bytes"] == UP5K_BITSTREAM_BYTES
    # icepack writes a comment block (0xFF 0x00 ... 0x00 0xFF), then the sync word
    assert data[:2] == b"\xff\x00"
    assert data.index(ICE40_SYNC) == data.index(b"\x00\xff") + 2
    numbers = fit_numbers(result)
    assert numbers["fmax_mhz"] >= ICEBREAKER_CLOCK_MHZ and numbers["timing_met"]
    assert numbers["LC_used"] <= numbers["LC_available"] == 5280
    assert numbers["RAM_used"] <= numbers["RAM_available"] == 30
    # the log lines parsed equal nextpnr's own machine-readable report
    report = json.loads((out / "nextpnr_report.json").read_text())
    for name, key in (("ICESTORM_LC", "LC"), ("ICESTORM_RAM", "RAM"), ("ICESTORM_DSP", "DSP")):
        assert report["utilization"][name]["used"] == result["utilisation"][key]["used"]
    achieved = min(c["achieved"] for c in report["fmax"].values())
    assert abs(achieved - result["fmax_mhz"]) < 0.01
    # the folder is complete: the wrapped sources, the pins, the logs, the result
    assert json.loads((out / "build.json").read_text())["fmax_mhz"] == result["fmax_mhz"]
    uart = json.loads((out / "rtl" / "uart.json").read_text())
    assert all((out / "rtl" / s).is_file() for s in uart["sources"])
    assert uart["clks_per_bit"] == round(ICEBREAKER_CLOCK_MHZ * 1e6 / 115200)
    print(f"iCE40 build: {numbers}")


#: frames through the gate-level netlist (about 1.5 s each under Icarus)
NETLIST_VECTORS = 8


@pytest.mark.slow
def test_synthesized_netlist_equals_golden_over_the_uart(tmp_path, mlp, digits):
    graph, design = mlp
    write_uart_design(design, tmp_path / "uart", clock_mhz=ICEBREAKER_CLOCK_MHZ, clks=4)
    netlist = synthesize_ice40(tmp_path / "uart", tmp_path / "synth")
    manifest = load_manifest(tmp_path / "uart")
    x_int = quantize_input(graph.nodes[0], digits.x_test[:NETLIST_VECTORS])
    classes, outputs = simulate_uart(
        tmp_path,
        manifest,
        [netlist, ice40_cells_sim()],
        x_int,
        clks_per_bit=4,
        compute_cycles=4 * int(manifest["perf"]["cycles_per_frame"]) + 2000,
        # the models give unconnected ports defaults in a syntax Icarus 11 rejects; without
        # them an unconnected port would be x and show up as a wrong output
        build_args=["-DNO_ICE40_DEFAULT_ASSIGNMENTS"],
    )
    assert_uart_equals_golden(graph, x_int, classes, outputs)


def test_line_speeds():
    assert clks_per_bit(12.0, 115200) == round(12e6 / 115200)
    with pytest.raises(HardwareError, match="clocks per bit"):
        clks_per_bit(12.0, 4_000_000)  # 3 clocks per bit
    with pytest.raises(HardwareError, match="off"):
        clks_per_bit(10.0, 1_500_000)  # 7 clocks per bit: 4.8 % fast


def test_bad_device_package_and_pins(tmp_path):
    with pytest.raises(HardwareError, match="allowed"):
        build_ice40(tmp_path, tmp_path / "out", device="up9k")
    with pytest.raises(HardwareError, match="package"):
        build_ice40(tmp_path, tmp_path / "out", package="tq144")
    pcf = tmp_path / "board.pcf"
    pcf.write_text("set_io clk 35\nset_io rx 6\n")
    with pytest.raises(HardwareError, match=r"\['tx', 'rst_n'\]"):
        build_ice40(tmp_path, tmp_path / "out", pcf=pcf)
    assert not (tmp_path / "out").exists()


def test_uart_wrapper_refuses_what_the_protocol_cannot_carry():
    ok = uart_parameters(edges(out_bits=12), 4)
    assert ok["OUT_BYTES"] == 2 and ok["OUT_SIGNED"] == 1
    with pytest.raises(HardwareError, match=r"input\.element\.bits = 9"):
        uart_parameters(edges(in_bits=9), 4)
    with pytest.raises(HardwareError, match=r"output\.features = 300"):
        uart_parameters(edges(out_features=300), 4)
    with pytest.raises(HardwareError, match="CLKS_PER_BIT = 3"):
        uart_parameters(edges(), 3)


def _run_folder(mlp, folder: Path) -> Path:
    """A ``qfab run``-shaped folder (IR + rtl/) of the fixture's design."""
    import shutil

    folder.mkdir()
    mlp[0].save(folder / "model.qfab.npz")
    shutil.copytree(mlp[1], folder / "rtl")
    return folder


@pytest.mark.slow
def test_qfab_build_icebreaker_writes_the_bitstream_and_reports_fmax(tmp_path, mlp, capsys):
    """The acceptance's command: ``qfab build --board icebreaker`` on the digits MLP."""
    from qfab.cli import main

    run = _run_folder(mlp, tmp_path / "run")
    out = tmp_path / "board"
    assert main(["build", str(run), "--board", "icebreaker", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "build.json").read_text())
    assert (out / result["bitstream"]).stat().st_size == UP5K_BITSTREAM_BYTES
    assert result["fmax_mhz"] >= ICEBREAKER_CLOCK_MHZ and result["timing_met"]
    assert f"nextpnr Fmax {result['fmax_mhz']:.1f} MHz, 12 MHz clock: timing met" in printed
    assert f"LC {result['utilisation']['LC']['used']}/5280" in printed


@pytest.mark.slow
def test_a_design_too_large_for_the_icebreaker_gets_the_numbers_and_a_folding(
    tmp_path, mlp, capsys
):
    """The demo's folding (64 cycles per frame) on the iCEBreaker, for real: nextpnr finds
    it too large, and ``qfab build`` refuses it with nextpnr's numbers and the folding
    estimated to fit (the catalog's rule on those numbers), leaving no build folder."""
    from hw_gen.passes import lower
    from hw_gen.verilog.emit import generate_verilog
    from qfab.cli import main

    run = tmp_path / "run"
    graph = copy.deepcopy(mlp[0])  # the module's fixture stays at its own folding
    graph.lowered = lower(graph, target_cycles=64)
    run.mkdir()
    graph.save(run / "model.qfab.npz")
    manifest = generate_verilog(graph.lowered, run / "rtl", clock_mhz=ICEBREAKER_CLOCK_MHZ)
    cycles = manifest["perf"]["cycles_per_frame"]
    out = tmp_path / "board"
    assert main(["build", str(run), "--board", "icebreaker", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "design does not fit icebreaker (iCE40UP5K-SG48)" in err
    used = int(
        re.search(r"LUT need ([\d,]+) have 5,280 \(\d+%\)  <- over", err)[1].replace(",", "")
    )
    assert used > 5280
    want = -(-cycles * used // 5280)
    assert f"hw.target_cycles: {want} (now {cycles} cycles/frame)" in err
    assert "[nextpnr-ice40]" in err
    assert not out.exists()


def test_the_icebreaker_clock_is_its_oscillator(tmp_path, capsys):
    """No PLL is generated: another --clock-mhz would give a wrong baud rate and a
    meaningless timing verdict, so it is refused."""
    from qfab.cli import main
    from tests.boards.run_folder import make_run_folder

    make_run_folder(tmp_path / "run")
    argv = ["build", str(tmp_path / "run"), "--board", "icebreaker", "--out", str(tmp_path / "b")]
    assert main([*argv, "--clock-mhz", "24"]) == 2
    err = capsys.readouterr().err
    assert "--clock-mhz 24: the icebreaker runs from its 12 MHz oscillator" in err
    assert not (tmp_path / "b").exists()
