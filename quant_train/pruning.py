"""Pruning of Brevitas MLPs: unstructured magnitude pruning and structured neuron pruning.

Unstructured pruning (Han et al., "Learning both weights and connections", 2015) zeroes
the smallest-magnitude weights, per layer or with one global threshold, through
``torch.nn.utils.prune`` so the mask keeps holding while the network is fine-tuned; a
zero float weight quantizes to integer 0, so the export and level 1 are unchanged.

Structured pruning (Li et al., "Pruning Filters for Efficient ConvNets", 2017) ranks the
neurons (filters) of each hidden layer by the L1 norm of their weight row, or by the L1
norm of the column that the next layer reads from them ("channel" criterion), and
*physically removes* the weakest ones: the model is rebuilt with narrower layers, so the
IR and the generated hardware shrink, not just fill with zeros.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from qfab.errors import ConfigError
from quant_train.models import (
    FactoredConv,
    FactoredLinear,
    FloatMLP,
    QuantCNN,
    QuantMLP,
    conv_modules,
    linear_modules,
)

MLP = QuantMLP | FloatMLP


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every weight layer: convolutions, then fully connected (factored layers expanded
    into their stages), named ``conv{i}`` / ``fc{i}`` in that order."""
    convs = conv_modules(model)
    named = [(f"conv{i}", conv) for i, conv in enumerate(convs)]
    return named + [(f"fc{len(convs) + i}", lin) for i, lin in enumerate(linear_modules(model))]


