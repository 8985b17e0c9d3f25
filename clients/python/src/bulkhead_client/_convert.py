"""Plain Python values to and from the wire messages, and the batching of upserts, deletes and
search batches within the server's limits. Shared by the synchronous and the asyncio client."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import cast

from . import _limits
from ._filter import Filter, FilterError, where
from ._pb import bulkhead_pb2 as pb
from ._types import (
    AccessGrant,
    Acl,
    ApiKey,
    AuditChainCheck,
    AuditEvent,
    AuditVerification,
    CollectionInfo,
    GrantRole,
    Hit,
    IndexStatus,
    MatchReason,
    MetaInput,
    MetaOutput,
    Metric,
    Point,
    Policy,
    PolicyVersion,
    Principal,
    PrincipalLike,
    Provenance,
    Quotas,
    Role,
    RotationStatus,
    StoredPoint,
    Tenant,
    Vector,
)

FilterLike = Filter | Mapping[str, object]
"""A `Filter`, or a dict of equalities as `where()` takes them."""

_METRICS: dict[str, pb.Metric] = {"cosine": pb.METRIC_COSINE, "dot": pb.METRIC_DOT, "l2": pb.METRIC_L2}
_METRIC_NAMES: dict[int, Metric] = {pb.METRIC_COSINE: "cosine", pb.METRIC_DOT: "dot", pb.METRIC_L2: "l2"}
_ROLES: dict[str, pb.Role] = {"reader": pb.ROLE_READER, "writer": pb.ROLE_WRITER, "tenant-admin": pb.ROLE_TENANT_ADMIN}
_ROLE_NAMES: dict[int, Role] = {pb.ROLE_READER: "reader", pb.ROLE_WRITER: "writer", pb.ROLE_TENANT_ADMIN: "tenant-admin"}
_REASONS: dict[int, MatchReason] = {
    pb.MATCH_REASON_USER: "user",
    pb.MATCH_REASON_GROUP: "group",
    pb.MATCH_REASON_TENANT_WIDE: "tenant-wide",
}
# Numbers read back as int when integral and exactly representable (2**53).
_EXACT_INT = 2**53


def metric_to_proto(metric: Metric | str) -> pb.Metric:
    try:
        return _METRICS[metric]
    except KeyError:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}, not {metric!r}") from None


def role_to_proto(role: Role | str) -> pb.Role:
    try:
        return _ROLES[role]
    except KeyError:
        raise ValueError(f"role must be one of {', '.join(_ROLES)}, not {role!r}") from None


def role_from_proto(role: int) -> Role:
    return _ROLE_NAMES.get(role, "reader")


def grant_role_from_proto(role: int) -> GrantRole:
    """A grant's role for its approver: a role this client does not know reads "unknown"."""
    return _ROLE_NAMES.get(role, "unknown")


def vector_values(vector: Vector) -> list[float]:
    """A vector as a list of floats: lists and tuples as they are, numpy arrays through `tolist()`."""
    values: object = vector.tolist() if hasattr(vector, "tolist") else vector
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"a vector is a sequence of floats or a 1-D numpy array, not {type(vector).__name__}")
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"a vector holds numbers (a 1-D array), not {type(v).__name__}")
        out.append(float(v))
    return out


def meta_to_proto(name: str, value: MetaInput) -> pb.MetaValue:
    """One metadata value: str -> keyword, bool -> flag, int/float -> number, list of str -> keywords."""
    out = pb.MetaValue()
    if isinstance(value, bool):
        out.flag = value
    elif isinstance(value, str):
        out.keyword = value
    elif isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"metadata {name!r}: numbers must be finite")
        if isinstance(value, int) and int(number) != value:
            raise ValueError(f"metadata {name!r}: {value} is not exactly representable as a 64-bit float")
        out.number = number
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        out.keywords.values.extend(sorted(value) if isinstance(value, (set, frozenset)) else value)
    else:
        raise TypeError(
            f"metadata {name!r}: a value is a str, bool, int, float or a list of str, not {type(value).__name__}"
        )
    return out


