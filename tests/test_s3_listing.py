"""Listings through the obstore transport give the pages boto3 gives, on moto and SeaweedFS.

``S3Client.list_page`` sends ListObjectsV2 without a delimiter through obstore when the
``[s3-fast]`` transport is active (issue #17, item 4). These tests list the same keys through a
client of each transport and compare every page, count the LIST requests each one sends
(request events, and boto3's own call hook to prove obstore sent them), and check the hand-back
to boto3 where obstore cannot express a listing.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FAKE_ACCESS_KEY, FAKE_REGION, FAKE_SECRET_KEY, S3_KINDS, unique_name
from s3db_nb.clients.base import ListPage, RequestEvent
from s3db_nb.clients.s3 import AFTER_TOKEN, S3Client
from s3db_nb.errors import ConflictError

pytest.importorskip("obstore")
pytestmark = pytest.mark.s3


@pytest.fixture(params=S3_KINDS)
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(endpoint, bucket)`` of a running S3 server whose bucket this module may fill."""
    if request.param == "s3-moto":
        endpoint = request.getfixturevalue("moto_server")
        bucket = "s3db-listing"
        S3Client(
            bucket, endpoint_url=endpoint, region=FAKE_REGION, access_key_id=FAKE_ACCESS_KEY, secret_access_key=FAKE_SECRET_KEY
        ).ensure_bucket()
        return endpoint, bucket
    weed = request.getfixturevalue("seaweed_server")
    return weed.endpoint, weed.bucket


class Pair:
    """Two clients on the same keys: one per transport, with their LIST events and boto3 LIST calls."""

    def __init__(self, endpoint: str, bucket: str, prefix: str) -> None:
        self.fast, self.slow = (
            S3Client(
                bucket,
                prefix,
                endpoint_url=endpoint,
                region=FAKE_REGION,
                access_key_id=FAKE_ACCESS_KEY,
                secret_access_key=FAKE_SECRET_KEY,
                transport=transport,
            )
            for transport in ("obstore", "boto3")
        )
        self.events: dict[str, list[RequestEvent]] = {"fast": [], "slow": []}
        self.fast.add_listener(lambda e: e.operation == "ListObjectsV2" and self.events["fast"].append(e))
        self.slow.add_listener(lambda e: e.operation == "ListObjectsV2" and self.events["slow"].append(e))
        self.boto3_lists_by_fast = 0
        self.fast.client.meta.events.register("before-call.s3.ListObjectsV2", self._count_boto3_list)

    def _count_boto3_list(self, **_: object) -> None:
        self.boto3_lists_by_fast += 1

    def put_all(self, keys: list[str]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: self.slow.put(key, key.encode()), keys))

    def close(self) -> None:
        self.fast.close()
        self.slow.close()


@pytest.fixture
def pair_factory(server: tuple[str, str]) -> Iterator:
    made: list[Pair] = []

    def make(prefix: str | None = None) -> Pair:
        made.append(Pair(*server, prefix if prefix is not None else unique_name("list")))
        return made[-1]

    yield make
    for pair in made:
        pair.close()


def pages(
    client: S3Client, prefix: str = "", *, limit: int = 1000, delimiter: str | None = None, start_after: str | None = None
) -> list[ListPage]:
    """Every page of a listing, following its tokens."""
    out: list[ListPage] = []
    token = None
    while True:
        page = client.list_page(prefix, delimiter=delimiter, token=token, limit=limit, start_after=None if token else start_after)
        out.append(page)
        token = page.next_token
        if token is None:
            return out


def shape(listing: list[ListPage]) -> list[tuple[list[str], list[str], list[int] | None, bool]]:
    """Pages without their tokens' spelling (each server spells its own)."""
    return [(p.keys, p.common_prefixes, p.sizes, p.next_token is not None) for p in listing]


SEGMENT = st.text(alphabet="ab1-=" + string.ascii_uppercase[:2], min_size=1, max_size=3)
KEY = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.sets(KEY, min_size=0, max_size=12),
    prefix=st.sampled_from(["", "a/", "b/", "a/b/", "a", "a-"]),
    delimiter=st.sampled_from([None, None, "/"]),
    limit=st.sampled_from([1, 2, 3, 5, 1000]),
    start_after=st.one_of(st.none(), KEY),
)
def test_both_transports_give_the_same_pages(pair_factory, keys, prefix, delimiter, limit, start_after):
    pair = pair_factory()
    pair.put_all(sorted(keys))
    fast = pages(pair.fast, prefix, limit=limit, delimiter=delimiter, start_after=start_after)
    slow = pages(pair.slow, prefix, limit=limit, delimiter=delimiter, start_after=start_after)
    assert shape(fast) == shape(slow)
    if delimiter is None and (prefix == "" or prefix.endswith("/")):
        assert pair.boto3_lists_by_fast == 0  # obstore sent every LIST


