"""Resource estimate with Yosys ``synth_xilinx`` (Debian's yosys): LUT, FF, BRAM, DSP.

These are Yosys' technology-mapped cell counts for the part's family, flattened at the
top and read from ``stat -json`` (the text ``stat`` block is the fallback): an estimate
of what Vivado would place, not its report (Vivado is not available here). The script,
log and ``stat.json`` stay in ``workdir`` for inspection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from hw_gen.rtl_gen import RtlDesign
from qfab.errors import HardwareError, ToolError

#: part prefix -> synth_xilinx -family
FAMILIES = {"xc7": "xc7", "xczu": "xcup", "xcu": "xcup", "xcvu": "xcup", "xcku": "xcup"}


def family_of(part: str) -> str:
    """Yosys family for a Xilinx part name (longest matching prefix)."""
    p = part.lower()
    for prefix in sorted(FAMILIES, key=len, reverse=True):
        if p.startswith(prefix):
            return FAMILIES[prefix]
    raise HardwareError(
        f"synth.part = {part!r} is not supported; allowed: parts starting with "
        f"{', '.join(sorted(FAMILIES))}"
    )


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from the last ``stat`` block of a Yosys log."""
    block = text[text.rfind("Number of cells:") :]
    cells: dict[str, int] = {}
    for name, n in re.findall(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", block, re.MULTILINE):
        cells[name] = cells.get(name, 0) + int(n)
    return cells


def stat_cells(path: Path) -> dict[str, int]:
    """Cell counts of the whole design from ``stat -json`` (Yosys >= 0.10)."""
    data = json.loads(path.read_text())
    design = data.get("design") or next(iter(data["modules"].values()))
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def summarize(cells: dict[str, int]) -> dict[str, int]:
    """LUT = LUT1..LUT6; FF = FD*; BRAM36 = RAMB36 + RAMB18/2 (rounded up); DSP = DSP48*."""
    lut = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[CPRS]E?", c))
    ramb36 = sum(n for c, n in cells.items() if c.startswith("RAMB36"))
    ramb18 = sum(n for c, n in cells.items() if c.startswith("RAMB18"))
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP48"))
    lutram = sum(
        n for c, n in cells.items() if c.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "SRL"))
    )
    return {
        "LUT": lut,
        "FF": ff,
        "BRAM36": ramb36 + (ramb18 + 1) // 2,
        "DSP": dsp,
        "LUTRAM": lutram,
        "CARRY": cells.get("CARRY4", 0) + cells.get("CARRY8", 0),
    }


def synth_xilinx(
    design: RtlDesign, part: str, workdir: str | os.PathLike[str], timeout: float = 1800
) -> dict:
    """Run ``yosys synth_xilinx`` on the design's top and return the resource summary."""
    family = family_of(part)
    yosys = shutil.which("yosys")
    if yosys is None:
        raise ToolError("yosys not found on PATH (Debian package yosys; make install adds it)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "synth.ys"
    reads = "\n".join(f"read_verilog {Path(s).resolve()}" for s in design.sources)
    stat_json = workdir / "stat.json"
    stat_json.unlink(missing_ok=True)
    script.write_text(
        f"{reads}\nsynth_xilinx -family {family} -top {design.top} -flatten\n"
        f"tee -q -o {stat_json.resolve()} stat -json\nstat\n"
    )
    log = workdir / "yosys.log"
    try:
        proc = subprocess.run(
            [yosys, "-q", "-l", str(log), "-s", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"yosys: no result after {timeout:.0f} s; see {log}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolError(f"yosys failed (exit {proc.returncode}): {' | '.join(tail)}; see {log}")
    cells = stat_cells(stat_json) if stat_json.exists() else parse_stat(log.read_text())
    return {
        "tool": "yosys",
        "version": _version(yosys),
        "part": part,
        "family": family,
        **summarize(cells),
        "cells": cells,
    }


def _version(yosys: str) -> str:
    out = subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip()
    return out.split(" (")[0]
