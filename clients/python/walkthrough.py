"""The README walkthrough from Python: grpcio stubs generated from `proto/` drive a real `bulkhead serve`
on 127.0.0.1 (ephemeral port, fresh data directory). The operator creates a tenant and issues keys,
a tenant admin creates a collection and upserts points with text, metadata, source URI and ACLs, a
reader searches on behalf of users (checking the top hit and its provenance), gets and counts, and
a revoked key is refused with UNAUTHENTICATED. Every step is asserted; the server is stopped with
SIGTERM at the end and on any failure.

    scripts/test-python.sh                      # makes the venv, builds the binary, runs this
    python walkthrough.py [--bin PATH]          # inside that venv, with a built binary

Credentials never reach the output: failures print status codes and ids, never tokens.
"""

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


class Steps:
    """Counts the steps that passed and names the one that failed."""

    def __init__(self):
        self.passed = 0

    def check(self, name, condition, detail=""):
        if not condition:
            raise AssertionError(f"{name}: {detail}" if detail else name)
        self.passed += 1
        print(f"  ok  {name}")


def rpc_error(call):
    """The grpc.RpcError a call raised (an AssertionError if it succeeded)."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")


def walkthrough(pb, pb_grpc, server, steps):
    channel = grpc.insecure_channel(server.address)
    grpc.channel_ready_future(channel).result(timeout=30)
    admin = pb_grpc.AdminStub(channel)
    data = pb_grpc.DataPlaneStub(channel)
    operator = harness.bearer(server.admin_token())

    # The operator: a tenant and its keys.
    tenant = admin.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=operator)
    steps.check("admin creates tenant acme", tenant.name == "acme" and tenant.uid != "")
    listed = admin.ListTenants(pb.ListTenantsRequest(), metadata=operator)
    steps.check("admin lists it", [t.name for t in listed.tenants] == ["acme"])

    def issue(role, **binding):
        issued = admin.IssueApiKey(
            pb.IssueApiKeyRequest(tenant="acme", role=role, label="walkthrough", **binding), metadata=operator
        )
        return issued.token, issued.key_id

    tenant_admin, _ = issue(pb.ROLE_TENANT_ADMIN)
    reader, reader_id = issue(pb.ROLE_READER, on_behalf_of=True)
    alice, _ = issue(pb.ROLE_READER, user=pb.UserBinding(user="alice", groups=["eng"]))
    steps.check(
        "admin issues a tenant-admin key, an on-behalf-of reader key and alice's own key",
        all(t.startswith("bk_") for t in (tenant_admin, reader, alice)) and reader_id != "",
    )
    no_admin = rpc_error(lambda: admin.ListTenants(pb.ListTenantsRequest(), metadata=harness.bearer(tenant_admin)))
    steps.check(
        "a tenant key may not call the admin plane",
        no_admin.code() == grpc.StatusCode.PERMISSION_DENIED,
        str(no_admin.code()),
    )

    # The tenant admin: a collection and three points.
    created = data.CreateCollection(
        pb.CreateCollectionRequest(name="docs", dimension=3, metric=pb.METRIC_COSINE),
        metadata=harness.bearer(tenant_admin),
    )
    steps.check("create collection docs (3 dims, cosine)", (created.name, created.dimension) == ("docs", 3))
    points = [
        pb.Point(
            id="a",
            vector=[1.0, 0.0, 0.0],
            text="hello",
            metadata={"lang": pb.MetaValue(keyword="en"), "year": pb.MetaValue(number=2024)},
            source_uri="https://example.com/hello.md",
        ),
        pb.Point(id="b", vector=[0.0, 1.0, 0.0], text="world", acl=pb.Acl(users=["alice"])),
        pb.Point(
            id="c",
            vector=[0.0, 0.0, 1.0],
            text="for engineers",
            metadata={"lang": pb.MetaValue(keyword="de")},
            acl=pb.Acl(groups=["eng"]),
        ),
    ]
    upserted = data.Upsert(pb.UpsertRequest(collection="docs", points=points), metadata=harness.bearer(tenant_admin))
    steps.check(
        "upsert three points (text, metadata, source URI, ACLs) in one batch",
        len(upserted.versions) == 3 and all(v > 0 for v in upserted.versions),
    )

    # The reader searches on behalf of bob: b (alice's) and c (eng's) are filtered out before ranking.
    as_bob = pb.Principal(user="bob")
    hits = data.Search(
        pb.SearchRequest(collection="docs", vector=[0.9, 0.1, 0.0], k=2, principal=as_bob),
        metadata=harness.bearer(reader),
    ).hits
    steps.check("search as bob: only the tenant-wide point", [h.id for h in hits] == ["a"], str([h.id for h in hits]))
    top = hits[0]
    steps.check("the top hit carries its text and cosine score", top.text == "hello" and 0.99 < top.score <= 1.0)
    steps.check(
        "the top hit carries metadata and source URI",
        top.metadata["lang"].keyword == "en"
        and top.metadata["year"].number == 2024
        and top.source_uri == "https://example.com/hello.md",
    )
    steps.check(
        "the top hit carries provenance (version, key generation, why, ACL fingerprint, index part)",
        top.version == upserted.versions[0]
        and top.key_generation >= 1
        and top.matched_by == pb.MATCH_REASON_TENANT_WIDE
        and len(top.acl_fingerprint) == 16
        and top.WhichOneof("index") == "delta",
    )

    # On behalf of alice, her own document comes first, matched by user.
    hits = data.Search(
        pb.SearchRequest(collection="docs", vector=[0.1, 0.9, 0.0], k=3, principal=pb.Principal(user="alice")),
        metadata=harness.bearer(reader),
    ).hits
    steps.check(
        "search as alice: her document first, matched by user",
        [h.id for h in hits] == ["b", "a"] and hits[0].matched_by == pb.MATCH_REASON_USER and hits[0].text == "world",
        str([h.id for h in hits]),
    )
    # Alice's own key always searches as alice with group eng, whatever the request says.
    hits = data.Search(
        pb.SearchRequest(collection="docs", vector=[0.0, 0.1, 0.9], k=3), metadata=harness.bearer(alice)
    ).hits
    steps.check(
        "alice's own key sees her document and her group's",
        [h.id for h in hits] == ["c", "b", "a"] and hits[0].matched_by == pb.MATCH_REASON_GROUP,
        str([h.id for h in hits]),
    )
    # A metadata filter, applied before ranking.
    lang_de = pb.Filter(eq=pb.Equals(field="lang", keyword="de"))
    hits = data.Search(
        pb.SearchRequest(collection="docs", vector=[1.0, 0.0, 0.0], k=3, filter=lang_de),
        metadata=harness.bearer(reader),
    ).hits
    steps.check("a metadata filter (lang = de) applies before ranking", [h.id for h in hits] == ["c"])

    # Get and count.
    got = data.Get(pb.GetRequest(collection="docs", id="a", with_vector=True), metadata=harness.bearer(reader)).point
    steps.check(
        "get a point with its vector, text and metadata",
        got.id == "a" and list(got.vector) == [1.0, 0.0, 0.0] and got.text == "hello" and got.metadata["lang"].keyword == "en",
    )
    hidden = rpc_error(
        lambda: data.Get(pb.GetRequest(collection="docs", id="b", principal=as_bob), metadata=harness.bearer(reader))
    )
    steps.check("get of alice's point on behalf of bob: NOT_FOUND", hidden.code() == grpc.StatusCode.NOT_FOUND)
    count = data.Count(pb.CountRequest(collection="docs"), metadata=harness.bearer(reader)).count
    steps.check("count: 3 points", count == 3, str(count))
    described = data.DescribeCollection(pb.DescribeCollectionRequest(name="docs"), metadata=harness.bearer(reader))
    steps.check(
        "describe: the collection, searched exactly (3 points in the delta)",
        described.HasField("index") and described.index.loaded and described.index.delta_points == 3,
    )
    denied = rpc_error(
        lambda: data.Upsert(
            pb.UpsertRequest(collection="docs", points=[pb.Point(id="x", vector=[1.0, 1.0, 0.0])]),
            metadata=harness.bearer(reader),
        )
    )
    steps.check("a reader may not write: PERMISSION_DENIED", denied.code() == grpc.StatusCode.PERMISSION_DENIED)

    # Revocation: the key stops working at once; the others keep working.
    admin.RevokeApiKey(pb.RevokeApiKeyRequest(tenant="acme", key_id=reader_id), metadata=operator)
    refused = rpc_error(
        lambda: data.Search(
            pb.SearchRequest(collection="docs", vector=[1.0, 0.0, 0.0], k=1), metadata=harness.bearer(reader)
        )
    )
    steps.check("the revoked key gets UNAUTHENTICATED", refused.code() == grpc.StatusCode.UNAUTHENTICATED)
    listed = admin.ListApiKeys(pb.ListApiKeysRequest(tenant="acme"), metadata=operator)
    wire = listed.SerializeToString()
    steps.check(
        "the key list shows it revoked, and no secrets",
        any(k.key_id == reader_id and k.revoked for k in listed.keys)
        and len(listed.keys) == 3
        and not any(token.encode() in wire for token in (tenant_admin, reader, alice)),
    )
    count = data.Count(pb.CountRequest(collection="docs"), metadata=harness.bearer(tenant_admin)).count
    steps.check("the tenant admin's key still works", count == 3)
    channel.close()
    return [tenant_admin, reader, alice, server.admin_token()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=harness.default_binary(), help="the bulkhead binary")
    args = parser.parse_args()
    harness.sigterm_raises()
    steps = Steps()
    try:
        with tempfile.TemporaryDirectory(prefix="bulkhead-py-") as tmp:
            pb, pb_grpc = harness.generate_stubs(Path(tmp) / "stubs")
            steps.check("stubs generated from proto/bulkhead/v1 with grpcio-tools", hasattr(pb_grpc, "DataPlaneStub"))
            with harness.BulkheadServer(args.bin, Path(tmp) / "data") as server:
                steps.check("bulkhead serve started on an ephemeral port", server.address.startswith("127.0.0.1:"))
                secrets = walkthrough(pb, pb_grpc, server, steps)
                server.stop()
                steps.check("SIGTERM: the server stopped cleanly and flushed its store", True)
                log = server.log()
                steps.check("no key or token reached the server log", not any(s in log for s in secrets))
    except Exception:
        # The traceback names the failed step; it holds no credentials (they are never in messages).
        traceback.print_exc()
        print(f"walkthrough: {steps.passed} passed, 1 failed")
        return 1
    print(f"walkthrough: {steps.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
