"""Resource behaviour, run on every backend (memory, file, S3 over HTTP)."""

import threading

import pytest

from s3db_nb.errors import ConflictError, NotFoundError, S3DBError, SchemaError, ValidationError

PEOPLE = {
    "name": "string|required|min:2",
    "age": "number|integer|optional",
    "score": "number|optional",
    "active": "boolean|optional",
    "tags": "array|items:string|optional",
    "address": {"city": "string|optional", "zip": "string|optional"},
    "status": "string|default:pending",
}


@pytest.fixture
def people(db):
    return db.create_resource("people", attributes=PEOPLE, partitions={"byCity": {"fields": {"address.city": "string"}}})


def test_insert_then_get_returns_the_same_values(people):
    people.insert(
        {
            "id": "p-001",
            "name": "José",
            "age": 42,
            "score": 9.5,
            "active": False,
            "tags": ["x", "y|z"],
            "address": {"city": "Rio", "zip": "20000"},
        }
    )
    got = people.get("p-001")
    assert dict(got) == {
        "id": "p-001",
        "name": "José",
        "age": 42,
        "score": 9.5,
        "active": False,
        "tags": ["x", "y|z"],
        "address": {"city": "Rio", "zip": "20000"},
        "status": "pending",
    }
    assert got.version == "v1" and got.etag


def test_insert_generates_22_char_nanoid(people):
    record = people.insert({"name": "Ana"})
    assert len(record["id"]) == 22
    assert people.get(record["id"])["name"] == "Ana"


def test_custom_id_generator_and_size(db):
    counter = iter(range(100))
    seq = db.create_resource("seq", attributes={"n": "number"}, id_generator=lambda data: f"n{next(counter)}")
    assert seq.insert({"n": 1})["id"] == "n0"
    short = db.create_resource("short", attributes={"n": "number"}, id_size=8)
    assert len(short.insert({"n": 1})["id"]) == 8


def test_inserting_an_existing_id_is_a_conflict_and_keeps_the_original(people):
    people.insert({"id": "dup", "name": "First"})
    with pytest.raises(ConflictError, match="already exists"):
        people.insert({"id": "dup", "name": "Second"})
    assert people.get("dup")["name"] == "First"


@pytest.mark.parametrize("bad_id", ["a/b", "a=b", "a\\b", "50%", ""])
def test_ids_with_key_characters_are_rejected(people, bad_id):
    with pytest.raises(ValidationError, match="id"):
        people.insert({"id": bad_id, "name": "Ana"})
    assert people.count() == 0


def test_failed_validation_writes_nothing(people):
    with pytest.raises(ValidationError) as info:
        people.insert({"id": "bad", "name": "A", "age": "old"})
    assert {e["field"] for e in info.value.errors} == {"name", "age"}
    assert not people.exists("bad")


def test_missing_record_raises_not_found(people):
    with pytest.raises(NotFoundError, match="record 'ghost' not found in resource 'people'"):
        people.get("ghost")
    assert people.get_or_none("ghost") is None
    assert people.exists("ghost") is False


def test_update_merges_nested_fields(people):
    people.insert({"id": "u1", "name": "Ana", "address": {"city": "Rio", "zip": "1"}})
    updated = people.update("u1", {"age": 30, "address": {"zip": "2"}})
    assert updated["address"] == {"city": "Rio", "zip": "2"}
    assert dict(people.get("u1")) == dict(updated)


def test_update_accepts_dotted_paths(people):
    people.insert({"id": "u1", "name": "Ana", "address": {"city": "Rio"}})
    assert people.update("u1", {"address.city": "Recife"})["address"]["city"] == "Recife"


def test_update_of_missing_record_is_not_found(people):
    with pytest.raises(NotFoundError):
        people.update("nobody", {"age": 1})


