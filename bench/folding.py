"""Folding sweep: LeNet-5 and CNV from fully folded to fully parallel, model vs measurement.

Each model is trained briefly on digits and exported once (``qfab run`` with hardware
off); then, for a series of cycle targets from the fully folded design (every PE and
SIMD 1) down to the most parallel one (whole windows per beat, every output channel in
parallel), the same IR is lowered with ``auto`` folding to that target, generated,
simulated on Verilator against golden and synthesized with Yosys. One row per point:
the modelled and measured steady-state cycles per frame and their ratio, the
bottleneck unit, LUT, FF, BRAM36, DSP and logic depth.

Run: ``.venv/bin/python bench/folding.py [--models lenet5,cnv] [--points 6] [--no-synth]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_gen.passes import lower  # noqa: E402
from hw_gen.perf import perf_model  # noqa: E402
from qfab.config import parse_config  # noqa: E402
from qfab.flow import run_flow  # noqa: E402
from qfab.ir import Graph  # noqa: E402


def extremes(graph: Graph) -> tuple[int, int]:
    """(cycles of the most parallel folding, cycles of the fully folded one)."""
    fast = perf_model(lower(graph, target_cycles=1))["cycles_per_frame"]
    slow = perf_model(lower(graph, target_cycles=10**9))["cycles_per_frame"]
    return fast, slow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,cnv")
    parser.add_argument("--points", type=int, default=6, help="folding points per model")
    parser.add_argument("--vectors", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--bits", default="2,2", help="weight,act bits")
    parser.add_argument("--no-synth", action="store_true")
    args = parser.parse_args()
    w, a = (int(v) for v in args.bits.split(","))
    console = Console(width=160)
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    rows = []
    with tempfile.TemporaryDirectory(prefix="folding_") as tmp:
        for arch in args.models.split(","):
            console.print(f"[bold]{arch} w{w}a{a}[/]: training and export ...")
            base = {
                "model": {"arch": arch, "weight_bits": w, "act_bits": a},
                "train": {"epochs": args.epochs, "float_baseline": False},
                "sim": {"enabled": False},
                "synth": {"enabled": False},
            }
            run_flow(parse_config(base, arch), Path(tmp) / arch, quiet)
            ir = Path(tmp) / arch / "model.qfab.npz"
            fast, slow = extremes(Graph.load(ir))
            targets = sorted(
                {
                    round(fast * (slow / fast) ** (i / (args.points - 1)))
                    for i in range(args.points)
                },
                reverse=True,
            )
            for target in targets:
                cfg = {
                    **base,
                    "hw": {"target_cycles": max(1, target)},
                    "sim": {"simulator": "verilator", "vectors": args.vectors},
                    "synth": {"enabled": not args.no_synth, "part": "xc7z020"},
                }
                console.print(f"  target {target} cycles/frame ...")
                out = Path(tmp) / f"{arch}_{target}"
                report = run_flow(parse_config(cfg, arch), out, quiet, from_ir=ir)
                cpf = report["perf"]["cycles_per_frame"]
                res = report.get("resources", {})
                eq = report["equality"]["rtl_vs_golden"]
                rows.append(
                    {
                        "model": arch,
                        "target": target,
                        "model_cycles": cpf["model"],
                        "measured": cpf["measured"],
                        "ratio": cpf["ratio"],
                        "bottleneck": report["perf"]["bottleneck"],
                        "mismatches": f"{eq['mismatches']}/{eq['vectors']}",
                        "LUT": res.get("LUT"),
                        "FF": res.get("FF"),
                        "BRAM36": res.get("BRAM36"),
                        "DSP": res.get("DSP"),
                        "logic_depth": res.get("logic_depth"),
                        # parallel multipliers (or XNORs): sum of PE x SIMD over the units
                        "MACs/cycle": sum(
                            u["PE"] * u["SIMD"] for u in report["hardware"]["folding"]
                        ),
                    }
                )
                console.print(rows[-1])
    out = ROOT / "out" / "bench_folding"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = Table(
        title=f"folding sweep on digits, w{w}a{a}, Verilator {args.vectors} vectors, Yosys xc7z020"
    )
    cols = [
        "model",
        "target",
        "model_cycles",
        "measured",
        "ratio",
        "bottleneck",
        "mismatches",
        "MACs/cycle",
        "LUT",
        "FF",
        "BRAM36",
        "DSP",
        "logic_depth",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c in ("model", "bottleneck") else "right")
    for r in rows:
        table.add_row(*("—" if r.get(c) is None else str(r[c]) for c in cols))
    console.print(table)
    off = [
        f"{r['model']}@{r['target']}"
        for r in rows
        if r["ratio"] is None or not math.isclose(r["ratio"], 1, abs_tol=0.05)
    ]
    console.print(f"points off the model by > 5%: {off or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
