"""The plain Python values the client takes and returns (dataclasses; no protobuf in sight)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, Union

Metric = Literal["cosine", "dot", "l2"]
"""A collection's distance: cosine similarity, inner product or Euclidean distance."""

Role = Literal["reader", "writer", "tenant-admin"]
GrantRole = Literal["reader", "writer", "tenant-admin", "unknown"]
"""A grant's role as shown to its approver: "unknown" for a role this client does not know (from a
newer server), never the least role, so that an approval is not given for a role misread."""
"""What an API key may do: read and search; also upsert and delete; also create and drop collections."""

MatchReason = Literal["user", "group", "tenant-wide"]
"""Why a principal may see a hit: its ACL names the user, one of the groups, or it has no ACL."""

MetaScalar = Union[str, bool, int, float]
MetaInput = Union[MetaScalar, Sequence[str]]
"""A metadata value: a keyword (str), a flag (bool), a number (int or float, kept as a 64-bit float)
or a list of keywords."""
MetaOutput = Union[str, bool, int, float, list[str]]
"""A metadata value as read back: numbers with an integral value come back as int."""


class ArrayLike(Protocol):
    """A one-dimensional numpy array (or anything with `tolist()` giving a list of floats)."""

    def tolist(self) -> object: ...


Vector = Union[Sequence[float], ArrayLike]
"""A vector: a list or tuple of floats, or a one-dimensional numpy array."""


@dataclass(frozen=True)
class Principal:
    """The end user a search or get acts for (on-behalf-of), with the groups the user belongs to.
    Anywhere a principal is taken, `"alice"` and `("alice", ["eng"])` work too."""

    user: str
    groups: tuple[str, ...] = ()

    def __init__(self, user: str, groups: Iterable[str] = ()) -> None:
        if isinstance(groups, str):
            raise TypeError("groups is a list of group names, not a single string")
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "groups", tuple(groups))


PrincipalLike = Union[Principal, str, tuple[str, Iterable[str]]]


@dataclass(frozen=True)
class Acl:
    """Who may read a document: the named users and the members of the named groups. A point
    without an ACL is tenant-wide (every principal of the tenant may read it)."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __init__(self, users: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
        if isinstance(users, str) or isinstance(groups, str):
            raise TypeError("users and groups are lists of names, not single strings")
        object.__setattr__(self, "users", tuple(users))
        object.__setattr__(self, "groups", tuple(groups))


@dataclass
class Point:
    """A point to upsert: an id (1 to 256 bytes), a vector of the collection's dimension, and
    optionally its text, metadata, source URI and ACL."""

    id: str
    vector: Vector
    text: str = ""
    metadata: Mapping[str, MetaInput] = field(default_factory=dict)
    source: str | None = None
    acl: Acl | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a hit came from: the stored version (the tenant's write sequence number), the data-key
    generation that sealed it, why the principal may see it (None without a principal), a per-tenant
    keyed fingerprint of its ACL, which part of the index held it (`segment_generation` is None for
    the exact-scan delta), and the tenant policy version the search ran under."""

    version: int
    key_generation: int
    matched_by: MatchReason | None
    acl_fingerprint: bytes
    segment_generation: int | None
    policy_version: int


@dataclass(frozen=True)
class Hit:
    """One search result, best first: the score is the cosine similarity, inner product or Euclidean
    distance, by the collection's metric."""

    id: str
    score: float
    text: str
    metadata: dict[str, MetaOutput]
    source: str | None
    provenance: Provenance


@dataclass(frozen=True)
class StoredPoint:
    """A point read by id; `vector` is empty unless asked for."""

    id: str
    vector: list[float]
    text: str
    metadata: dict[str, MetaOutput]
    source: str | None
    version: int
    key_generation: int


@dataclass(frozen=True)
class IndexStatus:
    """How a collection is searched right now (a service key's `describe()` only): `fully_indexed`
    once every point is in an HNSW segment and no background job runs."""

    loaded: bool
    graph_points: int
    delta_points: int
    building: bool
    segments: int

    @property
    def fully_indexed(self) -> bool:
        return self.loaded and self.delta_points == 0 and not self.building


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dimension: int
    metric: Metric
    created_ms: int
    index: IndexStatus | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One event of a tenant's audit chain; tenant data appears only as keyed hashes."""

    seq: int
    time_ms: int
    operation: str
    outcome: str
    key_id: str | None
    key_generation: int | None
    principal_hash: str | None
    collection_hash: str | None
    query_hash: str | None
    document_hashes: list[str]
    policy_version: int | None
    note: str | None


