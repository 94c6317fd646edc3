"""Distillation: the loss is the documented mix, and a distilled student exports exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qfab.errors import ConfigError
from quant_train.distillation import distill, distillation_loss
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import FloatMLP, QuantMLP
from quant_train.train import TrainSettings, accuracy, predict, seed_everything, train_classifier


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_loss_mixes_soft_and_hard_terms():
    t_logits = torch.tensor([[2.0, 0.0, -1.0]])
    s_logits = torch.tensor([[0.5, 0.2, 0.1]])
    y = torch.tensor([0])
    loss = distillation_loss(Fixed(t_logits), temperature=2.0, alpha=0.25)(s_logits, y, None)
    p_t = F.softmax(t_logits / 2, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s_logits / 2, 1))).sum() * 4
    want = 0.25 * kl + 0.75 * F.cross_entropy(s_logits, y)
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    # alpha = 0 is plain cross-entropy
    plain = distillation_loss(Fixed(t_logits), 2.0, 0.0)(s_logits, y, None)
    assert float(plain) == pytest.approx(float(F.cross_entropy(s_logits, y)))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="temperature"):
        distillation_loss(Fixed(None), temperature=0)
    with pytest.raises(ConfigError, match="alpha = 1.5"):
        distillation_loss(Fixed(None), alpha=1.5)


def test_distilled_student_learns_and_exports_exactly(digits):
    seed_everything(0)
    teacher = train_classifier(
        FloatMLP(64, [64], 10), digits.x_train, digits.y_train, TrainSettings(epochs=5)
    )
    seed_everything(0)
    student = QuantMLP(64, [24], 10, weight_bits=2, act_bits=2, input_bits=8)
    distill(student, teacher, digits.x_train, digits.y_train, TrainSettings(epochs=5))
    assert accuracy(predict(student, digits.x_test), digits.y_test) > 0.85
    eq = compare_brevitas_to_golden(student, export_model(student), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
