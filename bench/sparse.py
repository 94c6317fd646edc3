"""Sparse engine benchmark: EIE's Fig. 8 sweep on a trained, pruned LeNet-300-100 (MNIST).

Run: ``.venv/bin/python bench/sparse.py [--mnist-dir DIR] [--vectors 24] [--synth depth8]``

1. Trains LeNet-300-100 on MNIST with the compression pipeline (prune every layer to
   10% density -> QAT w4a4 -> share 15 values (+ the padding zero: 4-bit codes) ->
   encode for the engine), twice: plain magnitude pruning and load-balance-aware
   pruning (ESE, ``balance_pes: 16``, balanced for 1..16 PEs alike). The trained IRs are
   kept in ``OUT/*.qfab.npz``; ``--reuse`` takes them instead of training again. Two
   epochs per stage by default (``--epochs``): MNIST is large enough that LeNet-300-100
   reaches ~98% with them.
2. For PEs in 1, 2, 4, 8, 16 and queue depths 1, 2, 4, 8, 16, 32 it puts all three layers
   on the sparse engine, generates the RTL and simulates it on MNIST test images
   (Verilator), bit-exact against golden, and prints side by side: measured cycles per
   frame (steady state), the model's (hw_gen.sparse_perf, on the same images), the ideal
   (the bottleneck layer's non-zero work / N), the load-balance efficiency ideal /
   measured, the speed-up over a dense MVAU with as many multipliers (784 * 300 / N
   cycles), the bytes in the engines' memories (from the generated design's manifest)
   beside the ``encode`` row's bytes for the same PEs, and Yosys ``synth_xilinx``
   LUT/FF/BRAM (``--synth all``, or only depth 8 by default, as synthesis takes minutes).

Every number is measured in this run; nothing is cached but the trained IRs (named).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from hw_gen.passes import lower
from hw_gen.sparse_perf import design_sparse_perf
from hw_gen.verilog.emit import generate_verilog
from qfab.config import parse_config
from qfab.golden import quantize_input
from qfab.ir import Graph
from qfab.ops import OPS
from qfab.sparse import sparse_encode
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb

PES = (1, 2, 4, 8, 16)
DEPTHS = (1, 2, 4, 8, 16, 32)
ROOT = Path(__file__).resolve().parents[1]


def train(data: Any, balance: int | None, epochs: int, out: Path, console: Console) -> Graph:
    """LeNet-300-100: prune to 10% per layer -> w4a4 -> share 15 -> encode (4 PEs)."""
    from qfab.compress_flow import store_layouts
    from quant_train.compress import Pipeline
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    prune: dict[str, Any] = {
        "sparsity": 0.9,
        "schedule": [0.5, 0.75, 0.9],
        "scope": "layer",
        "fine_tune_epochs": max(1, epochs // 2),
    }
    if balance:
        prune["balance_pes"] = balance
    cfg = parse_config(
        {
            "model": {"arch": "lenet300"},
            "dataset": {"name": "mnist"},
            "train": {"epochs": epochs},
            "compress": {
                "steps": [
                    {"prune": prune},
                    {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": epochs}},
                    {"share": {"clusters": 15, "fine_tune_epochs": max(1, epochs // 2)}},
                    {"encode": {"index_bits": 4, "code_bits": 4, "pes": 4, "huffman": False}},
                ]
            },
        },
        "bench/sparse.py",
    )
    start = time.perf_counter()

    def progress(label: str, epoch: int, total: int, loss: float) -> None:
        if epoch + 1 == total:
            console.print(f"  {label}: {total} epochs, loss {loss:.3f}")

    pipe = Pipeline(cfg, data, progress)
    model = pipe.run()
    graph = export_model(model, {"dataset": "mnist", "bench": "sparse", "balance_pes": balance})
    store_layouts(graph, pipe.layouts)
    eq = compare_brevitas_to_golden(model, graph, data.x_test[:2000])
    if eq.mismatches:
        raise SystemExit(f"Brevitas != golden: {eq.first_mismatch}")
    for r in pipe.rows:
        console.print(f"  {r.step:<40} {r.accuracy:.2%}  params {r.params:,}  bytes {r.bytes:,}")
    console.print(f"  trained in {time.perf_counter() - start:.0f} s; level 1: 0 mismatches")
    graph.meta["rows"] = [{"step": r.step, "accuracy": r.accuracy} for r in pipe.rows]
    graph.save(out)
    return graph


def encode_row_bytes(graph: Graph, pes: int) -> int:
    """What the ``encode`` step (pes = N, 4-bit index and code, no Huffman) counts."""
    from quant_train.storage import encode_sparse_layout

    total = 0
    for n in graph.nodes:
        if n.op == "Dense":
            lay = sparse_encode(OPS["Dense"].weight(n), pes, 4, 4, n.tensors.get("codebook"))
            total += encode_sparse_layout(lay, huffman=False, name=n.name).total_bytes
    return total


def point(
    graph: Graph, x: np.ndarray, pes: int, depth: int, work: Path, synth: bool, part: str
) -> dict[str, Any]:
    spec = {"pes": pes, "queue_depth": depth, "index_bits": 4, "code_bits": 4, "simd": None}
    hw = lower(graph, sparse={"default": spec, "layers": {}})
    manifest = generate_verilog(hw, work / "rtl")
    t0 = time.perf_counter()
    res = run_cocotb(work / "rtl", x, simulator="verilator", build_dir=work / "build")
    sim_s = time.perf_counter() - t0
    eq = compare_rtl_to_golden(graph, x, res, manifest["output"]["model_node"])
    perf = design_sparse_perf(hw, x)
    model = max(p.cycles_per_frame for p in perf.values())
    ideal = max(p.ideal for p in perf.values())
    dense = max(p.dense_cycles for p in perf.values())
    mem = sum(
        -(-m["words"] * m["bits"] // 8) for n in manifest["nodes"] for m in n.get("memories", [])
    )
    row = {
        "pes": pes,
        "depth": depth,
        "mismatches": eq["mismatches"],
        "vectors": eq["vectors"],
        "measured": res.cycles_per_frame,
        "model": model,
        "ideal": ideal,
        "efficiency": ideal / res.cycles_per_frame,
        "dense": dense,
        "speedup": dense / res.cycles_per_frame,
        "engine_bytes": mem,
        "encode_bytes": encode_row_bytes(graph, pes),
        "per_layer_model": {k: round(p.cycles_per_frame, 2) for k, p in perf.items()},
        "sim_seconds": round(sim_s, 1),
    }
    if synth:
        from hw_gen.synth_yosys import synth_xilinx

        r = synth_xilinx(work / "rtl", part, work / "synth")
        row.update(LUT=r.get("LUT"), FF=r.get("FF"), BRAM=r.get("BRAM36"), synth=r)
    shutil.rmtree(work, ignore_errors=True)
    return row


def show(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    t = Table(title=title)
    for h in (
        "PEs",
        "depth",
        "mism.",
        "measured",
        "model",
        "ideal",
        "efficiency",
        "dense MVAU",
        "speed-up",
        "LUT",
        "FF",
        "BRAM36",
        "engine B",
        "encode B",
    ):
        t.add_column(h, justify="right")
    for r in rows:
        t.add_row(
            str(r["pes"]),
            str(r["depth"]),
            f"{r['mismatches']}/{r['vectors']}",
            f"{r['measured']:.1f}",
            f"{r['model']:.1f}",
            f"{r['ideal']:.1f}",
            f"{r['efficiency']:.1%}",
            f"{r['dense']:,}",
            f"{r['speedup']:.1f}x",
            str(r.get("LUT", "")),
            str(r.get("FF", "")),
            str(r.get("BRAM", "")),
            f"{r['engine_bytes']:,}",
            f"{r['encode_bytes']:,}",
        )
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--out", default=str(ROOT / "out" / "bench_sparse"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--vectors", type=int, default=48)
    parser.add_argument("--reuse", action="store_true", help="reuse OUT/*.qfab.npz if present")
    parser.add_argument("--synth", choices=("none", "depth8", "all"), default="depth8")
    parser.add_argument("--part", default="xc7z020")
    parser.add_argument("--only", choices=("plain", "balanced"), default=None)
    parser.add_argument(
        "--balanced-depths",
        default="1,2,8",
        help="queue depths swept for the balanced model (the comparison's columns)",
    )
    args = parser.parse_args()
    console = Console(width=200)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from quant_train.datasets import load_dataset

    data = load_dataset("mnist", args.mnist_dir)
    results: dict[str, Any] = {}
    path = out / "results.json"
    if path.exists():
        results = json.loads(path.read_text())
    for name, balance in (("plain", None), ("balanced", 16)):
        if args.only and name != args.only:
            continue
        ir = out / f"lenet300_{name}.qfab.npz"
        console.print(f"[bold]{name}[/]: LeNet-300-100, 10% density per layer, w4a4, share 15")
        if args.reuse and ir.exists():
            graph = Graph.load(ir)
            console.print(f"  reusing {ir} (trained earlier: {graph.meta.get('rows')})")
        else:
            graph = train(data, balance, args.epochs, ir, console)
        x = quantize_input(graph.nodes[0], data.x_test[: args.vectors])
        rows = []
        depths = DEPTHS
        if name == "balanced":
            depths = tuple(int(d) for d in args.balanced_depths.split(","))
        for pes in PES:
            for depth in depths:
                synth = args.synth == "all" or (args.synth == "depth8" and depth == 8)
                r = point(graph, x, pes, depth, out / "work", synth, args.part)
                console.print(
                    f"  PEs {pes:2d} depth {depth:2d}: {r['mismatches']} mismatches, measured "
                    f"{r['measured']:.1f} model {r['model']:.1f} ideal {r['ideal']:.1f} "
                    f"({r['efficiency']:.1%}), {r['speedup']:.1f}x dense ({r['sim_seconds']} s)"
                )
                rows.append(r)
        results[name] = {"meta": graph.meta.get("rows"), "rows": rows}
        path.write_text(json.dumps(results, indent=2, default=float) + "\n")
        show(console, f"{name} pruning: LeNet-300-100 on the sparse engine", rows)
    if "plain" in results and "balanced" in results:
        t = Table(title="load-balance-aware pruning (ESE): efficiency side by side")
        for h in ("PEs", "depth", "plain", "balanced"):
            t.add_column(h, justify="right")
        bal = {(r["pes"], r["depth"]): r for r in results["balanced"]["rows"]}
        for r in results["plain"]["rows"]:
            b = bal.get((r["pes"], r["depth"]))
            if b is not None:
                t.add_row(
                    str(r["pes"]),
                    str(r["depth"]),
                    f"{r['efficiency']:.1%}",
                    f"{b['efficiency']:.1%}",
                )
        console.print(t)


if __name__ == "__main__":
    main()
