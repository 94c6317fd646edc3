"""Pruning of Brevitas MLPs: unstructured magnitude pruning and structured neuron pruning.

Unstructured pruning (Han et al., "Learning both weights and connections", 2015) zeroes
the smallest-magnitude weights, per layer or with one global threshold, through
``torch.nn.utils.prune`` so the mask keeps holding while the network is fine-tuned; a
zero float weight quantizes to integer 0, so the export and level 1 are unchanged.

Load-balance-aware pruning (ESE, Han et al., FPGA 2017) is the same magnitude criterion
applied within each PE's share of a layer: the sparse engine interleaves output rows over
``N`` PEs (row ``i`` on PE ``i mod N``) and a layer takes as long as its busiest PE, so
every PE's sub-matrix keeps the same number of non-zeros (``balance_pes``).

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
    model: MLP,
    sparsity: float,
    scope: Literal["layer", "global"] = "layer",
    balance_pes: int | None = None,
) -> MLP:
    """Zero the fraction ``sparsity`` of smallest-|w| weights; the mask stays during training.

    ``layer``: every layer loses the same fraction. ``global``: one threshold over all
    layers, so large, redundant layers lose more (Deep Compression's behaviour).
    Calling again with a higher sparsity prunes further (masks compose).

    ``balance_pes = N``: ESE's load-balance-aware pruning, see :func:`balanced_prune`.
    """
    if not 0 <= sparsity < 1:
        raise ConfigError(f"prune.sparsity = {sparsity} is not allowed; allowed: 0 <= s < 1")
    if scope not in ("layer", "global"):
        raise ConfigError(f"prune.scope = {scope!r} is not allowed; allowed: 'layer', 'global'")
    if balance_pes is not None:
        return balanced_prune(model, sparsity, scope, balance_pes)
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
    return model


def check_balance_pes(balance_pes: object) -> int:
    """``balance_pes`` as a PE count, or a :class:`ConfigError` naming the key."""
    if isinstance(balance_pes, bool) or not isinstance(balance_pes, int) or balance_pes < 1:
        raise ConfigError(
            f"prune.balance_pes = {balance_pes!r} is not allowed; allowed: integers >= 1 "
            "(the sparse engine's PE count), or null for unbalanced pruning"
        )
    return balance_pes


def pe_rows(rows: int, pes: int) -> list[np.ndarray]:
    """Output rows each PE owns when ``rows`` are interleaved over ``pes`` (row i: PE i mod N).

    PEs beyond the row count own nothing (a 10-class classifier on 16 PEs uses 10).
    """
    return [np.arange(p, rows, pes) for p in range(min(pes, rows))]


def pe_nonzeros(weight: torch.Tensor | np.ndarray, pes: int) -> list[int]:
    """Non-zero weights in each PE's rows (rows = output features / conv output channels)."""
    w = np.asarray(weight.detach() if isinstance(weight, torch.Tensor) else weight)
    per_row = (w.reshape(len(w), -1) != 0).sum(axis=1)
    return [int(per_row[rows].sum()) for rows in pe_rows(len(w), pes)]


def _pe_quotas(keep: int, ranked: list[np.ndarray], available: list[int]) -> list[int]:
    """How many weights each PE keeps: ``keep`` split evenly, the remainder (one each) to
    the PEs whose next-best weight is largest, never more than a PE still has.

    ``ranked[p]`` is PE p's |w| sorted descending. When a PE has fewer non-zeros left
    than its even share (it owns fewer rows, ``rows % N != 0``, at low sparsity; or an
    earlier step was unbalanced), balance wins over the count: every PE is cut to that
    PE's level (plus one where possible), so the layer ends a little sparser than asked
    rather than unbalanced (a PE with more work would set the layer's time anyway).
    """
    pes = len(ranked)
    base, extra = divmod(keep, pes)
    if base + (extra > 0) > min(available):
        base = min(available)
        extra = min(keep - base * pes, sum(a > base for a in available))
    quotas = [base] * pes
    candidates = [p for p in range(pes) if available[p] > base]
    # the (base+1)-th largest magnitude of each PE: who gains most from one more weight
    candidates.sort(key=lambda p: (-float(ranked[p][base]), p))
    for p in candidates[:extra]:
        quotas[p] += 1
    return quotas


def balanced_mask(weight: torch.Tensor, keep: int, pes: int) -> torch.Tensor:
    """Mask keeping ``keep`` weights, the same number (+-1) in each PE's rows, by magnitude.

    Within a PE, the largest |w| of its rows survive (ties: lowest flat index, for
    determinism); zeros never count as kept, so masks from earlier steps compose.
    """
    w = weight.detach().abs().reshape(len(weight), -1).numpy()
    mask = np.zeros(w.shape, dtype=bool)
    groups = pe_rows(len(w), pes)
    values = [w[rows].reshape(-1) for rows in groups]
    order = [np.argsort(-v, kind="stable") for v in values]
    available = [int(np.count_nonzero(v)) for v in values]
    quotas = _pe_quotas(
        min(keep, sum(available)), [v[o] for v, o in zip(values, order, strict=True)], available
    )
    for rows, o, quota in zip(groups, order, quotas, strict=True):
        sub = np.zeros(len(rows) * w.shape[1], dtype=bool)
        sub[o[:quota]] = True
        mask[rows] = sub.reshape(len(rows), w.shape[1])
    return torch.from_numpy(mask.reshape(weight.shape))


def balanced_prune(
    model: MLP, sparsity: float, scope: Literal["layer", "global"], balance_pes: int
) -> MLP:
    """ESE's load-balance-aware pruning: per layer, every PE keeps the same count (+-1).

    The number of weights a layer keeps is what unbalanced pruning would keep: ``layer``,
    ``(1 - sparsity)`` of its weights; ``global``, its weights above the one global
    magnitude threshold (the ``round(sparsity * total)`` smallest |w| of all layers go).
    That count is then split evenly over the PEs owning the layer's rows and each PE
    keeps its largest weights. Convolutions are balanced the same way over their output
    channels (the MVAU's PE dimension; the weight ``[out, in, kh, kw]`` as ``[out, in*kh*kw]``).
    The mask is a ``torch.nn.utils.prune`` mask, so it holds during fine-tuning and
    composes with the masks of earlier (lower-sparsity) calls.
    """
    pes = check_balance_pes(balance_pes)
    layers = [m for _, m in prunable_layers(model)]
    sizes = [m.weight.numel() for m in layers]
    if scope == "global":
        magnitudes = torch.cat([m.weight.detach().abs().reshape(-1) for m in layers])
        pruned = np.zeros(sum(sizes), dtype=bool)
        order = np.argsort(magnitudes.numpy(), kind="stable")
        pruned[order[: round(sparsity * len(pruned))]] = True
        bounds = np.cumsum([0, *sizes])
        keeps = [int((~pruned[a:b]).sum()) for a, b in itertools.pairwise(bounds)]
    else:
        keeps = [n - round(sparsity * n) for n in sizes]
    for m, keep in zip(layers, keeps, strict=True):
        prune.custom_from_mask(m, "weight", balanced_mask(m.weight, keep, pes))
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
    balance_pes: int | None = None,
) -> MLP:
    """Prune -> fine-tune, once per sparsity in ``schedule`` (ascending, e.g. 0.5, 0.75, 0.9).

    With ``balance_pes`` every step is balanced, so each step starts from balanced rows.
    """
    if list(schedule) != sorted(schedule):
        raise ConfigError(f"prune.schedule = {schedule} must be ascending")
    if balance_pes is not None:
        check_balance_pes(balance_pes)
    for target in schedule:
        magnitude_prune(model, target, scope, balance_pes)
        model = fine_tune(model)
    return make_pruning_permanent(model)
