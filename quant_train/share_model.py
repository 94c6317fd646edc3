"""Weight sharing on a live Brevitas model, in the quantizer's integer domain.

Deep Compression's second stage, adapted to a quantized model. Clustering the float
latent weights (as this module first did) wastes clusters: the weight quantizer then
rounds every centroid to its integer grid, where neighbouring centroids collide. So the
clusters are formed where the hardware values live, on the integers the quantizer
produces (``quant_ints(layer.quant_weight())``) at the layer's power-of-two scale:

* **lossless**: a layer with at most ``K`` distinct non-zero integers already *is*
  shared; its codebook is exactly those integers. Its weights are not touched (so its
  integers stay bit-identical) and frozen, and nothing is fine-tuned for it: any move
  would leave the grid or merge two levels, which cannot help.
* **lossy**: k-means over the layer's non-zero integers (1-D, deterministic linear init,
  :func:`quant_train.weight_sharing.kmeans_share`), centroids snapped to integers
  (:func:`~quant_train.weight_sharing.quantize_codebook`). The weight becomes
  ``codebook[index]`` through a ``torch.nn.utils.parametrize`` parametrization
  (:class:`SharedWeight`) whose only trainable tensor is the codebook; autograd of the
  gather sums the gradients of a cluster's weights, Deep Compression's centroid update,
  and pruned weights (index -1) stay zero. :func:`freeze_sharing` snaps the trained
  centroids to integers again, writes them into plain weights and checks that the
  quantizer reproduces exactly those integers.

The scale is pinned for lossy layers (:class:`FixedWeightScale`) because Brevitas'
stats-based power-of-two scale is *not idempotent*: it is
``2^ceil(log2 max|w|) / 2^(b-1)``, so a layer whose largest shared integer is
``2^(b-2)`` (4 for 4 bits, a common centroid) would get half the scale back, and that
integer would become ``2^(b-1)`` and clip to ``2^(b-1) - 1``; a centroid trained past
the grid's end would double the scale and halve every integer. With the scale fixed,
Brevitas rounds and clips the shared values onto the same grid during fine-tuning and
after, so the integers the IR receives are the codebook training chose.

:func:`layer_codebook` reads the codebook back from the IR's integer weights for the
exporter, where golden computes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from qfab.errors import ConfigError, ExportError
from quant_train.export_ir import quant_ints
from quant_train.pruning import make_pruning_permanent, prunable_layers
from quant_train.weight_sharing import (
    kmeans_share,
    quantize_codebook,
    remap_indices,
    shared_weights,
)


class SharedWeight(nn.Module):
    """Parametrization ``weight = codebook[index] * channel_scale`` (0 where index is -1).

    ``codebook`` is the only trainable tensor. ``channel_scale`` (a buffer broadcast over
    the weight, default 1) lets one codebook serve a per-channel quantizer: the codebook
    holds ``integer * unit`` and channel ``o`` multiplies by ``scale_o / unit``, so every
    channel rounds a codebook entry to the *same* integer.
    """

    def __init__(
        self,
        codebook: np.ndarray,
        index: np.ndarray,
        channel_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.tensor(codebook, dtype=torch.float32))
        self.register_buffer("index", torch.from_numpy(np.asarray(index, np.int64)))
        scale = torch.ones(()) if channel_scale is None else channel_scale.detach().clone()
        self.register_buffer("channel_scale", scale.to(torch.float32))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        table = torch.cat([self.codebook.new_zeros(1), self.codebook])
        return table[self.index + 1] * self.channel_scale


class FixedWeightScale(nn.Module):
    """Stands in for a Brevitas weight quantizer's ``scaling_impl``: always ``value``.

    Brevitas' ``RescalingIntQuant`` calls ``scaling_impl(x, int_threshold)`` and uses the
    result as the scale, so returning the scale the layer had when it was shared keeps
    the integer grid fixed while the codebook moves (see the module docstring for why
    the stats-based scale cannot be trusted to stay). A persistent buffer: the scale is
    part of the shared model's state.
    """

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", scale.detach().clone())

    def forward(self, x: torch.Tensor, threshold: torch.Tensor | None = None) -> torch.Tensor:
        return self.value


@dataclass
class LayerSharing:
    """What :func:`share_weights` decided for one layer (reported in the compress row)."""

    name: str
    clusters: int  #: K asked for
    levels: int  #: distinct non-zero integers before sharing
    lossless: bool  #: levels <= K: the integers are the codebook, weights untouched
    codebook: np.ndarray  #: integer codebook, ascending (final after freeze_sharing)
    scale: np.ndarray  #: the quantizer's power-of-two scale (per channel or one value)
    bits: int

    def as_dict(self) -> dict[str, Any]:
        scale = self.scale.reshape(-1)
        return {
            "layer": self.name,
            "clusters": self.clusters,
            "levels_before": self.levels,
            "lossless": self.lossless,
            "codebook": [int(v) for v in self.codebook],
            "scale": float(scale[0]) if scale.size == 1 else [float(s) for s in scale],
        }


def _quantized_weight(layer: nn.Module, name: str) -> tuple[np.ndarray, torch.Tensor, int]:
    """(integers, scale, bit width) of a layer's weight as its quantizer produces them."""
    if not hasattr(layer, "quant_weight"):
        raise ConfigError(
            f"share: {name} is not quantized; put 'quantize' before 'share' (weights are "
            "shared on the quantizer's integer grid)"
        )
    with torch.no_grad():
        qw = layer.quant_weight()
    return quant_ints(qw), qw.scale.detach().clone(), int(qw.bit_width)


