"""Low-rank factorization of fully connected layers (truncated SVD).

``W (m x n) ~= U_r S_r V_r^T`` becomes two chained layers: ``first = sqrt(S_r) V_r^T``
(n -> r) and ``second = U_r sqrt(S_r)`` (r -> m); splitting ``S`` evenly keeps both
factors at similar magnitudes, which the later power-of-two weight quantizers like.
A layer costs ``r (m + n)`` weights instead of ``m n``. The rank is given per layer or
chosen as the smallest that keeps a fraction ``energy`` of ``sum(s_i^2)``. Fine-tuning
(and quantization-aware training) follows, as Denton et al. and the surveys describe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

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


# ---------------------------------------------------------------- convolutions (tensorly)


def _conv_weights(kind: str, w: np.ndarray, rank: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Stage weights (PyTorch layout [out, in/groups, kh, kw]) approximating ``w``."""
    import tensorly as tl
    from tensorly.decomposition import parafac, partial_tucker

    tl.set_backend("numpy")
    oc, ic, kh, kw = w.shape
    if kind == "tucker":
        r_in, r_out = rank
        (core, (u_out, u_in)), _ = partial_tucker(
            w, rank=[r_out, r_in], modes=[0, 1], init="svd", random_state=seed
        )
        return [u_in.T[:, :, None, None], core, u_out[:, :, None, None]]
    if kind == "cp":
        (r,) = rank
        cp = parafac(w, rank=r, init="random", random_state=seed, n_iter_max=500, tol=1e-8)
        a, b, c, d = cp.factors
        return [
            b.T[:, :, None, None],
            c.T[:, None, :, None],
            d.T[:, None, None, :],
            (a * cp.weights[None, :])[:, :, None, None],
        ]
    if kind == "spatial":
        (r,) = rank
        m = w.transpose(1, 2, 0, 3).reshape(ic * kh, oc * kw)
        u, s, vh = np.linalg.svd(m, full_matrices=False)
        root = np.sqrt(s[:r])
        v = (u[:, :r] * root).reshape(ic, kh, r).transpose(2, 0, 1)[..., None]
        h = (root[:, None] * vh[:r]).reshape(r, oc, kw).transpose(1, 0, 2)[:, :, None, :]
        return [v, h]
    raise ConfigError(f"factorize.method = {kind!r} is not allowed; allowed: tucker, cp, spatial")


def conv_rank_error(
    kind: str, name: str, c_in: int, c_out: int, k: int, rank: tuple[int, ...]
) -> str | None:
    """Why ``rank`` does not fit a ``c_in -> c_out``, k x k layer, or None."""
    if kind == "tucker":
        r_in, r_out = rank
        if not (1 <= r_in <= c_in and 1 <= r_out <= c_out):
            return (
                f"factorize.rank for {name} ({c_in} -> {c_out}) = {list(rank)} is not "
                f"allowed; allowed: [1..{c_in}, 1..{c_out}]"
            )
    elif kind == "cp":
        if not 1 <= rank[0] <= c_in * c_out:
            return (
                f"factorize.rank for {name} = {rank[0]} is not allowed; allowed: 1..{c_in * c_out}"
            )
    elif kind == "spatial" and not 1 <= rank[0] <= min(c_in, c_out) * k:
        return (
            f"factorize.rank for {name} = {rank[0]} is not allowed; "
            f"allowed: 1..{min(c_in, c_out) * k}"
        )
    return None


def conv_ranks(kind: str, rank: Any, specs: list[tuple], in_channels: int) -> list[tuple | None]:
    """Normalize ``rank`` (one int, or one entry per conv layer, null = keep) and check it."""
    entries = rank if isinstance(rank, list) else [rank] * len(specs)
    if len(entries) != len(specs):
        raise ConfigError(f"factorize.rank: {len(entries)} entries for {len(specs)} conv layers")
    out: list[tuple | None] = []
    c = in_channels
    for i, (entry, (channels, k, _, _)) in enumerate(zip(entries, specs, strict=True)):
        if entry is None:
            out.append(None)
        else:
            if kind == "tucker":
                r = (
                    tuple(entry)
                    if isinstance(entry, list)
                    else (min(entry, c), min(entry, channels))
                )
            else:
                r = (int(entry),)
            if len(r) != (2 if kind == "tucker" else 1):
                raise ConfigError(f"factorize.rank for conv{i}: tucker takes [r_in, r_out]")
            if err := conv_rank_error(kind, f"conv{i}", c, channels, k, r):
                raise ConfigError(err)
            out.append(r)
        c = channels
    return out


def conv_factorize(model: nn.Module, kind: str, rank: Any, seed: int = 0) -> nn.Module:
    """A float CNN whose conv layers are replaced by their Tucker-2 / CP / spatial factors."""
    from quant_train.models import FactoredConv, QuantCNN, float_cnn

    if not isinstance(model, QuantCNN) or model.quantized:
        raise ConfigError(
            "factorize: tucker/cp/spatial apply to a float conv net before 'quantize'"
        )
    if any(isinstance(c, FactoredConv) for c in model.convs):
        raise ConfigError("factorize: the model is already factored")
    ranks = conv_ranks(kind, rank, model.conv_specs, model.input_shape[2])
    factors = [None if r is None else (kind, *r) for r in ranks]
    new = float_cnn(
        model.input_shape,
        model.conv_specs,
        model.hidden,
        model.classifier.out_features,
        factors=factors,
    )
    state = model.state_dict()
    for i, r in enumerate(ranks):
        if r is None:
            continue
        w = state.pop(f"convs.{i}.weight").double().numpy()
        for j, stage in enumerate(_conv_weights(kind, w, r, seed)):
            state[f"convs.{i}.stages.{j}.weight"] = torch.from_numpy(
                np.ascontiguousarray(stage)
            ).float()
    new.load_state_dict(state)
    return new.train(model.training)
