"""Low-rank factorization: truncated SVD of fully connected layers, Tucker-2 / CP /
spatial separation of convolutions (tensorly).

``W (m x n) ~= U_r S_r V_r^T`` becomes two chained layers: ``first = sqrt(S_r) V_r^T``
(n -> r) and ``second = U_r sqrt(S_r)`` (r -> m); splitting ``S`` evenly keeps both
factors at similar magnitudes, which the later power-of-two weight quantizers like.
A layer costs ``r (m + n)`` weights instead of ``m n``. Fine-tuning (and
quantization-aware training) follows, as Denton et al. and the surveys describe.

Ranks are given per layer, or chosen by ``energy``: the smallest rank whose
factorization keeps that fraction of the weight's squared Frobenius norm, i.e.
``1 - |W - W_r|^2 / |W|^2 >= energy``. For SVD and spatial separation this is the
share of ``sum(s_i^2)`` in the top ``r`` singular values. Tucker-2 keeps
``(1 + energy) / 2`` of each factored mode's spectrum (input and output channels): the
truncated-HOSVD error is at most the sum of what the modes discard, so the whole keeps
at least ``energy`` (and tensorly's HOOI iterations from there only improve the fit).
CP has no spectrum, so its rank is searched (doubling, then bisection) on the
measured fit. A layer whose chosen
factorization would not have fewer weights than the layer itself is kept whole:
it then keeps all of its energy at a lower cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from qfab.errors import ConfigError
from quant_train.models import FactoredLinear, FloatMLP


def check_energy(energy: float) -> None:
    """``energy`` must be a fraction in (0, 1]."""
    if not 0 < energy <= 1:
        raise ConfigError(f"factorize.energy = {energy} is not allowed; allowed: 0 < e <= 1")


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest ``r`` with ``sum(s[:r]^2) >= energy * sum(s^2)``."""
    check_energy(energy)
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
        ranks: list[int | None] = []
        for (n, m), (_, s, _) in zip(dims, svds, strict=True):
            r = rank_for_energy(s.numpy(), energy)
            ranks.append(r if r * (n + m) < n * m else None)  # not cheaper: keep whole
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


def _balanced_cp(w: np.ndarray, r: int, seed: int) -> list[np.ndarray]:
    """CP factors ``[A (out), B (in), C (kh), D (kw)]`` of ``w`` with balanced columns.

    tensorly's ALS from an SVD start (deterministic; columns beyond a mode's size are
    seeded random, which tensorly warns about and is expected here), on ``w`` scaled to
    unit norm with a small ridge term (``l2_reg``): without it, ranks above ~2x the
    channel count drift into degenerate solutions whose components cancel each other
    (sum of component norms^2 185x the weight's on LeNet-5), which no narrow quantizer
    can represent. Then each rank-one component's weight is spread evenly over its four
    factors (every factor column gets norm ``|lambda_i|^(1/4)``); otherwise one stage
    carries all the magnitude, and a per-tensor power-of-two quantizer on a depthwise
    stage rounds the weaker components away. Measured on LeNet-5 / digits, CP at
    w4a4 (bench/lowrank.py): 68% unbalanced and unregularized, 97-98% with both.
    """
    import warnings

    import tensorly as tl
    from tensorly.decomposition import parafac

    tl.set_backend("numpy")
    norm = float(np.linalg.norm(w))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
        cp = parafac(
            w / norm,
            rank=r,
            init="svd",
            random_state=seed,
            n_iter_max=500,
            tol=1e-8,
            normalize_factors=True,
            l2_reg=CP_RIDGE,
        )
    lam = np.asarray(cp.weights) * norm
    root = np.abs(lam) ** 0.25
    a, b, c, d = (f * root[None, :] for f in cp.factors)
    return [a * np.sign(lam)[None, :], b, c, d]


#: Ridge term of the CP ALS on the unit-norm weight (see :func:`_balanced_cp`). LeNet-5's
#: second conv at ranks 17 / 24: components' sum of norms^2 185x / 49x the weight's
#: without it, 12x at 1e-4, 5x at 1e-3, 2x at 1e-2; the fit moved by < 0.01 throughout,
#: and w4a4 accuracy after QAT was no better at 1e-2 than at 1e-3.
CP_RIDGE = 1e-3


