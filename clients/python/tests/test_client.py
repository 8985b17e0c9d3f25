"""The synchronous data-plane client against a real server: every method, plain Python values in and
out, principals, filters, provenance, and batching past each of the server's batch limits."""

from __future__ import annotations

import numpy as np
import pytest

from bulkhead_client import (
    Acl,
    Client,
    F,
    NotFound,
    Point,
    Principal,
    StoredPoint,
    where,
)
from bulkhead_client import _convert, _limits
from conftest import TenantKeys


def three_points() -> list[Point]:
    return [
        Point(
            "a",
            [1.0, 0.0, 0.0],
            text="hello",
            metadata={"lang": "en", "year": 2024, "score": 0.5, "public": True, "tags": ["x", "y"]},
            source="https://example.com/hello.md",
        ),
        Point("b", [0.0, 1.0, 0.0], text="world", metadata={"lang": "en", "year": 2023}, acl=Acl(users=["alice"])),
        Point("c", [0.0, 0.0, 1.0], text="for engineers", metadata={"lang": "de"}, acl=Acl(groups=["eng"])),
    ]


def test_collections_create_list_describe_drop(client: Client) -> None:
    docs = client.create_collection("docs", 3, "cosine")
    other = client.collection("other")
    info = other.create(8, metric="l2")
    assert (info.name, info.dimension, info.metric) == ("other", 8, "l2")
    assert sorted((c.name, c.dimension, c.metric) for c in client.list_collections()) == [
        ("docs", 3, "cosine"),
        ("other", 8, "l2"),
    ]
    described = docs.describe()
    assert described.dimension == 3 and described.index is not None and described.created_ms > 0
    other.drop()
    assert [c.name for c in client.list_collections()] == ["docs"]
    with pytest.raises(NotFound):
        other.describe()


def test_upsert_get_count_delete_with_plain_values(client: Client, url: str, tenant: TenantKeys) -> None:
    docs = client.create_collection("docs", 3)
    versions = docs.upsert(three_points())
    assert len(versions) == 3 and versions == sorted(versions) and versions[0] > 0
    assert docs.count() == 3

    got = docs.get("a", with_vector=True)
    assert isinstance(got, StoredPoint)
    assert got.vector == [1.0, 0.0, 0.0]
    assert got.text == "hello" and got.source == "https://example.com/hello.md"
    assert got.metadata == {"lang": "en", "year": 2024, "score": 0.5, "public": True, "tags": ["x", "y"]}
    assert isinstance(got.metadata["year"], int) and isinstance(got.metadata["public"], bool)
    assert got.version == versions[0] and got.key_generation >= 1
    assert docs.get("a").vector == []

    # Alice's own document is hidden from bob, and looks exactly like a missing one.
    with Client(url, tenant.reader) as reader_client:
        reader = reader_client.collection("docs")
        with pytest.raises(NotFound) as hidden:
            reader.get("b", principal="bob")
        with pytest.raises(NotFound) as missing:
            reader.get("zzz", principal="bob")
        assert hidden.value.message == missing.value.message
        assert reader.get("b", principal=Principal("alice")).text == "world"
        assert reader.get("c", principal=("carol", ["eng"])).text == "for engineers"

    # Replacing keeps the count; deleting counts what existed.
    docs.upsert([{"id": "a", "vector": [1.0, 0.1, 0.0], "text": "hello again"}])
    assert docs.count() == 3 and docs.get("a").text == "hello again" and docs.get("a").metadata == {}
    assert docs.delete(["a", "nope"]) == 1
    assert docs.count() == 2
    with pytest.raises(NotFound):
        docs.get("a")


def test_search_on_behalf_of_users_with_filters_and_provenance(client: Client, url: str, tenant: TenantKeys) -> None:
    docs = client.create_collection("docs", 3)
    versions = docs.upsert(three_points())
    with Client(url, tenant.reader) as reader_client:
        reader = reader_client.collection("docs")
        hits = reader.search([0.9, 0.1, 0.0], k=3, principal="bob")
        assert [h.id for h in hits] == ["a"]
        top = hits[0]
        assert top.text == "hello" and 0.99 < top.score <= 1.0
        assert top.metadata["lang"] == "en" and top.metadata["tags"] == ["x", "y"]
        assert top.source == "https://example.com/hello.md"
        p = top.provenance
        assert p.version == versions[0] and p.key_generation >= 1 and p.matched_by == "tenant-wide"
        assert len(p.acl_fingerprint) == 16 and p.segment_generation is None

        hits = reader.search([0.1, 0.9, 0.0], k=3, principal=("alice", []))
        assert [h.id for h in hits] == ["b", "a"] and hits[0].provenance.matched_by == "user"
        hits = reader.search([0.0, 0.1, 0.9], k=3, principal=Principal("carol", ["eng"]))
        assert [h.id for h in hits] == ["c", "a"] and hits[0].provenance.matched_by == "group"

        # Filters: the builder, a dict, keyword arguments; numbers in one_of become an or.
        assert [h.id for h in reader.search([1, 0, 0], k=3, filter=F.eq("lang", "de"))] == ["c"]
        assert {h.id for h in reader.search([1, 0, 0], k=3, filter={"lang": "en"})} == {"a", "b"}
        assert [h.id for h in reader.search([1, 0, 0], k=3, filter=where(year=[2023, 2025]))] == ["b"]
        assert [h.id for h in reader.search([1, 0, 0], k=3, filter=F.range("year", min=2024))] == ["a"]
        assert [h.id for h in reader.search([1, 0, 0], k=3, filter=F.eq("tags", "y"))] == ["a"]
        assert {h.id for h in reader.search([1, 0, 0], k=3, filter=~F.eq("lang", "en"))} == {"c"}
        only_en_2023 = F.eq("lang", "en") & F.eq("year", 2023) | F.eq("public", True)
        assert {h.id for h in reader.search([1, 0, 0], k=3, filter=only_en_2023)} == {"a", "b"}
        # A filter and a principal together, with ef.
        hits = reader.search([0, 1, 0], k=3, ef=16, filter=where(lang="en"), principal="bob")
        assert [h.id for h in hits] == ["a"]

        # Batches of searches, more than one call's 64 queries.
        queries = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] * 40
        results = reader.search_batch(queries, k=1, principal="alice")
        assert len(results) == 80 and [r[0].id for r in results[:2]] == ["a", "b"]
    # Alice's own key always searches as alice with group eng.
    with Client(url, tenant.alice) as alice:
        assert [h.id for h in alice.collection("docs").search([0, 0.1, 0.9], k=3)] == ["c", "b", "a"]


