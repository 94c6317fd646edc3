"""Every model of the zoo on generated hardware: RTL == golden, cycles against the model.

For each point (model x bit widths, and LeNet-5 factored by Tucker-2, CP and spatial
separation through ``qfab compress``) it runs the whole ``qfab run`` flow on digits:
QAT, export, level 1, lowering, Verilog generation from the IR file, Verilator
simulation of ``--vectors`` vectors against golden (every inner unit tapped), and
Yosys ``synth_xilinx``. One row per point: mismatches, measured steady-state cycles per
frame beside the model's and their ratio, LUT, FF, BRAM36, DSP, logic depth (Yosys
``ltp`` between registers), accuracy and wall time.

Run: ``.venv/bin/python bench/zoo_hw.py [--quick] [--only lenet5,cnv] [--no-synth]``
(about two hours for everything on 2 cores; ``--quick`` trains 2 epochs and
simulates 40 vectors; ``--markdown`` prints the stored results as the README's table).
Results also go to ``out/bench_zoo_hw/results.json`` (merged with the rows of
earlier runs, so ``--only`` refreshes some rows and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qfab.config import parse_config  # noqa: E402
from qfab.errors import MismatchError  # noqa: E402

MLPS = ("mlp", "tfc", "sfc", "lenet300", "lfc")
CONVS = ("lenet5", "cnv")
COMPACT = ("mobilenet", "shufflenet", "squeezenet")
#: Cycles per frame asked of the folding; None: qfab's auto target (64 for MLPs, the
#: slowest window at one tap per cycle for image nets). LFC's 3x1024x1024 at 64 cycles
#: would need 16k MACs per cycle per layer; 1024 keeps it at FINN-like 1k.
TARGETS = {"lfc": 1024, "sfc": 128}
#: Points re-simulated on Icarus (from the same IR) as a second opinion.
ICARUS = {
    "mlp-w2a2",
    "lenet5-w2a2",
    "cnv-w1a1",
    "shufflenet-w4a4",
    "squeezenet-w2a2",
    "mobilenet-w2a2",
    "lenet5-w4a4-cp",
}
FACTORED = {
    "tucker": {"method": "tucker", "rank": [None, [3, 6]]},
    "cp": {"method": "cp", "rank": [3, 7]},
    "spatial": {"method": "spatial", "rank": [None, 4]},
}


def points(only: set[str] | None) -> list[tuple[str, int, int, str | None]]:
    """(arch, weight bits, act bits, factorization) of every row."""
    rows: list[tuple[str, int, int, str | None]] = []
    for arch in (*MLPS, *CONVS, *COMPACT):
        bits = [(2, 2), (4, 4)] + ([(1, 1)] if arch in (*MLPS, "cnv") else [])
        rows += [(arch, w, a, None) for w, a in bits]
    rows += [("lenet5", 4, 4, f) for f in FACTORED]
    return [r for r in rows if only is None or r[0] in only or (r[3] and r[3] in only)]


def point_name(arch: str, w: int, a: int, factor: str | None) -> str:
    """Row name: ``lenet5-w4a4`` or ``lenet5-w4a4-cp``."""
    return f"{arch}-w{w}a{a}" + (f"-{factor}" if factor else "")


def config(arch: str, w: int, a: int, epochs: int, vectors: int, synth: bool) -> dict:
    hw: dict[str, Any] = {}
    if arch in TARGETS:
        hw["target_cycles"] = TARGETS[arch]
    return {
        "model": {"arch": arch, "weight_bits": w, "act_bits": a},
        "train": {"epochs": epochs, "float_baseline": False},
        "hw": hw,
        "sim": {"simulator": "verilator", "vectors": vectors},
        "synth": {"enabled": synth, "part": "xc7z020"},
    }


def run_point(
    arch: str, w: int, a: int, factor: str | None, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    from qfab.compress_flow import run_compress
    from qfab.flow import run_flow

    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115  (the table is the output)
    raw = config(arch, w, a, args.epochs, args.vectors, not args.no_synth)
    name = point_name(arch, w, a, factor)
    start = time.perf_counter()
    source = None
    if factor:
        raw["compress"] = {
            "steps": [
                {"factorize": {**FACTORED[factor], "fine_tune_epochs": args.epochs}},
                {"quantize": {"weight_bits": w, "act_bits": a, "epochs": args.epochs}},
            ]
        }
        raw["train"]["float_baseline"] = True
        run_compress(parse_config(raw, name), work / f"{name}-compress", quiet)
        source = work / f"{name}-compress" / "model.qfab.npz"
    try:
        report = run_flow(parse_config(raw, name), work / name, quiet, from_ir=source)
    except MismatchError:
        report = json.loads((work / name / "report.json").read_text())
    seconds = time.perf_counter() - start
    icarus = None
    if name in ICARUS and not args.no_icarus:
        second = {
            **raw,
            "sim": {"simulator": "icarus", "vectors": min(args.vectors, 40)},
            "synth": {"enabled": False},
        }
        try:
            rep = run_flow(
                parse_config(second, name),
                work / f"{name}-icarus",
                quiet,
                from_ir=work / name / "model.qfab.npz",
            )
        except MismatchError:
            rep = json.loads((work / f"{name}-icarus" / "report.json").read_text())
        ie = rep["equality"]["rtl_vs_golden"]
        icarus = f"{ie['mismatches']}/{ie['vectors']}"
    eq = report["equality"].get("rtl_vs_golden", {})
    cpf = report["perf"]["cycles_per_frame"]
    res = report.get("resources", {})
    return {
        "point": name,
        "units": len(report["hardware"]["units"]),
        "mismatches": eq.get("mismatches"),
        "vectors": eq.get("vectors"),
        "icarus": icarus,
        "first_mismatch": eq.get("first_mismatch"),
        "cycles_measured": cpf["measured"],
        "cycles_model": cpf["model"],
        "ratio": cpf["ratio"],
        "bottleneck": report["perf"]["bottleneck"],
        "LUT": res.get("LUT"),
        "FF": res.get("FF"),
        "BRAM36": res.get("BRAM36"),
        "DSP": res.get("DSP"),
        "logic_depth": res.get("logic_depth"),
        "accuracy": report["accuracy"]["quantized"],
        "seconds": round(seconds, 1),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README's table of ``results.json``: one line per point."""

    def num(v: Any) -> str:
        return "—" if v is None else f"{v:,}"

    lines = [
        "| model | units | RTL == golden (Verilator) | Icarus | cycles/frame measured / model "
        "| bottleneck | LUT | FF | BRAM36 | logic depth | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['point']} | failed: {r['error'][:100]} |")
            continue
        measured = r["cycles_measured"]
        measured = int(measured) if measured == int(measured) else measured
        lines.append(
            f"| {r['point']} | {r['units']} | {r['mismatches']}/{r['vectors']} "
            f"| {r['icarus'] or '—'} | {measured} / {r['cycles_model']} | {r['bottleneck']} "
            f"| {num(r['LUT'])} | {num(r['FF'])} | {num(r['BRAM36'])} "
            f"| {num(r['logic_depth'])} | {r['accuracy']:.2%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 40 vectors")
    parser.add_argument("--only", help="comma-separated archs or factorizations")
    parser.add_argument("--no-synth", action="store_true", help="skip Yosys")
    parser.add_argument("--no-icarus", action="store_true", help="skip the Icarus re-runs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--vectors", type=int, default=None)
    parser.add_argument(
        "--markdown", action="store_true", help="print results.json as a table and exit"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((ROOT / "out/bench_zoo_hw/results.json").read_text())))
        return 0
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.vectors = args.vectors or (40 if args.quick else 100)
    only = set(args.only.split(",")) if args.only else None
    console = Console(width=160)
    rows = []
    out = ROOT / "out" / "bench_zoo_hw"
    out.mkdir(parents=True, exist_ok=True)
    # rows of earlier runs (e.g. of other --only subsets) are kept; a point run again
    # replaces its row
    done = {}
    if (out / "results.json").exists():
        done = {r["point"]: r for r in json.loads((out / "results.json").read_text())}
    with tempfile.TemporaryDirectory(prefix="zoo_hw_") as tmp:
        for arch, w, a, factor in points(only):
            console.print(f"[bold]{arch} w{w}a{a}{' ' + factor if factor else ''}[/] ...")
            try:
                rows.append(run_point(arch, w, a, factor, args, Path(tmp)))
            except Exception as exc:  # a row that fails is a result, not the end of the bench
                rows.append(
                    {
                        "point": point_name(arch, w, a, factor),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
            console.print(rows[-1])
            done[rows[-1]["point"]] = rows[-1]
            order = [point_name(*p) for p in points(None)]
            merged = sorted(
                done.values(),
                key=lambda r: order.index(r["point"]) if r["point"] in order else len(order),
            )
            (out / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    table = Table(
        title=f"zoo on hardware (digits, Verilator, {args.vectors} vectors, "
        f"{args.epochs} epochs, Yosys xc7z020)"
    )
    cols = [
        "point",
        "units",
        "mismatches",
        "icarus",
        "cycles_measured",
        "cycles_model",
        "ratio",
        "bottleneck",
        "LUT",
        "FF",
        "BRAM36",
        "DSP",
        "logic_depth",
        "accuracy",
        "seconds",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c in ("point", "bottleneck") else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["point"], "[red]" + r["error"][:120])
            continue
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "mismatches":
                v = f"{v}/{r['vectors']}"
            elif c == "accuracy" and v is not None:
                v = f"{v:.2%}"
            cells.append("—" if v is None else str(v))
        table.add_row(*cells)
    console.print(table)
    bad = [
        r["point"]
        for r in rows
        if "error" in r
        or r.get("mismatches")
        or (r.get("icarus") and not r["icarus"].startswith("0/"))
    ]
    off = [r["point"] for r in rows if r.get("ratio") and abs(r["ratio"] - 1) > 0.05]
    console.print(
        f"mismatching or failed: {bad or 'none'}; cycles off the model by > 5%: {off or 'none'}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