def _conv_weights(kind: str, w: np.ndarray, rank: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Stage weights (PyTorch layout [out, in/groups, kh, kw]) approximating ``w``."""
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    tl.set_backend("numpy")
    oc, ic, kh, kw = w.shape
    if kind == "tucker":
        r_in, r_out = rank
        (core, (u_out, u_in)), _ = partial_tucker(
            w, rank=[r_out, r_in], modes=[0, 1], init="svd", random_state=seed
        )
        return [u_in.T[:, :, None, None], core, u_out[:, :, None, None]]
    if kind == "cp":
        a, b, c, d = _balanced_cp(w, rank[0], seed)
        return [
            b.T[:, :, None, None],
            c.T[:, None, :, None],
            d.T[:, None, None, :],
            a[:, :, None, None],
        ]
    if kind == "spatial":
        (r,) = rank
        u, s, vh = np.linalg.svd(_spatial_matrix(w), full_matrices=False)
        root = np.sqrt(s[:r])
        v = (u[:, :r] * root).reshape(ic, kh, r).transpose(2, 0, 1)[..., None]
        h = (root[:, None] * vh[:r]).reshape(r, oc, kw).transpose(1, 0, 2)[:, :, None, :]
        return [v, h]
    raise ConfigError(f"factorize.method = {kind!r} is not allowed; allowed: tucker, cp, spatial")


def _spatial_matrix(w: np.ndarray) -> np.ndarray:
    """``w [OC, IC, KH, KW]`` as the ``(IC*KH) x (OC*KW)`` matrix a k x 1 -> 1 x k pair
    factors: its rank-r SVD is the best spatial separation (Jaderberg et al., scheme 2)."""
    oc, ic, kh, kw = w.shape
    return w.transpose(1, 2, 0, 3).reshape(ic * kh, oc * kw)


def factored_conv_params(kind: str, c_in: int, c_out: int, k: int, rank: tuple[int, ...]) -> int:
    """Weights of a factored k x k convolution (the layer itself has ``c_in c_out k^2``)."""
    if kind == "tucker":
        r_in, r_out = rank
        return c_in * r_in + r_in * r_out * k * k + r_out * c_out
    if kind == "cp":
        return rank[0] * (c_in + 2 * k + c_out)
    return rank[0] * k * (c_in + c_out)  # spatial


def cp_fit(w: np.ndarray, r: int, seed: int) -> float:
    """Energy kept by a rank-r CP: ``1 - |W - CP_r|^2 / |W|^2``."""
    import tensorly as tl

    a, b, c, d = _balanced_cp(w, r, seed)
    approx = tl.cp_to_tensor((np.ones(r), [a, b, c, d]))
    return 1.0 - float(np.sum((w - approx) ** 2) / np.sum(w**2))


def conv_rank_for_energy(
    kind: str, w: np.ndarray, energy: float, seed: int = 0
) -> tuple[int, ...] | None:
    """The rank of ``kind`` chosen to keep ``energy`` of ``w`` (see the module doc), or
    None when no factorization with fewer weights than the layer keeps it.

    Spatial and CP: the smallest such rank. Tucker-2: the smallest per-mode ranks that
    keep ``(1 + energy) / 2`` of each mode, a guarantee for the whole, not the smallest
    pair that happens to reach ``energy``.
    """
    check_energy(energy)
    oc, ic, k = w.shape[0], w.shape[1], w.shape[2]
    if kind == "tucker":  # (r_in, r_out): modes 1 and 0 of [OC, IC, KH, KW]
        spectra = [
            np.linalg.svd(np.moveaxis(w, m, 0).reshape(w.shape[m], -1), compute_uv=False)
            for m in (1, 0)
        ]
        return tuple(rank_for_energy(s, (1 + energy) / 2) for s in spectra)
    if kind == "spatial":
        return (rank_for_energy(np.linalg.svd(_spatial_matrix(w), compute_uv=False), energy),)
    if kind == "cp":
        # the largest rank that still has fewer weights than the layer: no need to look
        # further (a longer search would cost minutes of ALS on a 64 -> 64 layer)
        cap = (w.size - 1) // (ic + 2 * k + oc)
        if cap < 1:
            return None
        hi, fit = 1, cp_fit(w, 1, seed)
        while fit < energy - 1e-9:
            if hi >= cap:
                return None  # keeping the layer whole is cheaper than any rank that fits
            hi = min(2 * hi, cap)
            fit = cp_fit(w, hi, seed)
        lo = hi // 2 + 1 if hi > 1 else 1
        while lo < hi:  # fit grows with the rank (ALS from an SVD start, checked at hi)
            mid = (lo + hi) // 2
            if cp_fit(w, mid, seed) >= energy - 1e-9:
                hi = mid
            else:
                lo = mid + 1
        return (hi,)
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
    if kind not in ("tucker", "cp", "spatial"):
        raise ConfigError(
            f"factorize.method = {kind!r} is not allowed for conv nets; "
            "allowed: tucker, cp, spatial"
        )
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


def conv_factorize(
    model: nn.Module,
    kind: str,
    rank: Any = None,
    seed: int = 0,
    energy: float | None = None,
) -> nn.Module:
    """A float CNN whose conv layers are replaced by their Tucker-2 / CP / spatial factors.

    Give ``rank`` (one entry per conv layer, null keeps a layer) or ``energy`` (see the
    module doc; layers where factoring would not save weights are kept whole).
    """
    from quant_train.models import FactoredConv, QuantCNN, float_cnn

    if not isinstance(model, QuantCNN) or model.quantized:
        raise ConfigError(
            "factorize: tucker/cp/spatial apply to a float conv net (lenet5, cnv) before 'quantize'"
        )
    if (rank is None) == (energy is None):
        raise ConfigError("factorize: give exactly one of 'rank' and 'energy'")
    if any(isinstance(c, FactoredConv) for c in model.convs):
        raise ConfigError("factorize: the model is already factored")
    state = model.state_dict()
    if energy is not None:
        conv_ranks(kind, None, model.conv_specs, model.input_shape[2])  # method check
        ranks: list[tuple | None] = []
        c_in = model.input_shape[2]
        for i, (channels, k, _, _) in enumerate(model.conv_specs):
            w = state[f"convs.{i}.weight"].double().numpy()
            r = conv_rank_for_energy(kind, w, energy, seed)
            cheaper = r is not None and factored_conv_params(kind, c_in, channels, k, r) < w.size
            ranks.append(r if cheaper else None)
            c_in = channels
    else:
        ranks = conv_ranks(kind, rank, model.conv_specs, model.input_shape[2])
    factors = [None if r is None else (kind, *r) for r in ranks]
    new = float_cnn(
        model.input_shape,
        model.conv_specs,
        model.hidden,
        model.classifier.out_features,
        factors=factors,
    )
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
