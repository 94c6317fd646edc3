"""``qfab build``: a ``qfab run`` folder onto a board of the catalog (orchestration).

Wires the stages the board build needs: the catalog's fit check on the design's
resources (``report.json``'s Yosys numbers when they were made for the board's family,
else a fresh ``hw_gen`` synthesis for the board's part), optionally the search for a
folding that fits (re-lowering the IR and re-synthesizing: verified, not estimated), and
then the board's flow: the Vivado project for Zynq boards (checked in a Tcl interpreter;
run when ``vivado`` is on PATH) or the open iCE40 flow.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from boards.catalog import FOLDABLE, Board, BoardError, budget_limit, check_fit
from qfab.ir import Graph

RUN_RTL = "rtl"
RUN_IR = "model.qfab.npz"


def _run_files(run_dir: Path) -> dict[str, Any]:
    manifest = run_dir / RUN_RTL / "design.json"
    if not manifest.is_file():
        raise BoardError(f"{run_dir}: no {RUN_RTL}/design.json (give a `qfab run --out` folder)")
    report = run_dir / "report.json"
    return {
        "manifest": json.loads(manifest.read_text()),
        "report": json.loads(report.read_text()) if report.is_file() else {},
    }


def board_resources(run_dir: Path, board: Board, work: Path) -> tuple[dict[str, int], str]:
    """The design's Xilinx resources and where they come from: ``report.json`` when its
    synthesis targeted the board's family, else ``synth_xilinx`` for the board's part."""
    from hw_gen.synth_yosys import family_of, synth_xilinx

    res = _run_files(run_dir)["report"].get("resources")
    family = family_of(board.part)
    if res and res.get("family") == family:
        return res, f"report.json (yosys synth_xilinx, {res.get('part')})"
    res = synth_xilinx(run_dir / RUN_RTL, board.part, work / "synth")
    return res, f"yosys synth_xilinx for {board.part} (report.json had none for {family})"


def next_target(
    board: Board, points: list[tuple[int, dict[str, int]]], over: list[str]
) -> int | None:
    """The cycles per frame at which the over-used resources should fit, from the two
    latest (cycles, resources) points: each resource modelled as ``a + b / cycles`` (a
    part that folding does not shrink, and one that falls with the MAC parallelism),
    solved for its limit (:func:`~boards.catalog.budget_limit`). None without two points."""
    (c1, r1), (c2, r2) = points[-2], points[-1]
    if c1 == c2:
        return None
    need = []
    for k in (k for k in over if k in FOLDABLE):
        b = (r1[k] - r2[k]) / (1 / c1 - 1 / c2)
        a = r2[k] - b / c2
        limit = budget_limit(board, k)
        need.append(2 * c2 if b <= 0 or limit <= a else math.ceil(b / (limit - a)))
    return max(need) if need else None


def find_folding(
    run_dir: Path,
    board: Board,
    start: tuple[int, dict[str, int]],
    work: Path,
    console: Console,
    tries: int = 5,
) -> dict[str, Any]:
    """Re-lower the run's IR at a larger ``hw.target_cycles`` and re-synthesize until the
    design fits ``board``, at most ``tries`` syntheses. ``start`` is the run's own
    (cycles per frame, resources). The first target is :func:`~boards.catalog.check_fit`'s
    MAC-scaling estimate; later ones come from :func:`next_target`. FIFOs are the
    lowering's own (not re-sized by simulation as ``qfab run`` does)."""
    from hw_gen.passes import lower
    from hw_gen.synth_yosys import synth_xilinx
    from hw_gen.verilog.emit import generate_verilog

    graph = Graph.load(run_dir / RUN_IR)
    hw = graph.lowered
    if hw is None or any(n.op == "SparseMVAU" for n in hw.nodes):
        raise BoardError(f"{run_dir / RUN_IR}: folding search needs a dense lowered graph")
    settings = {
        "max_port_bits": int(hw.meta.get("max_port_bits", 64)),
        "xnor": any("ToXnor" in p for p in hw.meta.get("passes", [])),
    }
    points = [start]
    fit = check_fit(board, start[1], start[0])
    target = fit.suggested_target_cycles
    tried = []
    while target is not None and len(tried) < tries:
        tried.append(target)
        lowered = lower(graph, target_cycles=target, **settings)
        folder = work / f"fold_{target}"
        manifest = generate_verilog(lowered, folder / RUN_RTL)
        res = synth_xilinx(folder / RUN_RTL, board.part, folder / "synth")
        cycles = int(manifest["perf"]["cycles_per_frame"])
        fit = check_fit(board, res, cycles, f"yosys synth_xilinx, re-lowered at {target}")
        console.print(f"  folding search: target {target} -> {fit.describe()}")
        if fit.fits:
            return {"target_cycles": target, "cycles_per_frame": cycles, "resources": res,
                    "tried": tried}  # fmt: skip
        stuck = cycles == points[-1][0]  # the folding steps in divisors: same as before
        points = [p for p in points if p[0] != cycles] + [(cycles, res)]
        guess = next_target(board, points, fit.over) or fit.suggested_target_cycles
        if guess is None:
            break
        target = max(target + 1, guess, math.ceil(target * 1.5) if stuck else 0)
    raise BoardError(
        f"no folding fits {board.name}: tried hw.target_cycles {tried} ({fit.describe()})"
    )


