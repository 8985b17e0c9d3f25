"""bulkhead-client: the Python client of Bulkhead, the tenant-partitioned encrypted vector database.

    from bulkhead_client import Client, Point, Acl, where

    with Client("http://127.0.0.1:7450", api_key) as client:
        docs = client.collection("docs")
        docs.upsert([Point("a", [1.0, 0.0, 0.0], text="hello", metadata={"lang": "en"}, acl=Acl(users=["alice"]))])
        hits = docs.search([1.0, 0.0, 0.0], k=5, filter=where(lang="en"), principal=("alice", ["eng"]))

`Client` and `AsyncClient` (asyncio) are a tenant's data plane; `AdminClient` is the operator's.
Filters: `F` and `where` (valid by construction). Errors: `BulkheadError` and a subclass per status.
"""

from ._admin import AdminClient
from ._aio import AsyncClient, AsyncCollection
from ._client import Client, Collection
from ._errors import (
    AlreadyExists,
    BulkheadError,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from ._filter import F, Filter, FilterError, where
from ._transport import RetryPolicy
from ._types import (
    AccessGrant,
    Acl,
    ActivatedGrant,
    ApiKey,
    AuditChainCheck,
    AuditEvent,
    AuditVerification,
    CollectionInfo,
    Hit,
    IndexStatus,
    IssuedKey,
    MatchReason,
    Metric,
    MoveStatus,
    Point,
    Policy,
    PolicyVersion,
    Principal,
    Provenance,
    Quotas,
    GrantRole,
    Role,
    RotationStatus,
    StoredPoint,
    Tenant,
    TierMove,
)

__version__ = "0.1.0"

__all__ = [
    "AccessGrant",
    "ActivatedGrant",
    "Acl",
    "AdminClient",
    "AlreadyExists",
    "ApiKey",
    "AsyncClient",
    "AsyncCollection",
    "AuditChainCheck",
    "AuditEvent",
    "AuditVerification",
    "BulkheadError",
    "Cancelled",
    "Client",
    "Collection",
    "CollectionInfo",
    "DeadlineExceeded",
    "F",
    "FailedPrecondition",
    "Filter",
    "FilterError",
    "Hit",
    "IndexStatus",
    "Internal",
    "InvalidArgument",
    "IssuedKey",
    "MatchReason",
    "Metric",
    "MoveStatus",
    "NotFound",
    "PermissionDenied",
    "Point",
    "Policy",
    "PolicyVersion",
    "Principal",
    "Provenance",
    "Quotas",
    "ResourceExhausted",
    "RetryPolicy",
    "GrantRole",
    "Role",
    "RotationStatus",
    "StoredPoint",
    "Tenant",
    "TierMove",
    "Unauthenticated",
    "Unavailable",
    "where",
]
