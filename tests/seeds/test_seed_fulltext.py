"""Seed examples (the s3db.js plugin guide, /work/shared/seeds) that concern FullTextPlugin, and the
options and methods the s3db.js FullText docs name, ported mechanically (camelCase → snake_case,
``new X({...})`` → ``X(...)``, ``await`` dropped). Each test names the example it ports.

The older seed (000) writes the Development stack with ``verbose: true``; s3db.js 21.6.2 and the
newer seed (001) write ``logLevel: 'debug'``, which is what is ported here.
"""

from __future__ import annotations

import pytest

import s3db_nb
from s3db_nb.plugins import FullTextPlugin

ARTICLES = [
    {
        "id": "a1",
        "title": "Introduction to Machine Learning",
        "description": "A beginner-friendly guide to ML concepts",
        "content": "Machine learning is a subset of artificial intelligence",
    },
    {
        "id": "a2",
        "title": "Deep Learning Fundamentals",
        "description": "Understanding neural networks and deep learning",
        "content": "Deep learning uses neural networks with multiple layers",
    },
    {
        "id": "a3",
        "title": "Data Science Best Practices",
        "description": "Essential practices for data scientists",
        "content": "Data science combines statistics, programming, and domain knowledge",
    },
]


@pytest.fixture
def database(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    yield db
    db.disconnect()


def make_articles(db):
    articles = db.create_resource(
        "articles",
        attributes={"title": "string|required", "description": "string|optional", "content": "string|required", "tags": "array|optional"},
    )
    articles.insert_many(ARTICLES)
    return articles


def test_analytics_platform_plain_field_list_fuzzy_search_and_stemming(database):
    """Analytics Platform: new FullTextPlugin({ fields: ['title', 'content', 'tags'], fuzzySearch: true, stemming: true })."""
    plugin = database.use_plugin(FullTextPlugin(fields=["title", "content", "tags"], fuzzy_search=True, stemming=True))
    make_articles(database)
    assert plugin.indexed_resources == ["articles"]
    found = plugin.search("articles", "machne")  # fuzzy by default (fuzzySearch), stemmed terms
    assert list(found["id"]) == ["a1"]
    assert list(plugin.search("articles", "layer")["id"]) == ["a2"]  # stemming: "layers" → "layer"


def test_development_stack_plain_field_list_with_log_level(database):
    """Development Environment: new FullTextPlugin({ fields: ['title', 'content'], logLevel: 'debug' })."""
    plugin = database.use_plugin(FullTextPlugin(fields=["title", "content"], log_level="debug"))
    make_articles(database)
    assert plugin.fields == {"articles": {"title": 1.0, "content": 1.0}}
    assert set(plugin.search("articles", "data")["id"]) == {"a3"}


def test_quick_start_resources_with_weights_score_and_matched_fields(database):
    """fulltext.md Quick Start: resources { articles: { fields, weights } }; result.score, result.matchedFields."""
    fulltext_plugin = FullTextPlugin(
        resources={"articles": {"fields": ["title", "description", "content"], "weights": {"title": 3, "description": 2, "content": 1}}}
    )
    database.use_plugin(fulltext_plugin)
    make_articles(database)
    results = fulltext_plugin.search("articles", "machine learning")
    assert list(results["id"][:2]) == ["a1", "a2"]  # "Found 2 results", the ML introduction first
    first = results.iloc[0]
    assert first["score"] > results.iloc[1]["score"]
    # the doc's printed output ("Matched in: title, description, content" / "content") is not what its
    # own data gives: the first description has no "machine"/"learning", the second title has "Learning"
    assert first["matched_fields"] == ["title", "content"]
    assert results.iloc[1]["matched_fields"] == ["title", "description", "content"]


def test_quick_start_highlight(database):
    """Step 6: search('articles', 'machine learning', { highlight: true }) → highlighted.title."""
    fulltext_plugin = database.use_plugin(FullTextPlugin(resources={"articles": {"fields": ["title", "description", "content"]}}))
    make_articles(database)
    highlighted_results = fulltext_plugin.search("articles", "machine learning", highlight=True)
    assert highlighted_results.iloc[0]["highlighted"]["title"] == "Introduction to <mark>Machine</mark> <mark>Learning</mark>"


def test_quick_start_fuzzy_with_max_distance(database):
    """Step 7: search('articles', 'machne lerning', { fuzzy: true, maxDistance: 2 }) still finds machine learning."""
    fulltext_plugin = database.use_plugin(FullTextPlugin(fields=["title"]))
    make_articles(database)
    assert fulltext_plugin.search("articles", "machne lerning", fuzzy=True, max_distance=0).empty
    fuzzy_results = fulltext_plugin.search("articles", "machne lerning", fuzzy=True, max_distance=2)
    assert "a1" in set(fuzzy_results["id"])


def test_basic_search_min_word_length_max_results_and_search_records_keys(database):
    """Basic Search Implementation: fields, minWordLength: 2, maxResults: 50; searchRecords → _searchScore, _matchedFields."""
    database.use_plugin(FullTextPlugin(fields=["title", "content"], min_word_length=2, max_results=1))
    make_articles(database)
    results = database.plugins.fulltext.search_records("articles", "learning")
    assert len(results) == 1  # maxResults caps the results
    assert results[0]["_search_score"] == results[0]["_score"] and "title" in results[0]["_matched_fields"]
    assert database.plugins.fulltext.analyzer.min_length == 2


def test_field_weights_and_custom_highlight_tags(database):
    """Advanced Configuration: fieldWeights { title: 3.0 }, highlightTags { start: '<mark class="highlight">', end: '</mark>' }."""
    plugin = database.use_plugin(
        FullTextPlugin(
            fields=["title", "content"],
            field_weights={"title": 3.0, "content": 1.0},
            highlight_tags={"start": '<mark class="highlight">', "end": "</mark>"},
        )
    )
    make_articles(database)
    assert plugin.fields["articles"] == {"title": 3.0, "content": 1.0}
    row = plugin.search("articles", "deep", highlight=True).iloc[0]
    assert row["highlighted"]["title"] == '<mark class="highlight">Deep</mark> Learning Fundamentals'


def test_min_score_drops_weaker_hits(database):
    """searchWithFilters' minScore, as the search option s3db.js names: results below it are left out."""
    plugin = database.use_plugin(FullTextPlugin(fields=["title", "content"]))
    make_articles(database)
    every = plugin.search("articles", "learning")
    best = every["score"].max()
    assert list(plugin.search("articles", "learning", min_score=best)["score"]) == [best]


def test_clear_all_indexes(database):
    """clearAllIndexes(): every index emptied, searches find nothing until a rebuild."""
    plugin = database.use_plugin(FullTextPlugin(fields=["title"]))
    make_articles(database)
    cleared = plugin.clear_all_indexes()
    assert set(cleared) == {"articles"} and cleared["articles"] > 0
    assert plugin.search("articles", "learning").empty
    plugin.rebuild_index("articles")
    assert len(plugin.search("articles", "learning")) == 2


def test_enabled_false_indexes_nothing(database):
    """Basic Setup's `enabled` option: with enabled: false inserts are not indexed."""
    plugin = database.use_plugin(FullTextPlugin(fields=["title"], enabled=False))
    make_articles(database)
    assert plugin.indexed_resources == []
