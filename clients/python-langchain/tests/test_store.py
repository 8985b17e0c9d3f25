"""BulkheadVectorStore against a real server: what a RAG backend relies on beyond LangChain's
standard suite. Searches on behalf of an end user see only what that user may read (however large
k), dict filters select what they say, deletes delete, and refusals surface as bulkhead_client's
exceptions. Embeddings are langchain-core's DeterministicFakeEmbedding (a text's vector is seeded
by its hash, so a query equal to a document's text finds it first).
"""

from __future__ import annotations

import pytest
from bulkhead_client import Acl, BulkheadError, Client, F, NotFound, PermissionDenied
from conftest import Tenant
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_bulkhead import AS_API_KEY, BulkheadVectorStore, MissingPrincipal, UnsupportedFilter
from langchain_bulkhead.filters import to_bulkhead_filter

DIM = 16
EMBEDDINGS = DeterministicFakeEmbedding(size=DIM)

# Who may read what: two documents of alice's, one of group eng, two of bob's, one of group ops,
# and two tenant-wide.
ACL_DOCS = [
    ("a1", "alice's plan", {"acl_users": ["alice"]}),
    ("a2", "alice's notes", {"acl_users": ["alice"], "acl_groups": []}),
    ("e1", "the eng runbook", {"acl_groups": ["eng"]}),
    ("b1", "bob's salary", {"acl_users": ["bob"]}),
    ("b2", "bob's review", {"acl_users": ["bob"], "acl_groups": ["ops"]}),
    ("o1", "the ops pager", {"acl_groups": ["ops"]}),
    ("t1", "the handbook", {}),
    ("t2", "the holiday calendar", {}),
]
ALICE_SEES = {"a1", "a2", "e1", "t1", "t2"}
BOB_SEES = {"b1", "b2", "t1", "t2"}


def make_store(tenant: Tenant, name: str = "docs", **kwargs: object) -> BulkheadVectorStore:
    tenant.owner.create_collection(name, dimension=DIM)
    return BulkheadVectorStore(tenant.backend, name, EMBEDDINGS, **kwargs)  # type: ignore[arg-type]


def ids(docs: list[Document]) -> set[str]:
    return {d.id for d in docs if d.id is not None}


@pytest.fixture
def acl_store(tenant: Tenant) -> BulkheadVectorStore:
    store = make_store(tenant)
    store.add_texts([t for _, t, _ in ACL_DOCS], [dict(m, n=i) for i, (_, _, m) in enumerate(ACL_DOCS)],
                    ids=[i for i, _, _ in ACL_DOCS])
    return store


