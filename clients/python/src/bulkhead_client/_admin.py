"""The operator's admin plane: `AdminClient(url, admin_token)` for tenants, API keys, key rotation,
policies and audit chains (synchronous; the admin token is the server's, never a tenant's key)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType

from ._client import _Caller
from ._convert import (
    access_grant_from_proto,
    api_key_from_proto,
    audit_event_from_proto,
    audit_verification_from_proto,
    fill_key_options,
    policy_from_proto,
    policy_to_proto,
    role_to_proto,
    rotation_from_proto,
    tenant_from_proto,
)
from ._pb import bulkhead_pb2 as pb
from ._transport import Admin, RetryPolicy, TlsOption
from ._types import (
    AccessGrant,
    ActivatedGrant,
    ApiKey,
    AuditEvent,
    AuditVerification,
    IssuedKey,
    MoveStatus,
    Policy,
    PolicyVersion,
    PrincipalLike,
    Role,
    RotationStatus,
    Tenant,
    TierMove,
)

__all__ = ["AdminClient"]


class AdminClient:
    """The admin plane, with the operator's admin token (`--admin-token-file`, `BULKHEAD_ADMIN_TOKEN`,
    or the development token in the data directory). Connection arguments as `Client`'s. Tenant keys
    get PermissionDenied here."""

    def __init__(
        self,
        url: str,
        admin_token: str,
        *,
        tls: TlsOption = None,
        tls_domain: str | None = None,
        insecure: bool = False,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._caller = _Caller(
            url, admin_token, tls=tls, tls_domain=tls_domain, insecure=insecure, timeout=timeout, retry=retry
        )
        # How to connect again, with the approver token, for `approve_access_grant`.
        self._connect = (url, tls, tls_domain, insecure, timeout, retry)

    def __repr__(self) -> str:
        return f"AdminClient({self._caller.url!r}, admin_token=<redacted>)"

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._caller.close()

    # -- tenants ----------------------------------------------------------------------------------

    def create_tenant(self, name: str, tier: str | None = None) -> Tenant:
        """Creates a tenant (1 to 64 bytes of lower-case letters, digits, - and _) in `tier`:
        "partitioned" (its own column family), "shared" (one column family for many small
        tenants) or "dedicated" (a RocksDB instance of its own); None: the server's default. Not retried on UNAVAILABLE; AlreadyExists if it
        exists."""
        request = pb.CreateTenantRequest(name=name, tier=tier or "")
        return tenant_from_proto(self._caller.call(Admin.CreateTenant, request))

    def list_tenants(self) -> list[Tenant]:
        return [tenant_from_proto(t) for t in self._caller.call(Admin.ListTenants, pb.ListTenantsRequest()).tenants]

    def describe_tenant(self, name: str) -> Tenant:
        return tenant_from_proto(self._caller.call(Admin.DescribeTenant, pb.DescribeTenantRequest(name=name)))

    def move_tenant(self, name: str, tier: str) -> TierMove:
        """Moves a tenant to another tier ("partitioned", "shared" or "dedicated") online: it keeps
        serving while its records are copied; its writes wait only for the switch. Returns when the
        switch is done (`move_status` shows the progress meanwhile, from another thread or process).
        Not retried on UNAVAILABLE (a second move would find it moved, or a move running)."""
        done = self._caller.call(Admin.MoveTenant, pb.MoveTenantRequest(tenant=name, tier=tier))
        return TierMove(tier=done.tier, moved=done.moved, copied=done.copied, rounds=done.rounds)

    def move_status(self, name: str) -> MoveStatus:
        """How far the tier move of the tenant that runs now got (`running` False: none runs)."""
        s = self._caller.call(Admin.GetMoveStatus, pb.GetMoveStatusRequest(tenant=name))
        return MoveStatus(
            running=s.running,
            from_tier=s.from_tier,
            to_tier=s.to_tier,
            copied=s.copied,
            rounds=s.rounds,
            switched=s.switched,
        )

    def delete_tenant(self, name: str) -> int:
        """Crypto-shreds a tenant: its keys and API keys are destroyed first, then its data.
        Irreversible; not retried on UNAVAILABLE. Returns how many API keys went with it."""
        return self._caller.call(Admin.DeleteTenant, pb.DeleteTenantRequest(name=name)).revoked_keys

    # -- API keys ---------------------------------------------------------------------------------

    def issue_key(
        self,
        tenant: str,
        role: Role,
        *,
        label: str = "",
        expires: object = None,
        on_behalf_of: bool = False,
        user: PrincipalLike | None = None,
    ) -> IssuedKey:
        """Issues an API key. `role`: reader, writer or tenant-admin. `expires`: a timezone-aware
        datetime or milliseconds since the epoch (None: never). Binding: none (a service key that sees
        every document), `on_behalf_of=True` (a service key whose calls may name the user they act
        for), or `user=("alice", ["eng"])` (a key that always acts as that user). The token is in the
        result only (the server stores a keyed hash). Not retried on UNAVAILABLE: a retry could issue
        a second key."""
        request = pb.IssueApiKeyRequest(tenant=tenant, role=role_to_proto(role), label=label)
        fill_key_options(request, expires, on_behalf_of, user)
        issued = self._caller.call(Admin.IssueApiKey, request)
        return IssuedKey(key_id=issued.key_id, token=issued.token)

    def list_keys(self, tenant: str) -> list[ApiKey]:
        """The tenant's keys: ids, roles, bindings, expiry and state; never secrets."""
        return [api_key_from_proto(k) for k in self._caller.call(Admin.ListApiKeys, pb.ListApiKeysRequest(tenant=tenant)).keys]

    def revoke_key(self, tenant: str, key_id: str) -> None:
        """Revokes a key; it stops working at once."""
        self._caller.call(Admin.RevokeApiKey, pb.RevokeApiKeyRequest(tenant=tenant, key_id=key_id))

    def revoke_all_keys(self, tenant: str) -> int:
        """Revokes every key of the tenant (the exposed-credential response); returns how many."""
        return self._caller.call(Admin.RevokeAllApiKeys, pb.RevokeAllApiKeysRequest(tenant=tenant)).revoked

    def unlock_key(self, tenant: str, key_id: str) -> bool:
        """Unlocks a key the server locked (a burst, or a run of refusals); False if it was not locked."""
        return self._caller.call(Admin.UnlockApiKey, pb.UnlockApiKeyRequest(tenant=tenant, key_id=key_id)).was_locked

    # -- break-glass grants -----------------------------------------------------------------------

    def request_access_grant(
        self, tenant: str, reason: str, *, ttl_seconds: int | None = None, role: Role = "reader"
    ) -> AccessGrant:
        """Requests a break-glass grant for a key of `role` (reader: to read `tenant`'s data;
        tenant-admin: for a tenant that lost its admin keys or was imported): a reason (1 to 512
        bytes, kept in the tenant's audit trail), a time to live (60 to 86,400 s, default 3,600).
        Pending: no access until the approver token approves it and `activate_access_grant` turns
        it into a key."""
        request = pb.RequestAccessGrantRequest(tenant=tenant, reason=reason, role=role_to_proto(role))
        if ttl_seconds is not None:
            request.ttl_seconds = ttl_seconds
        return access_grant_from_proto(self._caller.call(Admin.RequestAccessGrant, request))

    def approve_access_grant(
        self, tenant: str, grant_id: str, *, approver_token: str, role: Role
    ) -> AccessGrant:
        """Approves a pending grant of `role` (as `list_access_grants` shows it; a grant of another
        role is refused) with the server's approver token (the second credential; the admin token
        this client holds is refused for this call)."""
        url, tls, tls_domain, insecure, timeout, retry = self._connect
        approver = _Caller(
            url, approver_token, tls=tls, tls_domain=tls_domain, insecure=insecure, timeout=timeout, retry=retry
        )
        try:
            request = pb.ApproveAccessGrantRequest(tenant=tenant, grant_id=grant_id, role=role_to_proto(role))
            return access_grant_from_proto(approver.call(Admin.ApproveAccessGrant, request))
        finally:
            approver.close()

    def activate_access_grant(self, tenant: str, grant_id: str) -> ActivatedGrant:
        """Activates an approved grant, once: a reader API key of the tenant that expires with the grant
        (the token is in this answer only)."""
        request = pb.ActivateAccessGrantRequest(tenant=tenant, grant_id=grant_id)
        answer = self._caller.call(Admin.ActivateAccessGrant, request)
        return ActivatedGrant(grant=access_grant_from_proto(answer.grant), token=answer.token, key_id=answer.key_id)

    def list_access_grants(self, tenant: str) -> list[AccessGrant]:
        """The tenant's grants, oldest first."""
        answer = self._caller.call(Admin.ListAccessGrants, pb.ListAccessGrantsRequest(tenant=tenant))
        return [access_grant_from_proto(g) for g in answer.grants]

    def revoke_access_grant(self, tenant: str, grant_id: str) -> AccessGrant:
        """Revokes a grant and its key at once."""
        request = pb.RevokeAccessGrantRequest(tenant=tenant, grant_id=grant_id)
        return access_grant_from_proto(self._caller.call(Admin.RevokeAccessGrant, request))

    # -- keys and rotation ------------------------------------------------------------------------

    def rotate_tenant_key(self, tenant: str) -> RotationStatus:
        """Starts a tenant-key rotation: a new data key seals writes at once, older records are
        re-sealed in the background. Returns at once; follow it with `rotation_progress`. Not retried
        on UNAVAILABLE."""
        return rotation_from_proto(self._caller.call(Admin.RotateTenantKey, pb.RotateTenantKeyRequest(tenant=tenant)))

    def rotation_status(self, tenant: str) -> RotationStatus:
        return rotation_from_proto(
            self._caller.call(Admin.GetRotationStatus, pb.GetRotationStatusRequest(tenant=tenant))
        )

    def rotation_progress(
        self,
        tenant: str,
        *,
        poll_interval: float = 0.5,
        timeout: float | None = None,
        on_progress: Callable[[RotationStatus], None] | None = None,
    ) -> Iterator[RotationStatus]:
        """Polls the tenant's rotation every `poll_interval` seconds and yields each status (and
        passes it to `on_progress`) until one says it is no longer running; that last one is
        yielded too. `timeout`: give up (TimeoutError) after that many seconds.

            admin.rotate_tenant_key("acme")
            for status in admin.rotation_progress("acme"):
                print(f"{status.done}/{status.total}")
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.rotation_status(tenant)
            if on_progress is not None:
                on_progress(status)
            yield status
            if not status.running:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"the rotation was still running after {timeout} s ({status.done}/{status.total})")
            time.sleep(poll_interval)

    def rotate_master_key(self, new_key_file: str) -> int:
        """Re-wraps every data key under the master key in `new_key_file`, a path on the server's host
        (mode 0600); restart the server with it afterwards. Returns the new master version."""
        request = pb.RotateMasterKeyRequest(new_key_file=new_key_file)
        return self._caller.call(Admin.RotateMasterKey, request).master_version

    # -- policy -----------------------------------------------------------------------------------

    def get_policy(self, tenant: str) -> PolicyVersion:
        return policy_from_proto(self._caller.call(Admin.GetPolicy, pb.GetPolicyRequest(tenant=tenant)))

    def set_policy(self, tenant: str, policy: Policy, *, expected_version: int, note: str = "") -> PolicyVersion:
        """Replaces the tenant's policy if it is still at `expected_version` (from `get_policy`);
        InvalidArgument otherwise. `note` (at most 256 bytes, no tenant data) goes into the audit
        trail. Not retried on UNAVAILABLE."""
        request = pb.SetPolicyRequest(
            tenant=tenant, policy=policy_to_proto(policy), expected_version=expected_version, note=note
        )
        return policy_from_proto(self._caller.call(Admin.SetPolicy, request))

    # -- audit ------------------------------------------------------------------------------------

    def export_audit(self, tenant: str, *, since_ms: int = 0, from_seq: int = 0) -> Iterator[AuditEvent]:
        """A tenant's audit events (by name, or a deleted tenant's full uid), oldest first, fetched a
        page at a time."""
        next_seq: int | None = from_seq
        while next_seq is not None:
            request = pb.ExportAuditRequest(tenant=tenant, since_ms=since_ms, from_seq=next_seq)
            page = self._caller.call(Admin.ExportAudit, request)
            yield from (audit_event_from_proto(e) for e in page.events)
            next_seq = page.next_seq if page.HasField("next_seq") else None

    def verify_audit(self, tenant: str = "") -> AuditVerification:
        """Recomputes a tenant's audit chain (or every chain, for ""), naming the first broken event."""
        return audit_verification_from_proto(self._caller.call(Admin.VerifyAudit, pb.VerifyAuditRequest(tenant=tenant)))
