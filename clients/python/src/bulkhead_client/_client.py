"""The synchronous data-plane client: `Client(url, api_key)` and its `Collection` handles."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType

import grpc
from google.protobuf.message import Message

from ._convert import (
    FilterLike,
    api_key_from_proto,
    audit_event_from_proto,
    collection_from_proto,
    delete_batches,
    fill_key_options,
    hit_from_proto,
    metric_to_proto,
    principal_to_proto,
    role_to_proto,
    search_batches,
    search_request,
    stored_point_from_proto,
    upsert_batches,
)
from ._errors import BulkheadError, from_rpc_error
from ._pb import bulkhead_pb2 as pb
from ._transport import DataPlane, Method, Req, Resp, RetryPolicy, TlsOption, _Secret, bearer, target
from ._types import (
    ApiKey,
    AuditEvent,
    CollectionInfo,
    Hit,
    IssuedKey,
    Metric,
    Point,
    PrincipalLike,
    Role,
    StoredPoint,
    Vector,
)

__all__ = ["Client", "Collection"]


class _Caller:
    """A channel and a credential: makes each call with the credential's metadata, the timeout and
    the retry policy, and turns grpc errors into `BulkheadError`s."""

    def __init__(
        self,
        url: str,
        credential: str,
        *,
        tls: TlsOption,
        tls_domain: str | None,
        insecure: bool,
        timeout: float | None,
        retry: RetryPolicy,
    ) -> None:
        self._secret = _Secret(credential)
        where = target(url, tls, tls_domain, insecure)
        self.url = where.url
        if where.credentials is None:
            self._channel = grpc.insecure_channel(where.address, options=where.options)
        else:
            self._channel = grpc.secure_channel(where.address, where.credentials, options=where.options)
        self.timeout = timeout
        self.retry = retry
        self._callables: dict[str, grpc.UnaryUnaryMultiCallable[Message, Message]] = {}

    def call(self, method: Method[Req, Resp], request: Req, timeout: float | None = None) -> Resp:
        stub = self._callables.get(method.path)
        if stub is None:
            stub = self._channel.unary_unary(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            self._callables[method.path] = stub
        attempt = 0
        while True:
            attempt += 1
            try:
                response = stub(request, timeout=timeout or self.timeout, metadata=bearer(self._secret))
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error)
            else:
                assert isinstance(response, method.response)
                return response
            if not self.retry.should_retry(error, method, attempt):
                raise error
            time.sleep(self.retry.backoff(attempt))

    def close(self) -> None:
        self._channel.close()


class Client:
    """A tenant's data plane. `url` is `http://127.0.0.1:7450` (plaintext: loopback only, unless
    `insecure=True`) or `https://host:7450` (TLS: `tls` the CA certificate's path or PEM bytes, or
    True for the system's roots; `tls_domain` when the certificate's name is not the URL's host).
    `api_key` is sent as `authorization: Bearer ...` on every call and appears in no repr, log or
    exception. `timeout` is each call's deadline in seconds (the server's own is 30 s). Calls are
    retried by `retry` (`RetryPolicy`; which calls, and why, is said in `bulkhead_client._transport`).

        with Client("http://127.0.0.1:7450", api_key) as client:
            docs = client.collection("docs")
            docs.upsert([Point("a", [1.0, 0.0, 0.0], text="hello", metadata={"lang": "en"})])
            hits = docs.search([1.0, 0.0, 0.0], k=5, filter=where(lang="en"), principal="alice")
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        tls: TlsOption = None,
        tls_domain: str | None = None,
        insecure: bool = False,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._caller = _Caller(
            url, api_key, tls=tls, tls_domain=tls_domain, insecure=insecure, timeout=timeout, retry=retry
        )

    def __repr__(self) -> str:
        return f"Client({self._caller.url!r}, api_key=<redacted>)"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; calls in flight are cancelled."""
        self._caller.close()

    def collection(self, name: str) -> Collection:
        """A handle on the collection `name` (nothing is called until a method is)."""
        return Collection(self._caller, name)

    def create_collection(self, name: str, dimension: int, metric: Metric = "cosine") -> Collection:
        """Creates a collection (tenant-admin keys) and returns its handle. Not retried on
        UNAVAILABLE (it may have been created); AlreadyExists if it exists."""
        collection = self.collection(name)
        collection.create(dimension, metric)
        return collection

    def list_collections(self) -> list[CollectionInfo]:
        """The tenant's collections."""
        response = self._caller.call(DataPlane.ListCollections, pb.ListCollectionsRequest())
        return [collection_from_proto(c) for c in response.collections]

    def export_audit(self, since_ms: int = 0, from_seq: int = 0) -> Iterator[AuditEvent]:
        """The tenant's own audit events (tenant-admin keys), oldest first, fetched a page at a time."""
        next_seq: int | None = from_seq
        while next_seq is not None:
            page = self._caller.call(
                DataPlane.ExportAudit, pb.ExportOwnAuditRequest(since_ms=since_ms, from_seq=next_seq)
            )
            yield from (audit_event_from_proto(e) for e in page.events)
            next_seq = page.next_seq if page.HasField("next_seq") else None

    # -- The tenant's own API keys (tenant-admin keys) ---------------------------------------------

    def issue_own_key(
        self,
        role: Role,
        *,
        label: str = "",
        expires: object = None,
        on_behalf_of: bool = False,
        user: PrincipalLike | None = None,
    ) -> IssuedKey:
        """Issues an API key of this key's own tenant (needs a tenant-admin key), with the options of
        `AdminClient.issue_key`. The token is in the result only. Not retried on UNAVAILABLE."""
        request = pb.IssueOwnApiKeyRequest(role=role_to_proto(role), label=label)
        fill_key_options(request, expires, on_behalf_of, user)
        issued = self._caller.call(DataPlane.IssueOwnApiKey, request)
        return IssuedKey(key_id=issued.key_id, token=issued.token)

    def list_own_keys(self) -> list[ApiKey]:
        """This key's tenant's API keys, never their secrets (needs a tenant-admin key)."""
        response = self._caller.call(DataPlane.ListOwnApiKeys, pb.ListOwnApiKeysRequest())
        return [api_key_from_proto(k) for k in response.keys]

    def revoke_own_key(self, key_id: str) -> None:
        """Revokes a key of this key's tenant (needs a tenant-admin key); another tenant's is not found."""
        self._caller.call(DataPlane.RevokeOwnApiKey, pb.RevokeOwnApiKeyRequest(key_id=key_id))


