"""k-means weight sharing: zeros kept, at most K values, deterministic linear init."""

from __future__ import annotations

import numpy as np
import torch

from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.share_model import freeze_sharing, share_weights
from quant_train.train import TrainSettings, seed_everything, train_classifier
from quant_train.weight_sharing import (
    centroid_gradient,
    kmeans_share,
    quantize_codebook,
    shared_weights,
)


def test_kmeans_keeps_zeros_and_at_most_k_values():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 30)) * (rng.random((20, 30)) > 0.7)
    codebook, index = kmeans_share(w, 8)
    assert len(codebook) <= 8 and np.all(np.diff(codebook) > 0)
    assert np.all((index == -1) == (w == 0))
    rebuilt = shared_weights(codebook, index)
    assert np.all(rebuilt[w == 0] == 0)
    assert np.abs(rebuilt - w)[w != 0].max() < np.ptp(w) / 4
    again = kmeans_share(w, 8)
    np.testing.assert_array_equal(again[1], index)


def test_few_distinct_values_are_their_own_centroids():
    w = np.array([[0.0, 0.5, 0.5], [-1.0, 0.0, 0.5]])
    codebook, index = kmeans_share(w, 16)
    np.testing.assert_array_equal(codebook, [-1.0, 0.5])
    np.testing.assert_array_equal(shared_weights(codebook, index), w)


def test_centroid_gradient_is_the_cluster_sum():
    index = np.array([[0, 1, -1], [1, 1, 0]])
    grad = np.array([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(centroid_gradient(index, grad, 2), [6.0, 9.0])


def test_codebook_snaps_to_the_integer_grid():
    np.testing.assert_array_equal(
        quantize_codebook(np.array([-0.9, 0.26, 3.0]), 0.25, 3), [-3, 1, 3]
    )


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
