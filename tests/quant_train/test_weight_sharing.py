"""k-means weight sharing: zeros kept, at most K values, deterministic linear init."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

import quant_train.weight_sharing as ws
from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model, quant_ints
from quant_train.models import QuantMLP
from quant_train.pruning import magnitude_prune, make_pruning_permanent, prunable_layers
from quant_train.share_model import freeze_sharing, share_weights, sharing_report
from quant_train.train import (
    TrainSettings,
    accuracy,
    predict,
    seed_everything,
    train_classifier,
)
from quant_train.weight_sharing import (
    centroid_gradient,
    fine_tune_centroids,
    kmeans_share,
    quantize_codebook,
    remap_indices,
    shared_weights,
)


def pruned_weights(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(20, 30)) * (rng.random((20, 30)) > 0.7)


def test_kmeans_keeps_zeros_and_at_most_k_values():
    w = pruned_weights()
    codebook, index = kmeans_share(w, 8)
    assert len(codebook) <= 8 and np.all(np.diff(codebook) > 0)
    assert np.all((index == -1) == (w == 0))
    rebuilt = shared_weights(codebook, index)
    assert np.all(rebuilt[w == 0] == 0) and np.all(rebuilt[w != 0] != 0)
    assert len(np.unique(rebuilt[rebuilt != 0])) <= 8
    assert np.abs(rebuilt - w)[w != 0].max() < np.ptp(w) / 4
    again = kmeans_share(w, 8, seed=123)  # linear init: nothing random
    np.testing.assert_array_equal(again[0], codebook)
    np.testing.assert_array_equal(again[1], index)


def test_kmeans_starts_from_linear_centroids_over_the_nonzero_weights(monkeypatch):
    seen = {}
    real = ws.KMeans

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(ws, "KMeans", spy)
    w = pruned_weights(1)
    kmeans_share(w, 5)
    nz = w[w != 0]
    np.testing.assert_allclose(seen["init"][:, 0], np.linspace(nz.min(), nz.max(), 5))
    assert seen["n_clusters"] == 5 and seen["n_init"] == 1


def test_few_distinct_values_are_their_own_centroids():
    w = np.array([[0.0, 0.5, 0.5], [-1.0, 0.0, 0.5]])
    codebook, index = kmeans_share(w, 16)
    np.testing.assert_array_equal(codebook, [-1.0, 0.5])
    np.testing.assert_array_equal(index, [[-1, 1, 1], [0, -1, 1]])
    np.testing.assert_array_equal(shared_weights(codebook, index), w)


def test_all_zero_weights_and_bad_cluster_counts():
    codebook, index = kmeans_share(np.zeros((3, 4)), 4)
    assert codebook.size == 0 and np.all(index == -1)
    np.testing.assert_array_equal(shared_weights(codebook, index), np.zeros((3, 4)))
    with pytest.raises(ConfigError, match="share.clusters = 0 is not allowed"):
        kmeans_share(np.ones((2, 2)), 0)
    with pytest.raises(ConfigError, match=r"allowed: -1 \(zero\) .. 1"):
        shared_weights(np.array([1.0, 2.0]), np.array([0, 2]))


def test_centroid_gradient_is_the_cluster_sum():
    index = np.array([[0, 1, -1], [1, 1, 0]])
    grad = np.array([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(centroid_gradient(index, grad, 2), [6.0, 9.0])
    np.testing.assert_allclose(
        fine_tune_centroids(np.array([1.0, -1.0]), index, grad, 0.1), [0.4, -1.9]
    )


def test_centroid_update_equals_autograd_of_the_shared_weights():
    """Deep Compression's rule is what autograd of ``codebook[index]`` computes."""
    w = pruned_weights(2)
    codebook, index = kmeans_share(w, 6)
    grad = np.random.default_rng(3).normal(size=w.shape)
    cb = torch.tensor(codebook, requires_grad=True)
    table = torch.cat([cb.new_zeros(1), cb])
    (table[torch.from_numpy(index + 1)] * torch.from_numpy(grad)).sum().backward()
    np.testing.assert_allclose(centroid_gradient(index, grad, len(codebook)), cb.grad.numpy())
    np.testing.assert_allclose(
        fine_tune_centroids(codebook, index, grad, 0.01), codebook - 0.01 * cb.grad.numpy()
    )


