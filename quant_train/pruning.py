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

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from qfab.errors import ConfigError
from quant_train.models import FactoredLinear, FloatMLP, QuantMLP, linear_modules

MLP = QuantMLP | FloatMLP


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every weight layer: convolutions, then fully connected (factors expanded)."""
    convs = list(getattr(model, "convs", []))
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


def neuron_scores(model: MLP, criterion: Literal["filter", "channel"]) -> list[np.ndarray]:
    """L1 importance of each hidden neuron, one array per hidden layer."""
    scores = []
    consumers = [*model.linears[1:], model.classifier]
    for lin, nxt in zip(model.linears, consumers, strict=True):
        if criterion == "filter":
            w = lin.weight.detach().abs().sum(dim=1)
        elif criterion == "channel":
            w = nxt.weight.detach().abs().sum(dim=0)
        else:
            raise ConfigError(f"prune.criterion = {criterion!r}; allowed: 'filter', 'channel'")
        scores.append(w.numpy())
    return scores


def prune_neurons(
    model: MLP, fraction: float, criterion: Literal["filter", "channel"] = "filter"
) -> MLP:
    """A narrower model of the same class without each hidden layer's ``fraction`` weakest neurons.

    Every tensor is sliced from the old model (weights, batch-norm statistics and
    affine parameters), so the pruned network computes exactly what the old one computed
    with those neurons' outputs forced to zero; quantizer scales are copied unchanged.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"prune.fraction = {fraction} is not allowed; allowed: 0 <= f < 1")
    if len(getattr(model, "convs", [])):
        raise ConfigError("prune_neurons: conv nets are not supported yet (MLPs only)")
    if any(isinstance(lin, FactoredLinear) for lin in [*model.linears, model.classifier]):
        raise ConfigError(
            "prune_neurons: put it before 'factorize' (factored layers are not sliced)"
        )
    keep = []
    for scores in neuron_scores(model, criterion):
        n_keep = max(1, len(scores) - round(fraction * len(scores)))
        keep.append(np.sort(np.argsort(-scores, kind="stable")[:n_keep]))
    return _rebuild(model, keep)


def _rebuild(model: MLP, keep: list[np.ndarray]) -> MLP:
    make_pruning_permanent(model)
    old = model.state_dict()
    hidden = [len(k) for k in keep]
    args = (model.linears[0].in_features, hidden, model.classifier.out_features)
    new = QuantMLP(*args, **model.quant_config) if isinstance(model, QuantMLP) else FloatMLP(*args)
    rows: dict[str, torch.Tensor] = {}
    cols: dict[str, torch.Tensor] = {}
    for i, k in enumerate(keep):
        idx = torch.from_numpy(k)
        rows[f"linears.{i}.weight"] = idx
        for p in ("weight", "bias", "running_mean", "running_var"):
            rows[f"norms.{i}.{p}"] = idx
        cols[f"linears.{i + 1}.weight" if i + 1 < len(keep) else "classifier.weight"] = idx
    state = {}
    for key, value in old.items():
        if key in rows:
            value = value.index_select(0, rows[key])
        if key in cols:
            value = value.index_select(1, cols[key])
        state[key] = value
    new.load_state_dict(state)
    return new.train(model.training)


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