def test_add_then_search_returns_the_documents_with_their_metadata(tenant: Tenant) -> None:
    store = make_store(tenant, principal="alice")
    metadatas = [
        {"lang": "en", "year": 2024, "tags": ["faq", "billing"], "draft": False, "score": 0.5},
        {"lang": "de", "year": 2023, "tags": ["howto"], "draft": True, "score": 1.25},
        {"lang": "en", "year": 2022, "tags": [], "draft": False, "score": -3.0},
    ]
    texts = ["how to pay an invoice", "wie man ein Konto anlegt", "old release notes"]
    returned = store.add_texts(texts, metadatas, ids=["pay", "konto", "notes"])
    assert returned == ["pay", "konto", "notes"]
    for text, metadata, id in zip(texts, metadatas, returned):
        hits = store.similarity_search_with_score(text, k=3)
        assert len(hits) == 3
        best, score = hits[0]
        assert best == Document(id=id, page_content=text, metadata=metadata)
        assert score == pytest.approx(1.0, abs=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    by_vector = store.similarity_search_by_vector(EMBEDDINGS.embed_query("old release notes"), k=1)
    assert ids(by_vector) == {"notes"}
    # Ids are made when none are given, and documents keep their own.
    made = store.add_documents([Document(page_content="x", metadata={}), Document(id="mine", page_content="y")])
    assert made[1] == "mine" and len(made[0]) == 36
    assert store.collection.count() == 5


def test_a_search_for_alice_never_returns_what_she_may_not_read(acl_store: BulkheadVectorStore) -> None:
    for k in (1, 3, 8, 1000):
        for query in ("bob's salary", "the ops pager", "alice's plan"):
            alice = ids(acl_store.similarity_search(query, k=k, principal=("alice", ["eng"])))
            assert alice <= ALICE_SEES
            assert len(alice) == min(k, len(ALICE_SEES))  # never fewer than k when k are visible
    assert ids(acl_store.similarity_search("x", k=100, principal="bob")) == BOB_SEES
    assert ids(acl_store.similarity_search("x", k=100, principal=("bob", ["ops"]))) == BOB_SEES | {"o1"}
    assert ids(acl_store.similarity_search("x", k=100, principal=("mallory", ["eng"]))) == {"e1", "t1", "t2"}
    # The ACL keys went into the ACL, not into the metadata anyone can read back.
    for doc in acl_store.similarity_search("x", k=100, principal=("alice", ["eng"])):
        assert set(doc.metadata) == {"n"}


def test_a_store_bound_to_a_user_and_its_retriever(acl_store: BulkheadVectorStore) -> None:
    alice = acl_store.for_user("alice", groups=["eng"])
    assert ids(alice.similarity_search("bob's salary", k=100)) == ALICE_SEES
    retriever = alice.as_retriever(search_kwargs={"k": 100})
    assert ids(retriever.invoke("bob's review")) == ALICE_SEES
    # A principal given to the call wins over the store's.
    assert ids(alice.similarity_search("x", k=100, principal="bob")) == BOB_SEES
    # search_kwargs carry the principal and a filter into a retriever of an unbound store.
    retriever = acl_store.as_retriever(search_kwargs={"k": 100, "principal": ("bob", ["ops"]), "filter": {"n": {"$gte": 4}}})
    assert ids(retriever.invoke("x")) == {"b2", "o1", "t1", "t2"}
    scored = acl_store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 100, "principal": "bob", "score_threshold": 0.0},
    )
    assert ids(scored.invoke("x")) == BOB_SEES


async def test_async_searches_keep_the_principal(acl_store: BulkheadVectorStore) -> None:
    docs = await acl_store.asimilarity_search("bob's salary", k=100, principal=("alice", ["eng"]))
    assert ids(docs) == ALICE_SEES
    docs = await acl_store.for_user("bob").as_retriever(search_kwargs={"k": 100}).ainvoke("x")
    assert ids(docs) == BOB_SEES


def test_no_principal_is_refused_unless_the_key_itself_is_asked_for(acl_store: BulkheadVectorStore, tenant: Tenant) -> None:
    with pytest.raises(MissingPrincipal, match="no principal"):
        acl_store.similarity_search("x", k=5)
    with pytest.raises(MissingPrincipal):
        acl_store.as_retriever().invoke("x")
    with pytest.raises(MissingPrincipal):
        acl_store.get_by_ids(["t1"])
    # AS_API_KEY with the backend's service key: every document of the tenant.
    assert ids(acl_store.similarity_search("x", k=100, principal=AS_API_KEY)) == {i for i, _, _ in ACL_DOCS}
    # A key bound to alice searches as alice, whatever the store says, and may not name bob.
    alice_key = BulkheadVectorStore(tenant.alice, "docs", EMBEDDINGS, principal=AS_API_KEY)
    assert ids(alice_key.similarity_search("x", k=100)) == ALICE_SEES
    with pytest.raises(PermissionDenied):
        alice_key.similarity_search("x", k=100, principal="bob")


def test_get_by_ids_reads_only_what_the_principal_may(acl_store: BulkheadVectorStore) -> None:
    docs = acl_store.for_user("alice").get_by_ids(["a1", "b1", "t1", "missing", "a1"])
    assert sorted(ids(docs)) == ["a1", "t1"] and len(docs) == 2
    assert next(d for d in docs if d.id == "a1") == Document(id="a1", page_content="alice's plan", metadata={"n": 0})