def test_2500_keys_in_pages_of_1000_cost_one_request_per_page(pair_factory):
    pair = pair_factory()
    keys = [f"resource=users/data/id={i:05d}" for i in range(2500)]
    pair.put_all(keys)
    fast = pages(pair.fast, "resource=users/data/")
    slow = pages(pair.slow, "resource=users/data/")
    assert [len(p.keys) for p in fast] == [1000, 1000, 500]
    assert shape(fast) == shape(slow)
    assert [p.next_token.startswith(AFTER_TOKEN) for p in fast[:-1]] == [True, True]
    assert len(pair.events["fast"]) == len(pair.events["slow"]) == 3
    assert pair.boto3_lists_by_fast == 0
    assert pair.fast.count("resource=users/data/") == 2500


def test_an_exact_multiple_of_the_page_ends_without_a_token(pair_factory):
    pair = pair_factory()
    pair.put_all([f"k/{i:02d}" for i in range(6)])
    fast = pages(pair.fast, "k/", limit=3)
    assert [(len(p.keys), p.next_token is not None) for p in fast] == [(3, True), (3, False)]
    assert len(pair.events["fast"]) == 1  # one server page held all six keys


def test_a_key_obstore_cannot_spell_is_listed_by_boto3(pair_factory):
    pair = pair_factory()
    pair.put_all(["d/1", "d/z"])
    # an empty segment, which the client itself never writes (it normalises keys)
    pair.slow.client.put_object(Bucket=pair.slow.bucket, Key=pair.slow.prefix + "/d//x", Body=b"")
    fast = pages(pair.fast, "d/", limit=2)
    slow = pages(pair.slow, "d/", limit=2)
    assert shape(fast) == shape(slow)
    if [k for p in slow for k in p.keys] == ["d//x", "d/1", "d/z"]:  # SeaweedFS stores it as d/x
        assert pair.boto3_lists_by_fast >= 1
        assert pair.events["fast"][0].error is not None  # obstore's failed request is reported too


def test_a_folder_marker_next_to_its_key_is_listed_by_boto3(pair_factory):
    pair = pair_factory()
    pair.put_all(["m/x", "m/y"])
    try:
        pair.slow.put("m/x/", b"")
    except ConflictError:
        pytest.skip("this server (SeaweedFS) keeps no folder marker next to a key of the same name")
    fast = pages(pair.fast, "m/")
    slow = pages(pair.slow, "m/")
    assert shape(fast) == shape(slow)
    assert [k for p in fast for k in p.keys] == ["m/x", "m/x/", "m/y"]
    assert pair.boto3_lists_by_fast == 1


def test_tokens_cross_transports(pair_factory):
    pair = pair_factory()
    pair.put_all([f"t/{i}" for i in range(5)])
    first = pair.fast.list_page("t/", limit=2)
    assert first.next_token is not None and first.next_token.startswith(AFTER_TOKEN)
    assert pair.slow.list_page("t/", limit=10, token=first.next_token).keys == ["t/2", "t/3", "t/4"]
    server_token = pair.slow.list_page("t/", limit=2).next_token
    assert server_token is not None and not server_token.startswith(AFTER_TOKEN)
    assert pair.fast.list_page("t/", limit=10, token=server_token).keys == ["t/2", "t/3", "t/4"]


def test_a_client_prefix_is_applied_and_stripped(pair_factory):
    root = unique_name("root")
    pair = pair_factory(root + "/inner")
    pair.put_all(["a/1", "a/2", "b"])
    outer = pair_factory(root)
    outer.slow.put("inner-not/x", b"x")  # shares the string prefix, not the folder
    assert [p.keys for p in pages(pair.fast, limit=2)] == [["a/1", "a/2"], ["b"]]
    assert shape(pages(outer.fast)) == shape(pages(outer.slow))  # SeaweedFS lists inner/ before inner-not/
    assert sorted(pages(outer.fast)[0].keys) == ["inner-not/x", "inner/a/1", "inner/a/2", "inner/b"]
    assert pair.boto3_lists_by_fast == outer.boto3_lists_by_fast == 0


def test_both_transports_report_the_same_versions_and_a_rewrite_changes_one(pair_factory):
    pair = pair_factory()
    keys = [f"resource=users/data/id={i}" for i in range(5)]
    pair.put_all(keys)
    fast, slow = pages(pair.fast, "resource=users/data/"), pages(pair.slow, "resource=users/data/")
    assert [p.versions for p in fast] == [p.versions for p in slow]
    before = dict(zip(fast[0].keys, fast[0].versions))
    assert all(version.split("/")[0] for version in before.values())  # an ETag in every one
    pair.slow.put(keys[2], b"rewritten")
    page = pages(pair.fast, "resource=users/data/")[0]
    after = dict(zip(page.keys, page.versions))
    assert [key for key in keys if after[key] != before[key]] == [keys[2]]