# -- the admin plane ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    name: str
    uid: str
    """A short opaque label of the tenant's random uid (as the server's logs show it)."""
    created_ms: int
    placement: str


@dataclass(frozen=True)
class TierMove:
    """What a tier move did: the tier the tenant is in now, whether it moved (False: it was there
    already), and how many records were copied in how many rounds."""

    tier: str
    moved: bool
    copied: int
    rounds: int


@dataclass(frozen=True)
class MoveStatus:
    """How far the tier move of a tenant that runs now got. `running` is False when none runs (the
    rest is then empty); `switched` once the tenant serves from its new tier."""

    running: bool
    from_tier: str
    to_tier: str
    copied: int
    rounds: int
    switched: bool


@dataclass(frozen=True, repr=False)
class IssuedKey:
    """A newly issued API key. `token` is the whole key, shown once: it is never in the repr."""

    key_id: str
    token: str

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, token=<redacted>)"


@dataclass(frozen=True)
class ApiKey:
    """An API key as listed (never its secret)."""

    key_id: str
    role: Role
    label: str
    created_ms: int
    expires_ms: int | None
    revoked: bool
    locked: bool
    on_behalf_of: bool
    user: Principal | None
    """The user a user-bound key always acts as; None for service keys."""
    grant_id: str | None = None
    """The break-glass grant this reader key was issued for; None for ordinary keys."""


@dataclass(frozen=True)
class AccessGrant:
    """A break-glass access grant: `state` is pending, approved, active, expired or revoked; `key_id`
    is the key (of the grant's `role`) its activation issued. `reason` is left out of the repr.

    What an approver weighs the grant against, from the tenant as it stands now: `tenant_imported_ms`,
    when the tenant was last imported from an archive (a copy under a new name or a restore), and
    `operator_revoked_keys_ms`, when the operator last revoked one of its keys; None when never (or
    not recorded, for an older tenant)."""

    grant_id: str
    tenant: str
    state: str
    reason: str = field(repr=False)
    requested_ms: int
    expires_ms: int
    approved_ms: int | None
    key_id: str | None
    revoked_ms: int | None
    role: GrantRole = "reader"
    tenant_imported_ms: int | None = None
    operator_revoked_keys_ms: int | None = None


@dataclass(frozen=True)
class ActivatedGrant:
    """An activated grant and its reader key (the token is shown once; left out of the repr)."""

    grant: AccessGrant
    token: str = field(repr=False)
    key_id: str


@dataclass(frozen=True)
class RotationStatus:
    """A tenant-key rotation: `done` of `total` records re-sealed; `running` is False once it is
    finished (or when none was started)."""

    running: bool
    key_generation: int
    done: int
    total: int


@dataclass(frozen=True)
class Quotas:
    """A tenant's resource quotas; None leaves the server's default (docs/LIMITS.md)."""

    max_vectors: int | None = None
    max_stored_bytes: int | None = None
    max_collections: int | None = None
    requests_per_second: int | None = None
    write_bytes_per_second: int | None = None
    max_concurrent_searches: int | None = None
    burst_multiple: int | None = None
    max_denials: int | None = None


@dataclass(frozen=True)
class Policy:
    """What a tenant's keys may do on top of their roles; limits only tighten the server's.
    `denied` lists (role, operation) pairs, operations as the audit trail names them."""

    denied: tuple[tuple[Role, str], ...] = ()
    max_k: int | None = None
    max_ef: int | None = None
    max_filter_conditions: int | None = None
    source_uri_prefixes: tuple[str, ...] = ()
    quotas: Quotas = Quotas()


@dataclass(frozen=True)
class PolicyVersion:
    """A tenant's policy in force, its version (for `set_policy`'s `expected_version`) and when it
    last changed."""

    version: int
    changed_ms: int
    policy: Policy


@dataclass(frozen=True)
class AuditChainCheck:
    tenant_uid: str
    events: int
    first_seq: int
    first_broken: int | None
    broken_reason: str | None

    @property
    def intact(self) -> bool:
        return self.first_broken is None


@dataclass(frozen=True)
class AuditVerification:
    chains: list[AuditChainCheck]
    chains_registered: int | None
    chains_expected: int | None

    @property
    def intact(self) -> bool:
        """Every chain holds and none is missing."""
        return all(c.intact for c in self.chains) and self.chains_registered == self.chains_expected