def test_update_conditional_detects_a_stale_etag(people):
    first = people.insert({"id": "c1", "name": "Ana"})
    people.update("c1", {"age": 1})
    with pytest.raises(ConflictError, match="changed since ETag"):
        people.update_conditional("c1", {"age": 2}, if_match=first.etag)
    fresh = people.get("c1")
    assert people.update_conditional("c1", {"age": 3}, if_match=fresh.etag)["age"] == 3


def test_concurrent_updates_lose_nothing(db):
    counters = db.create_resource("counters", attributes={"hits": "array|items:string|optional"})
    counters.insert({"id": "c", "hits": []})

    def add(tag: str) -> None:
        for _ in range(50):
            current = counters.get("c")
            try:
                counters.update_conditional("c", {"hits": current["hits"] + [tag]}, if_match=current.etag)
                return
            except ConflictError:
                continue
        raise AssertionError("never won the race")

    threads = [threading.Thread(target=add, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counters.get("c")["hits"]) == ["t0", "t1", "t2", "t3"]


def test_replace_overwrites_without_merging(people):
    people.insert({"id": "r1", "name": "Ana", "age": 30})
    replaced = people.replace("r1", {"name": "Bia"})
    assert "age" not in replaced and people.get("r1")["name"] == "Bia"


def test_upsert_inserts_then_updates(people):
    people.upsert({"id": "x", "name": "Ana"})
    people.upsert({"id": "x", "age": 5})
    assert (people.get("x")["name"], people.get("x")["age"]) == ("Ana", 5)


def test_delete_removes_record_and_partition_ref(people):
    people.insert({"id": "d1", "name": "Ana", "address": {"city": "Rio"}})
    deleted = people.delete("d1")
    assert deleted["name"] == "Ana"
    assert not people.exists("d1")
    assert people.count(partition="byCity", partition_values={"address.city": "Rio"}) == 0
    with pytest.raises(NotFoundError):
        people.delete("d1")


def test_bulk_insert_get_many_get_all_delete_many(people):
    rows = [{"id": f"b{i:02d}", "name": f"Name {i}", "age": i} for i in range(25)]
    inserted = people.insert_many(rows)
    assert [r["id"] for r in inserted] == [r["id"] for r in rows]
    assert [r["age"] for r in people.get_many(["b03", "missing", "b01"])] == [3, 1]
    assert sorted(r["id"] for r in people.get_all()) == [r["id"] for r in rows]
    assert people.delete_many(["b00", "b01", "nope"]) == 2
    assert people.count() == 23


def test_insert_many_validates_everything_before_writing(people):
    with pytest.raises(ValidationError) as info:
        people.insert_many([{"id": "ok1", "name": "Fine"}, {"id": "bad", "name": "X"}, {"id": "ok2", "name": "Fine", "age": "x"}])
    assert {e["field"] for e in info.value.errors} == {"[1].name", "[2].age"}
    assert people.count() == 0


def test_insert_many_stores_the_others_when_one_id_exists_and_leaves_no_stray_ref(people):
    people.insert({"id": "taken", "name": "Old", "address": {"city": "Rio"}})
    seen: list[str] = []
    people.on("inserted", lambda record: seen.append(record["id"]))
    rows = [{"id": f"n{i}", "name": "New", "address": {"city": "Oslo"}} for i in range(3)]
    with pytest.raises(ConflictError, match="'taken' already exists"):
        people.insert_many([rows[0], {"id": "taken", "name": "New", "address": {"city": "Lima"}}, *rows[1:]])
    assert sorted(seen) == ["n0", "n1", "n2"]  # S3 writes them in parallel
    assert people.get("taken")["name"] == "Old"
    assert sorted(people.list_ids(partition="byCity", partition_values={"address.city": "Oslo"})) == ["n0", "n1", "n2"]
    assert people.list_ids(partition="byCity", partition_values={"address.city": "Lima"}) == []  # the refused record's ref is gone
    assert people.list_ids(partition="byCity", partition_values={"address.city": "Rio"}) == ["taken"]


def test_insert_many_rejects_duplicate_ids_in_batch(people):
    with pytest.raises(ValidationError, match="more than once"):
        people.insert_many([{"id": "same", "name": "Ana"}, {"id": "same", "name": "Bia"}])


def test_delete_all_is_refused_on_paranoid_resources(people):
    people.insert({"name": "Ana"})
    with pytest.raises(S3DBError, match="confirm=True"):
        people.delete_all()
    assert people.delete_all(confirm=True) == 1
    assert people.count() == 0


def test_delete_all_on_non_paranoid_resource(db):
    scratch = db.create_resource("scratch", attributes={"n": "number"}, paranoid=False)
    scratch.insert_many([{"n": i} for i in range(3)])
    assert scratch.delete_all() == 3


def test_list_ids_list_with_limit_and_offset(people):
    people.insert_many([{"id": f"l{i}", "name": f"Name {i}"} for i in range(6)])
    assert people.list_ids() == [f"l{i}" for i in range(6)]
    assert people.list_ids(limit=2, offset=3) == ["l3", "l4"]
    assert [r["id"] for r in people.list(limit=2, offset=1)] == ["l1", "l2"]


def test_page_walks_every_record_once(people):
    people.insert_many([{"id": f"pg{i}", "name": f"Name {i}"} for i in range(7)])
    seen, cursor = [], None
    while True:
        page = people.page(size=3, cursor=cursor)
        seen += [r["id"] for r in page.items]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == [f"pg{i}" for i in range(7)]


def test_bad_cursor_is_a_clear_error(people):
    with pytest.raises(S3DBError, match="invalid page cursor"):
        people.page(cursor="not-a-cursor")


def test_query_filters_by_equality_and_predicates(people):
    people.insert_many(
        [
            {"id": "q1", "name": "Ana", "age": 30, "address": {"city": "Rio"}},
            {"id": "q2", "name": "Bia", "age": 40, "address": {"city": "Rio"}},
            {"id": "q3", "name": "Caio", "age": 50, "address": {"city": "Recife"}},
        ]
    )
    assert [r["id"] for r in people.query({"address.city": "Rio"})] == ["q1", "q2"]
    assert [r["id"] for r in people.query({"age": lambda a: a >= 40})] == ["q2", "q3"]
    assert [r["id"] for r in people.query({"address.city": "Rio", "age": 40})] == ["q2"]
    assert [r["id"] for r in people.query({}, limit=1, offset=1)] == ["q2"]


def test_partitions_list_count_and_get_from_partition(people):
    people.insert_many(
        [
            {"id": "a", "name": "Ana", "address": {"city": "Rio"}},
            {"id": "b", "name": "Bia", "address": {"city": "Recife"}},
            {"id": "c", "name": "Caio", "address": {"city": "Rio"}},
            {"id": "d", "name": "Dani"},  # no city: no partition ref
        ]
    )
    assert [r["id"] for r in people.list_partition("byCity", {"address.city": "Rio"})] == ["a", "c"]
    assert people.count(partition="byCity") == 3
    assert people.get_from_partition("b", "byCity", {"address.city": "Recife"})["name"] == "Bia"
    with pytest.raises(NotFoundError, match="not in partition"):
        people.get_from_partition("b", "byCity", {"address.city": "Rio"})


def test_update_moves_the_partition_ref(people):
    people.insert({"id": "m", "name": "Ana", "address": {"city": "Rio"}})
    people.update("m", {"address": {"city": "Recife"}})
    assert people.list_ids(partition="byCity", partition_values={"address.city": "Rio"}) == []
    assert people.list_ids(partition="byCity", partition_values={"address.city": "Recife"}) == ["m"]


def test_partition_values_with_slash_are_rejected(people):
    with pytest.raises(ValidationError, match="partition field"):
        people.insert({"id": "s", "name": "Ana", "address": {"city": "Rio/RJ"}})
    assert not people.exists("s")


@pytest.mark.parametrize(
    "partitions, fragment",
    [
        ({"byX": {"fields": {"nope": "string"}}}, "not an attribute"),
        ({"byX": {"fields": {}}}, "non-empty 'fields'"),
        ({"by/X": {"fields": {"name": "string"}}}, "may not contain"),
        ("byName", "must be a dict"),
    ],
)
def test_invalid_partition_definitions(db, partitions, fragment):
    with pytest.raises(SchemaError, match=fragment):
        db.create_resource("bad", attributes={"name": "string"}, partitions=partitions)


def test_unknown_partition_name_is_not_found(people):
    with pytest.raises(NotFoundError, match="no partition 'byNope'"):
        people.list_partition("byNope", {})


def test_timestamps_are_set_and_updated(db):
    notes = db.create_resource("notes", attributes={"text": "string"}, timestamps=True)
    created = notes.insert({"id": "n", "text": "hi"})
    assert created["createdAt"].endswith("Z") and created["createdAt"] == created["updatedAt"]
    updated = notes.update("n", {"text": "hello"})
    assert updated["createdAt"] == created["createdAt"] and updated["updatedAt"] >= created["updatedAt"]
    assert set(notes.partitions) == {"byCreatedDate", "byUpdatedDate"}
    day = created["createdAt"][:10]
    assert notes.list_ids(partition="byCreatedDate", partition_values={"createdAt": day}) == ["n"]


def test_hooks_can_change_and_reject_data(people):
    people.add_hook("before_insert", lambda data: {**data, "name": data["name"].title()})

    def no_bots(data):
        if data["name"].lower().startswith("bot"):
            raise ValueError("bots are not welcome")

    people.add_hook("beforeInsert", no_bots)
    assert people.insert({"id": "h", "name": "ana maria"})["name"] == "Ana Maria"
    with pytest.raises(ValueError, match="bots"):
        people.insert({"id": "bot", "name": "bot 9000"})
    assert not people.exists("bot")


def test_after_get_hook_sees_records(people):
    people.insert({"id": "g", "name": "Ana"})
    people.add_hook("after_get", lambda record: record | {"seen": True})
    assert people.get("g")["seen"] is True


def test_unknown_hook_name_is_rejected(people):
    with pytest.raises(SchemaError, match="unknown hook"):
        people.add_hook("before_everything", lambda d: d)


def test_events_carry_records_and_before_images(people):
    seen = []
    people.on("inserted", lambda r: seen.append(("inserted", r["name"])))
    people.on("updated", lambda r, before: seen.append(("updated", before["name"], r["name"])))
    people.on("deleted", lambda r: seen.append(("deleted", r["name"])))
    people.insert({"id": "e", "name": "Ana"})
    people.update("e", {"name": "Bia"})
    people.delete("e")
    assert seen == [("inserted", "Ana"), ("updated", "Ana", "Bia"), ("deleted", "Bia")]


def test_middleware_wraps_methods_onion_style(people):
    calls = []

    def outer(next_, *args, **kwargs):
        calls.append("outer-in")
        result = next_(*args, **kwargs)
        calls.append("outer-out")
        return result

    def inner(next_, *args, **kwargs):
        calls.append("inner-in")
        return next_(*args, **kwargs)

    people.use_middleware("insert", outer)
    people.use_middleware("insert", inner)
    people.insert({"name": "Ana"})
    assert calls == ["outer-in", "inner-in", "outer-out"]


def test_binary_content_round_trip(people):
    people.insert({"id": "bin", "name": "Ana", "age": 3})
    assert people.has_content("bin") is False
    payload = bytes(range(256)) * 4
    people.set_content("bin", payload, "image/png")
    content = people.get_content("bin")
    assert (content.data, content.content_type) == (payload, "image/png")
    assert people.get("bin")["age"] == 3  # fields survive
    people.delete_content("bin")
    assert people.has_content("bin") is False and people.get("bin")["name"] == "Ana"


def test_secret_fields_are_encrypted_at_rest(db):
    vault = db.create_resource("vault", attributes={"owner": "string", "token": "secret"})
    vault.insert({"id": "v", "owner": "ana", "token": "sk-live-123"})
    raw = db.client.get("resource=vault/data/id=v")
    assert "sk-live-123" not in str(raw.metadata) and b"sk-live-123" not in raw.body
    assert vault.get("v")["token"] == "sk-live-123"
    assert "sk-live-123" not in repr(vault.get("v"))


def test_unknown_top_level_fields_round_trip(people):
    people.insert({"id": "x", "name": "Ana", "nickname": "Aninha", "prefs": {"dark": "yes"}})
    got = people.get("x")
    assert got["nickname"] == "Aninha"


@pytest.mark.parametrize("behavior", ["user-managed", "enforce-limits", "truncate-data", "body-overflow", "body-only"])
def test_small_records_round_trip_under_every_behavior(db, behavior):
    res = db.create_resource(f"b-{behavior}", attributes={"title": "string", "n": "number|integer", "flag": "boolean"}, behavior=behavior)
    res.insert({"id": "k", "title": "Olá 😀", "n": -17, "flag": True})
    assert dict(res.get("k")) == {"id": "k", "title": "Olá 😀", "n": -17, "flag": True}


@pytest.mark.parametrize("behavior", ["user-managed", "body-overflow", "body-only"])
def test_large_records_round_trip_under_overflowing_behaviors(db, behavior):
    res = db.create_resource(f"big-{behavior}", attributes={"a": "string", "b": "string", "c": "string"}, behavior=behavior)
    big = {"id": "k", "a": "x" * 1500, "b": "ü" * 1500, "c": "short"}
    res.insert(big)
    assert dict(res.get("k")) == big
    res.update("k", {"c": "changed"})
    assert res.get("k")["c"] == "changed" and res.get("k")["b"] == "ü" * 1500


def test_enforce_limits_names_the_oversize_fields(db):
    strict = db.create_resource("strict", attributes={"small": "string", "huge": "string"}, behavior="enforce-limits")
    with pytest.raises(Exception) as info:
        strict.insert({"id": "k", "small": "ok", "huge": "x" * 3000})
    assert type(info.value).__name__ == "MetadataLimitError"
    assert "huge=" in str(info.value) and "body-overflow" in str(info.value)
    assert not strict.exists("k")


def test_truncate_data_cuts_and_flags(db):
    res = db.create_resource("trunc", attributes={"a": "string", "b": "string", "c": "string"}, behavior="truncate-data")
    inserted = res.insert({"id": "k", "a": "x" * 1500, "b": "x" * 1500, "c": "short"})
    got = res.get("k")
    assert got["a"] == "x" * 1500 and got["b"] == "x" * 517 and got["c"] == "short"
    assert dict(inserted) == dict(got)  # insert returns what was stored, not the uncut input
    raw = db.client.head("resource=trunc/data/id=k")
    assert raw.metadata["_truncated"] == "true"


def test_partition_added_later_is_saved_rebuilt_and_removed(db, reconnect):
    people = db.create_resource("people", {"name": "string", "city": "string"})
    people.insert_many([{"id": "a", "name": "Ana", "city": "Rio"}, {"id": "b", "name": "Bo", "city": "Oslo"}])
    assert people.add_partition("byCity", {"city": "string"}) is True
    assert people.add_partition("byCity", {"city": "string"}) is False  # same definition: nothing to do
    assert people.version == "v2"
    assert people.list_partition("byCity", {"city": "Rio"}) == []  # records written before have no refs yet
    assert people.rebuild_partition("byCity") == 2
    assert people.rebuild_partition("byCity") == 0
    people.insert({"id": "c", "name": "Caio", "city": "Rio"})  # new writes use the partition at once
    assert sorted(r["id"] for r in people.list_partition("byCity", {"city": "Rio"})) == ["a", "c"]
    assert "byCity" in reconnect().resource("people").partitions  # saved in s3db.json
    assert people.remove_partition("byCity") is True
    assert people.client.count("resource=people/partition=byCity/") == 0
    with pytest.raises(NotFoundError, match="no partition"):
        people.rebuild_partition("byCity")
