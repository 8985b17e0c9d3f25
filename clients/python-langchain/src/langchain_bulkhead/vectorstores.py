"""`BulkheadVectorStore`: a LangChain `VectorStore` over one collection of a Bulkhead tenant, whose
searches run on behalf of an end user (a principal), so that a retriever built for alice returns
only what alice may read.

Where a search's principal comes from, first match wins:

1. `principal=` given to the call (`similarity_search(..., principal=("alice", ["eng"]))`, or a
   retriever's `search_kwargs={"principal": ...}`);
2. the store's own (`BulkheadVectorStore(..., principal=...)` or `store.for_user("alice", ["eng"])`);
3. none: the call raises `MissingPrincipal`. Searching as the API key itself (a user-bound key's
   user; for a service key, every document of the tenant) has to be asked for with `AS_API_KEY`.

A document's ACL comes from `add_texts(..., acls=[...])` or from its metadata keys `acl_users` and
`acl_groups` (lists of names), which are taken out of the stored metadata: the server keeps the ACL
beside the point and never returns it. A document without an ACL is readable by every user of the
tenant.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from bulkhead_client import Acl, Client, Collection, Filter, Hit, Metric, NotFound, Point, Principal
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from .filters import to_bulkhead_filter

__all__ = ["ACL_GROUPS_KEY", "ACL_USERS_KEY", "AS_API_KEY", "BulkheadVectorStore", "MissingPrincipal"]

ACL_USERS_KEY: Final = "acl_users"
"""The metadata key whose list of user names becomes a document's ACL (and is not stored as metadata)."""
ACL_GROUPS_KEY: Final = "acl_groups"
"""The metadata key whose list of group names becomes a document's ACL (and is not stored as metadata)."""


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
"""As a principal: search as the API key itself, naming no end user. A user-bound key then searches
as its own user; a service key sees every document of the tenant, so use it for admin tooling, never
for a request made on behalf of a user."""

PrincipalArg = Principal | str | tuple[str, Iterable[str]] | _AsApiKey
"""A principal as the store takes it: `Principal`, `"alice"`, `("alice", ["eng"])` or `AS_API_KEY`."""


class MissingPrincipal(ValueError):
    """A search or read with no principal: neither the call nor the store named one."""


