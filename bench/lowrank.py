"""Low-rank benchmark: SVD of an MLP, Tucker-2 / CP / spatial separation of LeNet-5, and
the compact nets (MobileNet-, ShuffleNet-, SqueezeNet-like) beside LeNet-5.

Run: ``.venv/bin/python bench/lowrank.py``

For every model and method, measured in this run on digits: parameters, MACs (all layers
and conv layers alone), Cr = parameters before / after, Sr = MACs before / after,
accuracy before factorization, right after it, and after fine-tuning, and the time the
factorization itself took (tensorly / torch SVD). Then each factored model is quantized
to 4 bits and checked: golden == Brevitas on every test vector.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from qfab.config import parse_config
from quant_train.compress import Pipeline, conv_macs, count
from quant_train.datasets import load_dataset
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model

CASES = [
    ("lenet300", "svd", [15, 25, None]),
    ("lenet5", "tucker", [None, [3, 6]]),
    ("lenet5", "cp", [3, 7]),
    ("lenet5", "spatial", [None, 4]),
]


def main() -> None:
    console = Console(width=170)
    digits = load_dataset("digits")
    table = Table(title="low-rank factorization on digits (measured in this run)")
    for col in (
        "model",
        "method",
        "rank",
        "params",
        "Cr",
        "MACs",
        "Sr",
        "conv MACs",
        "conv Sr",
        "acc before",
        "acc factored",
        "acc fine-tuned",
        "acc w4a4",
        "factorize s",
        "golden==Brevitas",
    ):
        table.add_column(col, justify="left" if col in ("model", "method", "rank") else "right")
    for arch, method, rank in CASES:
        cfg = parse_config(
            {
                "model": {"arch": arch},
                "train": {"epochs": 40},
                "compress": {
                    "steps": [
                        {"factorize": {"method": method, "rank": rank, "fine_tune_epochs": 20}},
                        {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 10}},
                    ]
                },
            }
        )
        start = time.perf_counter()
        pipe = Pipeline(cfg, digits)
        model = pipe.run()
        base, fact, quant = pipe.rows
        base_conv = pipe.teacher and conv_macs(pipe.teacher)
        eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
        params = count(model)[0]
        cm = fact.detail["conv_macs"]
        table.add_row(
            arch,
            method,
            str(rank),
            f"{params:,}",
            f"{count(pipe.teacher)[0] / params:.2f}x",
            f"{fact.macs:,}",
            f"{base.macs / fact.macs:.2f}x",
            f"{cm:,}" if cm else "—",
            f"{base_conv / cm:.2f}x" if cm else "—",
            f"{base.accuracy:.2%}",
            f"{fact.detail['accuracy_before_fine_tune']:.2%}",
            f"{fact.accuracy:.2%}",
            f"{quant.accuracy:.2%}",
            f"{fact.detail['factorize_seconds']:.3f}",
            f"{eq.mismatches} / {eq.vectors}",
        )
        console.print(f"{arch} {method}: {time.perf_counter() - start:.0f} s")
    console.print(table)
    compact_table(console, digits)


def compact_table(console: Console, digits) -> None:
    """The compact architectures at w4a4, beside LeNet-5 (params and MACs measured)."""
    from quant_train.train import (
        TrainSettings,
        accuracy,
        predict,
        seed_everything,
        train_classifier,
    )
    from quant_train.zoo import build_model

    table = Table(title="compact nets on digits, w4a4, 20 epochs (measured in this run)")
    for col in ("model", "params", "MACs", "accuracy", "IR ops", "golden==Brevitas"):
        table.add_column(col, justify="left" if col in ("model", "IR ops") else "right")
    for arch in ("lenet5", "mobilenet", "shufflenet", "squeezenet"):
        seed_everything(0)
        model = build_model(arch, digits.image_shape, 10, weight_bits=4, act_bits=4)
        train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=20))
        graph = export_model(model)
        eq = compare_brevitas_to_golden(model, graph, digits.x_test)
        total, _, macs = count(model)
        special = sorted({n.op for n in graph.nodes} & {"Add", "Concat", "ChannelShuffle"})
        table.add_row(arch, f"{total:,}", f"{macs:,}",
                      f"{accuracy(predict(model, digits.x_test), digits.y_test):.2%}",
                      ", ".join(special) or "—", f"{eq.mismatches} / {eq.vectors}")
    console.print(table)


if __name__ == "__main__":
    main()
