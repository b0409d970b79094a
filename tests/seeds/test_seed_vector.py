"""VectorPlugin under the names the s3db.js 21.x Vector docs use (the seeds only list the plugin and
show its ``_hasEmbedding`` plugin attribute, ported with the plugin-system examples), ported
mechanically: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped.
"""

from __future__ import annotations

import numpy as np
import pytest

import s3db_nb
from s3db_nb.plugins import VectorPlugin
from s3db_nb.plugins.vector import VectorError

POINTS = {"a1": [1.0, 0.1, 0, 0], "a2": [0.9, 0.1, 0, 0], "b1": [0, 0, 1.0, 0.1], "b2": [0, 0, 0.9, 0.1]}


@pytest.fixture
def database(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    yield db
    db.disconnect()


def make_items(db, vector="embedding:4"):
    items = db.create_resource("items", attributes={"group": "string", "vec": vector}, behavior="body-overflow")
    for record_id, vec in POINTS.items():
        items.insert({"id": record_id, "group": record_id[0], "vec": vec})
    return items


def test_similar_to_and_find_similar_are_vector_search(database):
    """resource.similarTo() / resource.findSimilar(): aliases of vectorSearch."""
    database.use_plugin(VectorPlugin())
    items = make_items(database)
    assert list(items.similar_to([1, 0, 0, 0], limit=2)["id"]) == ["a1", "a2"]
    assert list(items.find_similar([0, 0, 1, 0], limit=2)["id"]) == ["b1", "b2"]


def test_vector_search_limit_and_distance_metric(database):
    """resource.vectorSearch(query, { limit: 3, distanceMetric: 'euclidean' })."""
    plugin = database.use_plugin(VectorPlugin())
    items = make_items(database)
    found = items.vector_search([1, 0.1, 0, 0], limit=3, distance_metric="euclidean")
    assert len(found) == 3 and found["_distance"].iloc[0] == pytest.approx(0.0)
    assert plugin.last_search["metric"] == "euclidean"


def test_vector_search_paged_returns_results_and_stats(database):
    """vectorSearchPaged(query, { limit: 1 }) → { results, stats } with stats.durationMs a number."""
    database.use_plugin(VectorPlugin())
    items = make_items(database)
    result = items.vector_search_paged([1, 0, 0, 0], limit=1)
    assert list(result["results"]["id"]) == ["a1"]
    assert isinstance(result["stats"]["duration_ms"], float) and result["stats"]["scanned_records"] == 4


def test_cluster_result_has_clusters(database):
    """resource.cluster({ k: 2 }) → result.clusters has 2 groups holding all 4 items."""
    database.use_plugin(VectorPlugin())
    items = make_items(database)
    result = items.cluster(2)
    assert len(result.clusters) == 2 and sorted(sorted(c) for c in result.clusters) == [["a1", "a2"], ["b1", "b2"]]


def test_static_find_optimal_k_normalize_and_dot_product():
    """VectorPlugin.findOptimalK(vectors, ...), VectorPlugin.normalize(v), VectorPlugin.dotProduct(a, b)."""
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(c, 0.05, size=(20, 2)) for c in ([0, 0], [5, 5], [0, 5])])
    assert VectorPlugin.find_optimal_k(vectors, min_k=2, max_k=6).k == 3
    assert VectorPlugin.normalize([3, 4]).tolist() == [0.6, 0.8]
    assert VectorPlugin.dot_product([1, 2, 3], [4, 5, 6]) == 32.0


def test_dimensions_option_refuses_other_lengths(database):
    """dimensions: 1536 (the s3db.js default) — a 4-dimension field is refused, naming both sizes."""
    database.use_plugin(VectorPlugin(dimensions=1536))
    items = make_items(database)
    with pytest.raises(VectorError, match="4-dimension.*dimensions=1536"):
        items.vector_search([1, 0, 0, 0])


def test_auto_detect_vector_field_off_requires_field(database):
    """autoDetectVectorField: false — the vector field must be named."""
    database.use_plugin(VectorPlugin(auto_detect_vector_field=False))
    items = make_items(database)
    with pytest.raises(VectorError, match="field='vec'"):
        items.vector_search([1, 0, 0, 0])
    assert len(items.vector_search([1, 0, 0, 0], field="vec")) == 4


def test_partition_policy_none_reads_every_record(database):
    """partitionPolicy: 'none' — the byHasVec partition is not used to narrow a search."""
    plugin = database.use_plugin(VectorPlugin(partition_policy="none"))
    items = make_items(database, vector="embedding:4|optional")
    items.insert({"id": "empty", "group": "c"})
    calls: list = []
    database.client.add_listener(calls.append)
    plugin.vector_search("items", [1, 0, 0, 0])
    database.client.remove_listener(calls.append)
    assert calls and not [c for c in calls if "partition=byHasVec" in c.key]
    with pytest.raises(s3db_nb.PluginError, match="partition_policy"):
        VectorPlugin(partition_policy="sometimes")