def magnitude_prune(
    model: MLP, sparsity: float, scope: Literal["layer", "global"] = "layer"
) -> MLP:
    """Zero the fraction ``sparsity`` of smallest-|w| weights; the mask stays during training.

    ``layer``: every layer loses the same fraction. ``global``: one threshold over all
    layers, so large, redundant layers lose more (Deep Compression's behaviour).
    Calling again with a higher sparsity prunes further (masks compose).
    """
    if not 0 <= sparsity < 1:
        raise ConfigError(f"prune.sparsity = {sparsity} is not allowed; allowed: 0 <= s < 1")
    layers = prunable_layers(model)
    if scope == "global":
        # prune.global_unstructured counts *remaining* weights; convert the total target
        already = sum(int((m.weight == 0).sum()) for _, m in layers)
        total = sum(m.weight.numel() for _, m in layers)
        extra = max(0, round(sparsity * total) - already)
        prune.global_unstructured(
            [(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=extra
        )
    elif scope == "layer":
        for _, m in layers:
            already = int((m.weight == 0).sum())
            extra = max(0, round(sparsity * m.weight.numel()) - already)
            prune.l1_unstructured(m, "weight", amount=extra)
    else:
        raise ConfigError(f"prune.scope = {scope!r} is not allowed; allowed: 'layer', 'global'")
    return model


def make_pruning_permanent(model: MLP) -> MLP:
    """Fold the masks into the weights (``prune.remove``) before export or saving."""
    for _, m in prunable_layers(model):
        if prune.is_pruned(m):
            prune.remove(m, "weight")
    return model


def sparsity(model: MLP) -> dict[str, float]:
    """Fraction of zero weights per layer (the float weights, which export keeps at zero)."""
    return {name: float((m.weight == 0).float().mean()) for name, m in prunable_layers(model)}


def _weight_layers_in_order(model: nn.Module) -> list[nn.Module]:
    """Convolutions, hidden linears, classifier: every layer whose outputs can be pruned
    (all but the classifier) is followed by the layer that consumes them."""
    return [*getattr(model, "convs", []), *model.linears, model.classifier]


def neuron_scores(model: MLP, criterion: Literal["filter", "channel"]) -> list[np.ndarray]:
    """L1 importance of each output (neuron or conv filter) of every prunable layer.

    ``filter`` (Li et al.): the L1 norm of the output's own weights. ``channel``: the
    L1 norm of what the next layer reads from it (for the last conv, all the flattened
    columns of that channel).
    """
    if criterion not in ("filter", "channel"):
        raise ConfigError(f"prune.criterion = {criterion!r}; allowed: 'filter', 'channel'")
    layers = _weight_layers_in_order(model)
    convs = len(getattr(model, "convs", []))
    scores = []
    for i, (layer, nxt) in enumerate(itertools.pairwise(layers)):
        w = layer.weight.detach().abs()
        if criterion == "filter":
            scores.append(w.reshape(len(w), -1).sum(dim=1).numpy())
            continue
        v = nxt.weight.detach().abs()
        if i == convs - 1:  # last conv feeds the flatten: channel c owns a block of columns
            v = v.reshape(len(v), w.shape[0], -1).sum(dim=2)
        scores.append(v.transpose(0, 1).reshape(w.shape[0], -1).sum(dim=1).numpy())
    return scores


def prune_neurons(
    model: MLP, fraction: float, criterion: Literal["filter", "channel"] = "filter"
) -> MLP:
    """A narrower model without each layer's ``fraction`` weakest neurons / conv filters.

    Every tensor is sliced from the old model (weights, batch-norm statistics and
    affine parameters), so the pruned network computes exactly what the old one computed
    with those outputs forced to zero; quantizer scales are copied unchanged.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"prune.fraction = {fraction} is not allowed; allowed: 0 <= f < 1")
    layers = [*getattr(model, "convs", []), *model.linears, model.classifier]
    if any(isinstance(layer, FactoredLinear | FactoredConv) for layer in layers):
        raise ConfigError(
            "prune_neurons: put it before 'factorize' (factored layers are not sliced)"
        )
    if hasattr(model, "graph_plan"):
        raise ConfigError("prune_neurons: not for branching (compact) nets yet")
    keep = []
    for scores in neuron_scores(model, criterion):
        n_keep = max(1, len(scores) - round(fraction * len(scores)))
        keep.append(np.sort(np.argsort(-scores, kind="stable")[:n_keep]))
    return _rebuild(model, keep)


def _rebuild(model: MLP, keep: list[np.ndarray]) -> MLP:
    make_pruning_permanent(model)
    old = model.state_dict()
    convs = len(getattr(model, "convs", []))
    conv_keep, fc_keep = keep[:convs], keep[convs:]
    hidden = [len(k) for k in fc_keep]
    if isinstance(model, QuantCNN):
        specs = [(len(k), *spec[1:]) for k, spec in zip(conv_keep, model.conv_specs, strict=True)]
        new: nn.Module = QuantCNN(
            model.input_shape, specs, hidden, model.classifier.out_features, **model.quant_config
        )
        names = [f"convs.{i}" for i in range(convs)] + [f"linears.{i}" for i in range(len(hidden))]
        norms = [f"conv_norms.{i}" for i in range(convs)] + [
            f"norms.{i}" for i in range(len(hidden))
        ]
    else:
        args = (model.linears[0].in_features, hidden, model.classifier.out_features)
        new = (
            QuantMLP(*args, **model.quant_config)
            if isinstance(model, QuantMLP)
            else FloatMLP(*args)
        )
        names = [f"linears.{i}" for i in range(len(hidden))]
        norms = [f"norms.{i}" for i in range(len(hidden))]
    consumers = [*names[1:], "classifier"]
    rows: dict[str, torch.Tensor] = {}
    cols: dict[str, torch.Tensor] = {}
    for i, k in enumerate(keep):
        idx = torch.from_numpy(k)
        rows[f"{names[i]}.weight"] = idx
        for p in ("weight", "bias", "running_mean", "running_var"):
            rows[f"{norms[i]}.{p}"] = idx
        if i == convs - 1:  # flatten (NCHW): channel c owns columns c*HW .. c*HW + HW - 1
            pixels = old[f"{consumers[i]}.weight"].shape[1] // len(keep_all_channels(model, i))
            idx = (idx[:, None] * pixels + torch.arange(pixels)[None, :]).reshape(-1)
        cols[f"{consumers[i]}.weight"] = idx
    state = {}
    for key, value in old.items():
        if key in rows:
            value = value.index_select(0, rows[key])
        if key in cols:
            value = value.index_select(1, cols[key])
        state[key] = value
    new.load_state_dict(state)
    return new.train(model.training)


def keep_all_channels(model: nn.Module, conv_index: int) -> range:
    """All output channels of conv layer ``conv_index`` (before pruning)."""
    return range(model.convs[conv_index].out_channels)


def iterative_prune(
    model: MLP,
    schedule: list[float],
    fine_tune: Callable[[MLP], MLP],
    scope: Literal["layer", "global"] = "layer",
) -> MLP:
    """Prune -> fine-tune, once per sparsity in ``schedule`` (ascending, e.g. 0.5, 0.75, 0.9)."""
    if list(schedule) != sorted(schedule):
        raise ConfigError(f"prune.schedule = {schedule} must be ascending")
    for target in schedule:
        magnitude_prune(model, target, scope)
        model = fine_tune(model)
    return make_pruning_permanent(model)
