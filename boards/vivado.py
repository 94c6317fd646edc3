"""Vivado project for a Zynq board: the accelerator as AXI-Stream IP behind an AXI DMA.

:func:`write_vivado_build` turns a ``qfab run`` folder into a build folder holding the
design's RTL and manifest, the IR, the PYNQ driver and ``build.tcl`` (template
``templates/vivado_build.tcl.j2``): IP packaging with explicit AXI-Stream interfaces,
a block design with the board's processing system, an AXI DMA in simple mode, the
interconnects, the fabric clock at the requested MHz, implementation to a bitstream and
the ``.bit``/``.hwh`` pair PYNQ loads. :func:`run_vivado` runs it when ``vivado`` is on
PATH. Vivado cannot run here, so :func:`dry_run_tcl` evaluates the script in a real Tcl
interpreter with every Vivado command recorded instead of executed: a syntax error, an
unbalanced brace, an unset variable or a port check that fails stops it, and the
recorded commands show what Vivado would be asked to do.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from boards.catalog import Board, BoardError
from boards.pynq_driver import DMA_LENGTH_BITS, dma_stream_bits
from qfab.errors import ToolError

SCRIPT = "build.tcl"
BIT = "qfab.bit"
HWH = "qfab.hwh"
BLOCK_DESIGN = "qfab_bd"
DRIVER = "qfab_driver.py"
#: files of a ``qfab run`` folder the build needs
RUN_RTL = "rtl"
RUN_IR = "model.qfab.npz"


@dataclass(frozen=True)
class Port:
    """One port of the RTL top."""

    name: str
    direction: str  # "in" or "out" (IP-XACT's words, as ipx::get_ports reports them)
    width: int


def top_ports(verilog: str, top: str) -> list[Port]:
    """The ports of module ``top`` in ``verilog`` (ANSI header: ``input wire [7:0] x,``)."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", verilog, flags=re.S)
    m = re.search(rf"\bmodule\s+{re.escape(top)}\s*(?:#\s*\(.*?\)\s*)?\((.*?)\);", text, re.S)
    if m is None:
        raise BoardError(f"no module {top} with an ANSI port list in the RTL")
    ports = []
    for decl in m.group(1).split(","):
        d = re.fullmatch(
            r"\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[(\d+)\s*:\s*(\d+)\]\s*)?(\w+)\s*",
            decl,
        )
        if d is None:
            raise BoardError(f"{top}: cannot read port declaration {decl.strip()!r}")
        width = abs(int(d[2]) - int(d[3])) + 1 if d[2] is not None else 1
        ports.append(Port(d[4], {"input": "in", "output": "out"}.get(d[1], d[1]), width))
    return ports