def meta_from_proto(value: pb.MetaValue) -> MetaOutput:
    kind = value.WhichOneof("kind")
    if kind == "keyword":
        return value.keyword
    if kind == "keywords":
        return list(value.keywords.values)
    if kind == "flag":
        return value.flag
    if kind == "number":
        n = value.number
        return int(n) if n.is_integer() and abs(n) <= _EXACT_INT else n
    return ""


def metadata_from_proto(entries: Mapping[str, pb.MetaValue]) -> dict[str, MetaOutput]:
    return {key: meta_from_proto(value) for key, value in entries.items()}


def principal_to_proto(principal: PrincipalLike) -> pb.Principal:
    """`Principal("alice", ["eng"])`, `("alice", ["eng"])` or `"alice"`."""
    if isinstance(principal, Principal):
        user, groups = principal.user, list(principal.groups)
    elif isinstance(principal, str):
        user, groups = principal, []
    elif isinstance(principal, tuple) and len(principal) == 2 and isinstance(principal[0], str):
        if isinstance(principal[1], str):
            raise TypeError("a principal's groups are a list of names, not a single string")
        user, groups = principal[0], list(principal[1])
    else:
        raise TypeError("a principal is a Principal, a user name, or a (user, groups) tuple")
    for name in [user, *groups]:
        if not isinstance(name, str) or not 1 <= len(name.encode()) <= _limits.MAX_PRINCIPAL_BYTES:
            raise ValueError(f"user and group names are 1 to {_limits.MAX_PRINCIPAL_BYTES} bytes")
    if len(groups) > _limits.MAX_PRINCIPAL_GROUPS:
        raise ValueError(f"a principal has at most {_limits.MAX_PRINCIPAL_GROUPS} groups")
    return pb.Principal(user=user, groups=groups)


def filter_to_proto(filter: FilterLike) -> pb.Filter:
    if isinstance(filter, Filter):
        return filter.to_proto()
    if isinstance(filter, Mapping):
        return where(cast(Mapping[str, "str | bool | int | float | Iterable[str | bool | int | float]"], filter)).to_proto()
    raise FilterError("a filter is built with F.eq, F.in_, ... or where(...), or given as a dict of equalities")


def point_to_proto(point: Point | Mapping[str, object]) -> pb.Point:
    """A `Point`, or a dict with the same keys (id, vector, text, metadata, source, acl)."""
    if isinstance(point, Mapping):
        unknown = set(point) - {"id", "vector", "text", "metadata", "source", "acl"}
        if unknown:
            raise TypeError(f"unknown point keys: {', '.join(sorted(unknown))}")
        point = Point(**cast(dict[str, object], dict(point)))  # type: ignore[arg-type]
    if not isinstance(point, Point):
        raise TypeError(f"upsert takes Point objects or dicts, not {type(point).__name__}")
    if not isinstance(point.id, str):
        raise TypeError(f"a point id is a str, not {type(point.id).__name__}")
    out = pb.Point(id=point.id, vector=vector_values(point.vector), text=point.text)
    for name, value in point.metadata.items():
        if not isinstance(name, str):
            raise TypeError("metadata field names are str")
        out.metadata[name].CopyFrom(meta_to_proto(name, value))
    if point.source is not None:
        out.source_uri = point.source
    if point.acl is not None:
        acl = point.acl if isinstance(point.acl, Acl) else Acl(**cast(dict[str, list[str]], point.acl))
        out.acl.users.extend(acl.users)
        out.acl.groups.extend(acl.groups)
    return out


def point_elements(point: pb.Point) -> int:
    """The elements the server counts for one point of an UpsertRequest (crates/bulkhead-server/src/
    codec.rs): the point, each metadata entry and its value (a keyword list and each of its values),
    the ACL and each of its names. Packed floats and singular strings count nothing."""
    elements = 1
    for value in point.metadata.values():
        elements += 2
        if value.WhichOneof("kind") == "keywords":
            elements += 1 + len(value.keywords.values)
    if point.HasField("acl"):
        elements += 1 + len(point.acl.users) + len(point.acl.groups)
    return elements


