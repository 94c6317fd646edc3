"""Deep Compression weight sharing: k-means over a layer's weights, linear initialization.

Han et al. (ICLR 2016) cluster each layer's weights into ``K`` shared values and store
only a ``log2(K)``-bit index per weight plus the codebook. Of the three initializations
they compare, *linear* (centroids spaced evenly between the smallest and largest
weight) keeps the rare large weights, which matter most, and works best; it is also
deterministic.

Index convention: zeros left by pruning are not clustered and are not a cluster. They
stay zero, get the index ``ZERO = -1`` here, and are simply not stored in CSC (EIE
reserves no code for them). Every other weight gets the index of its centroid, ``0..K-1``,
with the codebook sorted ascending.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.cluster import KMeans

from qfab.errors import ConfigError

ZERO = -1  #: index of a pruned (zero) weight


def kmeans_share(w: np.ndarray, clusters: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codebook ``[K']`` ascending, indices shaped like ``w``, -1 for zeros), ``K' <= K``.

    k-means runs over the non-zero weights only, from centroids spaced linearly between
    their min and max (``KMeans(init=<linear>, n_init=1)``), so the result is
    deterministic: with an explicit init scikit-learn draws nothing at random, and
    ``seed`` is only passed through as its ``random_state``. With at most ``K`` distinct
    non-zero values, those values are the codebook and sharing is exact. Empty clusters
    are dropped, so ``K'`` can be < ``K``.
    """
    if isinstance(clusters, bool) or not isinstance(clusters, int | np.integer) or clusters < 1:
        raise ConfigError(f"share.clusters = {clusters!r} is not allowed; allowed: integers >= 1")
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ConfigError("kmeans_share: weights must be finite (found NaN or inf)")
    index = np.full(w.shape, ZERO, dtype=np.int64)
    nonzero = w != 0
    values = w[nonzero]
    if values.size == 0:
        return np.zeros(0), index
    distinct = np.unique(values)
    if len(distinct) <= clusters:  # nothing to cluster: every value is its own centroid
        index[nonzero] = np.searchsorted(distinct, values)
        return distinct, index
    init = np.linspace(values.min(), values.max(), clusters)[:, None]
    km = KMeans(n_clusters=clusters, init=init, n_init=1, random_state=seed, max_iter=300)
    labels = km.fit_predict(values[:, None])
    centroids = km.cluster_centers_[:, 0]
    used = np.unique(labels)  # empty clusters are dropped
    order = used[np.argsort(centroids[used], kind="stable")]
    remap = np.full(clusters, ZERO)
    remap[order] = np.arange(len(order))
    index[nonzero] = remap[labels]
    return centroids[order], index


def shared_weights(codebook: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Reconstruct the weights: ``codebook[indices]``, 0 where the index is -1."""
    codebook, indices = np.asarray(codebook), np.asarray(indices)
    if indices.size and (indices.min() < ZERO or indices.max() >= len(codebook)):
        raise ConfigError(
            f"shared_weights: indices in {indices.min()}..{indices.max()} are not allowed; "
            f"allowed: -1 (zero) .. {len(codebook) - 1}"
        )
    if codebook.size == 0:
        return np.zeros(indices.shape, dtype=codebook.dtype)
    return np.where(indices >= 0, codebook[np.maximum(indices, 0)], 0).astype(codebook.dtype)


def centroid_gradient(indices: np.ndarray, grad: np.ndarray, clusters: int) -> np.ndarray:
    """Deep Compression's centroid gradient: the sum of the gradients of a cluster's weights.

    ``dL/dC_k = sum over weights W_ij with index k of dL/dW_ij``; zeros (index -1) are in
    no cluster and contribute nothing, so pruned weights stay pruned.
    """
    indices, grad = np.asarray(indices), np.asarray(grad, dtype=np.float64)
    if indices.shape != grad.shape:
        raise ConfigError(f"centroid_gradient: grad {grad.shape} != indices {indices.shape}")
    keep = indices >= 0
    return np.bincount(indices[keep], weights=grad[keep], minlength=clusters)[:clusters]


def fine_tune_centroids(
    codebook: np.ndarray, indices: np.ndarray, grad: np.ndarray, lr: float
) -> np.ndarray:
    """One SGD step on the shared values: ``C_k <- C_k - lr * sum of its weights' grads``."""
    codebook = np.asarray(codebook, dtype=np.float64)
    return codebook - lr * centroid_gradient(indices, grad, len(codebook))


def quantize_codebook(
    codebook: np.ndarray, scale: float, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Snap centroids to the integer grid of a power-of-two ``scale``; merge collisions.

    Each centroid becomes ``clip(round(c / scale), -(2^(b-1)-1), 2^(b-1)-1)`` (the narrow
    signed range qfab's quantizers use), so the shared weights are exact integers for the
    bit-exact pipeline. Returns ``(ints, remap)``: ``ints`` the distinct non-zero integers,
    ascending, and ``remap[k]`` the new index of old centroid ``k``; centroids that collide
    share one entry, and a centroid that rounds to 0 maps to -1 (its weights become pruned
    zeros, which are not a cluster). New indices are ``remap[old]`` where ``old >= 0``.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 2 <= bits <= 32:
        raise ConfigError(f"bits = {bits!r} is not allowed; allowed: integers 2..32")
    if not (scale > 0 and math.isfinite(scale) and math.log2(scale).is_integer()):
        raise ConfigError(f"scale = {scale!r} is not allowed; allowed: a power of two (2^k)")
    limit = 2 ** (bits - 1) - 1
    snapped = np.clip(np.rint(np.asarray(codebook, np.float64) / scale), -limit, limit)
    snapped = snapped.astype(np.int64)
    ints = np.unique(snapped[snapped != 0])
    remap = np.where(snapped != 0, np.searchsorted(ints, snapped), ZERO).astype(np.int64)
    return ints, remap


def remap_indices(indices: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Apply :func:`quantize_codebook`'s ``remap`` to an index array (-1 stays -1)."""
    indices, remap = np.asarray(indices), np.asarray(remap, np.int64)
    if remap.size == 0:
        return np.full(indices.shape, ZERO, np.int64)
    return np.where(indices >= 0, remap[np.maximum(indices, 0)], ZERO)
