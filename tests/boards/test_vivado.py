"""The Vivado build script, for every Zynq board of the catalog: it names every generated
source, the part, the DMA and the clock, and the IP it packages has exactly the RTL top's
ports. Vivado is not available, so the script runs in a real Tcl interpreter with
Vivado's commands recorded (:func:`boards.vivado.dry_run_tcl`); the RTL's ports come from
Yosys' own Verilog parser, not from the code that wrote the script."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from boards.catalog import BoardError, get_board, zynq_boards
from boards.pynq_driver import dma_stream_bits
from boards.vivado import BIT, HWH, Port, dry_run_tcl, run_vivado, write_vivado_build
from qfab.cli import main
from qfab.errors import ToolError
from tests.boards.run_folder import make_run_folder


def yosys_ports(rtl, manifest) -> set[tuple[str, str, int]]:
    """(name, direction, width) of the top's ports, read by Yosys."""
    out = rtl / "ports.json"
    files = " ".join(str(rtl / s) for s in manifest["sources"])
    script = f"read_verilog {files}; hierarchy -top {manifest['top']}; proc; write_json {out}"
    subprocess.run(["yosys", "-q", "-p", script], check=True, capture_output=True)
    ports = json.loads(out.read_text())["modules"][manifest["top"]]["ports"]
    out.unlink()
    return {
        (n, {"input": "in", "output": "out"}[p["direction"]], len(p["bits"]))
        for n, p in ports.items()
    }


def has_tkinter() -> bool:
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return False
    return True


def calls_named(calls, name):
    return [c for c in calls if c[0] == name]


def config_of(calls, cell: str) -> dict[str, str]:
    """CONFIG.* values set on a block design cell (set_property -dict ... <cell>)."""
    found = {}
    for c in calls_named(calls, "set_property"):
        if c[1] == "-dict" and c[-1] == cell:
            words = c[2].split()
            found.update(
                {k.removeprefix("CONFIG."): v for k, v in zip(words[::2], words[1::2], strict=True)}
            )
    return found


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    _, manifest = make_run_folder(folder, "mlp_dwc")
    return folder, manifest


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys (Debian) is a test dependency")
@pytest.mark.parametrize("board", [b.name for b in zynq_boards()])
def test_script_names_sources_part_dma_clock_and_the_rtl_ports(board, run_dir, tmp_path):
    run, manifest = run_dir
    b = get_board(board)
    build = write_vivado_build(run, b, tmp_path / "build", clock_mhz=142.5)
    text = build.script.read_text()
    calls = dry_run_tcl(build.script, build.ports)

    # every generated source, copied into the build folder and added to the IP project
    added = calls_named(calls, "add_files")[0][-1].split()
    assert added == [str((tmp_path / "build" / "rtl" / s).resolve()) for s in manifest["sources"]]
    assert all(
        (tmp_path / "build" / "rtl" / s).read_text() == (run / "rtl" / s).read_text()
        for s in manifest["sources"]
    )
    # the part, for the IP project and the block design project
    projects = calls_named(calls, "create_project")
    assert len(projects) == 2 and all(c[c.index("-part") + 1] == b.part for c in projects)
    # the board's PS with the fabric clock at the requested MHz
    ps = [c for c in calls_named(calls, "create_bd_cell") if c[-1] == "ps"]
    assert ps and ps[0][ps[0].index("-vlnv") + 1].split(":")[2] == b.ps
    clock_key = (
        "PCW_FPGA0_PERIPHERAL_FREQMHZ"
        if b.family == "zynq"
        else "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"
    )
    assert config_of(calls, "ps")[clock_key] == "142.5"
    assert ["get_bd_pins", f"ps/{b.fabric_clock}"] in calls
    # the DMA: simple mode, both channels, stream widths that carry the ports, 26-bit length
    dma = config_of(calls, "axi_dma_0")
    assert dma["c_include_sg"] == "0" and dma["c_include_mm2s"] == dma["c_include_s2mm"] == "1"
    assert int(dma["c_m_axis_mm2s_tdata_width"]) == dma_stream_bits(manifest["input"]["tdata_bits"])
    assert int(dma["c_s_axis_s2mm_tdata_width"]) == dma_stream_bits(
        manifest["output"]["tdata_bits"]
    )
    assert int(dma["c_sg_length_width"]) == 26
    # the input port (24 bits) reaches the 32-bit DMA stream through a subset converter
    assert config_of(calls, "in_width")["TDATA_REMAP"] == "{tdata[23:0]}"
    # implementation to a bitstream, and the .bit/.hwh pair PYNQ loads (same basename)
    assert ["launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", "4"] in calls
    copies = [c[-1] for c in calls_named(calls, "file") if c[1] == "copy"]
    assert copies == [str(tmp_path / "build" / BIT), str(tmp_path / "build" / HWH)]
    assert BIT.removesuffix(".bit") == HWH.removesuffix(".hwh")
    assert "validate_bd_design" in text and "make_wrapper" in text

    # the IP's ports: the list in the script, and the interface port maps, equal the RTL's
    rtl = yosys_ports(run / "rtl", manifest)
    assert {(p.name, p.direction, p.width) for p in build.ports} == rtl
    mapped = {c[2] for c in calls_named(calls, "set_property") if c[1] == "physical_name"}
    assert mapped == {name for name, _, _ in rtl}
    logical = {c[1] for c in calls_named(calls, "ipx::add_port_map")}
    assert {"TDATA", "TVALID", "TREADY", "TLAST", "CLK", "RST"} == logical