def _field_bytes(size: int) -> int:
    """The wire bytes of a length-delimited field of `size` bytes: a one-byte tag, its varint length."""
    length, rest = 1, size
    while rest >= 0x80:
        rest >>= 7
        length += 1
    return 1 + length + size


def upsert_batches(collection: str, points: Iterable[Point | Mapping[str, object]]) -> Iterator[pb.UpsertRequest]:
    """The points as UpsertRequests, each within the server's limits: at most MAX_BATCH_POINTS points,
    at most MAX_BATCH_BYTES encoded bytes (the encoding is never smaller than the library's byte count
    of the same batch, and is half the Upsert message limit) and at most MAX_REQUEST_ELEMENTS elements.
    Points are converted as the batches are consumed, so a generator of points is streamed."""
    base = _field_bytes(len(collection.encode())) + 8
    request = pb.UpsertRequest(collection=collection)
    size, elements = base, 0
    for item in points:
        point = point_to_proto(item)
        point_size = _field_bytes(point.ByteSize())
        point_count = point_elements(point)
        if len(request.points) and (
            len(request.points) >= _limits.MAX_BATCH_POINTS
            or size + point_size > _limits.MAX_BATCH_BYTES
            or elements + point_count > _limits.MAX_REQUEST_ELEMENTS
        ):
            yield request
            request = pb.UpsertRequest(collection=collection)
            size, elements = base, 0
        request.points.append(point)
        size += point_size
        elements += point_count
    if len(request.points):
        yield request


def delete_batches(collection: str, ids: Iterable[str]) -> Iterator[pb.DeleteRequest]:
    """Ids in DeleteRequests of at most MAX_BATCH_POINTS ids (1,024 ids of 256 bytes fit the
    Delete message limit)."""
    request = pb.DeleteRequest(collection=collection)
    if isinstance(ids, str):
        raise TypeError("delete takes a list of ids, not a single string")
    for id in ids:
        if not isinstance(id, str):
            raise TypeError(f"an id is a str, not {type(id).__name__}")
        if len(request.ids) == _limits.MAX_BATCH_POINTS:
            yield request
            request = pb.DeleteRequest(collection=collection)
        request.ids.append(id)
    if len(request.ids):
        yield request


def _check_k_ef(k: int, ef: int | None) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _limits.MAX_K:
        raise ValueError(f"k must be 1 to {_limits.MAX_K}, not {k!r}")
    if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int) or not 1 <= ef <= _limits.MAX_EF):
        raise ValueError(f"ef must be 1 to {_limits.MAX_EF}, not {ef!r}")


def search_request(
    collection: str,
    vector: Vector,
    k: int,
    ef: int | None,
    filter: FilterLike | None,
    principal: PrincipalLike | None,
) -> pb.SearchRequest:
    _check_k_ef(k, ef)
    request = pb.SearchRequest(collection=collection, vector=vector_values(vector), k=k)
    if ef is not None:
        request.ef = ef
    if filter is not None:
        request.filter.CopyFrom(filter_to_proto(filter))
    if principal is not None:
        request.principal.CopyFrom(principal_to_proto(principal))
    return request


def search_batches(
    collection: str,
    vectors: Iterable[Vector],
    k: int,
    ef: int | None,
    filter: FilterLike | None,
    principal: PrincipalLike | None,
) -> Iterator[pb.SearchBatchRequest]:
    """Queries in SearchBatchRequests of at most MAX_SEARCH_BATCH queries and within the SearchBatch
    message limit (each query carries its own copy of the filter)."""
    _check_k_ef(k, ef)
    template = pb.BatchQuery(k=k)
    if ef is not None:
        template.ef = ef
    if filter is not None:
        template.filter.CopyFrom(filter_to_proto(filter))
    if principal is not None:
        template.principal.CopyFrom(principal_to_proto(principal))
    base = _field_bytes(len(collection.encode())) + 8
    request = pb.SearchBatchRequest(collection=collection)
    size = base
    for vector in vectors:
        query = pb.BatchQuery()
        query.CopyFrom(template)
        query.vector.extend(vector_values(vector))
        query_size = _field_bytes(query.ByteSize())
        if len(request.queries) and (
            len(request.queries) >= _limits.MAX_SEARCH_BATCH
            or size + query_size > _limits.MAX_SEARCH_BATCH_MESSAGE_BYTES
        ):
            yield request
            request = pb.SearchBatchRequest(collection=collection)
            size = base
        request.queries.append(query)
        size += query_size
    if len(request.queries):
        yield request


