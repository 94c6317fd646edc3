"""Deep Compression weight sharing: k-means over a layer's weights, linear initialization.

Han et al. (ICLR 2016) cluster each layer's weights into ``K`` shared values and store
only a ``log2(K)``-bit index per weight plus the codebook. Of the three initializations
they compare, *linear* (centroids spaced evenly between the smallest and largest
weight) keeps the rare large weights, which matter most, and works best; it is also
deterministic. Zeros left by pruning are not clustered: they stay zero and are simply
not stored (index -1 here).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from qfab.errors import ConfigError

ZERO = -1  #: index of a pruned (zero) weight


def kmeans_share(w: np.ndarray, clusters: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codebook ``[K']``, indices shaped like ``w``, -1 for zeros), ``K' <= clusters``."""
    if clusters < 1:
        raise ConfigError(f"share.clusters = {clusters} is not allowed; allowed: >= 1")
    w = np.asarray(w, dtype=np.float64)
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
    remap = np.full(clusters, -1)
    order = used[np.argsort(centroids[used])]
    remap[order] = np.arange(len(order))
    index[nonzero] = remap[labels]
    return centroids[order], index


def shared_weights(codebook: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Reconstruct the weights: ``codebook[index]``, 0 where ``index`` is -1."""
    codebook = np.asarray(codebook)
    return np.where(index >= 0, codebook[np.maximum(index, 0)] if codebook.size else 0, 0)


def centroid_gradient(index: np.ndarray, grad: np.ndarray, clusters: int) -> np.ndarray:
    """Deep Compression's centroid update: the sum of the gradients of a cluster's weights."""
    keep = index >= 0
    return np.bincount(index[keep], weights=grad[keep], minlength=clusters)


def quantize_codebook(codebook: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Snap centroids to the narrow signed ``bits``-bit grid of a power-of-two ``scale``."""
    limit = 2 ** (bits - 1) - 1
    return np.clip(np.rint(np.asarray(codebook) / scale), -limit, limit).astype(np.int64)
