"""Compression benchmark: the survey table for the model zoo on digits, and LeNet-300-100
on MNIST beside Deep Compression's published row when ``../shared/data/mnist`` exists.

Run: ``.venv/bin/python bench/compression.py [--quick] [--mnist-dir DIR]``

Every row is measured in this run (accuracy on the test split, non-zero parameters,
encoded bytes from real byte strings with a decode round trip, MACs over non-zero
weights); the published row is copied from ANCHORS.md with its source and never
adjusted. Ratios (Cr, Sr) are relative to this run's own float32 baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qfab.compress_flow import COLUMNS, TEXT_COLUMNS, format_cell
from qfab.config import parse_config
from qfab.errors import DataError
from quant_train.compress import Pipeline, survey_table
from quant_train.datasets import load_dataset

#: Deep Compression (Han et al., ICLR 2016, arXiv:1510.00149), Table 1, as in ANCHORS.md.
PUBLISHED_LENET300 = {
    "model": "LeNet-300-100 (Deep Compression, published)",
    "baseline_error": 0.0164,
    "error": 0.0158,
    "Cr": 40.0,
    "size": "1070 KB -> 27 KB",
}


def steps(sparsity: float = 0.93) -> list[dict[str, Any]]:
    """prune (iterative) -> quantize -> share -> encode, as Deep Compression's three stages.

    Deep Compression prunes LeNet-300-100 to 92%; small nets have less to remove (tfc's
    64-unit layers, LeNet-5's and CNV's convolutions), so the zoo gives each its own final
    sparsity, shown in the step column.
    """
    schedule = sorted({round(sparsity * f, 2) for f in (0.55, 0.8, 0.95, 1.0)})
    return [
        {
            "prune": {
                "sparsity": sparsity,
                "schedule": schedule,
                "scope": "global",
                "fine_tune_epochs": 4,
            }
        },
        {"quantize": {"weight_bits": 5, "act_bits": 4, "epochs": 6}},
        {"share": {"clusters": 16, "fine_tune_epochs": 3}},
        {"encode": {"index_bits": 5, "huffman": True}},  # 5-bit indices in FC layers, as DC
    ]


#: (row name, model.arch, final sparsity) of the zoo on digits
ZOO = (
    ("tfc (3x64)", "tfc", 0.8),
    ("sfc (3x256)", "sfc", 0.93),
    ("lfc (3x1024)", "lfc", 0.97),
    ("lenet300 (300-100)", "lenet300", 0.93),
    ("lenet5", "lenet5", 0.8),
    ("cnv (small)", "cnv", 0.85),
)


def run(
    name: str,
    arch: str,
    dataset: Any,
    epochs: int,
    steps: list,
    hidden=None,
    scale_epochs: float = 1.0,
) -> list[dict[str, Any]]:
    def scaled(step: dict) -> dict:
        ((kind, s),) = step.items()
        s = dict(s)
        for key in ("fine_tune_epochs", "epochs"):
            if key in s:
                s[key] = max(1, round(s[key] * scale_epochs))
        return {kind: s}

    cfg = parse_config(
        {
            "model": {"arch": arch, **({"hidden": hidden} if hidden else {})},
            "train": {"epochs": max(1, round(epochs * scale_epochs))},
            "compress": {"steps": [scaled(s) for s in steps]},
        },
        name,
    )
    start = time.perf_counter()
    pipe = Pipeline(cfg, dataset)
    pipe.run()
    table = survey_table(pipe.rows, name, dataset.name)
    table[-1]["seconds"] = time.perf_counter() - start
    return table


def show(console: Console, tables: list[list[dict[str, Any]]], published: bool) -> None:
    t = Table(title="compression (measured in this run)")
    for key, title in COLUMNS:
        t.add_column(title, justify="left" if key in TEXT_COLUMNS else "right")
    for table in tables:
        for r in table:
            t.add_row(*(format_cell(k, r[k]) for k, _ in COLUMNS))
        t.add_section()
    if published:
        p = PUBLISHED_LENET300
        t.add_row(
            p["model"],
            "MNIST",
            f"{1 - p['baseline_error']:.2%}",
            "prune+quantize+share+Huffman",
            f"{1 - p['error']:.2%}",
            f"{(p['baseline_error'] - p['error']) * 100:+.2f} pt",
            "",
            "",
            p["size"],
            f"{p['Cr']:.0f}x",
            "",
            "",
        )
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (smoke run)")
    parser.add_argument(
        "--mnist-dir",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"),
    )
    args = parser.parse_args()
    console = Console(width=200)
    scale = 0.3 if args.quick else 1.0
    digits = load_dataset("digits")
    mnist = Path(args.mnist_dir)
    try:  # checked before the digits zoo runs: the loader reads IDX files, gzip or raw
        data = load_dataset("mnist", mnist) if mnist.is_dir() else None
    except DataError as exc:
        console.print(f"[yellow]{exc}: MNIST row skipped[/]")
        data = None
    has_mnist = data is not None
    tables = []
    for name, arch, sparsity in ZOO:
        tables.append(run(name, arch, digits, 40, steps(sparsity), scale_epochs=scale))
        console.print(f"{name}: {tables[-1][-1]['seconds']:.0f} s")
    if has_mnist:
        tables.append(
            run("lenet300 (300-100)", "lenet300", data, 10, steps(0.93), scale_epochs=scale)
        )
    elif not mnist.is_dir():
        console.print(f"[yellow]{mnist} not found: MNIST row skipped[/]")
    show(console, tables, has_mnist)
    for table in tables:
        last = table[-1]
        console.print(
            f"{last['model']} on {last['dataset']}: Cr {last['Cr']:.1f}x, "
            f"accuracy change {last['delta'] * 100:+.2f} pt, "
            f"{last['seconds']:.0f} s"
        )


if __name__ == "__main__":
    main()
