"""Weight sharing benchmark: float-domain k-means (the previous method) vs. sharing on the
weight quantizer's integer grid (quant_train/share_model.py), from one quantized model.

Run: ``.venv/bin/python bench/sharing.py [--data DIR] [--epochs N] [--clusters 16 8 4]``
(default: LeNet-300-100 on Fashion-MNIST from ``../shared/data/fashion-mnist``, prune 90%
global over [0.5, 0.75, 0.9] -> w4a4 QAT, the pipeline of the weight sharing issue;
``--digits`` runs the same on scikit-learn's digits in a minute).

The baseline, pruning and QAT run once (``qfab compress``'s own pipeline); each K then
starts from a copy of that quantized model, so the two methods see the same integers.
Reported per method and K: test accuracy, its change against the quantized model, the
distinct non-zero integers per layer (what the IR codebook holds) and the non-zero
integers (what the sparse engine stores): float-domain sharing clusters weights the
quantizer had rounded to 0 into non-zero centroids, so it also un-prunes weights.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.nn.utils import parametrize

from qfab.config import parse_config
from quant_train.compress import Pipeline
from quant_train.datasets import Dataset, load_dataset
from quant_train.export_ir import quant_ints
from quant_train.pruning import make_pruning_permanent, prunable_layers
from quant_train.share_model import (
    SharedWeight,
    freeze_sharing,
    share_weights,
    sharing_report,
)
from quant_train.train import TrainSettings, accuracy, predict, train_classifier
from quant_train.weight_sharing import kmeans_share

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def quantized_model(data: Dataset, epochs: int, qat_epochs: int) -> tuple[nn.Module, Any]:
    """Baseline -> prune 90% (global, iterative) -> w4a4 QAT, as in the issue."""
    cfg = parse_config(
        {
            "model": {"arch": "lenet300"},
            "train": {"epochs": epochs, "seed": 0},
            "compress": {
                "steps": [
                    {
                        "prune": {
                            "sparsity": 0.9,
                            "schedule": [0.5, 0.75, 0.9],
                            "scope": "global",
                            "fine_tune_epochs": 2,
                        }
                    },
                    {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": qat_epochs}},
                ]
            },
        }
    )
    pipe = Pipeline(cfg, data)
    model = pipe.run()
    return make_pruning_permanent(model), cfg


def float_domain_share(model: nn.Module, k: int, train: TrainSettings, data: Dataset) -> None:
    """The previous method: k-means over the float latent weights, then fine-tuning."""
    for _, layer in prunable_layers(model):
        codebook, index = kmeans_share(layer.weight.detach().numpy(), k, seed=train.seed)
        layer.weight.requires_grad_(False)
        parametrize.register_parametrization(
            layer, "weight", SharedWeight(codebook, index), unsafe=True
        )
    train_classifier(model, data.x_train, data.y_train, train)
    for _, layer in prunable_layers(model):
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)


def integer_share(model: nn.Module, k: int, train: TrainSettings, data: Dataset) -> bool:
    """quant_train.share_model: lossless when K covers the levels, else k-means on ints."""
    share_weights(model, k, seed=train.seed)
    lossless = all(r["lossless"] for r in sharing_report(model))
    if not lossless:
        train_classifier(model, data.x_train, data.y_train, train)
    freeze_sharing(model)
    return lossless


def integer_stats(model: nn.Module) -> tuple[list[int], int]:
    """(distinct non-zero integers per layer, non-zero integers in all layers)."""
    levels, nonzero = [], 0
    for _, layer in prunable_layers(model):
        w = quant_ints(layer.quant_weight())
        levels.append(len(np.unique(w[w != 0])))
        nonzero += int(np.count_nonzero(w))
    return levels, nonzero


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Fashion-MNIST IDX folder")
    ap.add_argument("--digits", action="store_true", help="scikit-learn digits instead")
    ap.add_argument("--epochs", type=int, default=8, help="float baseline epochs")
    ap.add_argument("--qat-epochs", type=int, default=4)
    ap.add_argument("--fine-tune", type=int, default=3, help="centroid fine-tuning epochs")
    ap.add_argument("--clusters", type=int, nargs="+", default=[16, 8, 4])
    args = ap.parse_args()

    data = load_dataset("digits") if args.digits else load_dataset("fashion_mnist", args.data)
    start = time.perf_counter()
    quant, cfg = quantized_model(data, args.epochs, args.qat_epochs)
    base_acc = accuracy(predict(quant, data.x_test), data.y_test)
    levels, nonzero = integer_stats(quant)
    print(f"{data.name}: quantized w4a4 {base_acc:.2%}, levels {levels}, non-zero {nonzero}")
    print(f"  (baseline, prune and QAT: {time.perf_counter() - start:.0f} s)")
    train = TrainSettings(args.fine_tune, cfg.train.seed, cfg.train.lr / 2, cfg.train.batch_size)
    print(f"{'K':>3}  {'method':<15} {'accuracy':>8} {'delta':>9}  levels per layer  non-zero")
    for k in args.clusters:
        for method, share in (("float k-means", float_domain_share), ("integer grid", None)):
            model = copy.deepcopy(quant)
            note = ""
            if share is None:
                note = " (lossless, no fine-tune)" if integer_share(model, k, train, data) else ""
            else:
                share(model, k, train, data)
            acc = accuracy(predict(model, data.x_test), data.y_test)
            levels, nonzero = integer_stats(model)
            print(
                f"{k:>3}  {method:<15} {acc:>8.2%} {(acc - base_acc) * 100:>+7.2f}pt  "
                f"{levels!s:<16} {nonzero:>8}{note}"
            )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