def test_codebook_snaps_to_the_integer_grid_and_merges():
    ints, remap = quantize_codebook(np.array([-0.9, -0.1, 0.26, 0.3, 3.0]), 0.25, 3)
    # -3.6 -> -3 (clipped to the narrow range), -0.4 -> 0 (pruned), 1.04, 1.2 -> 1 (merged)
    np.testing.assert_array_equal(ints, [-3, 1, 3])
    np.testing.assert_array_equal(remap, [0, -1, 1, 1, 2])
    np.testing.assert_array_equal(
        remap_indices(np.array([[4, -1], [1, 3]]), remap), [[2, -1], [-1, 1]]
    )
    with pytest.raises(ConfigError, match="scale = 0.3 is not allowed; allowed: a power of two"):
        quantize_codebook(np.array([1.0]), 0.3, 4)
    with pytest.raises(ConfigError, match="bits = 1 is not allowed"):
        quantize_codebook(np.array([1.0]), 0.5, 1)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-4, 4, allow_nan=False), min_size=1, max_size=20),
    st.integers(-4, 2),
    st.integers(2, 8),
)
def test_quantized_codebook_is_distinct_integers_in_range(codebook, exponent, bits):
    codebook = np.array(codebook)
    ints, remap = quantize_codebook(codebook, 2.0**exponent, bits)
    limit = 2 ** (bits - 1) - 1
    assert ints.dtype == np.int64 and np.all(np.abs(ints) <= limit) and np.all(ints != 0)
    assert np.all(np.diff(ints) > 0)
    snapped = np.clip(np.rint(codebook / 2.0**exponent), -limit, limit)
    rebuilt = shared_weights(ints, remap_indices(np.arange(len(codebook)), remap))
    np.testing.assert_array_equal(rebuilt, snapped)


def test_shared_model_trains_centroids_and_exports_a_codebook(digits):
    seed_everything(0)
    model = QuantMLP(64, [24], 10, weight_bits=5, act_bits=3, input_bits=8)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=2))
    share_weights(model, 4)
    layer = model.linears[0]
    before = layer.parametrizations.weight[0].codebook.detach().clone()
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1, lr=0.005))
    assert not torch.equal(before, layer.parametrizations.weight[0].codebook.detach())
    w = layer.weight.detach()
    assert len(torch.unique(w[w != 0])) <= 4  # weights the quantizer made 0 stay 0
    freeze_sharing(model)
    graph = export_model(model)
    fc0 = graph.node("fc0")
    assert "codebook" in fc0.tensors and len(fc0.tensors["codebook"]) <= 8
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


# ------------------------------------------------- sharing on the quantizer's integer grid


def pruned_w4(digits, per_channel=False, epochs=3):
    """A w4a4 MLP, trained and 50% pruned: at most 14 distinct non-zero integers a layer."""
    seed_everything(0)
    model = QuantMLP(
        digits.features,
        [32, 24],
        digits.classes,
        weight_bits=4,
        act_bits=4,
        input_bits=8,
        per_channel=per_channel,
    )
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=epochs))
    return make_pruning_permanent(magnitude_prune(model, 0.5, "layer")).eval()


def integers(model):
    return {name: quant_ints(layer.quant_weight()) for name, layer in prunable_layers(model)}


def scales(model):
    return {
        name: layer.quant_weight().scale.detach().clone() for name, layer in prunable_layers(model)
    }


def fine_tune(model, digits, epochs=2):
    return train_classifier(
        model, digits.x_train, digits.y_train, TrainSettings(epochs=epochs, lr=0.005)
    )


def assert_ir_holds_the_layer_codebooks(model, digits, clusters):
    """The IR's weights are the quantizer's integers (up to the exporter's row sign flips for
    falling batch-norm slopes), its codebook their distinct values, and golden == Brevitas."""
    graph = export_model(model)
    for name, layer in prunable_layers(model):
        w_ir, ints = graph.node(name).tensors["weight"], quant_ints(layer.quant_weight())
        np.testing.assert_array_equal(np.abs(w_ir), np.abs(ints))
        flipped = bool(np.any(w_ir != ints))
        book = graph.node(name).tensors["codebook"]
        np.testing.assert_array_equal(book, np.unique(w_ir[w_ir != 0]))
        np.testing.assert_array_equal(np.unique(np.abs(book)), np.unique(np.abs(ints[ints != 0])))
        assert len(book) <= (2 if flipped else 1) * clusters, (name, book)
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def test_sharing_with_enough_clusters_is_lossless_and_changes_nothing(digits):
    """K >= the layer's levels: the codebook is its integers, not one weight moves."""
    model = pruned_w4(digits)
    before, logits = integers(model), predict(model, digits.x_test)
    share_weights(model, 16)
    report = sharing_report(model)
    assert all(r["lossless"] for r in report)
    for r in report:
        assert r["levels_before"] <= 14 and len(r["codebook"]) == r["levels_before"]
        np.testing.assert_array_equal(
            r["codebook"], np.unique(before[r["layer"]][before[r["layer"]] != 0])
        )
    for _, layer in prunable_layers(model):
        assert not parametrize.is_parametrized(layer, "weight")  # nothing to fine-tune
        assert not layer.weight.requires_grad and layer.qfab_clusters == 16
    freeze_sharing(model)
    after = integers(model)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    np.testing.assert_array_equal(predict(model, digits.x_test), logits)  # bit for bit
    assert_ir_holds_the_layer_codebooks(model, digits, 16)


