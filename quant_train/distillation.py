"""Knowledge distillation (Hinton et al., 2015): a float teacher trains a quantized student.

The student minimizes ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE``:
the softened teacher outputs carry how classes resemble each other, which a low-bit
student struggles to learn from hard labels alone. ``T^2`` keeps the soft-target
gradients on the same scale as the hard-label ones when ``T`` changes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qfab.errors import ConfigError
from quant_train.train import TrainSettings, train_classifier


def distillation_loss(
    teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.7
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``loss_fn(student_logits, labels, inputs)`` for :func:`train_classifier`."""
    if temperature <= 0:
        raise ConfigError(f"distill.temperature = {temperature} is not allowed; allowed: > 0")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"distill.alpha = {alpha} is not allowed; allowed: 0..1")
    teacher.eval()

    def loss(
        student_logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            soft_targets = F.softmax(teacher(inputs) / temperature, dim=1)
        soft = (
            F.kl_div(
                F.log_softmax(student_logits / temperature, dim=1),
                soft_targets,
                reduction="batchmean",
            )
            * temperature**2
        )
        hard = F.cross_entropy(student_logits, labels)
        return alpha * soft + (1 - alpha) * hard

    return loss


def distill(
    student: nn.Module,
    teacher: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    temperature: float = 4.0,
    alpha: float = 0.7,
    on_epoch: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train ``student`` on ``(x, y)`` with the teacher's soft targets mixed in."""
    return train_classifier(
        student, x, y, settings, on_epoch, loss_fn=distillation_loss(teacher, temperature, alpha)
    )
