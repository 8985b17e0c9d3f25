"""The LlamaIndex BulkheadVectorStore against a real server: nodes round-trip (text, metadata,
relationships), a query on behalf of an end user sees only what that user may read (however large
similarity_top_k), MetadataFilters select what they say, deletes by document, id and filter delete,
and refusals surface as bulkhead_client's exceptions. Embeddings are either given per node (to
know the ranking) or llama-index-core's MockEmbedding (every text the same vector: what is found
then depends on ACLs and filters alone).
"""

from __future__ import annotations

import pytest
from bulkhead_client import Acl, F, NotFound, PermissionDenied
from conftest import Tenant
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from llama_index.vector_stores.bulkhead import AS_API_KEY, BulkheadVectorStore, MissingPrincipal, UnsupportedFilter
from llama_index.vector_stores.bulkhead.filters import to_bulkhead_filter

DIM = 8
EMBED = MockEmbedding(embed_dim=DIM)


def make_store(tenant: Tenant, name: str = "docs", **kwargs: object) -> BulkheadVectorStore:
    tenant.owner.create_collection(name, dimension=DIM)
    return BulkheadVectorStore(tenant.backend, name, **kwargs)  # type: ignore[arg-type]


def axis(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(DIM)]


def query(vector: list[float] | None = None, k: int = 100, **kwargs: object) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=vector or [0.5] * DIM, similarity_top_k=k, **kwargs)  # type: ignore[arg-type]


def found(store: BulkheadVectorStore, q: VectorStoreQuery, **kwargs: object) -> set[str]:
    result = store.query(q, **kwargs)
    assert result.ids is not None
    return set(result.ids)


def test_nodes_round_trip(tenant: Tenant) -> None:
    store = make_store(tenant, principal="anyone")
    source = RelatedNodeInfo(node_id="doc-1")
    nodes = [
        TextNode(id_=f"n{i}", text=f"chunk {i}", embedding=axis(i),
                 metadata={"lang": "en", "page": i, "tags": ["a", "b"], "final": i % 2 == 0, "weight": 0.25 * i},
                 excluded_llm_metadata_keys=["weight"], relationships={NodeRelationship.SOURCE: source})
        for i in range(3)
    ]
    nodes[1].relationships[NodeRelationship.PREVIOUS] = RelatedNodeInfo(node_id="n0")
    assert store.add(nodes) == ["n0", "n1", "n2"]
    result = store.query(query(axis(1), k=3))
    assert result.ids is not None and result.ids[0] == "n1"
    assert result.similarities is not None and result.similarities[0] == pytest.approx(1.0, abs=1e-6)
    assert result.nodes is not None
    back = result.nodes[0]
    assert isinstance(back, TextNode)
    assert back.node_id == "n1" and back.text == "chunk 1" and back.ref_doc_id == "doc-1"
    assert back.metadata == nodes[1].metadata
    assert back.excluded_llm_metadata_keys == ["weight"]
    assert back.relationships[NodeRelationship.PREVIOUS].node_id == "n0"  # type: ignore[union-attr]
    assert back.hash == nodes[1].hash
    assert [n.node_id for n in store.get_nodes(["n2", "missing", "n0"])] == ["n2", "n0"]


def test_a_point_written_by_another_client_comes_back_as_a_text_node(tenant: Tenant) -> None:
    store = make_store(tenant, principal="anyone")
    store.collection.upsert([{"id": "raw", "vector": axis(0), "text": "plain", "metadata": {"k": "v"}}])
    result = store.query(query(axis(0), k=1))
    assert result.nodes is not None
    assert isinstance(result.nodes[0], TextNode)
    assert (result.nodes[0].node_id, result.nodes[0].text, result.nodes[0].metadata) == ("raw", "plain", {"k": "v"})


ACL_NODES = [
    ("a1", {"acl_users": ["alice"]}),
    ("a2", {"acl_users": ["alice", "bob"]}),
    ("e1", {"acl_groups": ["eng"]}),
    ("b1", {"acl_users": ["bob"]}),
    ("o1", {"acl_groups": ["ops"]}),
    ("t1", {}),
]
ALICE_SEES = {"a1", "a2", "e1", "t1"}
BOB_SEES = {"a2", "b1", "t1"}


