"""Connections, credentials, the RPC table and retries: what the synchronous and asyncio clients share.

Every call carries `authorization: Bearer <credential>` metadata, added here; the credential lives in
a `_Secret` whose repr is `<redacted>`, so it never shows in a client's repr or in an exception.

Retries (`RetryPolicy`): a call refused with RESOURCE_EXHAUSTED that the server calls temporary ("retry
later": a tenant's request-rate, write-rate or concurrency quota, the server's request memory) is
retried whatever the call, since the server refuses those before doing anything. A call that failed
with UNAVAILABLE (the server was unreachable, or the connection broke mid-call, when the call may or
may not have landed) is retried only if repeating it is harmless: reads, searches, upserts (by id,
so a repeated batch writes the same points again), deletes (by id; the count may then be short),
revocations and status polls. Creating or dropping a collection, creating or deleting a tenant,
issuing a key, starting a rotation and setting a policy are not retried on UNAVAILABLE. Waits grow
exponentially with jitter, up to `max_attempts` calls in all.
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import Message

from . import _limits
from ._errors import BulkheadError, ResourceExhausted, Unavailable
from ._pb import bulkhead_pb2 as pb

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

TlsOption = bool | str | os.PathLike[str] | bytes | None
"""TLS: None (by the URL's scheme), True (system roots), a CA certificate's path, or its PEM bytes."""


class _Secret:
    """A credential: no repr, no str, no equality; `reveal()` only where the header is made."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("the credential must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("credentials are not picklable")


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is retried (see the module's docstring for which calls are): at most `max_attempts`
    attempts in all, waiting `initial_backoff` seconds before the second, times `multiplier` before each
    later one, capped at `max_backoff`, each wait drawn between half and all of that (jitter).
    `RetryPolicy(max_attempts=1)` turns retries off."""

    max_attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts is at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs are >= 0 and the multiplier >= 1")

    def backoff(self, attempt: int) -> float:
        """The wait after the `attempt`-th failed attempt (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def should_retry(self, error: BulkheadError, method: Method[Req, Resp], attempt: int) -> bool:
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, ResourceExhausted):
            return error.retryable
        return isinstance(error, Unavailable) and method.idempotent


@dataclass(frozen=True)
class Method(Generic[Req, Resp]):
    """One RPC: its HTTP/2 path, message types, and whether repeating it is harmless."""

    path: str
    request: type[Req]
    response: type[Resp]
    idempotent: bool


def _d(name: str, req: type[Req], resp: type[Resp], idempotent: bool) -> Method[Req, Resp]:
    return Method(f"/bulkhead.v1.DataPlane/{name}", req, resp, idempotent)


def _a(name: str, req: type[Req], resp: type[Resp], idempotent: bool) -> Method[Req, Resp]:
    return Method(f"/bulkhead.v1.Admin/{name}", req, resp, idempotent)


class DataPlane:
    """Every DataPlane RPC (tests/test_stubs.py checks this table against the service descriptor)."""

    CreateCollection = _d("CreateCollection", pb.CreateCollectionRequest, pb.Collection, False)
    ListCollections = _d("ListCollections", pb.ListCollectionsRequest, pb.ListCollectionsResponse, True)
    DescribeCollection = _d("DescribeCollection", pb.DescribeCollectionRequest, pb.Collection, True)
    DropCollection = _d("DropCollection", pb.DropCollectionRequest, pb.DropCollectionResponse, False)
    Upsert = _d("Upsert", pb.UpsertRequest, pb.UpsertResponse, True)
    Get = _d("Get", pb.GetRequest, pb.GetResponse, True)
    Delete = _d("Delete", pb.DeleteRequest, pb.DeleteResponse, True)
    Count = _d("Count", pb.CountRequest, pb.CountResponse, True)
    Search = _d("Search", pb.SearchRequest, pb.SearchResponse, True)
    SearchBatch = _d("SearchBatch", pb.SearchBatchRequest, pb.SearchBatchResponse, True)
    ExportAudit = _d("ExportAudit", pb.ExportOwnAuditRequest, pb.ExportAuditResponse, True)
    IssueOwnApiKey = _d("IssueOwnApiKey", pb.IssueOwnApiKeyRequest, pb.IssueApiKeyResponse, False)
    ListOwnApiKeys = _d("ListOwnApiKeys", pb.ListOwnApiKeysRequest, pb.ListApiKeysResponse, True)
    RevokeOwnApiKey = _d("RevokeOwnApiKey", pb.RevokeOwnApiKeyRequest, pb.RevokeApiKeyResponse, True)


class Admin:
    """Every Admin RPC (tests/test_stubs.py checks this table against the service descriptor)."""

    CreateTenant = _a("CreateTenant", pb.CreateTenantRequest, pb.Tenant, False)
    ListTenants = _a("ListTenants", pb.ListTenantsRequest, pb.ListTenantsResponse, True)
    DescribeTenant = _a("DescribeTenant", pb.DescribeTenantRequest, pb.Tenant, True)
    DeleteTenant = _a("DeleteTenant", pb.DeleteTenantRequest, pb.DeleteTenantResponse, False)
    MoveTenant = _a("MoveTenant", pb.MoveTenantRequest, pb.MoveTenantResponse, False)
    GetMoveStatus = _a("GetMoveStatus", pb.GetMoveStatusRequest, pb.MoveStatus, True)
    IssueApiKey = _a("IssueApiKey", pb.IssueApiKeyRequest, pb.IssueApiKeyResponse, False)
    ListApiKeys = _a("ListApiKeys", pb.ListApiKeysRequest, pb.ListApiKeysResponse, True)
    RevokeApiKey = _a("RevokeApiKey", pb.RevokeApiKeyRequest, pb.RevokeApiKeyResponse, True)
    UnlockApiKey = _a("UnlockApiKey", pb.UnlockApiKeyRequest, pb.UnlockApiKeyResponse, True)
    RevokeAllApiKeys = _a("RevokeAllApiKeys", pb.RevokeAllApiKeysRequest, pb.RevokeAllApiKeysResponse, True)
    RotateTenantKey = _a("RotateTenantKey", pb.RotateTenantKeyRequest, pb.RotationStatus, False)
    GetRotationStatus = _a("GetRotationStatus", pb.GetRotationStatusRequest, pb.RotationStatus, True)
    RotateMasterKey = _a("RotateMasterKey", pb.RotateMasterKeyRequest, pb.RotateMasterKeyResponse, False)
    ExportAudit = _a("ExportAudit", pb.ExportAuditRequest, pb.ExportAuditResponse, True)
    VerifyAudit = _a("VerifyAudit", pb.VerifyAuditRequest, pb.VerifyAuditResponse, True)
    GetPolicy = _a("GetPolicy", pb.GetPolicyRequest, pb.PolicyResponse, True)
    SetPolicy = _a("SetPolicy", pb.SetPolicyRequest, pb.PolicyResponse, False)
    # Break-glass grants (ApproveAccessGrant takes the approver token, not the admin token).
    RequestAccessGrant = _a("RequestAccessGrant", pb.RequestAccessGrantRequest, pb.AccessGrant, False)
    ApproveAccessGrant = _a("ApproveAccessGrant", pb.ApproveAccessGrantRequest, pb.AccessGrant, False)
    ActivateAccessGrant = _a(
        "ActivateAccessGrant", pb.ActivateAccessGrantRequest, pb.ActivateAccessGrantResponse, False
    )
    ListAccessGrants = _a("ListAccessGrants", pb.ListAccessGrantsRequest, pb.ListAccessGrantsResponse, True)
    RevokeAccessGrant = _a("RevokeAccessGrant", pb.RevokeAccessGrantRequest, pb.AccessGrant, True)
    # Streaming calls (server-streaming export, client-streaming import): listed so that the table
    # names every RPC; the client has no method for them yet (use `bulkhead admin export-tenant`
    # and `import-tenant`).
    ExportTenant = _a("ExportTenant", pb.ExportTenantRequest, pb.ArchiveChunk, True)
    ImportTenant = _a("ImportTenant", pb.ImportTenantRequest, pb.ImportTenantResponse, False)


@dataclass(frozen=True)
class Target:
    """Where and how to connect: the `host:port` gRPC target, TLS credentials or None for plaintext,
    and the channel options."""

    address: str
    credentials: grpc.ChannelCredentials | None
    options: list[tuple[str, int | str]]
    url: str


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target(url: str, tls: TlsOption, tls_domain: str | None, insecure: bool) -> Target:
    """`http://host:port` (plaintext, loopback only unless `insecure`), `https://host:port` (TLS), or
    a bare `host:port` (plaintext, unless `tls` is given). The port defaults to 7450."""
    if "://" not in url:
        url = ("https://" if tls not in (None, False) else "http://") + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("the server URL is http://host:port or https://host:port")
    host = parts.hostname
    port = parts.port or 7450
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options: list[tuple[str, int | str]] = [
        # Upserts and answers up to the server's message limit (gRPC's default receive limit is 4 MiB).
        ("grpc.max_send_message_length", _limits.MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", _limits.MAX_MESSAGE_BYTES),
    ]
    credentials = None
    if parts.scheme == "https":
        if tls is None or tls is True:
            root = None
        elif isinstance(tls, bytes):
            root = tls
        elif isinstance(tls, (str, os.PathLike)):
            root = Path(tls).read_bytes()
        else:
            raise ValueError("tls is True, a CA certificate's path or its PEM bytes")
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        if tls_domain:
            options.append(("grpc.ssl_target_name_override", tls_domain))
    else:
        if tls not in (None, False):
            raise ValueError("a TLS certificate was given for an http:// URL: use https://")
        if not insecure and not _is_loopback(host):
            raise ValueError(
                f"{host} is not a loopback address and http:// would send the credential in plaintext: "
                "use https:// (the server's --tls-cert), or pass insecure=True"
            )
    return Target(address=address, credentials=credentials, options=options, url=f"{parts.scheme}://{address}")


def bearer(secret: _Secret) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret.reveal()}"),)
