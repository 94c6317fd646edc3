"""Low-rank benchmark: SVD of an MLP, Tucker-2 / CP / spatial separation of LeNet-5 (given
ranks and energy-chosen ranks), and the compact nets (MobileNet-, ShuffleNet-,
SqueezeNet-like) beside LeNet-5.

Run: ``.venv/bin/python bench/lowrank.py [--seeds N] [--quick]``

Everything is measured in this run on digits, once per seed (0..N-1; default 3), and
shown as ``mean [min..max]`` where the seeds differ: 360 test images make one image
0.28 points, and a single seed of a small factored net moves by a point or two.

Table 1, per model and method: parameters, MACs (all layers and conv layers alone),
Cr = parameters before / after, Sr = MACs before / after, accuracy of the float
baseline, right after factorization, after fine-tuning and after w4a4 QAT, the time the
factorization itself took (tensorly / torch SVD), and golden == Brevitas on every test
vector of every seed's quantized model.

Table 2, the compact nets through ``qfab compress``'s own path (float twin trained,
then w4a4 QAT from it): parameters and MACs, Cr and Sr against LeNet-5's, accuracy,
and the IR operators their branches need.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from qfab.config import parse_config
from quant_train.compress import Pipeline, conv_macs, count
from quant_train.datasets import Dataset, load_dataset
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model

#: (model, factorize settings): given ranks at >= 2x / 3x fewer conv MACs, and by energy.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("lenet300", {"method": "svd", "rank": [15, 25, None]}),
    ("lenet300", {"method": "svd", "energy": 0.6}),
    ("lenet5", {"method": "tucker", "rank": [None, [3, 6]]}),
    ("lenet5", {"method": "cp", "rank": [3, 7]}),
    ("lenet5", {"method": "spatial", "rank": [None, 4]}),
    ("lenet5", {"method": "tucker", "energy": 0.6}),
    ("lenet5", {"method": "cp", "energy": 0.8}),
    ("lenet5", {"method": "spatial", "energy": 0.8}),
]
COMPACT = ("lenet5", "mobilenet", "shufflenet", "squeezenet")


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """One value when every seed agrees, else ``mean [min..max]``."""
    if max(values) == min(values):
        return fmt(values[0])
    mean = sum(values) / len(values)
    return f"{fmt(mean)} [{fmt(min(values))}..{fmt(max(values))}]"


def pct(v: float) -> str:
    return f"{v:.2%}"


def factorize_case(
    arch: str, factorize: dict[str, Any], seed: int, data: Dataset, scale: float
) -> dict[str, Any]:
    """Baseline -> factorize (+ fine-tune) -> w4a4 QAT for one seed; what the table shows."""
    epochs = max(1, round(40 * scale))
    cfg = parse_config(
        {
            "model": {"arch": arch},
            "train": {"epochs": epochs, "seed": seed},
            "compress": {
                "steps": [
                    {"factorize": {**factorize, "fine_tune_epochs": max(1, round(20 * scale))}},
                    {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": round(10 * scale)}},
                ]
            },
        }
    )
    pipe = Pipeline(cfg, data)
    model = pipe.run()
    base, fact, quant = pipe.rows
    eq = compare_brevitas_to_golden(model, export_model(model), data.x_test)
    base_conv = conv_macs(pipe.teacher)
    cm = fact.detail["conv_macs"]
    chosen = fact.detail["ranks"]  # SVD: rank per layer; conv nets: (method, *ranks) each
    if fact.detail["factors"] is not None:
        chosen = [
            f if f is None else (f[1] if len(f) == 2 else list(f[1:]))
            for f in fact.detail["factors"]
        ]
    return {
        "rank": str(chosen),
        "params": count(model)[0],
        "Cr": count(pipe.teacher)[0] / count(model)[0],
        "MACs": fact.macs,
        "Sr": base.macs / fact.macs,
        "conv_macs": cm,
        "conv_Sr": base_conv / cm if cm else None,
        "acc_base": base.accuracy,
        "acc_factored": fact.detail["accuracy_before_fine_tune"],
        "acc_fine": fact.accuracy,
        "acc_quant": quant.accuracy,
        "seconds": fact.detail["factorize_seconds"],
        "mismatches": eq.mismatches,
        "vectors": eq.vectors,
    }


def factorization_table(console: Console, data: Dataset, seeds: int, scale: float) -> None:
    table = Table(
        title=f"low-rank factorization on digits, {seeds} seed(s), w4a4 after fine-tuning "
        "(measured in this run)"
    )
    columns = (
        "model",
        "method",
        "rank",
        "params",
        "Cr",
        "MACs",
        "Sr",
        "conv MACs",
        "conv Sr",
        "acc float",
        "acc factored",
        "acc fine-tuned",
        "acc w4a4",
        "factorize s",
        "golden==Brevitas",
    )
    for col in columns:
        table.add_column(
            col, justify="left" if col in ("model", "method", "rank") else "right", overflow="fold"
        )
    for arch, factorize in CASES:
        start = time.perf_counter()
        runs = [factorize_case(arch, factorize, s, data, scale) for s in range(seeds)]

        def col(key: str, fmt: Callable[[float], str], runs=runs) -> str:
            values = [r[key] for r in runs]
            return "—" if None in values else spread(values, fmt)

        ranks = sorted({r["rank"] for r in runs})
        what = f"energy {factorize['energy']:.0%}" if "energy" in factorize else "rank"
        table.add_row(
            arch,
            f"{factorize['method']} ({what})",
            " / ".join(ranks),
            col("params", lambda v: f"{v:,.0f}"),
            col("Cr", lambda v: f"{v:.2f}x"),
            col("MACs", lambda v: f"{v:,.0f}"),
            col("Sr", lambda v: f"{v:.2f}x"),
            col("conv_macs", lambda v: f"{v:,.0f}") if arch != "lenet300" else "—",
            col("conv_Sr", lambda v: f"{v:.2f}x"),
            col("acc_base", pct),
            col("acc_factored", pct),
            col("acc_fine", pct),
            col("acc_quant", pct),
            col("seconds", lambda v: f"{v:.3f}"),
            f"{sum(r['mismatches'] for r in runs)} / {sum(r['vectors'] for r in runs)}",
        )
        console.print(f"{arch} {factorize}: {time.perf_counter() - start:.0f} s")
    console.print(table)


def compact_case(arch: str, seed: int, data: Dataset, scale: float) -> dict[str, Any]:
    """Float twin (20 epochs) -> w4a4 QAT (20 epochs) through the compress pipeline."""
    epochs = max(1, round(20 * scale))
    cfg = parse_config(
        {
            "model": {"arch": arch},
            "train": {"epochs": epochs, "seed": seed},
            "compress": {
                "steps": [{"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": epochs}}]
            },
        }
    )
    pipe = Pipeline(cfg, data)
    model = pipe.run()
    graph = export_model(model)
    eq = compare_brevitas_to_golden(model, graph, data.x_test)
    total, _, macs = count(model)
    special = sorted({n.op for n in graph.nodes} & {"Add", "Concat", "ChannelShuffle"})
    depthwise = any(
        n.op == "Conv2d" and 1 < n.attrs["groups"] == n.tensors["weight"].shape[0]
        for n in graph.nodes
    )
    return {
        "params": total,
        "macs": macs,
        "acc_float": pipe.rows[0].accuracy,
        "acc_quant": pipe.rows[-1].accuracy,
        "ops": ", ".join([*(["depthwise Conv2d"] if depthwise else []), *special]) or "—",
        "mismatches": eq.mismatches,
        "vectors": eq.vectors,
    }


def compact_table(console: Console, data: Dataset, seeds: int, scale: float) -> None:
    """The compact architectures at w4a4, beside LeNet-5 (Cr and Sr against LeNet-5)."""
    table = Table(
        title=f"compact nets on digits, float twin then w4a4, {seeds} seed(s) "
        "(measured in this run)"
    )
    for col in (
        "model",
        "params",
        "MACs",
        "Cr vs lenet5",
        "Sr vs lenet5",
        "acc float",
        "acc w4a4",
        "IR ops",
        "golden==Brevitas",
    ):
        table.add_column(
            col, justify="left" if col in ("model", "IR ops") else "right", overflow="fold"
        )
    ref: dict[str, Any] = {}
    for arch in COMPACT:
        runs = [compact_case(arch, s, data, scale) for s in range(seeds)]
        ref = ref or runs[0]
        table.add_row(
            arch,
            f"{runs[0]['params']:,}",
            f"{runs[0]['macs']:,}",
            f"{ref['params'] / runs[0]['params']:.2f}x",
            f"{ref['macs'] / runs[0]['macs']:.2f}x",
            spread([r["acc_float"] for r in runs], pct),
            spread([r["acc_quant"] for r in runs], pct),
            runs[0]["ops"],
            f"{sum(r['mismatches'] for r in runs)} / {sum(r['vectors'] for r in runs)}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per row")
    parser.add_argument("--quick", action="store_true", help="a third of the epochs (smoke)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds = {args.seeds} is not allowed; allowed: >= 1")
    console = Console(width=240)
    scale = 0.3 if args.quick else 1.0
    digits = load_dataset("digits")
    start = time.perf_counter()
    factorization_table(console, digits, args.seeds, scale)
    compact_table(console, digits, args.seeds, scale)
    console.print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