def test_acls_argument(tenant: Tenant) -> None:
    store = make_store(tenant)
    store.add_texts(["for alice", "for ops", "for all"], ids=["x", "y", "z"],
                    acls=[Acl(users=["alice"]), Acl(groups=["ops"]), None])
    assert ids(store.similarity_search("q", k=10, principal="alice")) == {"x", "z"}
    assert ids(store.similarity_search("q", k=10, principal=("bob", ["ops"]))) == {"y", "z"}
    with pytest.raises(ValueError, match="both in acls= and in its metadata"):
        store.add_texts(["t"], [{"acl_users": ["bob"]}], acls=[Acl(users=["alice"])])
    with pytest.raises(TypeError, match="list of names"):
        store.add_texts(["t"], [{"acl_users": "bob"}])


FILTER_DOCS = {
    "d1": {"lang": "en", "year": 2022, "tags": ["faq"], "draft": False},
    "d2": {"lang": "en", "year": 2023, "tags": ["faq", "howto"], "draft": True},
    "d3": {"lang": "de", "year": 2024, "tags": ["howto"], "draft": False},
    "d4": {"lang": "fr", "year": 2025, "draft": False},
    "d5": {"year": 2023.5},
}

FILTERS = [
    ({"lang": "en"}, {"d1", "d2"}),
    ({"lang": {"$eq": "en"}}, {"d1", "d2"}),
    ({"lang": {"$ne": "en"}}, {"d3", "d4", "d5"}),  # no lang: not equal
    ({"year": {"$gt": 2023}}, {"d3", "d4", "d5"}),
    ({"year": {"$gte": 2023}}, {"d2", "d3", "d4", "d5"}),
    ({"year": {"$lt": 2023}}, {"d1"}),
    ({"year": {"$lte": 2023}}, {"d1", "d2"}),
    ({"year": {"$gt": 2022, "$lt": 2024}}, {"d2", "d5"}),
    ({"year": {"$in": [2022, 2025]}}, {"d1", "d4"}),
    ({"year": [2022, 2025]}, {"d1", "d4"}),
    ({"lang": {"$in": ["de", "fr"]}}, {"d3", "d4"}),
    ({"lang": {"$nin": ["de", "fr"]}}, {"d1", "d2", "d5"}),
    ({"tags": "howto"}, {"d2", "d3"}),  # a keyword matches a keyword list that holds it
    ({"tags": {"$in": ["faq", "nothing"]}}, {"d1", "d2"}),
    ({"draft": True}, {"d2"}),
    ({"lang": "en", "draft": False}, {"d1"}),
    ({"$and": [{"lang": "en"}, {"year": {"$gte": 2023}}]}, {"d2"}),
    ({"$or": [{"lang": "de"}, {"year": {"$lt": 2023}}]}, {"d1", "d3"}),
    ({"$not": {"lang": "en"}}, {"d3", "d4", "d5"}),
    ({"$or": [{"$and": [{"lang": "en"}, {"draft": True}]}, {"lang": "fr"}]}, {"d2", "d4"}),
    ({}, set(FILTER_DOCS)),
]


@pytest.fixture
def filter_store(tenant: Tenant) -> BulkheadVectorStore:
    store = make_store(tenant, principal="anyone")
    store.add_texts([f"text of {i}" for i in FILTER_DOCS], list(FILTER_DOCS.values()), ids=list(FILTER_DOCS))
    return store


def test_dict_filters_select_what_they_say(filter_store: BulkheadVectorStore) -> None:
    for filter, expected in FILTERS:
        found = ids(filter_store.similarity_search("q", k=100, filter=filter))
        assert found == expected, f"filter {filter}: {sorted(found)} != {sorted(expected)}"
    # A bulkhead_client Filter passes through as it is.
    assert ids(filter_store.similarity_search("q", k=100, filter=F.range("year", 2023, 2024))) == {"d2", "d3", "d5"}
    # Filters and ACLs together, before ranking: k=1 still finds the one match.
    assert ids(filter_store.similarity_search("text of d1", k=1, filter={"lang": "fr"})) == {"d4"}


