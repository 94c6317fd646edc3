"""XNOR-popcount units against the generic MVAU for binary (w1a1) MLPs, at equal folding.

Two w1a1 MLPs on digits-sized inputs (random ±1 weights, thresholds in the reachable
range, 8-bit pixels into the first layer): the issue's 64-48-20-10 at 40 cycles per
frame, and an SFC-like 64-256-256-256-10 at 64 cycles (about a thousand MACs per cycle
in each hidden layer). Each is lowered twice with the same folding (auto, to the
target): once with ``ToXnor`` (bipolar layers on XNOR-popcount units) and once without
(every layer on the generic MVAU, bipolar decoded to ±1 and multiplied). Both designs
are simulated on Verilator against golden and synthesized with Yosys ``synth_xilinx``
for xc7z020; each unit is also synthesized alone (its module with its ROMs), so the
bipolar layers can be compared unit by unit. Printed per unit and for the whole design:
LUTs, MACs per cycle and LUTs per (MAC per cycle), beside the published figure (FINN
SFC-max, second-hand, ~4.4 LUTs per MAC per cycle) and the figure the generic unit had
when this issue was filed (9,742 LUTs for the small MLP at 40 cycles, ~92).

Run: ``.venv/bin/python bench/xnor.py [--vectors 100] [--only mlp|sfc]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_gen.passes import lower  # noqa: E402
from hw_gen.synth_yosys import synth_xilinx  # noqa: E402
from hw_gen.verilog.emit import generate_verilog  # noqa: E402
from qfab.ir import Graph, input_range  # noqa: E402
from qfab.random_graph import random_mlp_graph  # noqa: E402
from sim.compare import compare_rtl_to_golden  # noqa: E402
from sim.runner import run_cocotb  # noqa: E402

FINN_SFC_MAX = "FINN SFC-max (second-hand): ~91,000 LUT, 334,336 weights at 16.3 cycles: ~4.4"
ISSUE_GENERIC = "generic unit when the issue was filed: 9,742 LUT at 40 cycles: ~92"


def macs(node) -> int:
    return int(np.prod(node.tensors["weight"].shape))


def build(graph: Graph, xnor: bool, target: int, work: Path, vectors: int) -> dict:
    hw = lower(graph, target_cycles=target, xnor=xnor)
    manifest = generate_verilog(hw, work / "rtl")
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    x = np.random.default_rng(1).integers(lo, hi + 1, size=(vectors, first.attrs["features"]))
    res = run_cocotb(work / "rtl", x, simulator="verilator", build_dir=work / "build")
    eq = compare_rtl_to_golden(graph, x, res, manifest["output"]["model_node"])
    whole = synth_xilinx(work / "rtl", "xc7z020", work / "synth")
    units = []
    for n in hw.nodes:
        if n.op in ("MVAU", "XnorMVAU"):
            alone = synth_xilinx(
                work / "rtl", "xc7z020", work / f"synth_{n.name}", top=f"{n.name}_unit"
            )
            per_cycle = macs(n) / n.attrs["cycles"]
            units.append(
                {
                    "unit": n.name,
                    "op": n.op,
                    "pe": n.attrs["pe"],
                    "simd": n.attrs["simd"],
                    "cycles": n.attrs["cycles"],
                    "macs_per_cycle": per_cycle,
                    "LUT": alone["LUT"],
                    "FF": alone["FF"],
                    "lut_per_mac": alone["LUT"] / per_cycle,
                }
            )
    total_macs = sum(macs(n) for n in hw.nodes if n.op in ("MVAU", "XnorMVAU"))
    ii = manifest["perf"]["cycles_per_frame"]
    return {
        "eq": eq,
        "cycles_measured": res.cycles_per_frame,
        "cycles_model": ii,
        "whole": whole,
        "units": units,
        "macs_per_cycle": total_macs / ii,
    }


MODELS = {"mlp": ([48, 20], 40), "sfc": ([256, 256, 256], 64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100)
    parser.add_argument("--only", choices=sorted(MODELS))
    args = parser.parse_args()
    console = Console(width=150)
    failed = False
    for name, (hidden, target) in MODELS.items():
        if args.only and name != args.only:
            continue
        failed |= compare(console, hidden, target, args.vectors)
    console.print(f"for scale: {FINN_SFC_MAX}; {ISSUE_GENERIC}")
    return 1 if failed else 0


def compare(console: Console, hidden: list[int], target: int, vectors: int) -> bool:
    """Both variants of one MLP; prints the table; True if any mismatch."""
    graph = random_mlp_graph(64, hidden, 10, weight_bits=1, act_bits=1, seed=0)
    shape = "-".join(str(v) for v in (64, *hidden, 10))
    results = {}
    with tempfile.TemporaryDirectory(prefix="xnor_") as tmp:
        for label, xnor in (("XNOR-popcount", True), ("generic MVAU", False)):
            console.print(f"[bold]{shape} {label}[/]: lower, generate, simulate, synthesize ...")
            results[label] = build(graph, xnor, target, Path(tmp) / label[:4], vectors)
    table = Table(
        title=f"w1a1 MLP {shape} at {target} cycles/frame: XNOR vs generic "
        "(Yosys synth_xilinx xc7z020, each unit synthesized alone)"
    )
    for col in ("design", "unit", "op", "PE x SIMD", "MAC/cycle", "LUT", "FF", "LUT per MAC/cycle"):
        table.add_column(col, justify="left" if col in ("design", "unit", "op") else "right")
    for label, r in results.items():
        for u in r["units"]:
            table.add_row(
                label,
                u["unit"],
                u["op"],
                f"{u['pe']} x {u['simd']}",
                f"{u['macs_per_cycle']:.0f}",
                str(u["LUT"]),
                str(u["FF"]),
                f"{u['lut_per_mac']:.1f}",
            )
        w = r["whole"]
        table.add_row(
            label,
            "[bold]whole design",
            "",
            "",
            f"{r['macs_per_cycle']:.0f}",
            str(w["LUT"]),
            str(w["FF"]),
            f"{w['LUT'] / r['macs_per_cycle']:.1f}",
        )
    console.print(table)
    for label, r in results.items():
        eq = r["eq"]
        console.print(
            f"{label}: RTL == golden {eq['mismatches']} mismatches / {eq['vectors']} vectors; "
            f"cycles/frame measured {r['cycles_measured']} model {r['cycles_model']}; "
            f"logic depth {r['whole']['logic_depth']}"
        )
    xn = {u["unit"]: u for u in results["XNOR-popcount"]["units"] if u["op"] == "XnorMVAU"}
    gen = {u["unit"]: u for u in results["generic MVAU"]["units"] if u["unit"] in xn}
    lut_x = sum(u["LUT"] for u in xn.values())
    lut_g = sum(u["LUT"] for u in gen.values())
    mpc = sum(u["macs_per_cycle"] for u in xn.values())
    console.print(
        f"bipolar layers ({', '.join(xn)}): XNOR {lut_x} LUT = {lut_x / mpc:.1f} per MAC/cycle; "
        f"generic {lut_g} LUT = {lut_g / mpc:.1f}; ratio {lut_g / lut_x:.2f}x"
    )
    return any(r["eq"]["mismatches"] for r in results.values())


if __name__ == "__main__":
    sys.exit(main())