@pytest.fixture
def acl_store(tenant: Tenant) -> BulkheadVectorStore:
    store = make_store(tenant)
    store.add([TextNode(id_=i, text=f"text {i}", embedding=axis(n), metadata=dict(m, n=n))
               for n, (i, m) in enumerate(ACL_NODES)])
    return store


def test_a_query_for_alice_never_returns_what_she_may_not_read(acl_store: BulkheadVectorStore) -> None:
    for k in (1, 2, 4, 1000):
        for target in range(len(ACL_NODES)):
            seen = found(acl_store, query(axis(target), k=k), principal=("alice", ["eng"]))
            assert seen <= ALICE_SEES and len(seen) == min(k, len(ALICE_SEES))
    assert found(acl_store, query(), principal="bob") == BOB_SEES
    assert found(acl_store.for_user("bob", ["ops"]), query()) == BOB_SEES | {"o1"}
    # The ACL went to the server, and is in no part of a returned node (not even a shared one's).
    result = acl_store.for_user("alice").query(query())
    assert result.nodes is not None
    for node in result.nodes:
        dumped = node.model_dump_json()
        assert "acl_" not in dumped and "bob" not in dumped


def test_no_principal_is_refused_unless_the_key_itself_is_asked_for(acl_store: BulkheadVectorStore, tenant: Tenant) -> None:
    with pytest.raises(MissingPrincipal, match="no principal"):
        acl_store.query(query())
    with pytest.raises(MissingPrincipal):
        acl_store.get_nodes(["t1"])
    assert found(acl_store, query(), principal=AS_API_KEY) == {i for i, _ in ACL_NODES}
    alice_key = BulkheadVectorStore(tenant.alice, "docs", principal=AS_API_KEY)
    assert found(alice_key, query()) == ALICE_SEES
    with pytest.raises(PermissionDenied):
        alice_key.query(query(), principal="bob")


def test_an_index_and_its_retriever_on_behalf_of_a_user(tenant: Tenant) -> None:
    store = make_store(tenant)
    documents = [
        Document(id_="plan", text="Alice's plan. It has two sentences.", metadata={"acl_users": ["alice"], "kind": "plan"}),
        Document(id_="pay", text="Bob's pay slip. Confidential.", metadata={"acl_users": ["bob"], "kind": "hr"}),
        Document(id_="wiki", text="The wiki. Everyone reads it.", metadata={"kind": "wiki"}),
    ]
    splitter = SentenceSplitter(chunk_size=32, chunk_overlap=0, tokenizer=str.split)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=EMBED, transformations=[splitter],
    )
    retriever = index.as_retriever(similarity_top_k=50, vector_store_kwargs={"principal": ("alice", ["eng"])})
    hits = retriever.retrieve("what is in the plan?")
    assert {h.node.ref_doc_id for h in hits} == {"plan", "wiki"}
    assert all("acl_users" not in h.node.metadata for h in hits)
    bob = VectorStoreIndex.from_vector_store(store.for_user("bob"), embed_model=EMBED).as_retriever(similarity_top_k=50)
    assert {h.node.ref_doc_id for h in bob.retrieve("pay")} == {"pay", "wiki"}
    filtered = index.as_retriever(
        similarity_top_k=50, vector_store_kwargs={"principal": "bob"},
        filters=MetadataFilters(filters=[MetadataFilter(key="kind", value="wiki")]),
    )
    assert {h.node.ref_doc_id for h in filtered.retrieve("anything")} == {"wiki"}
    # Deleting a document through the index deletes its nodes.
    index.delete_ref_doc("wiki")
    assert {h.node.ref_doc_id for h in bob.retrieve("pay")} == {"pay"}


async def test_async_queries_keep_the_principal(acl_store: BulkheadVectorStore) -> None:
    result = await acl_store.aquery(query(), principal=("alice", ["eng"]))
    assert set(result.ids or []) == ALICE_SEES


FILTER_NODES = {
    "d1": {"lang": "en", "year": 2022, "tags": ["faq"]},
    "d2": {"lang": "en", "year": 2023, "tags": ["faq", "howto"]},
    "d3": {"lang": "de", "year": 2024, "tags": ["howto"]},
    "d4": {"lang": "fr", "year": 2025},
    "d5": {"year": 2023.5},
}


def mf(key: str, value: object, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)  # type: ignore[arg-type]


