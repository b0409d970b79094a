"""k-means, silhouette, the choice of k and a 2-D PCA for ``VectorPlugin``: numpy only, no I/O.

Kept apart from ``vector.py`` (which re-exports every name) so the plugin module holds the
plugin and this one the maths it runs on matrices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from s3db_nb.plugin_api import PluginError

if TYPE_CHECKING:
    import pandas as pd


class VectorError(PluginError, ValueError):
    """A vector search or clustering call got an argument it cannot use (the message says which)."""


# -- clustering -----------------------------------------------------------------------------------


@dataclasses.dataclass
class KMeansResult:
    """What ``kmeans`` found: a label per row, the centroids, and how it converged."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    iterations: int
    converged: bool

    @property
    def sizes(self) -> list[int]:
        """Rows per cluster."""
        return np.bincount(self.labels, minlength=self.centroids.shape[0]).tolist()


def _squared_distances(x: np.ndarray, centers: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    d = x_sq[:, None] - 2.0 * (x @ centers.T) + (centers * centers).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, x_sq: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre is drawn with probability ∝ squared distance."""
    centers = [x[rng.integers(x.shape[0])]]
    closest = _squared_distances(x, centers[0][None, :], x_sq)[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        index = rng.choice(x.shape[0], p=closest / total) if total > 0 else rng.integers(x.shape[0])
        centers.append(x[index])
        closest = np.minimum(closest, _squared_distances(x, x[index][None, :], x_sq)[:, 0])
    return np.array(centers)


def kmeans(
    matrix: Any, k: int, *, seed: int = 0, max_iterations: int = 100, tolerance: float = 1e-4, n_init: int = 4, metric: str = "euclidean"
) -> KMeansResult:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` runs. Deterministic for a
    given ``seed``. ``metric="cosine"`` clusters the L2-normalised vectors (spherical k-means)."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise VectorError(f"kmeans needs a non-empty 2-D matrix, got shape {x.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= x.shape[0]:
        raise VectorError(f"k must be an integer between 1 and the number of vectors ({x.shape[0]}), got {k!r}")
    if metric not in ("euclidean", "cosine"):
        raise VectorError(f"kmeans metric must be 'euclidean' or 'cosine', got {metric!r}")
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    x_sq = (x * x).sum(axis=1)
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(max(1, n_init)):
        centers = _kmeans_pp(x, x_sq, int(k), rng)
        previous = np.inf
        converged = False
        iterations = 0
        for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is reported after the loop
            d = _squared_distances(x, centers, x_sq)
            labels = d.argmin(axis=1)
            inertia = float(d[np.arange(x.shape[0]), labels].sum())
            counts = np.bincount(labels, minlength=k)
            sums = np.zeros_like(centers)
            np.add.at(sums, labels, x)
            empty = counts == 0
            centers = np.where(empty[:, None], centers, sums / np.maximum(counts, 1)[:, None])
            if empty.any():  # an empty cluster restarts on the point farthest from its centre
                far = np.argsort(-d[np.arange(x.shape[0]), labels])[: int(empty.sum())]
                centers[np.flatnonzero(empty)] = x[far]
            if previous - inertia <= tolerance * max(previous, 1e-12) and not empty.any():
                converged = True
                break
            previous = inertia
        d = _squared_distances(x, centers, x_sq)
        labels = d.argmin(axis=1)
        inertia = float(d[np.arange(x.shape[0]), labels].sum())
        if best is None or inertia < best.inertia - 1e-12:
            best = KMeansResult(labels=labels, centroids=centers, inertia=inertia, iterations=iterations, converged=converged)
    assert best is not None
    return best


def silhouette_score(matrix: Any, labels: Any) -> float:
    """Mean silhouette (−1…1, higher = better separated clusters), euclidean, fully vectorised
    (an n×n distance matrix: sample large inputs first)."""
    x = np.asarray(matrix, dtype=np.float64)
    labels = np.asarray(labels)
    clusters, labels = np.unique(labels, return_inverse=True)
    if clusters.shape[0] < 2 or clusters.shape[0] >= x.shape[0]:
        raise VectorError(f"silhouette needs 2 ≤ clusters < points, got {clusters.shape[0]} clusters for {x.shape[0]} points")
    sq = (x * x).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
    np.fill_diagonal(d, 0.0)
    onehot = np.eye(clusters.shape[0])[labels]
    sums = d @ onehot  # n × clusters: total distance to each cluster
    sizes = onehot.sum(axis=0)
    rows = np.arange(x.shape[0])
    own = sizes[labels] - 1
    a = np.divide(sums[rows, labels], own, out=np.zeros(x.shape[0]), where=own > 0)
    mean_other = sums / sizes[None, :]
    mean_other[rows, labels] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


@dataclasses.dataclass
class OptimalK:
    """``find_optimal_k``'s answer: the recommended ``k`` and the curve behind it."""

    k: int
    elbow_k: int
    silhouette_k: int
    ks: list[int]
    inertias: list[float]
    silhouettes: list[float]

    def to_pandas(self) -> pd.DataFrame:
        """One row per k tried: ``k, inertia, silhouette``."""
        import pandas as pd

        return pd.DataFrame({"k": self.ks, "inertia": self.inertias, "silhouette": self.silhouettes})


def _elbow(ks: Sequence[int], inertias: Sequence[float]) -> int:
    """The k farthest below the straight line from the first to the last inertia (the knee)."""
    if len(ks) < 3:
        return int(ks[0])
    x = (np.asarray(ks, float) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(inertias, float)
    span = (y[0] - y[-1]) or 1.0
    y = (y - y[-1]) / span
    gap = (1.0 - x) - y  # the chord goes from (0, 1) to (1, 0)
    return int(ks[int(np.argmax(gap))])


def find_optimal_k(
    matrix: Any, *, min_k: int = 2, max_k: int = 10, seed: int = 0, sample: int = 2000, metric: str = "euclidean", **kmeans_options: Any
) -> OptimalK:
    """Run k-means for every k in ``min_k..max_k`` and pick k by silhouette (the elbow of the
    inertia curve is reported too). At most ``sample`` vectors (a seeded random subset) are used."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise VectorError(f"find_optimal_k needs at least 3 vectors, got shape {x.shape}")
    if not 2 <= min_k <= max_k:
        raise VectorError(f"need 2 ≤ min_k ≤ max_k, got min_k={min_k}, max_k={max_k}")
    if x.shape[0] > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], sample, replace=False))]
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    max_k = min(max_k, x.shape[0] - 1)
    ks = list(range(min_k, max_k + 1))
    if not ks:
        raise VectorError(f"too few vectors ({x.shape[0]}) to try k ≥ {min_k}")
    inertias, silhouettes = [], []
    for k in ks:
        result = kmeans(x, k, seed=seed, **kmeans_options)
        inertias.append(result.inertia)
        silhouettes.append(silhouette_score(x, result.labels) if len(set(result.labels.tolist())) > 1 else -1.0)
    silhouette_k = ks[int(np.argmax(silhouettes))]
    return OptimalK(
        k=silhouette_k, elbow_k=_elbow(ks, inertias), silhouette_k=silhouette_k, ks=ks, inertias=inertias, silhouettes=silhouettes
    )


# -- projection for plots ------------------------------------------------------------------------


@dataclasses.dataclass
class Projection:
    """A 2-D PCA fitted with numpy's SVD; ``transform`` places other vectors (a query) in it."""

    mean: np.ndarray
    components: np.ndarray  # 2 × N
    points: np.ndarray  # the fitted vectors, projected (n × 2)

    def transform(self, vectors: Any) -> np.ndarray:
        v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        return (v - self.mean) @ self.components.T


def pca_2d(matrix: Any) -> Projection:
    """Project vectors on their two main axes (signs fixed so the picture is reproducible)."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise VectorError(f"pca_2d needs a non-empty 2-D matrix, got shape {x.shape}")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = np.zeros((2, x.shape[1]))
    components[: min(2, vt.shape[0])] = vt[:2]
    for row in components:
        biggest = np.argmax(np.abs(row))
        if row[biggest] < 0:
            row *= -1
    return Projection(mean=mean, components=components, points=(x - mean) @ components.T)


__all__ = ["VectorError", "KMeansResult", "kmeans", "silhouette_score", "OptimalK", "find_optimal_k", "Projection", "pca_2d"]