def build_for_board(
    run_dir: Path,
    board: Board,
    out: Path,
    console: Console,
    *,
    clock_mhz: float | None = None,
    jobs: int = 4,
    fit_check: bool = True,
    search_folding: bool = False,
) -> dict[str, Any]:
    """Build ``run_dir``'s design for ``board`` into ``out``; returns what was done."""
    files = _run_files(run_dir)
    if board.family == "ice40":
        return _build_ice40(run_dir, board, out, console, files, clock_mhz)
    from boards.vivado import dry_run_tcl, run_vivado, write_vivado_build

    result: dict[str, Any] = {"flow": "vivado", "board": board.name, "part": board.part}
    if fit_check:
        with tempfile.TemporaryDirectory(prefix="qfab-fit-") as tmp:
            res, source = board_resources(run_dir, board, Path(tmp))
            cycles = int(files["manifest"]["perf"]["cycles_per_frame"])
            fit = check_fit(board, res, cycles, source)
            verdict = "fits" if fit.fits else "does not fit"
            console.print(f"{board.name} ({board.part}): {fit.describe()}: {verdict} [{source}]")
            if not fit.fits and search_folding and fit.suggested_target_cycles:
                found = find_folding(run_dir, board, (cycles, res), Path(tmp), console)
                raise BoardError(
                    f"design does not fit {board.name}: {fit.describe()}. Verified by "
                    f"re-lowering and re-synthesizing (tried {found['tried']}): hw.target_cycles: "
                    f"{found['target_cycles']} fits (LUT {found['resources']['LUT']:,}, "
                    f"{found['cycles_per_frame']} cycles/frame); set it and run qfab run again"
                )
            if not fit.fits:
                raise BoardError(
                    f"design does not fit {board.name} ({board.part}): {fit.describe()}"
                )
            result["fit"] = {k: {"need": n, "have": h} for k, (n, h) in fit.need_have.items()}
            result["fit_source"] = source
    build = write_vivado_build(run_dir, board, out, clock_mhz=clock_mhz, jobs=jobs)
    dry_run_tcl(build.script, build.ports)
    result.update(folder=str(build.folder), script=str(build.script), tcl_checked=True)
    result["vivado"] = run_vivado(build)
    return result


#: nextpnr-ice40's resource names -> the catalog's
ICE40_RESOURCES = {"LC": "LUT", "RAM": "EBR", "SPRAM": "SPRAM", "DSP": "DSP"}


def _build_ice40(
    run_dir: Path,
    board: Board,
    out: Path,
    console: Console,
    files: dict[str, Any],
    clock_mhz: float | None,
) -> dict[str, Any]:
    """The open flow (Yosys, nextpnr-ice40, icepack). A design nextpnr finds too large is
    refused with its numbers and, from them, the folding estimated to fit (the catalog's
    rule); a design that misses the clock is built and reported, not hidden."""
    from boards.ice40 import Ice40DoesNotFit, build_ice40, fit_numbers

    if clock_mhz is not None and clock_mhz != board.clock_mhz:
        raise BoardError(
            f"--clock-mhz {clock_mhz:g}: the {board.name} runs from its {board.clock_mhz:g} MHz "
            f"oscillator (qfab generates no PLL); allowed: {board.clock_mhz:g}"
        )
    mhz = board.clock_mhz
    cycles = int(files["manifest"]["perf"]["cycles_per_frame"])
    try:
        result = build_ice40(run_dir / RUN_RTL, out, clock_mhz=mhz)
    except Ice40DoesNotFit as exc:
        used = {
            ICE40_RESOURCES[k]: v["used"]
            for k, v in exc.utilisation.items()
            if k in ICE40_RESOURCES
        }
        fit = check_fit(board, used, cycles, "nextpnr-ice40")
        raise BoardError(
            f"design does not fit {board.name} ({board.part}): {fit.describe()}"
        ) from None
    numbers = fit_numbers(result)
    verdict = "met" if result["timing_met"] else "NOT met"
    console.print(
        f"{board.name}: LC {numbers.get('LC_used')}/{numbers.get('LC_available')}, "
        f"EBR {numbers.get('RAM_used')}/{numbers.get('RAM_available')}, Fmax "
        f"{result['fmax_mhz']:.1f} MHz for a {mhz:g} MHz clock: timing {verdict}"
    )
    return {"flow": "ice40", "board": board.name, "fit": numbers, **result}