FILTERS = [
    (MetadataFilters(filters=[mf("lang", "en")]), {"d1", "d2"}),
    (MetadataFilters(filters=[mf("lang", "en", FilterOperator.NE)]), {"d3", "d4", "d5"}),
    (MetadataFilters(filters=[mf("year", 2023, FilterOperator.GT)]), {"d3", "d4", "d5"}),
    (MetadataFilters(filters=[mf("year", 2023, FilterOperator.GTE)]), {"d2", "d3", "d4", "d5"}),
    (MetadataFilters(filters=[mf("year", 2023, FilterOperator.LT)]), {"d1"}),
    (MetadataFilters(filters=[mf("year", 2023, FilterOperator.LTE)]), {"d1", "d2"}),
    (MetadataFilters(filters=[mf("year", 2023.5, FilterOperator.EQ)]), {"d5"}),
    (MetadataFilters(filters=[mf("year", [2022, 2025], FilterOperator.IN)]), {"d1", "d4"}),
    (MetadataFilters(filters=[mf("lang", ["de", "fr"], FilterOperator.IN)]), {"d3", "d4"}),
    (MetadataFilters(filters=[mf("lang", ["de", "fr"], FilterOperator.NIN)]), {"d1", "d2", "d5"}),
    (MetadataFilters(filters=[mf("tags", ["howto", "none"], FilterOperator.ANY)]), {"d2", "d3"}),
    (MetadataFilters(filters=[mf("tags", ["faq", "howto"], FilterOperator.ALL)]), {"d2"}),
    (MetadataFilters(filters=[mf("tags", "faq", FilterOperator.CONTAINS)]), {"d1", "d2"}),
    (MetadataFilters(filters=[mf("lang", "en"), mf("year", 2023, FilterOperator.GTE)]), {"d2"}),
    (MetadataFilters(filters=[mf("lang", "de"), mf("year", 2023, FilterOperator.LT)], condition=FilterCondition.OR), {"d1", "d3"}),
    (MetadataFilters(filters=[mf("lang", "en"), mf("lang", "fr")], condition=FilterCondition.NOT), {"d3", "d5"}),
    (
        MetadataFilters(
            filters=[mf("lang", "fr"), MetadataFilters(filters=[mf("lang", "en"), mf("tags", "howto")])],
            condition=FilterCondition.OR,
        ),
        {"d2", "d4"},
    ),
    (MetadataFilters(filters=[]), set(FILTER_NODES)),
]


@pytest.fixture
def filter_store(tenant: Tenant) -> BulkheadVectorStore:
    store = make_store(tenant, principal="anyone")
    store.add([TextNode(id_=i, text=i, embedding=axis(n), metadata=m) for n, (i, m) in enumerate(FILTER_NODES.items())])
    return store


def test_metadata_filters_select_what_they_say(filter_store: BulkheadVectorStore) -> None:
    for filters, expected in FILTERS:
        seen = found(filter_store, query(filters=filters))
        assert seen == expected, f"{filters}: {sorted(seen)} != {sorted(expected)}"
    assert found(filter_store, query(doc_ids=["none"])) == set()
    assert found(filter_store, query(filters=F.range("year", 2023, 2024))) == {"d2", "d3", "d5"}  # type: ignore[arg-type]
    # Filtered before ranking: k=1 near d1 still finds the one French node.
    assert found(filter_store, query(axis(0), k=1, filters=MetadataFilters(filters=[mf("lang", "fr")]))) == {"d4"}


@pytest.mark.parametrize(
    "filters, message",
    [
        (MetadataFilters(filters=[mf("lang", "e", FilterOperator.TEXT_MATCH)]), "unsupported filter operator TEXT_MATCH"),
        (MetadataFilters(filters=[mf("lang", "e", FilterOperator.TEXT_MATCH_INSENSITIVE)]), "TEXT_MATCH_INSENSITIVE"),
        (MetadataFilters(filters=[mf("lang", None, FilterOperator.IS_EMPTY)]), "IS_EMPTY"),
        (MetadataFilters(filters=[mf("lang", "en", FilterOperator.IN)]), "list of values"),
        (MetadataFilters(filters=[mf("lang", "en", FilterOperator.GT)]), "compares numbers"),
        (MetadataFilters(filters=[mf("lang", ["en"], FilterOperator.EQ)]), "takes one"),
        (MetadataFilters(filters=[], condition=FilterCondition.OR), "or of no filters"),
    ],
)
def test_unsupported_filters_raise_before_any_call(filters: MetadataFilters, message: str) -> None:
    with pytest.raises(UnsupportedFilter, match=message):
        to_bulkhead_filter(filters)
    assert isinstance(UnsupportedFilter("x"), ValueError)