def _pin_scale(layer: nn.Module, scale: torch.Tensor, name: str) -> None:
    """Make ``scale`` the weight quantizer's scale for good.

    Brevitas rebuilds a layer's ``tensor_quant`` from its injector whenever ``weight`` is
    registered again (removing a parametrization, ``torch.nn.utils.prune`` masks), so
    the fixed scaling goes into the injector, not only into the current module tree.
    """
    proxy = layer.weight_quant
    if not hasattr(proxy.tensor_quant, "int_scaling_impl"):
        raise ConfigError(f"share: the weight quantizer of {name} has no integer scale to pin")
    proxy.quant_injector = proxy.quant_injector.let(scaling_impl=FixedWeightScale(scale))
    training = proxy.training
    proxy.init_tensor_quant()
    proxy.train(training)


def share_weights(model: nn.Module, clusters: int | list[int], seed: int = 0) -> nn.Module:
    """Share every layer's integer weights among ``clusters`` values (per layer or one count).

    Lossless layers (at most ``K`` distinct non-zero integers) are only frozen; lossy
    layers get a trainable codebook of integer centroids (see the module docstring).
    Every layer's weight stops training (``requires_grad = False``): from here on only
    codebooks may move. Sets ``layer.qfab_clusters`` (read by the exporter) and
    ``layer.qfab_sharing`` (a :class:`LayerSharing`, see :func:`sharing_report`).
    """
    layers = prunable_layers(model)
    counts = [clusters] * len(layers) if isinstance(clusters, int) else list(clusters)
    if len(counts) != len(layers):
        raise ConfigError(f"share.clusters: {len(counts)} entries for {len(layers)} layers")
    for k, (name, _) in zip(counts, layers, strict=True):
        if not 1 <= k <= 256:
            raise ConfigError(f"share.clusters for {name} = {k} is not allowed; allowed: 1..256")
    make_pruning_permanent(model)
    plans = []
    for k, (name, layer) in zip(counts, layers, strict=True):  # check all before changing any
        ints, scale, bits = _quantized_weight(layer, name)
        levels = np.unique(ints[ints != 0])
        if bits == 1 and len(levels) > k:  # bipolar: two levels, no zero to merge into
            raise ConfigError(
                f"share.clusters for {name} = {k} is not allowed for binary weights "
                "(two levels, -1 and +1); allowed: 2..256"
            )
        info = LayerSharing(name, k, len(levels), len(levels) <= k, levels, scale.numpy(), bits)
        plans.append((layer, ints, scale, info))
    for layer, ints, scale, info in plans:
        name, k, bits = info.name, info.clusters, info.bits
        layer.weight.requires_grad_(False)
        if not info.lossless:
            centroids, index = kmeans_share(ints.astype(np.float64), k, seed=seed)
            codebook, remap = quantize_codebook(centroids, 1.0, bits)
            index = remap_indices(index, remap)
            unit = float(scale.max())  # codebook in the layer's float units: Adam's lr
            sharing = SharedWeight(codebook * unit, index, scale / unit)  # means what it did
            parametrize.register_parametrization(layer, "weight", sharing, unsafe=True)
            _pin_scale(layer, scale, name)
            info.codebook = codebook
            _check_integers(layer, name, shared_weights(codebook, index), scale)
        layer.qfab_clusters = k
        layer.qfab_sharing = info
    return model


