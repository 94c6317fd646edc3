"""Pruning keeps the exact export: golden == Brevitas at 0 mismatches after every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.pruning import (
    iterative_prune,
    magnitude_prune,
    make_pruning_permanent,
    neuron_scores,
    pe_nonzeros,
    prunable_layers,
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


# ------------------------------------------------ load-balance-aware pruning (ESE, FPGA'17)


def per_pe(model, pes):
    return {name: pe_nonzeros(layer.weight, pes) for name, layer in prunable_layers(model)}


def assert_balanced(model, pes):
    for name, counts in per_pe(model, pes).items():
        assert max(counts) - min(counts) <= 1, (name, counts)


@pytest.mark.parametrize(("scope", "pes"), [("layer", 3), ("global", 2)])
def test_balanced_schedule_gives_every_pe_the_same_nonzeros(digits, scope, pes):
    """Iterative prune -> fine-tune with balance_pes: after every step and its fine-tuning
    each PE's rows (row i on PE i mod N) hold equal (+-1) non-zeros in every layer, the
    sparsity is reached exactly, and the model still exports exactly."""
    model = trained(digits)
    layers = prunable_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    for target in (0.5, 0.8, 0.9):
        magnitude_prune(model, target, scope, balance_pes=pes)
        assert_balanced(model, pes)
        zeros = {name: int((m.weight == 0).sum()) for name, m in layers}
        if scope == "layer":
            for name, m in layers:
                assert zeros[name] == round(target * m.weight.numel()), name
        else:
            assert sum(zeros.values()) == round(target * total)
        before = per_pe(model, pes)
        fine_tune(digits, epochs=1)(model)
        assert per_pe(model, pes) == before  # the mask holds while fine-tuning
    exact(make_pruning_permanent(model), digits)


def test_global_balanced_keeps_the_global_threshold_per_layer_counts(digits):
    """scope=global: each layer keeps as many weights as unbalanced global pruning (the
    global threshold decides the count), only where they sit within the layer changes."""
    import copy

    model = trained(digits)
    plain = magnitude_prune(copy.deepcopy(model), 0.85, "global")
    balanced = magnitude_prune(model, 0.85, "global", balance_pes=4)
    assert {k: round(v, 6) for k, v in sparsity(plain).items()} == {
        k: round(v, 6) for k, v in sparsity(balanced).items()
    }
    unbalanced = per_pe(plain, 4)
    assert any(max(c) - min(c) > 1 for c in unbalanced.values()), unbalanced
    assert_balanced(balanced, 4)


def test_balance_wins_when_a_pe_owns_too_few_rows_for_its_share(digits):
    """10 classifier rows on 4 PEs: PEs 2 and 3 own 2 rows (48 weights). At 10% sparsity
    an even share (54) does not fit there, so every PE is cut to 48 (+1): the layer is
    balanced and a little sparser than asked, never unbalanced."""
    model = magnitude_prune(trained(digits, epochs=1), 0.1, "layer", balance_pes=4)
    counts = per_pe(model, 4)
    assert counts["fc2"] == [49, 49, 48, 48]
    assert_balanced(model, 4)
    for name, m in prunable_layers(model):
        assert int((m.weight == 0).sum()) >= round(0.1 * m.weight.numel()), name


def test_balanced_pruning_through_iterative_prune_and_more_pes_than_rows(digits):
    """16 PEs on a 10-row classifier: the 10 PEs that own a row are balanced."""
    model = iterative_prune(
        trained(digits, epochs=2), [0.5, 0.9], fine_tune(digits, 1), "layer", balance_pes=16
    )
    counts = per_pe(model, 16)
    assert len(counts["fc2"]) == 10 and max(counts["fc2"]) - min(counts["fc2"]) <= 1
    assert_balanced(model, 16)
    assert all(s == pytest.approx(0.9, abs=0.01) for s in sparsity(model).values())


def test_one_pe_is_plain_per_layer_magnitude_pruning(digits):
    import copy

    model = trained(digits, epochs=1)
    plain = make_pruning_permanent(magnitude_prune(copy.deepcopy(model), 0.7, "layer"))
    one = make_pruning_permanent(magnitude_prune(model, 0.7, "layer", balance_pes=1))
    for (name, a), (_, b) in zip(prunable_layers(plain), prunable_layers(one), strict=True):
        assert torch.equal(a.weight != 0, b.weight != 0), name


def test_default_pruning_is_not_balanced_and_unchanged(digits):
    """balance_pes=None (the default) is the unstructured pruning it always was."""
    import copy

    model = trained(digits, epochs=1)
    a = make_pruning_permanent(magnitude_prune(copy.deepcopy(model), 0.8, "layer"))
    b = make_pruning_permanent(magnitude_prune(model, 0.8, "layer", balance_pes=None))
    for (_, x), (_, y) in zip(prunable_layers(a), prunable_layers(b), strict=True):
        assert torch.equal(x.weight, y.weight)


def test_conv_layers_are_balanced_over_output_channels(digits):
    from quant_train.models import float_cnn

    seed_everything(0)
    model = float_cnn((8, 8, 1), [(8, 3, 1, 2), (6, 3, 1, 2)], [12], 10)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    magnitude_prune(model, 0.6, "global", balance_pes=4)
    assert_balanced(model, 4)
    assert [len(c) for c in per_pe(model, 4).values()] == [4, 4, 4, 4]


@pytest.mark.parametrize("bad", [0, -2, True, 2.5, "4"])
def test_bad_pe_counts_are_refused_naming_the_key(digits, bad):
    model = trained(digits, epochs=1)
    with pytest.raises(ConfigError, match=r"prune.balance_pes = .* is not allowed; allowed: integ"):
        magnitude_prune(model, 0.5, "layer", balance_pes=bad)
    with pytest.raises(ConfigError, match=r"prune.balance_pes = .* is not allowed"):
        iterative_prune(model, [0.5], fine_tune(digits, 1), balance_pes=bad)