def test_numpy_vectors_and_columns(client: Client) -> None:
    docs = client.create_collection("docs", 4, "dot")
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((50, 4)).astype(np.float32)
    docs.upsert_columns([f"n{i}" for i in range(50)], matrix, texts=[f"t{i}" for i in range(50)])
    assert docs.count() == 50
    docs.upsert([Point("single", np.array([1.0, 2.0, 3.0, 4.0]))])
    got = docs.get("n3", with_vector=True)
    assert got.text == "t3" and np.allclose(got.vector, matrix[3])
    # The exact scan ranks by inner product: the server's order is numpy's.
    everything = np.vstack([matrix, np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)])
    ids = [f"n{i}" for i in range(50)] + ["single"]
    scores = everything @ matrix[10]
    hits = docs.search(matrix[10], k=51)
    assert [h.id for h in hits[:5]] == [ids[i] for i in np.argsort(-scores)[:5]]
    assert np.isclose(hits[0].score, scores.max(), rtol=1e-5)
    with pytest.raises(ValueError, match="different lengths"):
        docs.upsert_columns(["x", "y"], matrix[:1])


def test_upsert_batches_past_the_point_limit(client: Client) -> None:
    docs = client.create_collection("docs", 4)
    n = 2 * _limits.MAX_BATCH_POINTS + 300
    points = (Point(f"p{i}", [1.0, float(i % 7), 0.5, 0.25], metadata={"i": i}) for i in range(n))
    assert len(list(_convert.upsert_batches("docs", (Point(f"p{i}", [1.0, 0, 0, 0]) for i in range(n))))) == 3
    versions = docs.upsert(points)  # a generator: streamed batch by batch
    assert len(versions) == n and len(set(versions)) == n
    assert docs.count() == n
    assert docs.get(f"p{n - 1}").metadata == {"i": n - 1}
    assert docs.delete([f"p{i}" for i in range(n)]) == n
    assert docs.count() == 0


def test_upsert_batches_past_the_element_limit(client: Client) -> None:
    # 300 ACL entries a point: 1,024 points would be 309,248 elements, over MAX_REQUEST_ELEMENTS.
    docs = client.create_collection("docs", 2)
    users = [f"user{i}" for i in range(300)]
    points = [Point(f"p{i}", [1.0, 0.0], acl=Acl(users=users)) for i in range(_limits.MAX_BATCH_POINTS)]
    batches = list(_convert.upsert_batches("docs", points))
    assert len(batches) == 2
    assert all(sum(_convert.point_elements(p) for p in b.points) <= _limits.MAX_REQUEST_ELEMENTS for b in batches)
    assert len(docs.upsert(points)) == _limits.MAX_BATCH_POINTS
    assert docs.count() == _limits.MAX_BATCH_POINTS
    assert len(docs.search([1.0, 0.0], k=5)) == 5


def test_upsert_batches_past_the_byte_limit(client: Client) -> None:
    # 200 points of 200 KB of text: 40 MB, over MAX_BATCH_BYTES (32 MiB) for one batch.
    docs = client.create_collection("docs", 2)
    text = "x" * 200_000
    points = [Point(f"p{i}", [1.0, 0.0], text=text) for i in range(200)]
    batches = list(_convert.upsert_batches("docs", points))
    assert len(batches) == 2 and all(b.ByteSize() <= _limits.MAX_BATCH_BYTES for b in batches)
    assert len(docs.upsert(points)) == 200
    assert docs.count() == 200 and docs.get("p199").text == text


def test_bad_values_are_refused_before_sending(client: Client) -> None:
    docs = client.collection("docs")
    with pytest.raises(TypeError, match="metadata 'm'"):
        docs.upsert([Point("a", [1.0], metadata={"m": {"nested": 1}})])  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="finite"):
        docs.upsert([Point("a", [1.0], metadata={"m": float("nan")})])
    with pytest.raises(ValueError, match="k must be"):
        docs.search([1.0], k=0)
    with pytest.raises(ValueError, match="ef must be"):
        docs.search([1.0], k=1, ef=_limits.MAX_EF + 1)
    with pytest.raises(TypeError, match="groups"):
        docs.search([1.0], k=1, principal=("alice", "eng"))
    with pytest.raises(ValueError, match="loopback"):
        Client("http://10.1.2.3:7450", "bk_x")
