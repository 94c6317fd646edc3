"""Quantization-aware training loop (plain PyTorch; Brevitas layers train like any other).

Deterministic for a given seed: torch, NumPy and Python RNGs are seeded, the shuffle uses
its own generator, and training runs single-threaded-deterministic on the CPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainSettings:
    """What the ``train:`` config section holds."""

    epochs: int = 40
    seed: int = 0
    lr: float = 0.01
    batch_size: int = 64


def seed_everything(seed: int) -> None:
    """Seed every RNG a training run touches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    on_epoch: Callable[[int, float], None] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """Adam + cross-entropy with a cosine learning-rate decay; returns the model in eval mode.

    Seeds again at the start so shuffling and any random quantizer init are fixed; seed
    before *building* the model too (:func:`seed_everything`) to fix its initial weights.

    ``on_epoch(epoch, mean_loss)`` is called after every epoch (progress display).
    ``loss_fn(logits, labels, inputs)`` replaces cross-entropy (e.g. distillation).
    """
    seed_everything(settings.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, settings.epochs))
    if loss_fn is None:
        ce = nn.CrossEntropyLoss()
        loss_fn = lambda logits, labels, inputs: ce(logits, labels)  # noqa: E731
    gen = torch.Generator().manual_seed(settings.seed)
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(xt), generator=gen)
        total, batches = 0.0, 0
        for start in range(0, len(xt), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2:  # batch norm needs two samples in training mode
                continue
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx], xt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
        sched.step()
        if on_epoch is not None:
            on_epoch(epoch, total / max(1, batches))
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits of ``model`` in eval mode as a float32 array."""
    model.eval()
    return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.argmax(logits, axis=1) == y))