def test_queries_the_store_cannot_answer_raise(filter_store: BulkheadVectorStore) -> None:
    with pytest.raises(ValueError, match="dense queries only"):
        filter_store.query(query(mode=VectorStoreQueryMode.MMR))
    with pytest.raises(ValueError, match="query_embedding"):
        filter_store.query(VectorStoreQuery(query_str="x", similarity_top_k=2))
    with pytest.raises(ValueError, match="node_ids"):
        filter_store.query(query(node_ids=["d1"]))
    with pytest.raises(TypeError, match="unexpected keyword"):
        filter_store.query(query(), k=3)


def test_delete_by_document_by_id_and_by_filter(tenant: Tenant) -> None:
    store = make_store(tenant, principal=AS_API_KEY)
    big = [TextNode(id_=f"big-{i}", text="x", embedding=axis(i % DIM), metadata={"i": i},
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="big")}) for i in range(1205)]
    small = [TextNode(id_=f"small-{i}", text="y", embedding=axis(i), metadata={"i": i},
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="small")}) for i in range(5)]
    store.add(big + small)
    assert store.collection.count() == 1210
    store.delete("big")  # more nodes than one search returns
    assert store.collection.count() == 5
    assert found(store, query(doc_ids=["small"])) == {f"small-{i}" for i in range(5)}
    store.delete("never-was")
    store.delete_nodes(["small-0", "missing"])
    store.delete_nodes(filters=MetadataFilters(filters=[mf("i", 3, FilterOperator.GTE)]))
    assert found(store, query()) == {"small-1", "small-2"}
    store.delete_nodes(["small-1"], filters=MetadataFilters(filters=[mf("i", 2)]))  # not small-1: i is 1
    assert found(store, query()) == {"small-1", "small-2"}
    store.delete_nodes(["small-1", "small-2"], filters=MetadataFilters(filters=[mf("i", 2)]))
    assert found(store, query()) == {"small-1"}
    with pytest.raises(ValueError, match="needs node_ids or filters"):
        store.delete_nodes()


def test_acls_argument_and_bad_input(tenant: Tenant) -> None:
    store = make_store(tenant)
    store.add([TextNode(id_="x", text="x", embedding=axis(0)), TextNode(id_="y", text="y", embedding=axis(1))],
              acls=[Acl(users=["alice"]), None])
    assert found(store, query(), principal="alice") == {"x", "y"}
    assert found(store, query(), principal="bob") == {"y"}
    bad = [
        (TextNode(id_="n", text="n", embedding=axis(0), metadata={"nested": {"a": 1}}), TypeError, "metadata 'nested'"),
        (TextNode(id_="n", text="n", embedding=axis(0), metadata={"none": None}), TypeError, "metadata 'none'"),
        (TextNode(id_="n", text="n", embedding=axis(0), metadata={"acl_users": "bob"}), TypeError, "list of names"),
        (TextNode(id_="n", text="n", embedding=axis(0), metadata={"ref_doc_id": "x"}), ValueError, "store's own"),
        (TextNode(id_="n", text="n"), ValueError, "mbedding not set"),
    ]
    for node, error, message in bad:
        with pytest.raises(error, match=message):
            store.add([TextNode(id_="ok", text="ok", embedding=axis(2)), node])
    assert store.collection.count() == 2  # nothing of a refused batch was written


def test_errors_surface_as_the_clients_exceptions(tenant: Tenant) -> None:
    missing = BulkheadVectorStore(tenant.backend, "no-such-collection", principal="alice")
    with pytest.raises(NotFound):
        missing.query(query())
    with pytest.raises(NotFound):
        missing.add([TextNode(id_="x", text="x", embedding=axis(0))])
    make_store(tenant)
    with pytest.raises(PermissionDenied):
        BulkheadVectorStore(tenant.alice, "docs").add([TextNode(id_="x", text="x", embedding=axis(0))])
    assert "redacted" in repr(tenant.backend) and repr(missing) == "BulkheadVectorStore('no-such-collection', principal=Principal(user='alice', groups=()))"
