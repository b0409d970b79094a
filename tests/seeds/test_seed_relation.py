"""RelationPlugin and the seeds: the two plugin guides name it only in their plugin table (no
JavaScript example), so the first test checks that no example appeared since; the rest port, the
same mechanical way (camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped),
the examples of s3db.js's own RelationPlugin guide (``docs/plugins/relation/guides/configuration.md``),
the plugin's documentation once its source was removed.
"""

from __future__ import annotations

import re

import pytest

from s3db_nb.plugins.relation import RelationPlugin
from tests.seeds.test_seed_pending import _GUIDE, _GUIDE_21, SEEDS, javascript_blocks


def test_no_seed_example_names_the_relation_plugin_yet():
    if not SEEDS.is_dir():
        pytest.skip(f"the seeds are not at {SEEDS} (set S3DB_SEEDS)")
    named = [
        (seed, heading, n)
        for seed in (_GUIDE_21, _GUIDE)
        for heading, n, code in javascript_blocks((SEEDS / seed).read_text(encoding="utf-8"))
        if re.search(r"\bRelationPlugin\b", code)
    ]
    assert named == []  # an example naming it would be ported here
    assert "ORM-like relationships (hasOne, hasMany, belongsTo, belongsToMany)" in (SEEDS / _GUIDE).read_text(encoding="utf-8")


# -- s3db.js's configuration guide ------------------------------------------------------------------


def _users_profiles_posts(db):
    db.create_resource(
        "profiles",
        attributes={"id": "string|required", "userId": "string|required", "bio": "string", "avatar": "string"},
        partitions={"byUserId": {"fields": {"userId": "string"}}},
    )
    db.create_resource(
        "posts",
        attributes={"id": "string|required", "userId": "string|required", "title": "string", "content": "string"},
        partitions={"byAuthor": {"fields": {"userId": "string"}}},
    )
    db.create_resource("users", attributes={"id": "string|required", "name": "string"})


def test_has_one_and_has_many_with_cascade_deleted(db):
    # ## hasOne (1:1), ## hasMany (1:n), ### Enable Cascade Delete
    _users_profiles_posts(db)
    plugin = RelationPlugin(
        relations={
            "users": {
                "profile": {
                    "type": "hasOne",
                    "resource": "profiles",
                    "foreign_key": "userId",  # Field in profiles table
                    "local_key": "id",  # Field in users table (default)
                    "partition_hint": "byUserId",  # Optional: explicit partition
                    "cascade": ["deleted"],  # Delete profile when user deleted
                },
                "posts": {
                    "type": "hasMany",
                    "resource": "posts",
                    "foreign_key": "userId",  # Field in posts table
                    "partition_hint": "byAuthor",  # Optional
                    "cascade": ["deleted"],  # Delete posts when user deleted
                },
            }
        }
    )
    db.use_plugin(plugin)
    db.resource("users").insert({"id": "u1", "name": "Ann"})
    db.resource("profiles").insert({"id": "p1", "userId": "u1", "bio": "hi", "avatar": "a.png"})
    db.resource("posts").insert_many([{"id": f"post{i}", "userId": "u1", "title": "t", "content": "c"} for i in range(3)])
    # { include: ['profile', 'posts'] }
    user = db.resource("users").get("u1", include=["profile", "posts"])
    assert user["profile"]["bio"] == "hi" and len(user["posts"]) == 3
    # { include: { posts: { limit: 10, include: [...] } } } (nothing nested under posts here)
    assert len(db.resource("users").get("u1", include={"posts": {"limit": 2}, "profile": True})["posts"]) == 2
    # const profile = await user.profile(); const posts = await user.posts();
    assert db.resource("users").related("u1", "profile")["id"] == "p1"
    assert len(db.resource("users").related(user, "posts")) == 3
    db.resource("users").delete("u1")
    assert db.resource("profiles").list() == [] and db.resource("posts").list() == []
    # const stats = plugin.getStats();
    stats = plugin.get_stats()
    for key in (
        "total_relation_loads",
        "partition_cache_hits",
        "deduplicated_queries",
        "batch_loads",
        "cascade_deletes",
        "cascade_updates",
    ):
        assert key in stats
    assert stats["cascade_deletes"] == 4 and stats["batch_loads"] >= 4
    plugin.clear_partition_cache()  # plugin.clearPartitionCache();


def test_belongs_to(db):
    # ## belongsTo (n:1)
    _users_profiles_posts(db)
    db.use_plugin(
        RelationPlugin(
            relations={"posts": {"author": {"type": "belongsTo", "resource": "users", "foreign_key": "userId", "local_key": "id"}}}
        )
    )
    db.resource("users").insert({"id": "u1", "name": "Ann"})
    db.resource("posts").insert({"id": "x", "userId": "u1", "title": "t", "content": "c"})
    assert db.resource("posts").get("x", include=["author"])["author"]["name"] == "Ann"


def test_belongs_to_many_through_a_junction_both_ways(db):
    # ## belongsToMany (m:n) and its **Junction Table Schema**
    db.create_resource("posts", attributes={"id": "string|required", "title": "string"})
    db.create_resource("tags", attributes={"id": "string|required", "name": "string"})
    db.create_resource(
        "post_tags",
        attributes={"id": "string|required", "postId": "string|required", "tagId": "string|required"},
        partitions={"byPost": {"fields": {"postId": "string"}}, "byTag": {"fields": {"tagId": "string"}}},
    )
    db.use_plugin(
        RelationPlugin(
            relations={
                "posts": {
                    "tags": {
                        "type": "belongsToMany",
                        "resource": "tags",
                        "through": "post_tags",  # Junction table
                        "foreign_key": "postId",  # Field in junction
                        "other_key": "tagId",  # Other field in junction
                        "junction_partition_hint": "byPost",
                        "partition_hint": "byId",
                    }
                },
                "tags": {
                    "posts": {
                        "type": "belongsToMany",
                        "resource": "posts",
                        "through": "post_tags",
                        "foreign_key": "tagId",
                        "other_key": "postId",
                        "junction_partition_hint": "byTag",
                    }
                },
            }
        )
    )
    db.resource("posts").insert_many([{"id": "p1", "title": "S3"}, {"id": "p2", "title": "Node"}])
    db.resource("tags").insert_many([{"id": "t1", "name": "nodejs"}, {"id": "t2", "name": "s3"}])
    db.resource("post_tags").insert_many([{"id": "j1", "postId": "p1", "tagId": "t2"}, {"id": "j2", "postId": "p2", "tagId": "t1"}])
    db.resource("post_tags").insert({"id": "j3", "postId": "p1", "tagId": "t1"})
    assert sorted(t["name"] for t in db.resource("posts").get("p1", include=["tags"])["tags"]) == ["nodejs", "s3"]
    assert [p["title"] for p in db.resource("tags").get("t1", include=["posts"])["posts"]] == ["Node", "S3"]  # junction order: j2, j3
    # GET /posts?populate=tags.posts (the API plugin's dot notation)
    nested = db.resource("posts").get("p2", include="tags.posts")
    assert sorted(p["id"] for p in nested["tags"][0]["posts"]) == ["p1", "p2"]
