"""The admin client against a real server: tenants, keys (roles, expiry, bindings, revocation,
unlock), policies, tenant-key rotation with progress, master-key rotation and the audit trail."""

from __future__ import annotations

import datetime
import os
import secrets
import sys
from pathlib import Path

import pytest

from bulkhead_client import (
    AdminClient,
    AlreadyExists,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Point,
    Policy,
    Principal,
    Quotas,
    RotationStatus,
    Unauthenticated,
)
from conftest import TenantKeys, remember, unique

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402


def test_tenants_create_list_describe_delete(admin: AdminClient, url: str) -> None:
    name = unique("acme")
    tenant = admin.create_tenant(name)
    assert tenant.name == name and tenant.uid and tenant.created_ms > 0
    with pytest.raises(AlreadyExists):
        admin.create_tenant(name)
    assert name in [t.name for t in admin.list_tenants()]
    assert admin.describe_tenant(name).uid == tenant.uid
    key = remember(admin.issue_key(name, "tenant-admin").token)
    assert admin.delete_tenant(name) == 1
    assert name not in [t.name for t in admin.list_tenants()]
    with pytest.raises(NotFound):
        admin.describe_tenant(name)
    with Client(url, key) as gone, pytest.raises(Unauthenticated):
        gone.list_collections()


def test_a_tenant_is_created_in_the_tier_asked_for(admin: AdminClient) -> None:
    assert admin.create_tenant(unique("small"), tier="shared").placement == "shared"
    assert admin.create_tenant(unique("big")).placement == "partitioned"
    assert admin.create_tenant(unique("own"), tier="dedicated").placement == "dedicated"
    with pytest.raises(InvalidArgument):
        admin.create_tenant(unique("odd"), tier="isolated")


def test_a_tenant_moves_between_tiers(admin: AdminClient, url: str) -> None:
    name = unique("mover")
    admin.create_tenant(name, tier="shared")
    key = remember(admin.issue_key(name, "tenant-admin").token)
    with Client(url, key) as client:
        docs = client.create_collection("docs", dimension=2, metric="cosine")
        docs.upsert([Point("a", [1, 0], text="one"), Point("b", [0, 1], text="two")])
        before = [(h.id, h.score) for h in docs.search([1, 0], k=2)]
        moved = admin.move_tenant(name, "partitioned")
        assert moved.moved and moved.tier == "partitioned" and moved.copied > 0
        assert admin.describe_tenant(name).placement == "partitioned"
        assert [(h.id, h.score) for h in docs.search([1, 0], k=2)] == before
        moved = admin.move_tenant(name, "dedicated")
        assert moved.moved and moved.tier == "dedicated"
        assert admin.describe_tenant(name).placement == "dedicated"
        assert [(h.id, h.score) for h in docs.search([1, 0], k=2)] == before
    assert not admin.move_tenant(name, "dedicated").moved
    assert not admin.move_status(name).running, "no move runs once it returned"
    with pytest.raises(InvalidArgument):
        admin.move_tenant(name, "isolated")


def test_keys_issue_list_revoke_unlock(admin: AdminClient, url: str, tenant: TenantKeys) -> None:
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    writer = admin.issue_key(tenant.name, "writer", label="ingest", expires=expires)
    bob = admin.issue_key(tenant.name, "reader", user=Principal("bob", ["ops"]))
    remember(writer.token)
    remember(bob.token)
    keys = {k.key_id: k for k in admin.list_keys(tenant.name)}
    assert keys[writer.key_id].role == "writer" and keys[writer.key_id].label == "ingest"
    assert keys[writer.key_id].expires_ms == int(expires.timestamp() * 1000)
    assert keys[bob.key_id].user == Principal("bob", ["ops"]) and not keys[bob.key_id].on_behalf_of
    assert keys[tenant.reader_id].on_behalf_of and keys[tenant.reader_id].user is None
    assert not any(k.revoked or k.locked for k in keys.values())
    assert admin.unlock_key(tenant.name, writer.key_id) is False
    with pytest.raises(ValueError, match="timezone-aware"):
        admin.issue_key(tenant.name, "reader", expires=datetime.datetime.now())
    with pytest.raises(ValueError, match="role must be"):
        admin.issue_key(tenant.name, "owner")  # type: ignore[arg-type]

    admin.revoke_key(tenant.name, writer.key_id)
    assert next(k for k in admin.list_keys(tenant.name) if k.key_id == writer.key_id).revoked
    with Client(url, writer.token) as revoked, pytest.raises(Unauthenticated):
        revoked.list_collections()
    with Client(url, tenant.tenant_admin) as still:
        assert still.list_collections() == []
    assert admin.revoke_all_keys(tenant.name) == 5
    with Client(url, tenant.tenant_admin) as none_left, pytest.raises(Unauthenticated):
        none_left.list_collections()