def hit_from_proto(hit: pb.Hit) -> Hit:
    return Hit(
        id=hit.id,
        score=hit.score,
        text=hit.text,
        metadata=metadata_from_proto(hit.metadata),
        source=hit.source_uri if hit.HasField("source_uri") else None,
        provenance=Provenance(
            version=hit.version,
            key_generation=hit.key_generation,
            matched_by=_REASONS.get(hit.matched_by),
            acl_fingerprint=bytes(hit.acl_fingerprint),
            segment_generation=hit.segment_generation if hit.WhichOneof("index") == "segment_generation" else None,
            policy_version=hit.policy_version,
        ),
    )


def stored_point_from_proto(point: pb.StoredPoint) -> StoredPoint:
    return StoredPoint(
        id=point.id,
        vector=list(point.vector),
        text=point.text,
        metadata=metadata_from_proto(point.metadata),
        source=point.source_uri if point.HasField("source_uri") else None,
        version=point.version,
        key_generation=point.key_generation,
    )


def collection_from_proto(collection: pb.Collection) -> CollectionInfo:
    index = None
    if collection.HasField("index"):
        i = collection.index
        index = IndexStatus(i.loaded, i.graph_points, i.delta_points, i.building, i.segments)
    return CollectionInfo(
        name=collection.name,
        dimension=collection.dimension,
        metric=_METRIC_NAMES.get(collection.metric, "cosine"),
        created_ms=collection.created_ms,
        index=index,
    )


def audit_event_from_proto(e: pb.AuditEvent) -> AuditEvent:
    return AuditEvent(
        seq=e.seq,
        time_ms=e.time_ms,
        operation=e.operation,
        outcome=e.outcome,
        key_id=e.key_id if e.HasField("key_id") else None,
        key_generation=e.key_generation if e.HasField("key_generation") else None,
        principal_hash=e.principal_hash if e.HasField("principal_hash") else None,
        collection_hash=e.collection_hash if e.HasField("collection_hash") else None,
        query_hash=e.query_hash if e.HasField("query_hash") else None,
        document_hashes=list(e.document_hashes),
        policy_version=e.policy_version if e.HasField("policy_version") else None,
        note=e.note if e.HasField("note") else None,
    )


def audit_verification_from_proto(r: pb.VerifyAuditResponse) -> AuditVerification:
    return AuditVerification(
        chains=[
            AuditChainCheck(
                tenant_uid=c.tenant_uid,
                events=c.events,
                first_seq=c.first_seq,
                first_broken=c.first_broken if c.HasField("first_broken") else None,
                broken_reason=c.broken_reason if c.HasField("broken_reason") else None,
            )
            for c in r.chains
        ],
        chains_registered=r.chains_registered if r.HasField("chains_registered") else None,
        chains_expected=r.chains_expected if r.HasField("chains_expected") else None,
    )


def tenant_from_proto(t: pb.Tenant) -> Tenant:
    return Tenant(name=t.name, uid=t.uid, created_ms=t.created_ms, placement=t.placement)


def api_key_from_proto(k: pb.ApiKey) -> ApiKey:
    return ApiKey(
        key_id=k.key_id,
        role=role_from_proto(k.role),
        label=k.label,
        created_ms=k.created_ms,
        expires_ms=k.expires_ms if k.HasField("expires_ms") else None,
        revoked=k.revoked,
        locked=k.locked,
        on_behalf_of=k.on_behalf_of,
        user=Principal(k.user.user, k.user.groups) if k.HasField("user") else None,
        grant_id=k.grant_id if k.HasField("grant_id") else None,
    )


