"""FullTextPlugin: BM25 ranking checked against numpy, accent folding, prefix/fuzzy/stemming,
persistence across reconnect, index kept in sync by writes, rebuild, concurrency, highlights and
the dashboard.

Behaviour tests run on memory, file and the moto server (``plugin_db``); the analyzer,
highlighting and the widget use memory:// only.
"""

from __future__ import annotations

import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import s3db_nb
from s3db_nb import MissingDependencyError, PluginError
from s3db_nb.plugins.fulltext import Analyzer, FullTextPlugin, fold

# words are plain lower-case ASCII, so ``str.split`` is the reference tokenizer
CORPUS = {
    "d1": {"title": "coffee roasting guide", "body": "roasting coffee beans at home needs heat and patience"},
    "d2": {"title": "tea ceremony", "body": "green tea and black tea served with ceremony and calm"},
    "d3": {"title": "coffee and tea", "body": "coffee or tea coffee wins coffee every morning"},
    "d4": {"title": "bread baking", "body": "sourdough bread needs patience flour water salt"},
    "d5": {"title": "espresso machines", "body": "espresso machines brew strong coffee under pressure"},
}
ATTRIBUTES = {"title": "string", "body": "string|optional"}


def numpy_bm25(query: str, boosts: dict[str, float], k1: float, b: float) -> dict[str, float]:
    """BM25 summed over fields (weighted by boost), idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""
    ids = sorted(CORPUS)
    scores = np.zeros(len(ids))
    for name, boost in boosts.items():
        docs = [CORPUS[i][name].split() for i in ids]
        vocab = sorted({w for d in docs for w in d})
        tf = np.array([[d.count(w) for w in vocab] for d in docs], dtype=float)  # docs × terms
        lengths = tf.sum(axis=1)
        df = (tf > 0).sum(axis=0)
        idf = np.log(1 + (len(ids) - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * lengths / lengths.mean())
        weights = idf * tf * (k1 + 1) / (tf + norm[:, None])
        for word in set(query.split()):
            if word in vocab:
                scores += boost * weights[:, vocab.index(word)]
    return {i: s for i, s in zip(ids, scores) if s > 0}


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://fulltext-{uuid.uuid4().hex}")
    yield db
    db.disconnect()


def install(db, **options):
    options.setdefault("fields", {"articles": ["title", "body"]})
    return db.use_plugin(FullTextPlugin(**options))


def load_corpus(db, ids=None):
    articles = db.resource("articles") if "articles" in db else db.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert_many([{"id": i, **CORPUS[i]} for i in (ids or sorted(CORPUS))])
    return articles


# -- ranking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boosts", "k1", "b"),
    [({"body": 1.0}, 1.2, 0.75), ({"title": 2.0, "body": 1.0}, 1.5, 0.5)],
    ids=["body-default", "boosted-title"],
)
def test_bm25_scores_and_order_match_a_numpy_computation(plugin_db, boosts, k1, b):
    plugin = install(plugin_db, fields={"articles": boosts}, k1=k1, b=b)
    load_corpus(plugin_db)
    expected = numpy_bm25("coffee tea", boosts, k1, b)
    found = plugin.search("articles", "coffee tea", prefix=False)
    assert list(found["id"]) == sorted(expected, key=lambda i: (-expected[i], i))
    assert np.allclose(found["_score"].to_numpy(), [expected[i] for i in found["id"]])


def test_match_all_keeps_only_records_with_every_term(plugin_db):
    plugin = install(plugin_db)
    load_corpus(plugin_db)
    assert set(plugin.search("articles", "coffee tea", prefix=False)["id"]) == {"d1", "d2", "d3", "d5"}
    assert list(plugin.search("articles", "coffee tea", prefix=False, match="all")["id"]) == ["d3"]


def test_limit_and_offset_page_through_the_ranking(plugin_db):
    plugin = install(plugin_db)
    load_corpus(plugin_db)
    everything = list(plugin.search("articles", "coffee", prefix=False)["id"])
    assert list(plugin.search("articles", "coffee", prefix=False, limit=2)["id"]) == everything[:2]
    assert list(plugin.search("articles", "coffee", prefix=False, limit=2, offset=2)["id"]) == everything[2:4]


# -- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "query"), [("Café culture", "cafe"), ("cafe culture", "CAFÉ"), ("Straße Cafés", "strasse cafes")])
def test_accents_and_case_are_folded(plugin_db, stored, query):
    plugin = install(plugin_db)
    articles = plugin_db.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert({"id": "x", "title": stored})
    articles.insert({"id": "y", "title": "unrelated words"})
    assert list(plugin.search("articles", query, prefix=False)["id"]) == ["x"]


def test_prefix_matching_finds_longer_words_and_ranks_exact_first(plugin_db):
    plugin = install(plugin_db)
    articles = load_corpus(plugin_db)
    articles.insert({"id": "d6", "title": "espress yourself", "body": "a poster"})
    assert plugin.search("articles", "espre", prefix=False).empty
    found = plugin.search("articles", "espress")
    assert list(found["id"]) == ["d6", "d5"]  # exact "espress" beats prefix of "espresso"


def test_fuzzy_matching_tolerates_typos(plugin_db):
    plugin = install(plugin_db)
    load_corpus(plugin_db)
    assert plugin.search("articles", "sourdugh", prefix=False).empty
    assert list(plugin.search("articles", "sourdugh", prefix=False, fuzzy=True)["id"]) == ["d4"]
    assert set(plugin.search("articles", "cofee", prefix=False, fuzzy=True)["id"]) == {"d1", "d3", "d5"}


def test_fuzzy_without_rapidfuzz_names_the_extra(mem, monkeypatch):
    plugin = install(mem)
    load_corpus(mem, ["d1"])
    monkeypatch.setitem(sys.modules, "rapidfuzz", None)
    with pytest.raises(MissingDependencyError, match=r"s3db-nb\[fulltext\]"):
        plugin.search("articles", "cofee", fuzzy=True)


def test_stemming_without_snowballstemmer_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "snowballstemmer", None)
    with pytest.raises(MissingDependencyError, match=r"s3db-nb\[fulltext\]"):
        FullTextPlugin(fields={"articles": ["title"]}, stemming="english")


def test_stemming_matches_word_forms(plugin_db):
    plugin = install(plugin_db, stemming="english")
    articles = plugin_db.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert({"id": "r", "title": "She runs every day"})
    articles.insert({"id": "s", "title": "Swimming lessons"})
    assert list(plugin.search("articles", "running", prefix=False)["id"]) == ["r"]
    assert list(plugin.search("articles", "swim", prefix=False)["id"]) == ["s"]


def test_unstemmed_index_does_not_match_word_forms(mem):
    plugin = install(mem)
    mem.create_resource("articles", attributes=ATTRIBUTES).insert({"id": "r", "title": "She runs every day"})
    assert plugin.search("articles", "running", prefix=False).empty


def test_stop_words_are_not_indexed_or_searched(mem):
    plugin = install(mem, stop_words="english")
    load_corpus(mem)
    assert plugin.search("articles", "the and", prefix=False).empty
    assert plugin.get_index_stats("articles")["articles"]["avg_length"]["title"] == pytest.approx(
        np.mean([len([w for w in CORPUS[i]["title"].split() if w != "and"]) for i in CORPUS])
    )


# -- persistence and sync ------------------------------------------------------------------------


def test_index_survives_a_reconnect_without_rebuild(plugin_db, plugin_reconnect):
    install(plugin_db)
    load_corpus(plugin_db)
    plugin_db.resource("articles").insert({"id": "late", "title": "single insert about matcha"})
    again = plugin_reconnect()
    plugin = install(again)
    assert list(plugin.search("articles", "matcha")["id"]) == ["late"]
    assert set(plugin.search("articles", "coffee")["id"]) == {"d1", "d3", "d5"}


def test_update_replaces_the_indexed_words(plugin_db):
    plugin = install(plugin_db)
    articles = load_corpus(plugin_db)
    articles.update("d4", {"title": "rye loaves"})
    assert "d4" not in set(plugin.search("articles", "baking")["id"])
    assert list(plugin.search("articles", "rye")["id"]) == ["d4"]
    assert "d4" in set(plugin.search("articles", "sourdough")["id"])  # the body did not change


def test_delete_removes_the_record_from_the_index(plugin_db):
    plugin = install(plugin_db)
    articles = load_corpus(plugin_db)
    articles.delete("d5")
    assert plugin.search("articles", "espresso").empty
    assert plugin.get_index_stats("articles")["articles"]["documents"] == len(CORPUS) - 1


def test_delete_all_clears_the_index(mem):
    plugin = install(mem)
    articles = load_corpus(mem)
    articles.delete_all(confirm=True)
    assert plugin.get_index_stats("articles")["articles"]["documents"] == 0
    assert plugin.search("articles", "coffee").empty


def test_resource_created_after_the_plugin_is_indexed(plugin_db):
    plugin = install(plugin_db, fields={"articles": ["title"], "notes": ["text"]})
    notes = plugin_db.create_resource("notes", attributes={"text": "string"})
    notes.insert({"id": "n1", "text": "remember the milk"})
    assert list(plugin.search("notes", "milk")["id"]) == ["n1"]


def index_objects(db, plugin, resource="articles"):
    storage = plugin.get_storage()
    return {k: storage.get(k) for k in storage.list_for_resource(resource, "index/") if not k.endswith("manifest")}


def test_rebuild_index_equals_the_incremental_index(plugin_db):
    plugin = install(plugin_db, shards=4)
    articles = load_corpus(plugin_db)
    articles.update("d2", {"body": "oolong only"})
    articles.delete("d4")
    incremental = index_objects(plugin_db, plugin)
    assert plugin.rebuild_index("articles") == len(CORPUS) - 1
    assert index_objects(plugin_db, plugin) == incremental


def test_rebuild_indexes_records_written_before_the_plugin(plugin_db):
    load_corpus(plugin_db)
    plugin = install(plugin_db)
    assert plugin.search("articles", "coffee").empty
    plugin.rebuild_index("articles")
    assert set(plugin.search("articles", "coffee")["id"]) == {"d1", "d3", "d5"}


def test_index_built_with_other_settings_asks_for_a_rebuild(mem):
    install(mem, shards=2)
    load_corpus(mem)
    mem.uninstall_plugin("fulltext")
    plugin = install(mem, shards=4)
    with pytest.raises(PluginError, match="rebuild_index"):
        plugin.search("articles", "coffee")
    plugin.rebuild_index("articles")
    assert set(plugin.search("articles", "coffee")["id"]) == {"d1", "d3", "d5"}


def test_stats_count_documents_terms_and_lengths(plugin_db):
    plugin = install(plugin_db)
    load_corpus(plugin_db)
    stats = plugin.get_index_stats()["articles"]
    for name in ("title", "body"):
        words = [CORPUS[i][name].split() for i in CORPUS]
        assert stats["terms"][name] == len({w for ws in words for w in ws})
        assert stats["avg_length"][name] == pytest.approx(np.mean([len(ws) for ws in words]))
    assert stats["documents"] == len(CORPUS)
    assert stats["postings"] == sum(len(set(CORPUS[i][n].split())) for i in CORPUS for n in ("title", "body"))


def test_insert_many_writes_each_shard_once(plugin_db):
    plugin = install(plugin_db, shards=4)
    puts: list[str] = []
    plugin_db.client.add_listener(lambda e: puts.append(e.key) if e.operation == "PutObject" and "/index/" in e.key else None)
    load_corpus(plugin_db)
    assert len(puts) == len(set(puts)) <= 2 * 4
    assert plugin.get_index_stats("articles")["articles"]["documents"] == len(CORPUS)


def test_concurrent_writers_on_one_shard_lose_no_postings(plugin_db, plugin_reconnect):
    install(plugin_db, shards=1)
    articles = plugin_db.create_resource("articles", attributes=ATTRIBUTES)
    other = plugin_reconnect()
    install(other, shards=1)
    writers = [articles, other.resource("articles")]
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        for j in range(3):
            writers[n % 2].insert({"id": f"w{n}-{j}", "title": f"word{n}x{j} shared"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    plugin = plugin_db.plugins.fulltext
    assert len(plugin.search("articles", "shared", limit=50)) == 12
    assert all(list(plugin.search("articles", f"word{n}x{j}", prefix=False)["id"]) == [f"w{n}-{j}"] for n in range(4) for j in range(3))


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs fields"),
        ({"fields": {"articles": []}}, "must name at least one field"),
        ({"fields": {"articles": {"title": 0}}}, "boost of articles.title"),
        ({"fields": {"articles": ["title"]}, "b": 2}, "b must be between 0 and 1"),
        ({"fields": {"articles": ["title"]}, "shards": 0}, "shards must be"),
        ({"fields": {"articles": ["title"]}, "stemming": "klingon"}, "not a Snowball language"),
    ],
)
def test_bad_options_are_rejected_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        FullTextPlugin(**options)


def test_unknown_field_of_a_resource_is_named(mem):
    mem.create_resource("articles", attributes=ATTRIBUTES)
    with pytest.raises(PluginError, match="no field.*summary"):
        install(mem, fields={"articles": ["title", "summary"]})


def test_search_on_a_resource_that_is_not_indexed_is_an_error(mem):
    plugin = install(mem)
    with pytest.raises(PluginError, match="does not index 'users'"):
        plugin.search("users", "x")


# -- analyzer and highlights (no storage) -------------------------------------------------------------


@pytest.mark.parametrize(("word", "folded"), [("Café", "cafe"), ("NAÏVE", "naive"), ("Straße", "strasse"), ("ﬁne", "fine")])
def test_fold_removes_accents_and_case(word, folded):
    assert fold(word) == folded


def test_analyzer_drops_short_words_and_splits_on_punctuation():
    assert Analyzer(min_length=2).terms("A well-known café_bar, x 42!") == ["well", "known", "cafe", "bar", "42"]


def test_highlights_escape_the_text_and_mark_matches(mem):
    plugin = install(mem)
    articles = mem.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert({"id": "h", "title": "safe", "body": "<script>alert(1)</script> Café & co"})
    snippet = plugin.search("articles", "cafe")["_highlights"][0]["body"]
    assert snippet == "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Café</mark> &amp; co"


def test_long_text_is_cut_around_the_first_match():
    plugin = FullTextPlugin(fields={"a": ["t"]}, snippet_chars=40)
    text = "filler " * 30 + "needle here " + "tail " * 30
    snippet = plugin.highlight(text, ["needle"])
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>needle</mark>" in snippet
    assert len(snippet) < 80


# -- dashboard -----------------------------------------------------------------------------------------


def test_dashboard_shows_stats_and_escaped_highlighted_results(mem):
    plugin = install(mem)
    articles = load_corpus(mem)
    articles.insert({"id": "<b>x", "title": "coffee <script>alert(1)</script>"})
    view = plugin.dashboard()
    assert type(view).__name__ == "FullTextDashboard"
    page = view.search("coffee").to_html()
    assert "documents" in page and f"<b>{len(CORPUS) + 1}</b>" in page
    assert "<mark>coffee</mark>" in page
    assert "&lt;script&gt;" in page and "<script>" not in page and "&lt;b&gt;x" in page


def test_typing_a_query_and_clicking_search_changes_the_view(mem):
    plugin = install(mem, fields={"articles": ["title", "body"], "notes": ["text"]})
    load_corpus(mem)
    view = plugin.dashboard()
    _ = view.widget
    before = view._body.value
    assert "<mark>" not in before
    view.query_box.value = "sourdough"
    view.search_button.click()
    assert view._body.value != before and "<mark>sourdough</mark>" in view._body.value
    assert view.query == "sourdough" and view.last_error is None
    view.resource_box.value = "notes"
    view.search_button.click()
    assert "notes does not exist yet" in view._body.value


def test_reinstalling_the_same_plugin_keeps_indexing(mem):
    plugin = install(mem)
    articles = load_corpus(mem, ["d1"])
    mem.uninstall_plugin(plugin)
    mem.use_plugin(plugin)
    articles.insert({"id": "d9", "title": "matcha latte"})
    assert list(plugin.search("articles", "matcha")["id"]) == ["d9"]


# -- s3db.js 21.x options: case_sensitive, index_name, auto_reindex, batch_size, max_index_size ---


def found(plugin, query, **options) -> list[str]:
    return list(plugin.search("articles", query, **options)["id"])


def test_case_insensitive_by_default_apple_finds_Apple(mem):
    plugin = install(mem)
    articles = mem.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert({"id": "a", "title": "Apple pie"})
    assert found(plugin, "apple") == ["a"]


def test_case_sensitive_keeps_Apple_and_apple_apart(mem):
    plugin = install(mem, case_sensitive=True)
    articles = mem.create_resource("articles", attributes=ATTRIBUTES)
    articles.insert_many([{"id": "a", "title": "Apple shares"}, {"id": "b", "title": "apple pie"}])
    assert found(plugin, "Apple", prefix=False) == ["a"]
    assert found(plugin, "apple", prefix=False) == ["b"]
    assert plugin.tokenize("Café") == ["Cafe"]  # accents are still folded


def test_case_sensitive_stop_words_match_whatever_the_case(mem):
    plugin = install(mem, case_sensitive=True, stop_words=["the"])
    assert plugin.tokenize("The Café and the Bar") == ["Cafe", "and", "Bar"]


def test_index_name_names_the_index_folder(mem):
    plugin = install(mem, index_name="search_indexes")
    load_corpus(mem)
    keys = mem.client.list("resource=articles/plugin=")
    assert keys and all("/search_indexes/" in k for k in keys)
    assert found(plugin, "espresso") == ["d5"]


def test_two_index_names_keep_separate_indexes_of_one_resource(mem):
    titles = mem.use_plugin(FullTextPlugin(fields={"articles": ["title"]}, index_resource="titles", namespace="t"))
    bodies = mem.use_plugin(FullTextPlugin(fields={"articles": ["body"]}, resource_names={"index": "bodies"}, namespace="b"))
    load_corpus(mem)
    assert found(titles, "bread") == ["d4"] and found(bodies, "sourdough") == ["d4"]
    assert found(titles, "sourdough") == []


@pytest.mark.parametrize("bad", [{"index_name": "a/b"}, {"index_name": "x", "index_resource": "y"}, {"resource_names": {"idx": "x"}}])
def test_a_bad_index_name_is_refused(bad):
    with pytest.raises(PluginError, match="index_name|resource_names"):
        FullTextPlugin(fields={"articles": ["title"]}, **bad)


def test_auto_reindex_false_leaves_writes_out_of_the_index_until_rebuilt(mem):
    plugin = install(mem, auto_reindex=False)
    load_corpus(mem)
    assert found(plugin, "espresso") == []
    assert plugin.reindex_resource("articles") == len(CORPUS)
    assert found(plugin, "espresso") == ["d5"]


def test_index_record_and_remove_from_index_change_the_index_by_hand(mem):
    plugin = install(mem, auto_reindex=False)
    articles = load_corpus(mem)
    plugin.index_record("articles", "d5", articles.get("d5"))
    assert found(plugin, "espresso") == ["d5"]
    plugin.remove_record_from_index("articles", "d5")
    assert found(plugin, "espresso") == [] and articles.exists("d5")


def doc_shard_writes(calls) -> int:
    return sum(1 for c in calls if c.operation == "PutObject" and "/docs/shard=" in c.key)


@pytest.mark.parametrize(("batch_size", "rounds"), [(2, 3), (100, 1)])
def test_batch_size_is_the_documents_per_index_write_round(mem, batch_size, rounds):
    install(mem, batch_size=batch_size, shards=1)
    articles = mem.create_resource("articles", attributes=ATTRIBUTES)
    calls: list = []
    mem.client.add_listener(calls.append)
    articles.insert_many([{"id": i, **CORPUS[i]} for i in sorted(CORPUS)])
    assert doc_shard_writes(calls) == rounds


def test_max_index_size_stops_indexing_new_documents_past_it(mem, caplog):
    plugin = install(mem, max_index_size=3)
    load_corpus(mem)
    stats = plugin.get_index_stats("articles")["articles"]
    assert stats["documents"] == 3 and stats["skipped"] == 2 and stats["total_records"] == 3
    assert "max_index_size=3" in caplog.text


def test_max_index_size_makes_room_when_a_document_leaves(mem):
    plugin = install(mem, max_index_size=1)
    articles = load_corpus(mem, ["d1"])
    articles.insert({"id": "d5", **CORPUS["d5"]})
    assert found(plugin, "espresso") == []
    articles.delete("d1")
    plugin.index_record("articles", "d5", articles.get("d5"))
    assert found(plugin, "espresso") == ["d5"]


def test_exact_match_turns_prefix_matching_off(mem):
    plugin = install(mem)
    load_corpus(mem)
    assert "d5" in found(plugin, "espress")
    assert found(plugin, "espress", exact_match=True) == []


def test_indexed_words_fields_and_clear_index_of_everything(mem):
    plugin = install(mem, stop_words="english")
    load_corpus(mem)
    assert plugin.get_indexed_words("articles", 1) == ["coffee"]
    assert plugin.get_indexed_fields("articles") == ["title", "body"]
    assert plugin.clear_index() > 0
    assert found(plugin, "coffee") == []


def test_unknown_fulltext_option_gets_a_did_you_mean():
    with pytest.raises(PluginError, match="did you mean 'case_sensitive'"):
        FullTextPlugin(fields={"articles": ["title"]}, case_sensitiv=True)