def test_policy_get_and_set(admin: AdminClient, url: str, tenant: TenantKeys) -> None:
    before = admin.get_policy(tenant.name)
    assert before.policy == Policy()
    wanted = Policy(
        denied=(("reader", "count"),),
        max_k=5,
        max_filter_conditions=4,
        source_uri_prefixes=("https://docs.example.com/",),
        quotas=Quotas(max_collections=3, requests_per_second=1000),
    )
    after = admin.set_policy(tenant.name, wanted, expected_version=before.version, note="tests")
    assert after.version == before.version + 1 and after.policy == wanted
    assert admin.get_policy(tenant.name).policy == wanted
    with Client(url, tenant.tenant_admin) as client:
        docs = client.create_collection("docs", 2)
        with pytest.raises(Exception, match="source"):
            docs.upsert([Point("a", [1.0, 0.0], source="https://elsewhere.example.com/a")])
        docs.upsert([Point("a", [1.0, 0.0], source="https://docs.example.com/a")])
        with pytest.raises(Exception, match="k"):
            docs.search([1.0, 0.0], k=6)
    with Client(url, tenant.reader) as reader, pytest.raises(Exception):
        reader.collection("docs").count()


def test_tenant_key_rotation_reports_progress(admin: AdminClient, url: str, tenant: TenantKeys) -> None:
    with Client(url, tenant.tenant_admin) as client:
        docs = client.create_collection("docs", 2)
        docs.upsert(Point(f"p{i}", [1.0, float(i)], text=f"t{i}") for i in range(3000))
        before = docs.get("p0").key_generation
    started = admin.rotate_tenant_key(tenant.name)
    assert started.key_generation == before + 1
    seen: list[RotationStatus] = []
    statuses = list(admin.rotation_progress(tenant.name, poll_interval=0.05, timeout=60, on_progress=seen.append))
    assert statuses == seen and statuses[-1].running is False
    assert all(s.done <= s.total for s in statuses if s.running)
    assert admin.rotation_status(tenant.name).key_generation == before + 1
    with Client(url, tenant.tenant_admin) as client:
        docs = client.collection("docs")
        assert docs.count() == 3000 and docs.get("p2999").text == "t2999"
        assert docs.get("p0").key_generation == before + 1


def test_audit_export_and_verify(admin: AdminClient, url: str, tenant: TenantKeys) -> None:
    with Client(url, tenant.tenant_admin) as client:
        client.create_collection("docs", 2).upsert([Point("a", [1.0, 0.0], text="secret text")])
        own = list(client.export_audit())
    events = list(admin.export_audit(tenant.name))
    assert [e.seq for e in events][: len(own)] == [e.seq for e in own]
    operations = [e.operation for e in events]
    assert "create-collection" in operations and "upsert" in operations
    assert not any("secret text" in repr(e) for e in events)
    later = list(admin.export_audit(tenant.name, from_seq=events[-1].seq))
    # (exporting is itself an audited operation, so the chain may have grown since)
    assert later[0] == events[-1] and all(a.seq < b.seq for a, b in zip(later, later[1:]))
    check = admin.verify_audit(tenant.name)
    assert check.chains and all(c.intact for c in check.chains)
    assert admin.verify_audit().intact


def test_master_key_rotation(tmp_path: Path) -> None:
    # On a server of its own: the new master key takes effect at the next start.
    new_key = tmp_path / "new.key"
    new_key.write_text(secrets.token_hex(32))
    os.chmod(new_key, 0o600)
    with harness.BulkheadServer(harness.default_binary(), tmp_path / "data") as server:
        with AdminClient(f"http://{server.address}", server.admin_token()) as admin:
            admin.create_tenant("acme")
            assert admin.rotate_master_key(str(new_key)) >= 2
            assert [t.name for t in admin.list_tenants()] == ["acme"]
        server.stop()