def _check_integers(layer: nn.Module, name: str, expected: np.ndarray, scale: torch.Tensor) -> None:
    """The quantizer must produce exactly ``expected`` at exactly ``scale``."""
    ints, now, _ = _quantized_weight(layer, name)
    if not torch.equal(now, scale):
        raise ExportError(f"{name}: the weight scale moved from {scale} to {now} while sharing")
    if not np.array_equal(ints, expected):
        bad = int(np.sum(ints != expected))
        raise ExportError(
            f"{name}: the weight quantizer gives {bad} integers that differ from the shared "
            "codebook; the IR would not hold what sharing chose"
        )


def freeze_sharing(model: nn.Module) -> nn.Module:
    """Snap the trained centroids to integers and bake them into plain weights.

    A trained centroid is rounded and clipped to the narrow signed range, exactly as the
    (pinned) quantizer rounded it in the last forward pass; centroids that met share one
    entry and one that reached 0 turns its weights into pruned zeros. The integers the
    quantizer then produces are checked against ``codebook[index]`` (same scale, every
    weight), so the exported codebook is the one training chose. Keeps
    ``qfab_clusters`` for the export; ``qfab_sharing.codebook`` becomes the final one.

    A weight the quantizer already mapped to 0 before sharing (not clustered, index -1)
    keeps its small float value, which the pinned scale still maps to 0: sharing moves
    no weight it did not share, as for a lossless layer, and the float non-zero count
    the compress rows report stays comparable to the ``quantize`` row's.
    """
    for name, layer in prunable_layers(model):
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        sharing = layer.parametrizations.weight[0]
        info: LayerSharing | None = getattr(layer, "qfab_sharing", None)
        if info is None:  # a parametrization this module did not register
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
            continue
        unit = float(info.scale.max())
        centroids = sharing.codebook.detach().double().numpy() / unit
        codebook, remap = quantize_codebook(centroids, 1.0, info.bits)
        index = remap_indices(sharing.index.numpy(), remap)
        ints = shared_weights(codebook, index)
        channel = sharing.channel_scale.double().numpy()
        original = layer.parametrizations.weight.original.detach().double().numpy()
        was_zero = np.rint(original / info.scale.astype(np.float64)) == 0
        weight = np.where(index >= 0, ints * unit * channel, np.where(was_zero, original, 0.0))
        weight = torch.from_numpy(weight.astype(np.float32))
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        with torch.no_grad():
            layer.weight.copy_(weight)
        layer.weight.requires_grad_(False)
        _check_integers(layer, name, ints, torch.from_numpy(info.scale))
        info.codebook = codebook
    return model


def sharing_report(model: nn.Module) -> list[dict[str, Any]]:
    """Per shared layer: clusters, levels before, lossless or not, codebook, scale."""
    return [
        layer.qfab_sharing.as_dict()
        for _, layer in prunable_layers(model)
        if getattr(layer, "qfab_sharing", None) is not None
    ]


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