def test_events_use_plg_vector_names(database):
    """Events are plg:vector:* (search-complete, cluster-start, cluster-complete)."""
    plugin = database.use_plugin(VectorPlugin())
    items = make_items(database)
    seen = []
    for name in ("search-complete", "cluster-start", "cluster-complete"):
        plugin.on(f"plg:vector:{name}", lambda info, name=name: seen.append(name))
    items.vector_search([1, 0, 0, 0])
    items.cluster(2)
    assert seen == ["search-complete", "cluster-start", "cluster-complete"]


def _events(plugin):
    seen = []
    for name in ("plg:vector:search-complete", "vector:search-complete", "plg:vector:search-progress", "plg:vector:cluster-complete"):
        plugin.on(name, lambda payload, name=name: seen.append(name))
    return seen


def test_emit_events_false_silences_every_vector_event(database):
    """new VectorPlugin({ emitEvents: false }): no event for searches or clustering."""
    plugin = database.use_plugin(VectorPlugin(emit_events=False))
    items = make_items(database)
    seen = _events(plugin)
    items.vector_search([1, 0, 0, 0], limit=1)
    items.cluster(2)
    assert seen == []


def test_emit_events_default_emits_search_and_cluster_events(database):
    plugin = database.use_plugin(VectorPlugin())
    items = make_items(database)
    seen = _events(plugin)
    items.vector_search([1, 0, 0, 0], limit=1)
    items.cluster(2)
    assert seen == ["plg:vector:search-complete", "vector:search-complete", "plg:vector:cluster-complete"]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_verbose_events_report_progress_throttled_per_event_throttle(database):
    """verboseEvents: true, eventThrottle: 100 (ms): progress events, at most one per 0.1 s per search."""
    clock = _Clock()
    plugin = database.use_plugin(VectorPlugin(verbose_events=True, event_throttle_ms=100, batch_size=1, clock=clock))
    items = make_items(database)
    progress = []
    plugin.on("plg:vector:search-progress", progress.append)
    items.vector_search([1, 0, 0, 0], limit=1)  # four batches of one record, no time passes
    assert [p["scanned_records"] for p in progress] == [1]
    clock.now += 0.05
    items.vector_search([1, 0, 0, 0], limit=1)  # still inside the throttle window
    assert len(progress) == 1
    clock.now += 0.1
    items.vector_search([1, 0, 0, 0], limit=1)
    assert [p["scanned_records"] for p in progress] == [1, 1]
    assert plugin.event_throttle == pytest.approx(0.1)


def test_without_verbose_events_no_progress_is_emitted(database):
    plugin = database.use_plugin(VectorPlugin(batch_size=1))
    items = make_items(database)
    progress = []
    plugin.on("plg:vector:search-progress", progress.append)
    items.vector_search([1, 0, 0, 0], limit=1)
    assert progress == []


def test_cluster_store_keeps_each_records_cluster_in_plugin_attributes(database):
    """The seed's VectorPlugin attributes _vector_clusterId / _vector_clusterVersion, written by cluster(store=True)."""
    plugin = database.use_plugin(VectorPlugin())
    items = make_items(database)
    result = items.cluster(2, store=True)
    stored = plugin.stored_clusters("items").set_index("id")
    assert stored.loc["a1", "cluster"] == stored.loc["a2", "cluster"] != stored.loc["b1", "cluster"] == stored.loc["b2", "cluster"]
    assert set(stored["version"]) == {result.version} and result.version
    assert {"_vector_clusterId", "_vector_clusterVersion"} <= set(items.schema.plugin_attributes)
    # the records keep their vectors and stay in the byHas partition searches read
    assert list(items.vector_search([1, 0, 0, 0], limit=2)["id"]) == ["a1", "a2"]


def test_cluster_without_store_writes_nothing(database):
    plugin = database.use_plugin(VectorPlugin())
    items = make_items(database)
    assert items.cluster(2).version is None
    assert plugin.stored_clusters("items").empty and "_vector_clusterId" not in items.schema.plugin_attributes


def test_vector_distance_and_distance_use_the_plugin_metric(database):
    """resource.vectorDistance([1, 2, 3], [4, 5, 6], 'euclidean') and its alias resource.distance()."""
    database.use_plugin(VectorPlugin(distance_metric="manhattan"))
    items = make_items(database)
    assert items.vector_distance([1, 2, 3], [4, 5, 6], "euclidean") == pytest.approx(27**0.5)
    assert items.distance([1, 2, 3], [4, 5, 6]) == pytest.approx(9.0)


def test_emit_events_must_be_a_boolean():
    with pytest.raises(s3db_nb.PluginError, match="emit_events must be True or False"):
        VectorPlugin(emit_events="no")