def test_break_glass_grant_needs_the_approver_reads_only_and_is_in_the_tenants_trail(
    admin: AdminClient, url: str, server: harness.BulkheadServer, tenant: TenantKeys
) -> None:
    name = tenant.name
    reason = remember("support ticket " + secrets.token_hex(8))
    grant = admin.request_access_grant(name, reason, ttl_seconds=600)
    assert grant.state == "pending" and grant.expires_ms - grant.requested_ms == 600_000
    assert reason not in repr(grant)
    with pytest.raises(FailedPrecondition):
        admin.activate_access_grant(name, grant.grant_id)
    with pytest.raises(PermissionDenied):
        admin.approve_access_grant(name, grant.grant_id, approver_token=server.admin_token(), role="reader")
    approver = server.approver_token_file.read_text()
    # An approval names the role it approves: a reader's grant is not approved as a tenant-admin's.
    with pytest.raises(FailedPrecondition):
        admin.approve_access_grant(name, grant.grant_id, approver_token=approver, role="tenant-admin")
    assert admin.approve_access_grant(name, grant.grant_id, approver_token=approver, role="reader").state == "approved"
    active = admin.activate_access_grant(name, grant.grant_id)
    remember(active.token)
    assert active.grant.state == "active" and active.token not in repr(active)
    listed = [k for k in admin.list_keys(name) if k.key_id == active.key_id]
    assert listed and listed[0].grant_id == grant.grant_id and listed[0].expires_ms == grant.expires_ms
    with Client(url, active.token) as reader:
        assert reader.list_collections() is not None
        with pytest.raises(PermissionDenied):
            reader.create_collection(unique("nope"), dimension=3)
    assert admin.revoke_access_grant(name, grant.grant_id).state == "revoked"
    with Client(url, active.token) as reader, pytest.raises(Unauthenticated):
        reader.list_collections()
    events = list(admin.export_audit(name))
    steps = [e.operation for e in events if e.note and grant.grant_id in e.note]
    for step in ["access-grant-requested", "access-grant-approval-refused", "access-grant-approved",
                 "access-grant-activated", "list-collections", "access-grant-revoked"]:
        assert step in steps, (step, steps)


def test_a_tenant_admin_manages_its_own_keys_and_a_grant_carries_its_role(
    admin: AdminClient, url: str, server: harness.BulkheadServer, tenant: TenantKeys
) -> None:
    with Client(url, tenant.tenant_admin) as own:
        issued = own.issue_own_key("reader", label="from-the-tenant")
        remember(issued.token)
        listed = [k for k in own.list_own_keys() if k.key_id == issued.key_id]
        assert listed and listed[0].role == "reader" and listed[0].label == "from-the-tenant"
        with Client(url, issued.token) as reader:
            assert reader.list_collections() is not None
            with pytest.raises(PermissionDenied):
                reader.issue_own_key("reader")
        own.revoke_own_key(issued.key_id)
        with Client(url, issued.token) as reader, pytest.raises(Unauthenticated):
            reader.list_collections()
    # A tenant-admin grant is for a tenant without a live tenant-admin key: refused for this one...
    with pytest.raises(FailedPrecondition):
        admin.request_access_grant(tenant.name, "recovery ticket", role="tenant-admin")
    # ...and given for one that has no key yet.
    keyless = admin.create_tenant(unique("keyless")).name
    grant = admin.request_access_grant(keyless, "recovery ticket", role="tenant-admin")
    assert grant.role == "tenant-admin"
    approver = server.approver_token_file.read_text()
    approved = admin.approve_access_grant(keyless, grant.grant_id, approver_token=approver, role="tenant-admin")
    assert approved.role == "tenant-admin"
    assert approved.tenant_imported_ms is None and approved.operator_revoked_keys_ms is None
    assert admin.revoke_access_grant(keyless, grant.grant_id).state == "revoked"
    # The operator revokes this tenant's keys: a tenant-admin grant may now be asked for it, and the
    # approver is shown when the operator revoked them.
    assert admin.revoke_all_keys(tenant.name) >= 1
    recovery = admin.request_access_grant(tenant.name, "recovery ticket", role="tenant-admin")
    shown = [g for g in admin.list_access_grants(tenant.name) if g.grant_id == recovery.grant_id]
    revoked_at = shown[0].operator_revoked_keys_ms
    assert revoked_at is not None and revoked_at <= recovery.requested_ms


def test_a_grant_of_a_role_this_client_does_not_know_reads_unknown_not_reader() -> None:
    # An approver must never see a newer server's role as the least one and approve it as such.
    from bulkhead_client._convert import access_grant_from_proto
    from bulkhead_client._pb import bulkhead_pb2 as pb

    newer = access_grant_from_proto(pb.AccessGrant(grant_id="g", tenant="t", state="pending", role=99))
    assert newer.role == "unknown"
    known = access_grant_from_proto(pb.AccessGrant(grant_id="g", tenant="t", state="pending", role=pb.ROLE_READER))
    assert known.role == "reader"
