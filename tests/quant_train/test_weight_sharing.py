"""k-means weight sharing: zeros kept, at most K values, deterministic linear init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import quant_train.weight_sharing as ws
from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.share_model import freeze_sharing, share_weights
from quant_train.train import TrainSettings, seed_everything, train_classifier
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
    assert len(torch.unique(layer.weight.detach())) <= 4
    freeze_sharing(model)
    graph = export_model(model)
    fc0 = graph.node("fc0")
    assert "codebook" in fc0.tensors and len(fc0.tensors["codebook"]) <= 8
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
