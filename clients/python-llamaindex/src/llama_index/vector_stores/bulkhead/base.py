"""`BulkheadVectorStore`: a LlamaIndex vector store over one collection of a Bulkhead tenant, whose
queries run on behalf of an end user (a principal), so that a retriever built for alice returns only
nodes alice may read.

Where a query's principal comes from, first match wins:

1. `principal=` given to `query` (a retriever passes it from
   `index.as_retriever(vector_store_kwargs={"principal": ("alice", ["eng"])})`);
2. the store's own (`BulkheadVectorStore(..., principal=...)` or `store.for_user("alice", ["eng"])`);
3. none: the query raises `MissingPrincipal`. Querying as the API key itself (a user-bound key's
   user; for a service key, every node of the tenant) has to be asked for with `AS_API_KEY`.

A node's ACL comes from `add(nodes, acls=[...])` or from its metadata keys `acl_users` and
`acl_groups` (lists of names), which are taken out of the stored node: the server keeps the ACL
beside the point and never returns it. A node without an ACL is readable by every user of the tenant.

How a node is stored: its id is the point's id, its text (`get_content()` without metadata) the
point's text, its embedding the vector; its metadata become the point's metadata fields (so filters
can use them: str, bool, int, float or lists of str), beside `ref_doc_id` (the source document, for
`delete`), `_node_type` and `_node_content` (the rest of the node as LlamaIndex serialises it:
relationships, excluded metadata keys, templates), so a node comes back as it went in. A point
written by another client (no `_node_content`) comes back as a `TextNode` of its text and metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from bulkhead_client import Acl, Client, Collection, F, Filter, NotFound, Point, Principal
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from .filters import to_bulkhead_filter

__all__ = ["ACL_GROUPS_KEY", "ACL_USERS_KEY", "AS_API_KEY", "BulkheadVectorStore", "MissingPrincipal"]

ACL_USERS_KEY: Final = "acl_users"
"""The metadata key whose list of user names becomes a node's ACL (and is not stored as metadata)."""
ACL_GROUPS_KEY: Final = "acl_groups"
"""The metadata key whose list of group names becomes a node's ACL (and is not stored as metadata)."""
REF_DOC_ID_KEY: Final = "ref_doc_id"
_NODE_CONTENT_KEY: Final = "_node_content"
_NODE_TYPE_KEY: Final = "_node_type"
_RESERVED = (REF_DOC_ID_KEY, _NODE_CONTENT_KEY, _NODE_TYPE_KEY)
_ACL_KEYS = (ACL_USERS_KEY, ACL_GROUPS_KEY)

_SCAN_K: Final = 1000
"""Hits fetched a round when deleting by ref_doc_id or by filter (the server's largest k)."""


class _AsApiKey:
    """The type of `AS_API_KEY`."""

    _instance: _AsApiKey | None = None

    def __new__(cls) -> _AsApiKey:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AS_API_KEY"


AS_API_KEY: Final = _AsApiKey()
"""As a principal: query as the API key itself, naming no end user. A user-bound key then queries
as its own user; a service key sees every node of the tenant, so use it for admin tooling, never for
a request made on behalf of a user."""

PrincipalArg = Principal | str | tuple[str, Iterable[str]] | _AsApiKey
"""A principal as the store takes it: `Principal`, `"alice"`, `("alice", ["eng"])` or `AS_API_KEY`."""


class MissingPrincipal(ValueError):
    """A query or read with no principal: neither the call nor the store named one."""


