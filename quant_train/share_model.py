"""Weight sharing on a live Brevitas model: cluster, fine-tune the centroids, freeze.

Deep Compression's second stage. Each layer's non-zero float weights are clustered
(:func:`quant_train.weight_sharing.kmeans_share`, linear init); the layer's weight then
becomes ``codebook[index]`` through a ``torch.nn.utils.parametrize`` parametrization
whose only trainable tensor is the codebook. Autograd of the gather sums the gradients
of every weight in a cluster, which is exactly Deep Compression's centroid update, and
pruned weights (index -1) stay zero.

The weight quantizer then maps each centroid to one integer, so a layer with ``K``
clusters has at most ``K`` distinct non-zero integer weights; :func:`layer_codebook`
reads them back for the IR, where golden computes with the codebook.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from qfab.errors import ConfigError
from quant_train.pruning import make_pruning_permanent, prunable_layers
from quant_train.weight_sharing import kmeans_share


class SharedWeight(nn.Module):
    """Parametrization ``weight = codebook[index]`` (0 where index is -1)."""

    def __init__(self, codebook: np.ndarray, index: np.ndarray) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.tensor(codebook, dtype=torch.float32))
        self.register_buffer("index", torch.from_numpy(np.asarray(index, np.int64)))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        table = torch.cat([self.codebook.new_zeros(1), self.codebook])
        return table[self.index + 1]


def share_weights(model: nn.Module, clusters: int | list[int], seed: int = 0) -> nn.Module:
    """Cluster every layer's weights; ``clusters`` per layer or one count for all."""
    layers = prunable_layers(model)
    counts = [clusters] * len(layers) if isinstance(clusters, int) else list(clusters)
    if len(counts) != len(layers):
        raise ConfigError(f"share.clusters: {len(counts)} entries for {len(layers)} layers")
    for k, (name, _) in zip(counts, layers, strict=True):
        if not 1 <= k <= 256:
            raise ConfigError(f"share.clusters for {name} = {k} is not allowed; allowed: 1..256")
    make_pruning_permanent(model)
    for k, (_, layer) in zip(counts, layers, strict=True):
        codebook, index = kmeans_share(layer.weight.detach().numpy(), k, seed=seed)
        with torch.no_grad():
            layer.weight.requires_grad_(False)
        parametrize.register_parametrization(
            layer, "weight", SharedWeight(codebook, index), unsafe=True
        )
        layer.qfab_clusters = k
    return model


def freeze_sharing(model: nn.Module) -> nn.Module:
    """Bake ``codebook[index]`` into plain weights (keeps ``qfab_clusters`` for export)."""
    for _, layer in prunable_layers(model):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model


def layer_codebook(w_int: np.ndarray, clusters: int, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codebook (sorted distinct non-zero weights) and indices (-1 for zero)."""
    values = np.unique(w_int[w_int != 0])
    if len(values) > clusters:
        raise ConfigError(
            f"{layer}: {len(values)} distinct weights after sharing, more than "
            f"its {clusters} clusters"
        )
    index = np.where(w_int != 0, np.searchsorted(values, w_int), -1)
    return values.astype(np.int64), index.astype(np.int64)
