"""Low-rank factorization of fully connected layers (truncated SVD).

``W (m x n) ~= U_r S_r V_r^T`` becomes two chained layers: ``first = sqrt(S_r) V_r^T``
(n -> r) and ``second = U_r sqrt(S_r)`` (r -> m); splitting ``S`` evenly keeps both
factors at similar magnitudes, which the later power-of-two weight quantizers like.
A layer costs ``r (m + n)`` weights instead of ``m n``. The rank is given per layer or
chosen as the smallest that keeps a fraction ``energy`` of ``sum(s_i^2)``. Fine-tuning
(and quantization-aware training) follows, as Denton et al. and the surveys describe.
"""

from __future__ import annotations

import numpy as np
import torch

from qfab.errors import ConfigError
from quant_train.models import FactoredLinear, FloatMLP


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest ``r`` with ``sum(s[:r]^2) >= energy * sum(s^2)``."""
    if not 0 < energy <= 1:
        raise ConfigError(f"factorize.energy = {energy} is not allowed; allowed: 0 < e <= 1")
    power = np.cumsum(singular_values.astype(np.float64) ** 2)
    return int(np.searchsorted(power, energy * power[-1] - 1e-12) + 1)


def check_ranks(dims: list[tuple[int, int]], ranks: list[int | None]) -> None:
    """Reject a rank larger than a layer allows, naming the layer (before any training)."""
    if len(ranks) != len(dims):
        raise ConfigError(
            f"factorize.rank: {len(ranks)} entries for {len(dims)} layers "
            "(hidden layers and the classifier; null keeps a layer whole)"
        )
    for i, ((n, m), r) in enumerate(zip(dims, ranks, strict=True)):
        if r is not None and not 1 <= r <= min(n, m):
            raise ConfigError(
                f"factorize.rank for fc{i} ({n} -> {m}) = {r} is not allowed; "
                f"allowed: 1..{min(n, m)}"
            )


def svd_factorize(
    model: FloatMLP, rank: int | list[int | None] | None = None, energy: float | None = None
) -> FloatMLP:
    """A FloatMLP whose layers are replaced by rank-r factor pairs (batch norm kept)."""
    if (rank is None) == (energy is None):
        raise ConfigError("factorize: give exactly one of 'rank' and 'energy'")
    layers = [*model.linears, model.classifier]
    if any(isinstance(layer, FactoredLinear) for layer in layers):
        raise ConfigError("factorize: the model is already factored")
    dims = [(int(layer.in_features), int(layer.out_features)) for layer in layers]
    svds = [
        torch.linalg.svd(layer.weight.detach().double(), full_matrices=False) for layer in layers
    ]
    if energy is not None:
        ranks: list[int | None] = [rank_for_energy(s.numpy(), energy) for _, s, _ in svds]
    elif isinstance(rank, int):
        ranks = [min(rank, n, m) for n, m in dims]
        if rank < 1:
            check_ranks(dims, [rank] * len(dims))
    else:
        ranks = list(rank)
    check_ranks(dims, ranks)
    new = FloatMLP(dims[0][0], [m for _, m in dims[:-1]], dims[-1][1], ranks=ranks)
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.endswith(".weight") or k.startswith("norms.")
    }
    for i, (layer, (u, s, vh), r) in enumerate(zip(layers, svds, ranks, strict=True)):
        key = f"linears.{i}" if i < len(model.linears) else "classifier"
        if r is None:
            state[f"{key}.weight"] = layer.weight.detach()
            continue
        root = s[:r].sqrt()
        state[f"{key}.first.weight"] = (root[:, None] * vh[:r]).float()
        state[f"{key}.second.weight"] = (u[:, :r] * root[None, :]).float()
        if f"{key}.bias" in state:
            state[f"{key}.second.bias"] = state.pop(f"{key}.bias")
    new.load_state_dict(state)
    return new.train(model.training)