@pytest.mark.parametrize(
    "filter, message",
    [
        ({"lang": {"$exists": True}}, "unsupported operator '\\$exists'"),
        ({"lang": {"$like": "e%"}}, "unsupported operator '\\$like'"),
        ({"$nor": [{"lang": "en"}]}, "unsupported filter operator '\\$nor'"),
        ({"$and": []}, "non-empty list"),
        ({"lang": {}}, "empty dict"),
        ({"year": {"$in": 2022}}, "list of values"),
        ("lang = 'en'", "a filter is a dict"),
    ],
)
def test_unsupported_filters_raise_before_any_call(filter: object, message: str) -> None:
    with pytest.raises(UnsupportedFilter, match=message):
        to_bulkhead_filter(filter)  # type: ignore[arg-type]
    assert isinstance(UnsupportedFilter("x"), ValueError)


def test_values_the_server_cannot_compare_raise_value_errors(filter_store: BulkheadVectorStore) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        filter_store.similarity_search("q", filter={"lang": {"$gt": "en"}})
    with pytest.raises(ValueError):
        filter_store.similarity_search("q", filter={"lang": None})


def test_delete(filter_store: BulkheadVectorStore) -> None:
    assert filter_store.delete(["d1", "d3", "never-was"]) is True
    assert ids(filter_store.similarity_search("q", k=100)) == {"d2", "d4", "d5"}
    assert filter_store.get_by_ids(["d1", "d2"]) == [
        Document(id="d2", page_content="text of d2", metadata=FILTER_DOCS["d2"])
    ]
    with pytest.raises(ValueError, match="drop the collection"):
        filter_store.delete()
    assert filter_store.collection.count() == 3


def test_from_texts_creates_the_collection_and_scores_relevance(tenant: Tenant) -> None:
    store = BulkheadVectorStore.from_texts(
        ["red", "green", "blue"], EMBEDDINGS, [{"c": 1}, {"c": 2}, {"c": 3}],
        ids=["r", "g", "b"], client=tenant.owner, collection_name="colours", principal="anyone",
    )
    assert store.collection.describe().dimension == DIM
    scored = store.similarity_search_with_relevance_scores("green", k=3)
    assert scored[0][0].id == "g" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in scored)
    # Again on the existing collection: it is kept, and a different dimension is refused.
    again = BulkheadVectorStore.from_texts(["cyan"], EMBEDDINGS, client=tenant.owner, collection_name="colours", principal="anyone")
    assert again.collection.count() == 4
    with pytest.raises(ValueError, match="dimension 16, the embeddings 8"):
        BulkheadVectorStore.from_texts(["x"], DeterministicFakeEmbedding(size=8), client=tenant.owner, collection_name="colours")


def test_errors_surface_as_the_clients_exceptions(tenant: Tenant, url: str) -> None:
    missing = BulkheadVectorStore(tenant.backend, "no-such-collection", EMBEDDINGS, principal="alice")
    with pytest.raises(NotFound):
        missing.similarity_search("x")
    with pytest.raises(NotFound):
        missing.add_texts(["x"])
    store = make_store(tenant, principal="alice")
    # A reader key may not write; a wrong key is not let in.
    with pytest.raises(PermissionDenied):
        BulkheadVectorStore(tenant.alice, "docs", EMBEDDINGS).add_texts(["x"])
    with Client(url, "bh_not-a-real-key") as stranger:
        with pytest.raises(BulkheadError) as refused:
            BulkheadVectorStore(stranger, "docs", EMBEDDINGS, principal="alice").similarity_search("x")
        assert refused.value.code.name == "UNAUTHENTICATED"
    # k over the server's limit is refused by the client before sending.
    with pytest.raises(ValueError, match="k must be 1 to 1000"):
        store.similarity_search("x", k=100_000)
    # Metadata Bulkhead cannot hold is refused before anything is written.
    with pytest.raises(TypeError, match="metadata 'nested'"):
        store.add_texts(["ok", "bad"], [{"a": 1}, {"nested": {"x": 1}}])
    with pytest.raises(TypeError, match="metadata 'none'"):
        store.add_texts(["bad"], [{"none": None}])
    assert store.collection.count() == 0
    with pytest.raises(TypeError, match="unexpected search keyword"):
        store.similarity_search("x", score_threshold=0.3)
    # No repr carries a key.
    assert "bh_" not in repr(store) and "redacted" in repr(tenant.backend)
