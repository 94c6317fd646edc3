"""The Vitis HLS run of a generated HLS folder: its test bench files, and the tool itself
when it is installed.

``run_hls.tcl`` (written by :func:`hw_gen.hls.emit.generate_hls`) runs C simulation, C
synthesis, C/RTL co-simulation and IP export; its simulations read ``tb_in.hex`` and
check every output beat against ``tb_expected.hex``, golden's outputs written here. Vitis
cannot run on qfab's CI machines: when ``vitis_hls`` is not on PATH nothing is faked, the
result says so and gives the exact command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from qfab.elements import pack_beats, port_element
from qfab.errors import ToolError
from qfab.golden import run_golden_int
from qfab.ir import Graph

#: Longest a Vitis HLS run may take before it is stopped (C synthesis + co-simulation of
#: a CNV-sized design take tens of minutes).
VITIS_TIMEOUT_S = 4 * 3600


def write_testbench(design_dir: str | os.PathLike[str], graph: Graph, x_int: np.ndarray) -> int:
    """Write ``tb_in.hex`` (input beats of ``x_int``) and ``tb_expected.hex`` (golden's
    output beats for them) into the HLS folder; return the number of frames."""
    design_dir = Path(design_dir)
    info = json.loads((design_dir / "design.json").read_text())
    inp, outp = info["input"], info["output"]
    x_int = np.asarray(x_int, dtype=np.int64)
    want = run_golden_int(graph, x_int).outputs[outp["model_node"]]
    in_el, out_el = port_element(inp), port_element(outp)
    beats_in = pack_beats(in_el.encode(x_int), inp["elems_per_beat"], in_el.bits)
    beats_out = pack_beats(out_el.encode(want), outp["elems_per_beat"], out_el.bits)
    (design_dir / "tb_in.hex").write_text("".join(f"{b:x}\n" for b in beats_in))
    (design_dir / "tb_expected.hex").write_text("".join(f"{b:x}\n" for b in beats_out))
    return len(x_int)


def vitis_command(design_dir: str | os.PathLike[str]) -> str:
    """The command that runs the script, from the folder holding the design folder (a
    run folder is renamed into place after the run, so no absolute path would stay true)."""
    return f"cd {Path(design_dir).name} && vitis_hls -f run_hls.tcl"


def run_vitis_hls(
    design_dir: str | os.PathLike[str], timeout_s: float = VITIS_TIMEOUT_S
) -> dict[str, Any]:
    """Run ``vitis_hls -f run_hls.tcl`` in the folder if the tool is on PATH.

    Returns ``{"ran": False, "why", "command"}`` when it is not (nothing is faked), else
    ``{"ran": True, "seconds", "log"}``; a failing run raises :class:`ToolError` naming
    its log."""
    design_dir = Path(design_dir)
    command = vitis_command(design_dir)
    tool = shutil.which("vitis_hls")
    if tool is None:
        return {"ran": False, "why": "vitis_hls is not on PATH", "command": command}
    log = design_dir / "vitis_hls.log"
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            [tool, "-f", "run_hls.tcl"],
            cwd=design_dir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"vitis_hls ran longer than {timeout_s:.0f} s in {design_dir}") from None
    log.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise ToolError(f"vitis_hls failed (exit {res.returncode}); see {log}")
    return {"ran": True, "seconds": round(time.perf_counter() - t0, 1), "log": log.name}