def _principal(value: object) -> Principal | _AsApiKey:
    if isinstance(value, (Principal, _AsApiKey)):
        return value
    if isinstance(value, str):
        return Principal(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return Principal(value[0], value[1])
    raise TypeError('a principal is a Principal, "alice", ("alice", ["eng"]) or AS_API_KEY')


class BulkheadVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over the collection `collection_name` of the tenant that `client`'s
    API key belongs to (the collection must exist: `client.create_collection(name, dimension)`).

        store = BulkheadVectorStore(client, "docs")
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
        retriever = index.as_retriever(similarity_top_k=4, vector_store_kwargs={"principal": ("alice", ["eng"])})

    The key needs the writer role to add and delete, and the on-behalf-of right to query for a named
    principal; a key bound to a user queries as that user, whatever principal is named. Deleting by
    `ref_doc_id` or by filter finds the points with searches as the key itself, so it needs a service
    key (not a user-bound one). `ef` is the HNSW search breadth (None: the server's).
    """

    stores_text: bool = True
    flat_metadata: bool = True
    collection_name: str
    ef: int | None = None

    _client: Client = PrivateAttr()
    _collection: Collection = PrivateAttr()
    _principal: Principal | _AsApiKey | None = PrivateAttr(default=None)
    _dimension: int | None = PrivateAttr(default=None)

    def __init__(
        self,
        client: Client,
        collection_name: str,
        *,
        principal: PrincipalArg | None = None,
        ef: int | None = None,
    ) -> None:
        super().__init__(stores_text=True, collection_name=collection_name, ef=ef)
        self._client = client
        self._collection = client.collection(collection_name)
        self._principal = None if principal is None else _principal(principal)

    def __repr__(self) -> str:
        return f"BulkheadVectorStore({self.collection_name!r}, principal={self._principal!r})"

    __str__ = __repr__

    @classmethod
    def class_name(cls) -> str:
        return "BulkheadVectorStore"

    @property
    def client(self) -> Client:
        return self._client

    @property
    def collection(self) -> Collection:
        """The `bulkhead_client.Collection` underneath (describe, count, drop, ...)."""
        return self._collection

    @property
    def principal(self) -> Principal | _AsApiKey | None:
        """The principal queries run for when a call names none."""
        return self._principal

    def for_user(self, user: str, groups: Iterable[str] = ()) -> BulkheadVectorStore:
        """The same store (same client and collection), querying on behalf of `user` in `groups`."""
        return self.with_principal(Principal(user, groups))

    def with_principal(self, principal: PrincipalArg) -> BulkheadVectorStore:
        """The same store bound to `principal` (`AS_API_KEY`: the API key's own view)."""
        return BulkheadVectorStore(self._client, self.collection_name, principal=principal, ef=self.ef)

    # -- writing ----------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upserts the nodes (with their embeddings); returns their ids. Keyword argument `acls`: one
        `bulkhead_client.Acl` (or None) a node, instead of the `acl_users`/`acl_groups` metadata."""
        unknown = set(add_kwargs) - {"acls"}
        if unknown:
            raise TypeError(f"add got unexpected keyword arguments {sorted(unknown)}")
        acls: Sequence[Acl | None] | None = add_kwargs.get("acls")
        if acls is not None and len(acls) != len(nodes):
            raise ValueError(f"{len(nodes)} nodes but {len(acls)} acls")
        points = []
        for i, node in enumerate(nodes):
            acl = acls[i] if acls is not None else None
            points.append(_point(node, acl))
        # Everything is checked before the first batch is sent, so a bad node writes nothing.
        self._collection.upsert(points)
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document `ref_doc_id`."""
        if delete_kwargs:
            raise TypeError(f"delete got unexpected keyword arguments {sorted(delete_kwargs)}")
        self._delete_matching(F.eq(REF_DOC_ID_KEY, ref_doc_id), None)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids, or those matching `filters`, or those of the ids that
        match `filters`."""
        if delete_kwargs:
            raise TypeError(f"delete_nodes got unexpected keyword arguments {sorted(delete_kwargs)}")
        filter = to_bulkhead_filter(filters)
        if filter is None:
            if node_ids is None:
                raise ValueError("delete_nodes needs node_ids or filters; to delete everything, drop the collection")
            self._collection.delete(node_ids)
            return
        self._delete_matching(filter, None if node_ids is None else set(node_ids))

    def _delete_matching(self, filter: Filter, among: set[str] | None) -> None:
        """Deletes the points matching `filter` (only those in `among`, if given), found by searches
        as the key itself for up to 1,000 matches a round, until none is left."""
        probe = self._probe()
        while True:
            hits = self._collection.search(probe, _SCAN_K, filter=filter)
            if among is not None:
                # The matches to keep would come back in every round, so there is one round only.
                if len(hits) == _SCAN_K:
                    raise ValueError("delete_nodes with node_ids and filters handles at most 999 matches of the filters")
                doomed = [h.id for h in hits if h.id in among]
                if doomed:
                    self._collection.delete(doomed)
                return
            if hits:
                self._collection.delete([h.id for h in hits])
            if len(hits) < _SCAN_K:
                return

    def _probe(self) -> list[float]:
        """A query vector for scans (any vector reaches every match when k is large enough)."""
        if self._dimension is None:
            self._dimension = self._collection.describe().dimension
        return [1.0] + [0.0] * (self._dimension - 1)

    # -- reading ----------------------------------------------------------------------------------

    def _resolve(self, principal: object) -> Principal | None:
        chosen = self._principal if principal is None else _principal(principal)
        if chosen is None:
            raise MissingPrincipal(
                "no principal: pass principal=(user, groups) (a retriever's vector_store_kwargs), bind one "
                "with store.for_user(...), or pass AS_API_KEY to query as the API key itself"
            )
        return None if isinstance(chosen, _AsApiKey) else chosen

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The `similarity_top_k` nodes nearest to `query_embedding` that the principal may read and
        that match `filters` (and, with `doc_ids`, belong to those documents). Keyword arguments:
        `principal`, `ef`."""
        unknown = set(kwargs) - {"principal", "ef"}
        if unknown:
            raise TypeError(f"query got unexpected keyword arguments {sorted(unknown)}")
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(f"BulkheadVectorStore answers dense queries only, not mode {query.mode.value!r}")
        if query.query_embedding is None:
            raise ValueError("BulkheadVectorStore needs query.query_embedding")
        # VectorStoreIndex.as_retriever passes the ids its own index struct holds, which is none for
        # a store that keeps the text (an empty list means no restriction there).
        if query.node_ids:
            raise ValueError("BulkheadVectorStore cannot restrict a query to node_ids (filter on metadata instead)")
        principal = self._resolve(kwargs.get("principal"))
        filter = to_bulkhead_filter(query.filters)
        if query.doc_ids is not None:
            by_doc = F.in_(REF_DOC_ID_KEY, query.doc_ids)
            filter = by_doc if filter is None else filter & by_doc
        hits = self._collection.search(
            query.query_embedding,
            query.similarity_top_k,
            ef=kwargs.get("ef", self.ef),
            filter=filter,
            principal=principal,
        )
        return VectorStoreQueryResult(
            nodes=[_node(h.id, h.text, h.metadata) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The nodes with these ids that the store's principal may read (others are skipped)."""
        if node_ids is None or filters is not None:
            raise ValueError("BulkheadVectorStore.get_nodes takes node_ids only")
        principal = self._resolve(None)
        found: list[BaseNode] = []
        for id in dict.fromkeys(node_ids):
            try:
                point = self._collection.get(id, principal=principal)
            except NotFound:
                continue
            found.append(_node(point.id, point.text, point.metadata))
        return found


def _point(node: BaseNode, acl: Acl | None) -> Point:
    metadata: dict[str, Any] = {}
    users: list[str] | None = None
    groups: list[str] | None = None
    for key, value in node.metadata.items():
        if key in (ACL_USERS_KEY, ACL_GROUPS_KEY):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"node {node.node_id!r}: metadata {key!r} is a list of names")
            if key == ACL_USERS_KEY:
                users = list(value)
            else:
                groups = list(value)
            continue
        if key in _RESERVED:
            raise ValueError(f"node {node.node_id!r}: metadata key {key!r} is the store's own")
        if not isinstance(value, (str, bool, int, float)) and not (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        ):
            raise TypeError(
                f"node {node.node_id!r}: metadata {key!r}: Bulkhead stores a str, bool, int, float or a "
                f"list of str, not {type(value).__name__} (flatten or drop it before adding)"
            )
        metadata[key] = value
    if users is not None or groups is not None:
        if acl is not None:
            raise ValueError(f"node {node.node_id!r}: an ACL both in acls= and in its metadata")
        acl = Acl(users or (), groups or ())
    embedding = node.get_embedding()
    # The node as LlamaIndex serialises it, without its text (the point's text), its embedding (the
    # vector) and the ACL keys (kept by the server as the ACL, never returned), which a splitter also
    # copies into the metadata of each relationship (the source document, the previous and next node).
    relationships: dict[Any, Any] = {}
    for relation, info in node.relationships.items():
        infos = info if isinstance(info, list) else [info]
        cleaned = [
            i.model_copy(update={"metadata": {k: v for k, v in i.metadata.items() if k not in _ACL_KEYS}})
            for i in infos
        ]
        relationships[relation] = cleaned if isinstance(info, list) else cleaned[0]
    stored = node.model_copy(update={"metadata": dict(metadata), "relationships": relationships})
    serialised = node_to_metadata_dict(stored, remove_text=True, flat_metadata=False)
    metadata[_NODE_CONTENT_KEY] = serialised[_NODE_CONTENT_KEY]
    metadata[_NODE_TYPE_KEY] = serialised[_NODE_TYPE_KEY]
    if node.ref_doc_id is not None:
        metadata[REF_DOC_ID_KEY] = node.ref_doc_id
    return Point(node.node_id, embedding, text=node.get_content(metadata_mode=MetadataMode.NONE), metadata=metadata, acl=acl)


def _node(id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    if isinstance(metadata.get(_NODE_CONTENT_KEY), str):
        node = metadata_dict_to_node(metadata, text=text)
        node.id_ = id
        return node
    return TextNode(id_=id, text=text, metadata=metadata)
