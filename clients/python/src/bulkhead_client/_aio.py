"""The asyncio data-plane client: `AsyncClient(url, api_key)` and its `AsyncCollection` handles, the
same methods as the synchronous `Client` as coroutines (grpc.aio; one event loop per client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType

import grpc
from google.protobuf.message import Message

from ._convert import (
    FilterLike,
    audit_event_from_proto,
    collection_from_proto,
    delete_batches,
    hit_from_proto,
    metric_to_proto,
    principal_to_proto,
    search_batches,
    search_request,
    stored_point_from_proto,
    upsert_batches,
)
from ._errors import BulkheadError, from_rpc_error
from ._pb import bulkhead_pb2 as pb
from ._client import _rows
from ._transport import DataPlane, Method, Req, Resp, RetryPolicy, TlsOption, _Secret, bearer, target
from ._types import AuditEvent, CollectionInfo, Hit, Metric, Point, PrincipalLike, StoredPoint, Vector

__all__ = ["AsyncClient", "AsyncCollection"]


class _AsyncCaller:
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
            self._channel = grpc.aio.insecure_channel(where.address, options=where.options)
        else:
            self._channel = grpc.aio.secure_channel(where.address, where.credentials, options=where.options)
        self.timeout = timeout
        self.retry = retry
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Message, Message]] = {}

    async def call(self, method: Method[Req, Resp], request: Req, timeout: float | None = None) -> Resp:
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
                response = await stub(request, timeout=timeout or self.timeout, metadata=bearer(self._secret))
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error)
            else:
                assert isinstance(response, method.response)
                return response
            if not self.retry.should_retry(error, method, attempt):
                raise error
            await asyncio.sleep(self.retry.backoff(attempt))

    async def close(self) -> None:
        await self._channel.close(None)


class AsyncClient:
    """A tenant's data plane from asyncio: the arguments and methods of `Client`, each method a
    coroutine (`export_audit` an async iterator). Make it inside the event loop that uses it.

        async with AsyncClient("http://127.0.0.1:7450", api_key) as client:
            docs = client.collection("docs")
            await docs.upsert([Point("a", [1.0, 0.0, 0.0], text="hello", metadata={"lang": "en"})])
            hits = await docs.search([1.0, 0.0, 0.0], k=5, filter=where(lang="en"), principal="alice")
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
        self._caller = _AsyncCaller(
            url, api_key, tls=tls, tls_domain=tls_domain, insecure=insecure, timeout=timeout, retry=retry
        )

    def __repr__(self) -> str:
        return f"AsyncClient({self._caller.url!r}, api_key=<redacted>)"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection; calls in flight are cancelled."""
        await self._caller.close()

    def collection(self, name: str) -> AsyncCollection:
        """A handle on the collection `name` (nothing is called until a method is)."""
        return AsyncCollection(self._caller, name)

    async def create_collection(self, name: str, dimension: int, metric: Metric = "cosine") -> AsyncCollection:
        """Creates a collection (tenant-admin keys) and returns its handle. Not retried on
        UNAVAILABLE (it may have been created); AlreadyExists if it exists."""
        collection = self.collection(name)
        await collection.create(dimension, metric)
        return collection

    async def list_collections(self) -> list[CollectionInfo]:
        """The tenant's collections."""
        response = await self._caller.call(DataPlane.ListCollections, pb.ListCollectionsRequest())
        return [collection_from_proto(c) for c in response.collections]

    async def export_audit(self, since_ms: int = 0, from_seq: int = 0) -> AsyncIterator[AuditEvent]:
        """The tenant's own audit events (tenant-admin keys), oldest first, fetched a page at a time."""
        next_seq: int | None = from_seq
        while next_seq is not None:
            page = await self._caller.call(
                DataPlane.ExportAudit, pb.ExportOwnAuditRequest(since_ms=since_ms, from_seq=next_seq)
            )
            for event in page.events:
                yield audit_event_from_proto(event)
            next_seq = page.next_seq if page.HasField("next_seq") else None


class AsyncCollection:
    """One collection of the client's tenant. Its methods call the server; see each for its role."""

    def __init__(self, caller: _AsyncCaller, name: str) -> None:
        self._caller = caller
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncCollection({self.name!r})"

    async def create(self, dimension: int, metric: Metric = "cosine") -> CollectionInfo:
        """Creates the collection (tenant-admin keys): `dimension` 1 to 4,096, `metric` cosine, dot or
        l2. Not retried on UNAVAILABLE (it may have landed); AlreadyExists if it exists."""
        request = pb.CreateCollectionRequest(name=self.name, dimension=dimension, metric=metric_to_proto(metric))
        return collection_from_proto(await self._caller.call(DataPlane.CreateCollection, request))

    async def describe(self) -> CollectionInfo:
        """Its dimension and metric, and for a service key its index status (`index.fully_indexed`)."""
        return collection_from_proto(
            await self._caller.call(DataPlane.DescribeCollection, pb.DescribeCollectionRequest(name=self.name))
        )

    async def drop(self) -> None:
        """Drops the collection and its points (tenant-admin keys). Not retried on UNAVAILABLE."""
        await self._caller.call(DataPlane.DropCollection, pb.DropCollectionRequest(name=self.name))

    async def upsert(self, points: Iterable[Point | Mapping[str, object]]) -> list[int]:
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
                response = await self._caller.call(DataPlane.Upsert, request)
            except BulkheadError as error:
                error.points_written = len(versions)
                raise
            versions.extend(response.versions)
        return versions

    async def upsert_columns(
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
        return await self.upsert(_rows(ids, vectors, texts, metadata, sources))

    async def get(self, id: str, *, with_vector: bool = False, principal: PrincipalLike | None = None) -> StoredPoint:
        """A point by id; NotFound if it does not exist or `principal` may not read it."""
        request = pb.GetRequest(collection=self.name, id=id, with_vector=with_vector)
        if principal is not None:
            request.principal.CopyFrom(principal_to_proto(principal))
        return stored_point_from_proto((await self._caller.call(DataPlane.Get, request)).point)

    async def delete(self, ids: Iterable[str]) -> int:
        """Deletes points by id (writer keys), in batches of 1,024; returns how many existed (after a
        retried batch that had landed, fewer than were removed)."""
        deleted = 0
        for request in delete_batches(self.name, ids):
            deleted += (await self._caller.call(DataPlane.Delete, request)).deleted
        return deleted

    async def count(self) -> int:
        """Every point of the collection."""
        return (await self._caller.call(DataPlane.Count, pb.CountRequest(collection=self.name))).count

    async def search(
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
        return [hit_from_proto(h) for h in (await self._caller.call(DataPlane.Search, request)).hits]

    async def search_batch(
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
            response = await self._caller.call(DataPlane.SearchBatch, request)
            results.extend([hit_from_proto(h) for h in r.hits] for r in response.results)
        return results