def _principal(value: object) -> Principal | _AsApiKey:
    if isinstance(value, (Principal, _AsApiKey)):
        return value
    if isinstance(value, str):
        return Principal(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return Principal(value[0], value[1])
    raise TypeError('a principal is a Principal, "alice", ("alice", ["eng"]) or AS_API_KEY')


class BulkheadVectorStore(VectorStore):
    """A LangChain vector store over the collection `collection_name` of the tenant that `client`'s
    API key belongs to.

        store = BulkheadVectorStore(client, "docs", embeddings)
        store.add_texts(["..."], metadatas=[{"lang": "en", "acl_users": ["alice"]}])
        retriever = store.for_user("alice", groups=["eng"]).as_retriever(search_kwargs={"k": 4, "filter": {"lang": "en"}})

    The key needs the writer role to add and delete, and the on-behalf-of right to search for a
    named principal (`bulkhead admin key issue ... --on-behalf-of`); a key bound to a user searches as
    that user, whatever principal is named. `ef` is the HNSW search breadth (None: the server's).
    """

    def __init__(
        self,
        client: Client,
        collection_name: str,
        embedding: Embeddings,
        *,
        principal: PrincipalArg | None = None,
        ef: int | None = None,
    ) -> None:
        self._client = client
        self._collection: Collection = client.collection(collection_name)
        self._embedding = embedding
        self._principal = None if principal is None else _principal(principal)
        self._ef = ef
        self._metric: Metric | None = None

    def __repr__(self) -> str:
        return f"BulkheadVectorStore({self._collection.name!r}, principal={self._principal!r})"

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def collection(self) -> Collection:
        """The `bulkhead_client.Collection` underneath (describe, count, drop, ...)."""
        return self._collection

    @property
    def principal(self) -> Principal | _AsApiKey | None:
        """The principal searches run for when a call names none."""
        return self._principal

    def for_user(self, user: str, groups: Iterable[str] = ()) -> BulkheadVectorStore:
        """The same store (same client and collection), searching on behalf of `user` in `groups`."""
        return self.with_principal(Principal(user, groups))

    def with_principal(self, principal: PrincipalArg) -> BulkheadVectorStore:
        """The same store bound to `principal` (`AS_API_KEY`: the API key's own view)."""
        bound = BulkheadVectorStore(
            self._client, self._collection.name, self._embedding, principal=principal, ef=self._ef
        )
        bound._metric = self._metric
        return bound

    def ensure_collection(self, dimension: int, metric: Metric = "cosine") -> None:
        """Creates the collection (tenant-admin keys) unless it exists; raises ValueError if it exists
        with another dimension."""
        try:
            info = self._collection.describe()
        except NotFound:
            info = self._collection.create(dimension, metric)
        if info.dimension != dimension:
            raise ValueError(
                f"collection {self._collection.name!r} has dimension {info.dimension}, the embeddings {dimension}"
            )
        self._metric = info.metric

    # -- writing ----------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embeds and upserts the texts; returns their ids (new UUIDs where none was given; an id
        that exists is replaced). Keyword arguments: `acls`, one `bulkhead_client.Acl` (or None) a
        text; `sources`, one source URI (or None) a text, kept as the points' provenance.
        Metadata values: str, bool, int, float or a list of str."""
        texts = list(texts)
        vectors = self._embedding.embed_documents(texts)
        return self._upsert(texts, vectors, metadatas, ids, kwargs)

    def _upsert(
        self,
        texts: list[str],
        vectors: list[list[float]],
        metadatas: Sequence[Mapping[str, Any]] | None,
        ids: Sequence[str | None] | None,
        kwargs: Mapping[str, Any],
    ) -> list[str]:
        unknown = set(kwargs) - {"acls", "sources"}
        if unknown:
            raise TypeError(f"add_texts got unexpected keyword arguments {sorted(unknown)}")
        acls: Sequence[Acl | None] | None = kwargs.get("acls")
        sources: Sequence[str | None] | None = kwargs.get("sources")
        n = len(texts)
        for name, column in (("metadatas", metadatas), ("ids", ids), ("acls", acls), ("sources", sources)):
            if column is not None and len(column) != n:
                raise ValueError(f"{n} texts but {len(column)} {name}")
        if len(vectors) != n:
            raise ValueError(f"the embeddings returned {len(vectors)} vectors for {n} texts")
        points: list[Point] = []
        out_ids: list[str] = []
        for i, (text, vector) in enumerate(zip(texts, vectors)):
            id = (ids[i] if ids is not None else None) or str(uuid.uuid4())
            metadata, acl = _split_metadata(metadatas[i] if metadatas is not None else {})
            if acls is not None and acls[i] is not None:
                if acl is not None:
                    raise ValueError(f"document {i}: an ACL both in acls= and in its metadata")
                acl = acls[i]
            source = sources[i] if sources is not None else None
            points.append(Point(id, vector, text=text, metadata=metadata, source=source, acl=acl))
            out_ids.append(id)
        # Everything is checked before the first batch is sent, so a bad document writes nothing.
        self._collection.upsert(points)
        return out_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Deletes the points with these ids (missing ones are skipped). Deleting everything is not
        offered here: drop the collection with the client (`store.collection.drop()`)."""
        if kwargs:
            raise TypeError(f"delete got unexpected keyword arguments {sorted(kwargs)}")
        if ids is None:
            raise ValueError("delete needs ids; to delete everything, drop the collection (store.collection.drop())")
        self._collection.delete(ids)
        return True

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        client: Client | None = None,
        collection_name: str | None = None,
        metric: Metric = "cosine",
        principal: PrincipalArg | None = None,
        **kwargs: Any,
    ) -> BulkheadVectorStore:
        """A store on `client`'s collection `collection_name`, created with the embeddings' dimension
        and `metric` unless it exists (creating needs a tenant-admin key), holding `texts`."""
        if client is None or collection_name is None:
            raise TypeError("BulkheadVectorStore.from_texts needs client= and collection_name=")
        store = cls(client, collection_name, embedding, principal=principal)
        vectors = embedding.embed_documents(list(texts))
        if not vectors:
            raise ValueError("from_texts needs at least one text to learn the embeddings' dimension")
        store.ensure_collection(len(vectors[0]), metric)
        store._upsert(list(texts), vectors, metadatas, ids, kwargs)
        return store

    # -- reading ----------------------------------------------------------------------------------

    def _resolve(self, principal: object) -> Principal | None:
        chosen = self._principal if principal is None else _principal(principal)
        if chosen is None:
            raise MissingPrincipal(
                "no principal: pass principal=(user, groups), bind one with store.for_user(...), "
                "or pass AS_API_KEY to search as the API key itself"
            )
        return None if isinstance(chosen, _AsApiKey) else chosen

    def _search(self, vector: list[float], k: int, kwargs: Mapping[str, Any]) -> list[Hit]:
        unknown = set(kwargs) - {"principal", "filter", "ef"}
        if unknown:
            raise TypeError(f"unexpected search keyword arguments {sorted(unknown)}")
        principal = self._resolve(kwargs.get("principal"))
        filter = to_bulkhead_filter(kwargs.get("filter"))
        ef = kwargs.get("ef", self._ef)
        return self._collection.search(vector, k, ef=ef, filter=filter, principal=principal)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The `k` documents nearest to `query` that the principal may read and that match
        `filter` (a dict, see `langchain_bulkhead.filters`, or a `bulkhead_client.Filter`).
        Keyword arguments: `principal`, `filter`, `ef`."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """As `similarity_search`, with each document's score: the cosine similarity or inner
        product (higher is nearer) or the Euclidean distance (lower is nearer), by the collection's
        metric."""
        return self._with_scores(self._embedding.embed_query(query), k, kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """As `similarity_search`, from a query vector."""
        return [doc for doc, _ in self._with_scores(embedding, k, kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """As `similarity_search_with_score`, from a query vector."""
        return self._with_scores(embedding, k, kwargs)

    def _with_scores(self, vector: list[float], k: int, kwargs: Mapping[str, Any]) -> list[tuple[Document, float]]:
        return [(_document(hit), hit.score) for hit in self._search(vector, k, kwargs)]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids that the store's principal may read (others are skipped)."""
        principal = self._resolve(None)
        found: list[Document] = []
        for id in dict.fromkeys(ids):
            try:
                point = self._collection.get(id, principal=principal)
            except NotFound:
                continue
            found.append(Document(id=point.id, page_content=point.text, metadata=dict(point.metadata)))
        return found

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores to relevance in [0, 1] (for `similarity_search_with_relevance_scores`), for unit
        vectors: cosine similarity and inner product s to (1 + s) / 2, Euclidean distance d to
        1 - d / sqrt(2)."""
        if self._metric is None:
            self._metric = self._collection.describe().metric
        if self._metric == "l2":
            return lambda d: 1.0 - d / math.sqrt(2)
        return lambda s: (1.0 + s) / 2.0


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata=dict(hit.metadata))


def _split_metadata(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], Acl | None]:
    """The metadata to store (values checked before anything is sent) and the ACL its `acl_users`
    and `acl_groups` keys give."""
    stored: dict[str, Any] = {}
    users: list[str] | None = None
    groups: list[str] | None = None
    for key, value in metadata.items():
        if key in (ACL_USERS_KEY, ACL_GROUPS_KEY):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"metadata {key!r} is a list of names")
            if key == ACL_USERS_KEY:
                users = list(value)
            else:
                groups = list(value)
            continue
        if not isinstance(value, (str, bool, int, float)) and not (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        ):
            raise TypeError(
                f"metadata {key!r}: Bulkhead stores a str, bool, int, float or a list of str, "
                f"not {type(value).__name__} (flatten or drop it before adding)"
            )
        stored[key] = value
    acl = None if users is None and groups is None else Acl(users or (), groups or ())
    return stored, acl