def axis_port_maps(ports: list[Port], prefix: str) -> list[tuple[str, str]]:
    """(AXI-Stream signal, RTL port) pairs of the ports named ``<prefix>_t*``."""
    found = [p.name for p in ports if p.name.startswith(f"{prefix}_t")]
    return [(name[len(prefix) + 1 :].upper(), name) for name in found]


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("boards", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class VivadoBuild:
    """A written build folder and the command that builds it."""

    folder: Path
    script: Path
    command: list[str]
    ports: list[Port]
    settings: dict[str, Any]

    def command_line(self) -> str:
        return f"cd {self.folder} && " + " ".join(self.command)


def write_vivado_build(
    run_dir: str | Path,
    board: Board,
    out_dir: str | Path,
    *,
    clock_mhz: float | None = None,
    jobs: int = 4,
) -> VivadoBuild:
    """Write the build folder ``out_dir`` for ``board`` from the ``qfab run`` folder.

    The folder is self-contained (Vivado reads only files inside it): ``rtl/`` (the
    generated Verilog + ``design.json``), ``design.json`` and ``model.qfab.npz`` for the
    driver, ``qfab_driver.py``, ``build.tcl``, ``build.json`` (what was chosen).
    """
    if not board.is_zynq:
        raise BoardError(
            f"{board.name} has no Zynq processing system; the Vivado flow is for "
            "Zynq boards (iCE40 boards use the open flow)"
        )
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    rtl = run_dir / RUN_RTL
    if not (rtl / "design.json").is_file():
        raise BoardError(f"{run_dir}: no {RUN_RTL}/design.json (not a qfab run folder with RTL)")
    manifest = json.loads((rtl / "design.json").read_text())
    if manifest.get("backend", "rtl") != "rtl" and not (rtl / f"{manifest['top']}.v").exists():
        raise BoardError(f"{rtl}: the design has no Verilog top")
    top = manifest["top"]
    ports = top_ports((rtl / f"{top}.v").read_text(), top)
    in_bits, out_bits = int(manifest["input"]["tdata_bits"]), int(manifest["output"]["tdata_bits"])
    mhz = float(clock_mhz if clock_mhz is not None else manifest["clock"]["mhz"])
    if mhz <= 0:
        raise BoardError(f"--clock-mhz {mhz}: must be positive")
    dma_in, dma_out = dma_stream_bits(in_bits), dma_stream_bits(out_bits)
    settings = {
        "board": board.name,
        "part": board.part,
        "ps": board.ps,
        "fabric_clock": board.fabric_clock,
        "clock_mhz": mhz,
        "top": top,
        "tdata_bits": {"s_axis": in_bits, "m_axis": out_bits},
        "dma_stream_bits": {"mm2s": dma_in, "s2mm": dma_out},
        "dma_length_bits": DMA_LENGTH_BITS,
        "bitstream": BIT,
        "hwh": HWH,
        "dma": "axi_dma_0",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / RUN_RTL).exists():
        shutil.rmtree(out_dir / RUN_RTL)
    shutil.copytree(rtl, out_dir / RUN_RTL)
    shutil.copy2(rtl / "design.json", out_dir / "design.json")
    if (run_dir / RUN_IR).is_file():
        shutil.copy2(run_dir / RUN_IR, out_dir / RUN_IR)
    shutil.copy2(Path(__file__).with_name("pynq_driver.py"), out_dir / DRIVER)
    script = (
        _env()
        .get_template("vivado_build.tcl.j2")
        .render(
            board=board,
            script_name=SCRIPT,
            top=top,
            clock_mhz=f"{mhz:g}",
            jobs=int(jobs),
            rtl_dir=RUN_RTL,
            sources=manifest["sources"],
            ports=ports,
            s_axis_map=axis_port_maps(ports, "s_axis"),
            m_axis_map=axis_port_maps(ports, "m_axis"),
            in_bits=in_bits,
            out_bits=out_bits,
            dma_in_bits=dma_in,
            dma_out_bits=dma_out,
            mm_in_bits=max(32, dma_in),
            mm_out_bits=max(32, dma_out),
            length_bits=DMA_LENGTH_BITS,
            addr_bits=32 if board.family == "zynq" else 64,
            bd_name=BLOCK_DESIGN,
            bit_name=BIT,
            hwh_name=HWH,
        )
    )
    (out_dir / SCRIPT).write_text(script)
    command = ["vivado", "-mode", "batch", "-nojournal", "-nolog", "-source", SCRIPT]
    (out_dir / "build.json").write_text(
        json.dumps({**settings, "command": " ".join(command)}, indent=2) + "\n"
    )
    return VivadoBuild(out_dir, out_dir / SCRIPT, command, ports, settings)


def run_vivado(build: VivadoBuild, log: Path | None = None) -> dict[str, Any]:
    """Run the build when ``vivado`` is on PATH; else say so (``ran`` False, ``why``)."""
    exe = shutil.which("vivado")
    if exe is None:
        return {"ran": False, "why": "vivado is not on PATH", "command": build.command_line()}
    log = log or build.folder / "vivado.log"
    with log.open("w") as fh:
        proc = subprocess.run(
            [exe, *build.command[1:]], cwd=build.folder, stdout=fh, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        raise ToolError(f"vivado failed (exit {proc.returncode}); see {log}")
    missing = [f for f in (BIT, HWH) if not (build.folder / f).is_file()]
    if missing:
        raise ToolError(f"vivado finished but wrote no {', '.join(missing)}; see {log}")
    return {"ran": True, "log": str(log), "bitstream": BIT, "hwh": HWH}


# Tcl run inside the dry-run interpreter before the script: every command Tcl does not
# know is a Vivado command; it is recorded (one list per call) and answers as a project
# whose IP core has exactly the RTL's ports (so the script's own port check runs).
_DRY_RUN_PRELUDE = r"""
set ::qfab_calls {}
proc unknown {args} {
    lappend ::qfab_calls $args
    set cmd [lindex $args 0]
    switch -- $cmd {
        get_ipdefs { return [list xilinx.com:ip:[lindex [split [lindex $args end] :] 2]:1.0] }
        ipx::current_core { return core }
        ipx::get_bus_interfaces { return {} }
        ipx::add_bus_interface - ipx::add_port_map - ipx::add_bus_parameter {
            return [lindex $args 1]
        }
        ipx::get_ports {
            if {[lindex $args 1] eq "-of_objects"} { return [dict keys $::qfab_rtl_ports] }
            set name [lindex $args 1]
            return [expr {[dict exists $::qfab_rtl_ports $name] ? $name : {}}]
        }
        get_property {
            lassign $args - prop obj
            if {[dict exists $::qfab_rtl_ports $obj]} {
                lassign [dict get $::qfab_rtl_ports $obj] dir width
                switch -- $prop {
                    direction { return $dir }
                    size_left { return [expr {$width == 1 ? {} : $width - 1}] }
                    size_right { return [expr {$width == 1 ? {} : 0}] }
                }
            }
            if {$prop eq "PROGRESS"} { return 100% }
            return stub_$prop
        }
        get_board_parts { return {} }
        get_bd_cells {
            return [expr {[lindex $args 1] eq "-filter" ? "reset_block" : [lindex $args 1]}]
        }
        get_files { return stub.[lindex $args end] }
        make_wrapper { return stub_wrapper.v }
        default { return stub }
    }
}
rename puts qfab_tcl_puts
proc puts {args} { lappend ::qfab_calls [list puts {*}$args] }
rename file qfab_tcl_file
proc file {sub args} {
    if {$sub in {copy mkdir delete rename}} {
        lappend ::qfab_calls [list file $sub {*}$args]
        return
    }
    return [qfab_tcl_file $sub {*}$args]
}
"""


#: after the script: every recorded call on one line, words separated by \x1f, with
#: backslashes and newlines escaped (how a ``tclsh`` run hands the calls to Python)
_DRY_RUN_REPORT = r"""
foreach c $::qfab_calls {
    qfab_tcl_puts [join [lmap w $c {string map [list \\ \\\\ \n \\n] $w}] \x1f]
}
"""


def _unescape(word: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], word)


def dry_run_tcl(script: Path, ports: list[Port], interpreter: str = "auto") -> list[list[str]]:
    """Evaluate ``script`` in a real Tcl interpreter with Vivado's commands recorded, not
    run; the IP core answers with ``ports``. Returns the recorded commands, each as its
    words; a Tcl error raises :class:`ToolError`. ``interpreter``: ``tkinter`` (Python's
    Tcl), ``tclsh`` (Debian package tcl), or ``auto`` (the first that is there)."""
    table = " ".join(f"{p.name} {{{p.direction} {p.width}}}" for p in ports)
    setup = f"set ::qfab_rtl_ports [dict create {table}]\n{_DRY_RUN_PRELUDE}"
    source = f"source {{{Path(script).resolve()}}}"
    if interpreter in ("auto", "tkinter"):
        try:
            import tkinter
        except ImportError:
            if interpreter == "tkinter":
                raise ToolError("Python's tkinter is not installed") from None
        else:
            tcl = tkinter.Tcl()
            try:
                tcl.eval(setup)
                tcl.eval(source)
            except tkinter.TclError as exc:
                info = tcl.eval("set ::errorInfo")
                raise ToolError(f"{script}: Tcl error: {exc}\n{info}") from None
            calls = tcl.splitlist(tcl.eval("set ::qfab_calls"))
            return [list(tcl.splitlist(c)) for c in calls]
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise ToolError("the Tcl check needs tclsh (Debian package tcl) or Python's tkinter")
    driver = f"{setup}\nif {{[catch {{{source}}} err]}} {{\n"
    driver += '    qfab_tcl_puts stderr "Tcl error: $err\\n$::errorInfo"; exit 1\n}\n'
    proc = subprocess.run(
        [tclsh], input=driver + _DRY_RUN_REPORT, capture_output=True, text=True
    )  # fmt: skip
    if proc.returncode != 0:
        raise ToolError(f"{script}: {proc.stderr.strip()}")
    return [[_unescape(w) for w in line.split("\x1f")] for line in proc.stdout.splitlines()]