class Collection:
    """One collection of the client's tenant. Its methods call the server; see each for its role."""

    def __init__(self, caller: _Caller, name: str) -> None:
        self._caller = caller
        self.name = name

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"

    def create(self, dimension: int, metric: Metric = "cosine") -> CollectionInfo:
        """Creates the collection (tenant-admin keys): `dimension` 1 to 4,096, `metric` cosine, dot or
        l2. Not retried on UNAVAILABLE (it may have landed); AlreadyExists if it exists."""
        request = pb.CreateCollectionRequest(name=self.name, dimension=dimension, metric=metric_to_proto(metric))
        return collection_from_proto(self._caller.call(DataPlane.CreateCollection, request))

    def describe(self) -> CollectionInfo:
        """Its dimension and metric, and for a service key its index status (`index.fully_indexed`)."""
        return collection_from_proto(
            self._caller.call(DataPlane.DescribeCollection, pb.DescribeCollectionRequest(name=self.name))
        )

    def drop(self) -> None:
        """Drops the collection and its points (tenant-admin keys). Not retried on UNAVAILABLE."""
        self._caller.call(DataPlane.DropCollection, pb.DropCollectionRequest(name=self.name))

    def upsert(self, points: Iterable[Point | Mapping[str, object]]) -> list[int]:
        """Inserts or replaces points (writer keys): `Point`s or dicts with the same keys, vectors as
        lists or numpy arrays, metadata values str, bool, int, float or lists of str. Any number of
        points: they are sent in batches within the server's limits (1,024 points, 32 MiB, 2^18
        elements a batch), each batch atomic. A batch refused as temporary (RESOURCE_EXHAUSTED "retry
        later") or lost to UNAVAILABLE is sent again, since upserting the same ids again is harmless.
        Returns each point's version, in order. If a batch fails for good, the batches before it
        stay written: the exception's `points_written` says how many, and re-running the call is safe."""
        versions: list[int] = []
        for request in upsert_batches(self.name, points):
            try:
                response = self._caller.call(DataPlane.Upsert, request)
            except BulkheadError as error:
                error.points_written = len(versions)
                raise
            versions.extend(response.versions)
        return versions

    def upsert_columns(
        self,
        ids: Iterable[str],
        vectors: Iterable[Vector],
        *,
        texts: Iterable[str] | None = None,
        metadata: Iterable[Mapping[str, object]] | None = None,
        sources: Iterable[str | None] | None = None,
    ) -> list[int]:
        """`upsert` from columns (e.g. a 2-D numpy array of vectors): each iterable gives one value a
        point, in order, and all must have the same length."""
        return self.upsert(_rows(ids, vectors, texts, metadata, sources))

    def get(self, id: str, *, with_vector: bool = False, principal: PrincipalLike | None = None) -> StoredPoint:
        """A point by id; NotFound if it does not exist or `principal` may not read it."""
        request = pb.GetRequest(collection=self.name, id=id, with_vector=with_vector)
        if principal is not None:
            request.principal.CopyFrom(principal_to_proto(principal))
        return stored_point_from_proto(self._caller.call(DataPlane.Get, request).point)

    def delete(self, ids: Iterable[str]) -> int:
        """Deletes points by id (writer keys), in batches of 1,024; returns how many existed (after a
        retried batch that had landed, fewer than were removed)."""
        return sum(self._caller.call(DataPlane.Delete, r).deleted for r in delete_batches(self.name, ids))

    def count(self) -> int:
        """Every point of the collection."""
        return self._caller.call(DataPlane.Count, pb.CountRequest(collection=self.name)).count

    def search(
        self,
        vector: Vector,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: FilterLike | None = None,
        principal: PrincipalLike | None = None,
    ) -> list[Hit]:
        """The `k` best points (1 to 1,000) visible to `principal` (a user-bound key always searches
        as its user) that match `filter` (a `Filter`, or a dict as `where()` takes), best first.
        `ef` (1 to 4,096) trades speed for recall in the HNSW segments."""
        request = search_request(self.name, vector, k, ef, filter, principal)
        return [hit_from_proto(h) for h in self._caller.call(DataPlane.Search, request).hits]

    def search_batch(
        self,
        vectors: Iterable[Vector],
        k: int = 10,
        *,
        ef: int | None = None,
        filter: FilterLike | None = None,
        principal: PrincipalLike | None = None,
    ) -> list[list[Hit]]:
        """`search` for each vector, in calls of up to 64 queries; results in order."""
        results: list[list[Hit]] = []
        for request in search_batches(self.name, vectors, k, ef, filter, principal):
            response = self._caller.call(DataPlane.SearchBatch, request)
            results.extend([hit_from_proto(h) for h in r.hits] for r in response.results)
        return results


def _rows(
    ids: Iterable[str],
    vectors: Iterable[Vector],
    texts: Iterable[str] | None,
    metadata: Iterable[Mapping[str, object]] | None,
    sources: Iterable[str | None] | None,
) -> Iterator[Mapping[str, object]]:
    given = {k: v for k, v in (("text", texts), ("metadata", metadata), ("source", sources)) if v is not None}
    try:
        for id, vector, *rest in zip(ids, vectors, *given.values(), strict=True):
            yield {"id": id, "vector": vector, **dict(zip(given, rest))}
    except ValueError as error:
        if "zip()" in str(error):
            raise ValueError("upsert_columns: the columns have different lengths") from None
        raise
