"""Pruning keeps the exact export: golden == Brevitas at 0 mismatches after every mode."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.pruning import (
    iterative_prune,
    magnitude_prune,
    make_pruning_permanent,
    neuron_scores,
    prune_neurons,
    sparsity,
)
from quant_train.train import TrainSettings, accuracy, predict, seed_everything, train_classifier


def trained(digits, hidden=(32, 24), epochs=4):
    seed_everything(0)
    model = QuantMLP(
        digits.features, list(hidden), digits.classes, weight_bits=4, act_bits=4, input_bits=8
    )
    return train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=epochs))


def fine_tune(digits, epochs=3):
    return lambda m: train_classifier(
        m, digits.x_train, digits.y_train, TrainSettings(epochs=epochs, lr=0.005)
    )


def exact(model, digits):
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def test_layer_magnitude_pruning_hits_the_target_in_every_layer(digits):
    model = magnitude_prune(trained(digits), 0.7, "layer")
    for name, s in sparsity(model).items():
        assert s == pytest.approx(0.7, abs=0.01), name
    exact(make_pruning_permanent(model), digits)


def test_global_pruning_and_mask_survives_fine_tuning(digits):
    model = magnitude_prune(trained(digits), 0.8, "global")
    w = np.concatenate(
        [m.weight.detach().numpy().ravel() for m in (*model.linears, model.classifier)]
    )
    assert np.mean(w == 0) == pytest.approx(0.8, abs=0.005)
    per_layer = sparsity(model)
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05  # not uniform
    before = {k: v for k, v in per_layer.items()}
    model = fine_tune(digits)(model)
    assert all(sparsity(model)[k] >= before[k] for k in before)
    make_pruning_permanent(model)
    assert accuracy(predict(model, digits.x_test), digits.y_test) > 0.85
    exact(model, digits)


def test_iterative_schedule_reaches_final_sparsity(digits):
    model = iterative_prune(trained(digits), [0.5, 0.75, 0.9], fine_tune(digits, 2))
    assert all(s == pytest.approx(0.9, abs=0.01) for s in sparsity(model).values())
    exact(model, digits)
    with pytest.raises(ConfigError, match="ascending"):
        iterative_prune(model, [0.9, 0.5], fine_tune(digits, 1))


@pytest.mark.parametrize("criterion", ["filter", "channel"])
def test_structured_pruning_halves_the_ir_layers(digits, criterion):
    model = trained(digits)
    small = prune_neurons(model, 0.5, criterion)
    small = fine_tune(digits)(small)
    graph = export_model(small)
    dense = [n.tensors["weight"].shape for n in graph.nodes if n.op == "Dense"]
    assert dense == [(16, 64), (12, 16), (10, 12)]
    assert [n.numel() for n in (small.norms[0].running_var, small.norms[1].running_var)] == [16, 12]
    assert accuracy(predict(small, digits.x_test), digits.y_test) > 0.85
    exact(small, digits)


def test_structured_slices_the_right_rows(digits):
    model = trained(digits, epochs=1)
    model.eval()
    keep = np.sort(np.argsort(-neuron_scores(model, "filter")[0], kind="stable")[:16])
    small = prune_neurons(model, 0.5, "filter")
    np.testing.assert_array_equal(
        small.linears[0].weight.detach().numpy(), model.linears[0].weight.detach().numpy()[keep]
    )
    np.testing.assert_array_equal(
        small.norms[0].running_mean.numpy(), model.norms[0].running_mean.numpy()[keep]
    )
    np.testing.assert_array_equal(
        small.linears[1].weight.detach().numpy(),
        model.linears[1]
        .weight.detach()
        .numpy()[:, keep][
            np.sort(np.argsort(-neuron_scores(model, "filter")[1], kind="stable")[:12])
        ],
    )


def test_bad_amounts_are_refused(digits):
    model = trained(digits, epochs=1)
    with pytest.raises(ConfigError, match="prune.sparsity = 1.0"):
        magnitude_prune(model, 1.0)
    with pytest.raises(ConfigError, match="allowed: 'layer', 'global'"):
        magnitude_prune(model, 0.5, "block")
    with pytest.raises(ConfigError, match="prune.fraction"):
        prune_neurons(model, -0.1)


def test_conv_filter_pruning_equals_silencing_those_filters(digits):
    """Pruned CNN == the original with the removed filters silenced (float, exact slices)."""
    import torch

    from quant_train.models import float_cnn

    seed_everything(0)
    model = float_cnn((8, 8, 1), [(8, 3, 1, 2), (6, 3, 1, 2)], [12], 10)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    small = prune_neurons(model, 0.5, "channel").eval()
    assert [c.out_channels for c in small.convs] == [4, 3] and small.linears[0].out_features == 6
    kept = [
        np.sort(np.argsort(-s, kind="stable")[:n])
        for s, n in zip(neuron_scores(model, "channel"), [4, 3, 6], strict=True)
    ]
    with torch.no_grad():  # silence every removed output: BN gives -inf-ish, ReLU gives 0
        for norm, keep in zip([*model.conv_norms, *model.norms], kept, strict=True):
            drop = np.setdiff1d(np.arange(len(norm.weight)), keep)
            norm.weight[drop] = 0
            norm.bias[drop] = -1e3
    np.testing.assert_allclose(
        predict(small, digits.x_test), predict(model, digits.x_test), rtol=1e-4, atol=1e-4
    )