@pytest.mark.parametrize("per_channel", [False, True])
def test_lossy_sharing_leaves_at_most_k_integers_at_the_same_scale(digits, per_channel):
    """K = 4 on 4-bit weights: k-means on the integers, snapped, fine-tuned, and the
    quantizer's integers after freezing are the codebook training chose (<= 4 a layer)."""
    model = pruned_w4(digits, per_channel)
    was = scales(model)
    share_weights(model, 4)
    assert not any(r["lossless"] for r in sharing_report(model))
    fine_tune(model, digits)
    freeze_sharing(model)
    ints, now = integers(model), scales(model)
    for r in sharing_report(model):
        name, book = r["layer"], np.array(r["codebook"])
        w = ints[name]
        assert 1 <= len(book) <= 4 and np.all(book != 0) and np.all(np.abs(book) <= 7)
        np.testing.assert_array_equal(np.unique(w[w != 0]), book)  # every channel, one book
        assert torch.equal(now[name], was[name]), name  # the grid did not move
    assert accuracy(predict(model, digits.x_test), digits.y_test) > 0.6
    assert_ir_holds_the_layer_codebooks(model, digits, 4)


def test_a_power_of_two_centroid_keeps_its_scale_and_none_can_leave_the_grid(digits):
    """Brevitas' stats scale is not idempotent: a layer whose largest integer is
    2^(b-2) = 4 re-derives half the scale and 4 becomes 8, clipped to 7. The shared
    layer's scale is pinned: such a codebook stays {-4, 4}, and a centroid trained far
    beyond the grid clips to 7 instead of doubling the scale."""
    model = pruned_w4(digits, epochs=1)
    layer = model.linears[0]
    scale = layer.quant_weight().scale.detach().clone()
    plain = QuantMLP(64, [24], 10, weight_bits=4, act_bits=4, input_bits=8).linears[0]
    with torch.no_grad():  # the hazard, on an unshared layer
        plain.weight.copy_(torch.sign(plain.weight) * 4 * scale)
    assert float(plain.quant_weight().scale) == float(scale) / 2
    assert quant_ints(plain.quant_weight()).max() == 7

    share_weights(model, [2, 2, 2])
    codebook = layer.parametrizations.weight[0].codebook
    with torch.no_grad():  # as if training had moved the centroids there
        codebook.copy_(torch.tensor([-4.0, 4.0]) * scale)
    assert torch.equal(layer.quant_weight().scale, scale)
    with torch.no_grad():
        codebook.copy_(torch.tensor([-4.0, 100.0]) * scale)
    assert torch.equal(layer.quant_weight().scale, scale)
    assert quant_ints(layer.quant_weight()).max() == 7
    with torch.no_grad():
        codebook.copy_(torch.tensor([-4.0, 4.0]) * scale)
    freeze_sharing(model)
    w = quant_ints(layer.quant_weight())
    assert set(np.unique(w[w != 0])) == {-4, 4} and torch.equal(layer.quant_weight().scale, scale)
    assert sharing_report(model)[0]["codebook"] == [-4, 4]
    # Brevitas rebuilds the quantizer when 'weight' is registered again (pruning masks do)
    torch_prune.custom_from_mask(layer, "weight", layer.weight.detach() != 0)
    torch_prune.remove(layer, "weight")
    assert torch.equal(layer.quant_weight().scale, scale)
    np.testing.assert_array_equal(quant_ints(layer.quant_weight()), w)
    assert_ir_holds_the_layer_codebooks(model, digits, 2)


def test_lossy_sharing_is_deterministic(digits):
    base = pruned_w4(digits, epochs=2)
    runs = []
    for _ in range(2):
        model = copy.deepcopy(base)
        share_weights(model, 3, seed=0)
        freeze_sharing(fine_tune(model, digits, epochs=1))
        runs.append((sharing_report(model), integers(model), predict(model, digits.x_test)))
    (rep_a, ints_a, out_a), (rep_b, ints_b, out_b) = runs
    assert rep_a == rep_b
    for name in ints_a:
        np.testing.assert_array_equal(ints_a[name], ints_b[name])
    np.testing.assert_array_equal(out_a, out_b)


def test_binary_weights_share_losslessly_and_refuse_one_cluster(digits):
    seed_everything(0)
    model = QuantMLP(64, [16], 10, weight_bits=1, act_bits=2, input_bits=8)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    before = integers(model)
    with pytest.raises(ConfigError, match=r"share.clusters for fc0 = 1 is not allowed for binary"):
        share_weights(model, [1, 2])
    assert not hasattr(model.linears[0], "qfab_clusters")  # refused before changing anything
    for name, w in integers(share_weights(copy.deepcopy(model), 2)).items():
        np.testing.assert_array_equal(w, before[name])