def access_grant_from_proto(g: pb.AccessGrant) -> AccessGrant:
    return AccessGrant(
        grant_id=g.grant_id,
        tenant=g.tenant,
        state=g.state,
        reason=g.reason,
        requested_ms=g.requested_ms,
        expires_ms=g.expires_ms,
        approved_ms=g.approved_ms if g.HasField("approved_ms") else None,
        key_id=g.key_id if g.HasField("key_id") else None,
        revoked_ms=g.revoked_ms if g.HasField("revoked_ms") else None,
        role=grant_role_from_proto(g.role),
        tenant_imported_ms=g.tenant_imported_ms if g.HasField("tenant_imported_ms") else None,
        operator_revoked_keys_ms=g.operator_revoked_keys_ms if g.HasField("operator_revoked_keys_ms") else None,
    )


def rotation_from_proto(s: pb.RotationStatus) -> RotationStatus:
    return RotationStatus(running=s.running, key_generation=s.key_generation, done=s.done, total=s.total)


_QUOTA_FIELDS = (
    "max_vectors",
    "max_stored_bytes",
    "max_collections",
    "requests_per_second",
    "write_bytes_per_second",
    "max_concurrent_searches",
    "burst_multiple",
    "max_denials",
)


def policy_to_proto(policy: Policy) -> pb.TenantPolicy:
    out = pb.TenantPolicy()
    for role, operation in policy.denied:
        out.denied.append(pb.DeniedOperation(role=role_to_proto(role), operation=operation))
    for name in ("max_k", "max_ef", "max_filter_conditions"):
        value = getattr(policy, name)
        if value is not None:
            setattr(out, name, value)
    out.source_uri_prefixes.extend(policy.source_uri_prefixes)
    out.quotas.SetInParent()
    for name in _QUOTA_FIELDS:
        value = getattr(policy.quotas, name)
        if value is not None:
            setattr(out.quotas, name, value)
    return out


def policy_from_proto(r: pb.PolicyResponse) -> PolicyVersion:
    p = r.policy
    quotas = Quotas(**{name: getattr(p.quotas, name) if p.quotas.HasField(name) else None for name in _QUOTA_FIELDS})
    policy = Policy(
        denied=tuple((role_from_proto(d.role), d.operation) for d in p.denied),
        max_k=p.max_k if p.HasField("max_k") else None,
        max_ef=p.max_ef if p.HasField("max_ef") else None,
        max_filter_conditions=p.max_filter_conditions if p.HasField("max_filter_conditions") else None,
        source_uri_prefixes=tuple(p.source_uri_prefixes),
        quotas=quotas,
    )
    return PolicyVersion(version=r.version, changed_ms=r.changed_ms, policy=policy)


def expires_to_ms(expires: object) -> int | None:
    """An expiry as milliseconds since the epoch: a timezone-aware datetime, or an int of ms."""
    import datetime

    if expires is None:
        return None
    if isinstance(expires, datetime.datetime):
        if expires.tzinfo is None:
            raise ValueError("expires must be a timezone-aware datetime (e.g. datetime.now(timezone.utc) + ...)")
        return int(expires.timestamp() * 1000)
    if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0:
        return expires
    raise TypeError("expires is a timezone-aware datetime or milliseconds since the Unix epoch")


def fill_key_options(
    request: pb.IssueApiKeyRequest | pb.IssueOwnApiKeyRequest,
    expires: object,
    on_behalf_of: bool,
    user: PrincipalLike | None,
) -> None:
    """Sets a key request's expiry and binding (the admin plane's and the tenant's own alike)."""
    expires_ms = expires_to_ms(expires)
    if expires_ms is not None:
        request.expires_ms = expires_ms
    if on_behalf_of and user is not None:
        raise ValueError("a key is either on-behalf-of or bound to a user, not both")
    if on_behalf_of:
        request.on_behalf_of = True
    elif user is not None:
        principal = principal_to_proto(user)
        request.user.user = principal.user
        request.user.groups.extend(principal.groups)