INTERPRETERS = [
    pytest.param("tkinter", marks=pytest.mark.skipif(not has_tkinter(), reason="no tkinter")),
    pytest.param("tclsh", marks=pytest.mark.skipif(not shutil.which("tclsh"), reason="no tclsh")),
]


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_script_refuses_an_ip_whose_ports_differ_from_the_rtl(interpreter, run_dir, tmp_path):
    build = write_vivado_build(run_dir[0], get_board("pynq-z2"), tmp_path / "b")
    extra = [*build.ports, Port("debug_out", "out", 4)]
    with pytest.raises(ToolError, match="the IP has 10 ports, qfab_top has 9"):
        dry_run_tcl(build.script, extra, interpreter)
    narrower = [
        Port(p.name, p.direction, 8) if p.name == "s_axis_tdata" else p for p in build.ports
    ]
    with pytest.raises(ToolError, match="IP port s_axis_tdata is in 8 bits, RTL in 24"):
        dry_run_tcl(build.script, narrower, interpreter)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_a_tcl_syntax_error_is_caught(interpreter, run_dir, tmp_path):
    build = write_vivado_build(run_dir[0], get_board("zcu104"), tmp_path / "b")
    text = build.script.read_text()
    loop = "foreach bus {s_axis m_axis ap_clk ap_rst_n} {"
    assert loop in text
    build.script.write_text(text.replace(loop, "foreach bus {s_axis m_axis {"))
    with pytest.raises(ToolError, match="Tcl error"):
        dry_run_tcl(build.script, build.ports, interpreter)


@pytest.mark.skipif(not (has_tkinter() and shutil.which("tclsh")), reason="needs both")
def test_tclsh_and_tkinter_record_the_same_commands(run_dir, tmp_path):
    build = write_vivado_build(run_dir[0], get_board("ultra96-v2"), tmp_path / "b")
    calls = dry_run_tcl(build.script, build.ports, "tkinter")
    assert calls == dry_run_tcl(build.script, build.ports, "tclsh") and len(calls) > 100


def test_build_folder_is_self_contained_and_vivado_absence_is_said(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    build = write_vivado_build(run_dir[0], get_board("ultra96-v2"), tmp_path / "b")
    names = {p.name for p in (tmp_path / "b").iterdir()}
    assert {
        "build.tcl",
        "build.json",
        "design.json",
        "model.qfab.npz",
        "qfab_driver.py",
        "rtl",
    } <= names
    result = run_vivado(build)
    assert result == {
        "ran": False,
        "why": "vivado is not on PATH",
        "command": f"cd {tmp_path / 'b'} && vivado -mode batch -nojournal -nolog -source build.tcl",
    }


def test_ice40_board_is_not_a_vivado_target(run_dir, tmp_path):
    with pytest.raises(BoardError, match="no Zynq processing system"):
        write_vivado_build(run_dir[0], get_board("icebreaker"), tmp_path / "b")


def test_cli_build_writes_a_checked_script_and_says_how_to_run_vivado(run_dir, tmp_path, capsys):
    out = tmp_path / "kv"
    argv = ["build", str(run_dir[0]), "--board", "kv260", "--out", str(out), "--no-fit-check"]
    assert main([*argv, "--clock-mhz", "187.5"]) == 0
    printed = capsys.readouterr().out
    assert "Tcl checked" in printed
    assert f"to build the bitstream: cd {out} && vivado -mode batch" in printed
    built = json.loads((out / "build.json").read_text())
    assert (built["board"], built["part"], built["clock_mhz"]) == (
        "kv260",
        "xck26-sfvc784-2LV-c",
        187.5,
    )
    assert "set qfab_clock_mhz 187.5\n" in (out / "build.tcl").read_text()
    assert main(["build", str(tmp_path), "--board", "pynq-z2", "--out", str(out)]) == 2
    assert "no rtl/design.json" in capsys.readouterr().err
