//! Authentication and authorisation on a real server: the matrix of every RPC against every kind of
//! credential (none, malformed, unknown, revoked, expired, wrong admin token, each role, another
//! tenant's key, the admin token) with the status each must get, and a meta-test that fails when an
//! RPC of the service descriptors has no row.

use crate::harness::{TestServer, collections, count, point, req, search};
use bulkhead_query::ManualClock;
use bulkhead_server::proto as pb;
use prost::Message;
use std::collections::BTreeSet;
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    WrongAdmin,
    Reader,
    Writer,
    TenantAdmin,
    OtherTenant,
    Admin,
    /// The approver token (break-glass grants' second credential).
    Approver,
}

const CREDS: [Cred; 12] = [
    Cred::None,
    Cred::Malformed,
    Cred::Unknown,
    Cred::Revoked,
    Cred::Expired,
    Cred::WrongAdmin,
    Cred::Reader,
    Cred::Writer,
    Cred::TenantAdmin,
    Cred::OtherTenant,
    Cred::Admin,
    Cred::Approver,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    Reader,
    Writer,
    TenantAdmin,
    Admin,
    /// The approver token alone.
    Approver,
    /// The admin token or the approver token.
    AdminOrApprover,
}

/// Every RPC: (service, method, what it needs, whether it names one of acme's collections).
const ROWS: &[(&str, &str, Needs, bool)] = &[
    ("DataPlane", "CreateCollection", Needs::TenantAdmin, false),
    ("DataPlane", "ListCollections", Needs::Reader, false),
    ("DataPlane", "DescribeCollection", Needs::Reader, true),
    ("DataPlane", "DropCollection", Needs::TenantAdmin, true),
    ("DataPlane", "Upsert", Needs::Writer, true),
    ("DataPlane", "Get", Needs::Reader, true),
    ("DataPlane", "Delete", Needs::Writer, true),
    ("DataPlane", "Count", Needs::Reader, true),
    ("DataPlane", "Search", Needs::Reader, true),
    ("DataPlane", "SearchBatch", Needs::Reader, true),
    ("DataPlane", "ExportAudit", Needs::TenantAdmin, false),
    ("DataPlane", "IssueOwnApiKey", Needs::TenantAdmin, false),
    ("DataPlane", "ListOwnApiKeys", Needs::TenantAdmin, false),
    // Names one of acme's key ids: another tenant's admin gets "not found".
    ("DataPlane", "RevokeOwnApiKey", Needs::TenantAdmin, true),
    ("Admin", "CreateTenant", Needs::Admin, false),
    ("Admin", "ListTenants", Needs::Admin, false),
    ("Admin", "DescribeTenant", Needs::Admin, false),
    ("Admin", "DeleteTenant", Needs::Admin, false),
    ("Admin", "MoveTenant", Needs::Admin, false),
    ("Admin", "GetMoveStatus", Needs::Admin, false),
    ("Admin", "IssueApiKey", Needs::Admin, false),
    ("Admin", "ListApiKeys", Needs::Admin, false),
    ("Admin", "RevokeApiKey", Needs::Admin, false),
    ("Admin", "UnlockApiKey", Needs::Admin, false),
    ("Admin", "RevokeAllApiKeys", Needs::Admin, false),
    ("Admin", "RotateTenantKey", Needs::Admin, false),
    ("Admin", "GetRotationStatus", Needs::Admin, false),
    ("Admin", "RotateMasterKey", Needs::Admin, false),
    ("Admin", "ExportAudit", Needs::Admin, false),
    ("Admin", "VerifyAudit", Needs::Admin, false),
    ("Admin", "GetPolicy", Needs::Admin, false),
    ("Admin", "SetPolicy", Needs::Admin, false),
    ("Admin", "ExportTenant", Needs::Admin, false),
    ("Admin", "ImportTenant", Needs::Admin, false),
    ("Admin", "RequestAccessGrant", Needs::Admin, false),
    ("Admin", "ApproveAccessGrant", Needs::Approver, false),
    ("Admin", "ActivateAccessGrant", Needs::Admin, false),
    ("Admin", "ListAccessGrants", Needs::AdminOrApprover, false),
    ("Admin", "RevokeAccessGrant", Needs::Admin, false),
];

/// The events a call must leave in acme's audit trail (operation, outcome), the events of the row's
/// own set-up first: written out from the contract, like [`expected`].
fn expected_events(
    service: &str,
    method: &str,
    needs: Needs,
    cred: Cred,
) -> Vec<(&'static str, &'static str)> {
    let mut events = match (method, cred) {
        ("DropCollection", _) => vec![("create-collection", "ok")],
        // A reader key of acme made for the row, by acme's tenant-admin key on the data plane.
        ("RevokeApiKey" | "UnlockApiKey" | "RevokeOwnApiKey", _) => {
            vec![("api-key-issued", "ok"), ("issue-api-key", "ok")]
        }
        // A grant of acme made for the row (approved too, for an activation).
        ("ApproveAccessGrant" | "RevokeAccessGrant", _) => vec![("access-grant-requested", "ok")],
        ("ActivateAccessGrant", _) => {
            vec![("access-grant-requested", "ok"), ("access-grant-approved", "ok")]
        }
        _ => vec![],
    };
    let data_name = match method {
        "CreateCollection" => "create-collection",
        "ListCollections" => "list-collections",
        "DescribeCollection" => "describe-collection",
        "DropCollection" => "drop-collection",
        "Upsert" => "upsert",
        "Get" => "get",
        "Delete" => "delete",
        "Count" => "count",
        "Search" | "SearchBatch" => "search",
        "ExportAudit" => "export-audit",
        "IssueOwnApiKey" => "issue-api-key",
        "ListOwnApiKeys" => "list-api-keys",
        "RevokeOwnApiKey" => "revoke-api-key",
        _ => "",
    };
    let role = match cred {
        // No tenant is named, or another tenant's: nothing in acme's trail.
        Cred::None | Cred::Malformed | Cred::Unknown | Cred::WrongAdmin | Cred::OtherTenant => return events,
        Cred::Revoked => {
            events.push(("authenticate", "revoked-key"));
            return events;
        }
        Cred::Expired => {
            events.push(("authenticate", "expired-key"));
            return events;
        }
        Cred::Admin | Cred::Approver if service == "DataPlane" => return events,
        // Refused at admission for everything but approving and listing grants.
        Cred::Approver => {
            match method {
                "ApproveAccessGrant" => events.push(("access-grant-approved", "ok")),
                "ListAccessGrants" => events.push(("approver-list-access-grants", "ok")),
                _ => {}
            }
            return events;
        }
        Cred::Admin => {
            let admin_event = match method {
                "DescribeTenant" => Some(("admin-describe-tenant", "ok")),
                // acme has had keys: the operator issues only a tenant's first key.
                "IssueApiKey" => Some(("api-key-issue-refused", "failed-precondition")),
                "ListApiKeys" => Some(("admin-list-api-keys", "ok")),
                "RevokeApiKey" => Some(("api-key-revoked", "ok")),
                "GetRotationStatus" => Some(("admin-rotation-status", "ok")),
                "GetMoveStatus" => Some(("admin-move-status", "ok")),
                "ExportAudit" => Some(("admin-export-audit", "ok")),
                // The export of acme; an import leaves its event in the new tenant's trail
                // (checked by the call itself).
                "ExportTenant" => Some(("tenant-exported", "ok")),
                "RequestAccessGrant" => Some(("access-grant-requested", "ok")),
                // The requester's credential cannot approve: refused, and recorded.
                "ApproveAccessGrant" => Some(("access-grant-approval-refused", "permission-denied")),
                "ActivateAccessGrant" => Some(("access-grant-activated", "ok")),
                "ListAccessGrants" => Some(("admin-list-access-grants", "ok")),
                "RevokeAccessGrant" => Some(("access-grant-revoked", "ok")),
                // The other admin calls act on other tenants (or none).
                _ => None,
            };
            events.extend(admin_event);
            return events;
        }
        Cred::Reader => Needs::Reader,
        Cred::Writer => Needs::Writer,
        Cred::TenantAdmin => Needs::TenantAdmin,
    };
    if service == "Admin" {
        events.push(("admin-plane", "permission-denied"));
    } else if role < needs {
        events.push((data_name, "permission-denied"));
    } else {
        // A tenant-admin's own key management: the change's event, then the access event.
        match method {
            "IssueOwnApiKey" => events.push(("api-key-issued", "ok")),
            "RevokeOwnApiKey" => events.push(("api-key-revoked", "ok")),
            _ => {}
        }
        events.push((data_name, "ok"));
    }
    events
}

/// The status a credential must get for a row: written out from the contract, not from the server's
/// own role table.
fn expected(method: &str, needs: Needs, scoped: bool, cred: Cred) -> Code {
    let role = match cred {
        Cred::None | Cred::Malformed | Cred::Unknown | Cred::Revoked | Cred::Expired | Cred::WrongAdmin => {
            return Code::Unauthenticated;
        }
        // acme has had keys: a configured admin token issues only a tenant's first key.
        Cred::Admin if method == "IssueApiKey" => return Code::FailedPrecondition,
        Cred::Admin if matches!(needs, Needs::Admin | Needs::AdminOrApprover) => return Code::Ok,
        Cred::Admin => return Code::PermissionDenied,
        Cred::Approver if matches!(needs, Needs::Approver | Needs::AdminOrApprover) => return Code::Ok,
        Cred::Approver => return Code::PermissionDenied,
        _ if needs >= Needs::Admin => return Code::PermissionDenied,
        Cred::Reader => Needs::Reader,
        Cred::Writer => Needs::Writer,
        Cred::TenantAdmin | Cred::OtherTenant => Needs::TenantAdmin,
    };
    if role < needs {
        Code::PermissionDenied
    } else if cred == Cred::OtherTenant && scoped {
        Code::NotFound
    } else {
        Code::Ok
    }
}

struct World {
    server: TestServer,
    /// The server's database clock: key expiry and the refusal window move with it.
    clock: ManualClock,
    tokens: Vec<(Cred, Option<String>)>,
    acme_admin: String,
}

impl World {
    fn token(&self, cred: Cred) -> Option<&str> {
        self.tokens.iter().find(|(c, _)| *c == cred).and_then(|(_, t)| t.as_deref())
    }
}

async fn world() -> World {
    let clock = ManualClock::new();
    let server = TestServer::on_clock(&clock).await;
    let acme_admin = crate::harness::seed(&server, "acme").await;
    server.tenant("globex").await;
    let (reader, _) = server.key("acme", pb::Role::Reader).await;
    let (writer, _) = server.key("acme", pb::Role::Writer).await;
    let (other, _) = server.key("globex", pb::Role::TenantAdmin).await;
    let (revoked, revoked_id) = server.key("acme", pb::Role::TenantAdmin).await;
    let mut data = server.data().await;
    // Used before its revocation, so that the server holds it as a key that authenticated.
    data.count(req(pb::CountRequest { collection: "docs".into() }, &revoked))
        .await
        .expect("valid before revocation");
    let mut admin = server.admin().await;
    admin
        .revoke_api_key(req(
            pb::RevokeApiKeyRequest { tenant: "acme".into(), key_id: revoked_id },
            &server.admin_token,
        ))
        .await
        .expect("revoke");
    let now = server.db.clock().now_ms();
    let expiring = pb::IssueOwnApiKeyRequest {
        role: pb::Role::TenantAdmin as i32,
        label: "short-lived".into(),
        expires_ms: Some(now + 1_000),
        binding: None,
    };
    let (expired, _) = server.own_key("acme", expiring).await;
    // It works until it expires, then it is refused like any unknown key.
    data.count(req(pb::CountRequest { collection: "docs".into() }, &expired))
        .await
        .expect("valid before expiry");
    clock.advance(std::time::Duration::from_millis(1_200));
    let unknown = format!("bk_{}_{}", "00".repeat(16), "11".repeat(32));
    let tokens = vec![
        (Cred::None, None),
        (Cred::Malformed, Some("<malformed>".to_owned())),
        (Cred::Unknown, Some(unknown)),
        (Cred::Revoked, Some(revoked)),
        (Cred::Expired, Some(expired)),
        (Cred::WrongAdmin, Some(format!("bka_{}", "ab".repeat(32)))),
        (Cred::Reader, Some(reader)),
        (Cred::Writer, Some(writer)),
        (Cred::TenantAdmin, Some(acme_admin.clone())),
        (Cred::OtherTenant, Some(other)),
        (Cred::Admin, Some(server.admin_token.clone())),
        (Cred::Approver, Some(server.approver_token.clone())),
    ];
    World { server, clock, tokens, acme_admin }
}

/// Reads acme's audit trail through the admin plane, a call at a time. Each read is itself an event
/// (`admin-export-audit`), the last one of the page it reads, which the next read starts after.
/// Counts the refusals of presented keys it reads: each `authenticate` event stands for itself and
/// the refusals its note says were folded into it.
struct AcmeTrail {
    next_seq: u64,
    refusals_accounted: u64,
}

impl AcmeTrail {
    async fn new(world: &World) -> AcmeTrail {
        let mut trail = AcmeTrail { next_seq: 0, refusals_accounted: 0 };
        trail.since_last(world).await;
        trail
    }

    /// The (operation, outcome) of every event since the previous read, without this read's own.
    async fn since_last(&mut self, world: &World) -> Vec<(String, String)> {
        let mut admin = world.server.admin().await;
        let mut events = Vec::new();
        let mut from_seq = self.next_seq;
        loop {
            let r = pb::ExportAuditRequest { tenant: "acme".into(), since_ms: 0, from_seq, limit: 0 };
            let page =
                admin.export_audit(req(r, &world.server.admin_token)).await.expect("export").into_inner();
            events.extend(page.events);
            match page.next_seq {
                Some(next) => from_seq = next,
                None => break,
            }
        }
        let own = events.pop().expect("the read's own event");
        assert_eq!(own.operation, "admin-export-audit");
        self.next_seq = own.seq + 1;
        for event in events.iter().filter(|e| e.operation == "authenticate") {
            let folded = event.note.as_deref().map_or(0, |note| {
                note.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).expect("a folded count")
            });
            self.refusals_accounted += 1 + folded;
        }
        events.into_iter().map(|e| (e.operation, e.outcome)).collect()
    }
}

/// `message` with the credential as the test wants it sent.
fn with<T>(message: T, cred: Cred, token: Option<&str>) -> tonic::Request<T> {
    match (cred, token) {
        (Cred::Malformed, _) => {
            let mut request = tonic::Request::new(message);
            request.metadata_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().expect("header"));
            request
        }
        (_, Some(token)) => req(message, token),
        (_, None) => tonic::Request::new(message),
    }
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Calls one RPC with one credential; every call is a valid request, so only authorisation decides.
async fn call(world: &World, method: &str, cred: Cred, fresh: &mut u32) -> Code {
    *fresh += 1;
    match call_data_plane(world, method, cred, *fresh).await {
        Some(code) => code,
        None => call_admin(world, method, cred, *fresh).await,
    }
}

/// [`call`] for the data plane's methods; `None` for a method of the admin plane. `n` makes the
/// names of throwaway collections unique.
async fn call_data_plane(world: &World, method: &str, cred: Cred, n: u32) -> Option<Code> {
    let token = world.token(cred);
    let mut data = world.server.data().await;
    let code = match method {
        "CreateCollection" => {
            let r = pb::CreateCollectionRequest {
                name: format!("c{n}"),
                dimension: 3,
                metric: pb::Metric::Cosine as i32,
            };
            code(data.create_collection(with(r, cred, token)).await)
        }
        "ListCollections" => {
            code(data.list_collections(with(pb::ListCollectionsRequest {}, cred, token)).await)
        }
        "DescribeCollection" => code(
            data.describe_collection(with(
                pb::DescribeCollectionRequest { name: "docs".into() },
                cred,
                token,
            ))
            .await,
        ),
        "DropCollection" => {
            let name = format!("drop{n}");
            let create = pb::CreateCollectionRequest {
                name: name.clone(),
                dimension: 3,
                metric: pb::Metric::Cosine as i32,
            };
            data.create_collection(req(create, &world.acme_admin)).await.expect("throwaway collection");
            code(data.drop_collection(with(pb::DropCollectionRequest { name }, cred, token)).await)
        }
        "Upsert" => {
            let r = pb::UpsertRequest {
                collection: "docs".into(),
                points: vec![point("a", [1.0, 0.0, 0.0], "alpha")],
            };
            code(data.upsert(with(r, cred, token)).await)
        }
        "Get" => {
            let r = pb::GetRequest { collection: "docs".into(), id: "a".into(), ..Default::default() };
            code(data.get(with(r, cred, token)).await)
        }
        "Delete" => {
            let r = pb::DeleteRequest { collection: "docs".into(), ids: vec!["no-such-point".into()] };
            code(data.delete(with(r, cred, token)).await)
        }
        "Count" => code(data.count(with(pb::CountRequest { collection: "docs".into() }, cred, token)).await),
        "Search" => code(data.search(with(search("docs", [1.0, 0.0, 0.0], 1), cred, token)).await),
        "SearchBatch" => {
            let q = pb::BatchQuery { vector: vec![1.0, 0.0, 0.0], k: 1, ..Default::default() };
            let r = pb::SearchBatchRequest { collection: "docs".into(), queries: vec![q] };
            code(data.search_batch(with(r, cred, token)).await)
        }
        "DataPlane/ExportAudit" => {
            let r = pb::ExportOwnAuditRequest { since_ms: 0, from_seq: 0, limit: 1 };
            code(data.export_audit(with(r, cred, token)).await)
        }
        "IssueOwnApiKey" => {
            let r = pb::IssueOwnApiKeyRequest {
                role: pb::Role::Reader as i32,
                label: String::new(),
                expires_ms: None,
                binding: None,
            };
            code(data.issue_own_api_key(with(r, cred, token)).await)
        }
        "ListOwnApiKeys" => {
            code(data.list_own_api_keys(with(pb::ListOwnApiKeysRequest {}, cred, token)).await)
        }
        "RevokeOwnApiKey" => {
            let (_, key_id) = world.server.key("acme", pb::Role::Reader).await;
            code(data.revoke_own_api_key(with(pb::RevokeOwnApiKeyRequest { key_id }, cred, token)).await)
        }
        _ => return None,
    };
    Some(code)
}

/// [`call`] for the admin plane's methods. `n` makes the names of throwaway tenants unique.
async fn call_admin(world: &World, method: &str, cred: Cred, n: u32) -> Code {
    let token = world.token(cred);
    let server = &world.server;
    let mut admin = server.admin().await;
    match method {
        "Admin/ExportAudit" => {
            let r = pb::ExportAuditRequest { tenant: "acme".into(), since_ms: 0, from_seq: 0, limit: 1 };
            code(admin.export_audit(with(r, cred, token)).await)
        }
        "GetPolicy" => {
            code(admin.get_policy(with(pb::GetPolicyRequest { tenant: "acme".into() }, cred, token)).await)
        }
        // On a throwaway tenant: a policy set on acme would change what the other rows may do.
        "SetPolicy" => {
            server.tenant(&format!("pol{n}")).await;
            let r = pb::SetPolicyRequest {
                tenant: format!("pol{n}"),
                policy: Some(pb::TenantPolicy { max_k: Some(5), ..Default::default() }),
                expected_version: 0,
                note: "matrix".into(),
            };
            code(admin.set_policy(with(r, cred, token)).await)
        }
        "VerifyAudit" => code(
            admin.verify_audit(with(pb::VerifyAuditRequest { tenant: "acme".into() }, cred, token)).await,
        ),
        "CreateTenant" => code(
            admin
                .create_tenant(with(
                    pb::CreateTenantRequest { name: format!("t{n}"), ..Default::default() },
                    cred,
                    token,
                ))
                .await,
        ),
        "ListTenants" => code(admin.list_tenants(with(pb::ListTenantsRequest {}, cred, token)).await),
        "DescribeTenant" => code(
            admin.describe_tenant(with(pb::DescribeTenantRequest { name: "acme".into() }, cred, token)).await,
        ),
        // Destructive admin calls act on a throwaway tenant, so that a call that is wrongly allowed
        // shows up here and not as damage to the tenants the other rows use.
        "DeleteTenant" => {
            server.tenant(&format!("gone{n}")).await;
            code(
                admin
                    .delete_tenant(with(pb::DeleteTenantRequest { name: format!("gone{n}") }, cred, token))
                    .await,
            )
        }
        "MoveTenant" => {
            server.tenant(&format!("moved{n}")).await;
            let r = pb::MoveTenantRequest { tenant: format!("moved{n}"), tier: "shared".into() };
            code(admin.move_tenant(with(r, cred, token)).await)
        }
        "RevokeAllApiKeys" => {
            server.tenant(&format!("keys{n}")).await;
            let r = pb::RevokeAllApiKeysRequest { tenant: format!("keys{n}") };
            code(admin.revoke_all_api_keys(with(r, cred, token)).await)
        }
        "RotateTenantKey" => {
            server.tenant(&format!("rot{n}")).await;
            let r = pb::RotateTenantKeyRequest { tenant: format!("rot{n}") };
            code(admin.rotate_tenant_key(with(r, cred, token)).await)
        }
        "GetMoveStatus" => code(
            admin
                .get_move_status(with(pb::GetMoveStatusRequest { tenant: "acme".into() }, cred, token))
                .await,
        ),
        "GetRotationStatus" => code(
            admin
                .get_rotation_status(with(
                    pb::GetRotationStatusRequest { tenant: "acme".into() },
                    cred,
                    token,
                ))
                .await,
        ),
        "RotateMasterKey" => {
            let file = server.key_file();
            let r = pb::RotateMasterKeyRequest { new_key_file: file.display().to_string() };
            code(admin.rotate_master_key(with(r, cred, token)).await)
        }
        "IssueApiKey" => {
            let r = pb::IssueApiKeyRequest {
                tenant: "acme".into(),
                role: pb::Role::Reader as i32,
                label: String::new(),
                expires_ms: None,
                binding: None,
            };
            code(admin.issue_api_key(with(r, cred, token)).await)
        }
        "ListApiKeys" => code(
            admin.list_api_keys(with(pb::ListApiKeysRequest { tenant: "acme".into() }, cred, token)).await,
        ),
        "RevokeApiKey" => {
            let (_, key_id) = server.key("acme", pb::Role::Reader).await;
            code(
                admin
                    .revoke_api_key(with(
                        pb::RevokeApiKeyRequest { tenant: "acme".into(), key_id },
                        cred,
                        token,
                    ))
                    .await,
            )
        }
        "UnlockApiKey" => {
            // A key that is not locked: the call succeeds, changes nothing and leaves no event.
            let (_, key_id) = server.key("acme", pb::Role::Reader).await;
            let request = pb::UnlockApiKeyRequest { tenant: "acme".into(), key_id };
            code(admin.unlock_api_key(with(request, cred, token)).await)
        }
        "ExportTenant" => {
            let r = pb::ExportTenantRequest { tenant: "acme".into() };
            match admin.export_tenant(with(r, cred, token)).await {
                Err(status) => status.code(),
                // Every chunk, then the summary: only then is the export a success.
                Ok(response) => {
                    let mut stream = response.into_inner();
                    let mut summary = None;
                    loop {
                        match stream.message().await {
                            Ok(Some(chunk)) => summary = summary.or(chunk.summary),
                            Ok(None) => break,
                            Err(status) => return status.code(),
                        }
                    }
                    assert!(summary.is_some(), "an export ends with its summary");
                    Code::Ok
                }
            }
        }
        // Under a new name each time; a refused call creates nothing, an allowed one leaves its
        // `tenant-imported` event in the new tenant's trail.
        "ImportTenant" => {
            use pb::import_tenant_request::Kind;
            let new_name = format!("imp{n}");
            let start = pb::ImportTenantStart { new_name: new_name.clone(), tier: String::new() };
            // An archive of globex, made now: the master-key rotation row makes earlier ones
            // another master key's.
            let mut archive = Vec::new();
            let globex = bulkhead_query::TenantName::new("globex").expect("name");
            server.db.operator().export_tenant(&globex, &mut archive, &mut |_| {}).expect("export globex");
            let mut messages = vec![pb::ImportTenantRequest { kind: Some(Kind::Start(start)) }];
            for chunk in archive.chunks(bulkhead_server::limits::MAX_ARCHIVE_CHUNK_BYTES) {
                messages.push(pb::ImportTenantRequest { kind: Some(Kind::Chunk(chunk.to_vec())) });
            }
            let answer = admin.import_tenant(with(tokio_stream::iter(messages), cred, token)).await;
            if cred == Cred::Admin {
                assert!(answer.is_ok(), "{answer:?}");
            }
            let got = code(answer);
            let name = bulkhead_query::TenantName::new(new_name).expect("name");
            let op = server.db.operator();
            match op.tenant_info(&name) {
                Ok(info) => {
                    assert_eq!(got, Code::Ok, "a refused import created its tenant");
                    let events = op.audit_events(info.uid).expect("audit");
                    let imported = events.iter().filter(|e| e.operation == "tenant-imported").count();
                    assert_eq!(imported, 1, "the import's event");
                }
                Err(_) => assert_ne!(got, Code::Ok, "an import that succeeded created no tenant"),
            }
            got
        }
        "RequestAccessGrant" => {
            let r = pb::RequestAccessGrantRequest {
                tenant: "acme".into(),
                reason: "matrix".into(),
                ttl_seconds: None,
                role: 0,
            };
            code(admin.request_access_grant(with(r, cred, token)).await)
        }
        "ApproveAccessGrant" => {
            let grant_id = matrix_grant(server, false);
            let r = pb::ApproveAccessGrantRequest {
                tenant: "acme".into(),
                grant_id,
                role: pb::Role::Reader as i32,
            };
            code(admin.approve_access_grant(with(r, cred, token)).await)
        }
        "ActivateAccessGrant" => {
            let grant_id = matrix_grant(server, true);
            let r = pb::ActivateAccessGrantRequest { tenant: "acme".into(), grant_id };
            code(admin.activate_access_grant(with(r, cred, token)).await)
        }
        "ListAccessGrants" => code(
            admin
                .list_access_grants(with(pb::ListAccessGrantsRequest { tenant: "acme".into() }, cred, token))
                .await,
        ),
        "RevokeAccessGrant" => {
            let grant_id = matrix_grant(server, false);
            let r = pb::RevokeAccessGrantRequest { tenant: "acme".into(), grant_id };
            code(admin.revoke_access_grant(with(r, cred, token)).await)
        }
        other => panic!("the matrix has no call for {other}"),
    }
}

/// A fresh grant of acme for one row (approved, for an activation), made through the library.
fn matrix_grant(server: &TestServer, approved: bool) -> String {
    let acme = bulkhead_query::TenantName::new("acme").expect("name");
    let op = server.db.operator();
    let grant = op.request_access_grant(&acme, "matrix", None).expect("request");
    if approved {
        op.approve_access_grant(&acme, &grant.grant_id).expect("approve");
    }
    grant.grant_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix() {
    let world = world().await;
    let mut fresh = 0;
    let mut failures = Vec::new();
    let mut trail = AcmeTrail::new(&world).await;
    let mut refused_keys = 0u64;
    for &(service, method, needs, scoped) in ROWS {
        // The two ExportAudit RPCs share a method name.
        let name = if method == "ExportAudit" { format!("{service}/{method}") } else { method.to_owned() };
        for cred in CREDS {
            let want = expected(method, needs, scoped, cred);
            let got = call(&world, &name, cred, &mut fresh).await;
            if got != want {
                failures.push(format!("{name} with {cred:?}: expected {want:?}, got {got:?}"));
            }
            let mut want_events: Vec<(String, String)> = expected_events(service, method, needs, cred)
                .into_iter()
                .map(|(op, outcome)| (op.to_owned(), outcome.to_owned()))
                .collect();
            let got_events = trail.since_last(&world).await;
            // A revoked or expired key's refusal is written at most once per REFUSAL_EVENT_EVERY
            // per key: inside the window it is folded into the next event (counted below).
            if matches!(cred, Cred::Revoked | Cred::Expired) {
                refused_keys += 1;
                if !got_events.iter().any(|(op, _)| op == "authenticate") {
                    want_events.retain(|(op, _)| op != "authenticate");
                }
            }
            if got_events != want_events {
                failures.push(format!(
                    "{name} with {cred:?}: audit events {got_events:?}, expected {want_events:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "authorisation matrix mismatches:\n{}", failures.join("\n"));
    // Once the window has passed, one more refusal of each key writes the events that carry what
    // was folded: every refused presentation is accounted for in the trail.
    world.clock.advance(bulkhead_query::REFUSAL_EVENT_EVERY);
    for cred in [Cred::Revoked, Cred::Expired] {
        let token = world.token(cred).expect("token");
        let mut data = world.server.data().await;
        let refused = data.count(req(pb::CountRequest { collection: "docs".into() }, token)).await;
        assert_eq!(refused.expect_err("refused").code(), Code::Unauthenticated);
        refused_keys += 1;
    }
    trail.since_last(&world).await;
    assert_eq!(trail.refusals_accounted, refused_keys, "every refused presentation is in the trail");
    let mut admin = world.server.admin().await;
    let verified = admin
        .verify_audit(req(pb::VerifyAuditRequest { tenant: String::new() }, &world.server.admin_token))
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.chains.len() >= 3, "acme, globex, the system chain and more: {}", verified.chains.len());
    assert!(verified.chains.iter().all(|c| c.first_broken.is_none()), "every chain intact");
    // Refused calls changed nothing: acme still has its two points, and only collections created by
    // the credentials allowed to create them exist.
    assert_eq!(count(&world.server, "acme", "docs"), 2);
    let acme = collections(&world.server, "acme");
    let created_by_acme = acme.iter().filter(|c| c.starts_with('c')).count();
    assert_eq!(created_by_acme, 1, "only acme's tenant-admin key created a collection in acme: {acme:?}");
    let throwaway = acme.iter().filter(|c| c.starts_with("drop")).count();
    assert_eq!(
        throwaway,
        CREDS.len() - 1,
        "only acme's tenant-admin key dropped its throwaway collection: {acme:?}"
    );
    world.server.stop().await;
}

#[test]
fn every_rpc_of_the_descriptors_has_a_matrix_row() {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let described: BTreeSet<(String, String)> = set
        .file
        .iter()
        .filter(|f| f.package() == "bulkhead.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| s.method.iter().map(move |m| (s.name().to_owned(), m.name().to_owned())))
        .collect();
    let rows: BTreeSet<(String, String)> =
        ROWS.iter().map(|(s, m, _, _)| ((*s).to_owned(), (*m).to_owned())).collect();
    assert_eq!(described.len(), 39, "the contract has 39 RPCs today: {described:?}");
    let missing: Vec<_> = described.difference(&rows).collect();
    assert!(missing.is_empty(), "RPCs without an authorisation matrix row: {missing:?}");
    let stale: Vec<_> = rows.difference(&described).collect();
    assert!(stale.is_empty(), "matrix rows for RPCs that do not exist: {stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_without_detail() {
    let world = world().await;
    let mut data = world.server.data().await;
    let count_req = || pb::CountRequest { collection: "docs".into() };
    let none = data.count(tonic::Request::new(count_req())).await.expect_err("no credential");
    assert!(none.message().contains("missing credential"), "{}", none.message());
    // Unknown, revoked and expired keys get one and the same message, so probing learns nothing.
    let mut messages = BTreeSet::new();
    for cred in [Cred::Unknown, Cred::Revoked, Cred::Expired] {
        let status = data.count(with(count_req(), cred, world.token(cred))).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
        messages.insert(status.message().to_owned());
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    let reader = data
        .upsert(with(
            pb::UpsertRequest { collection: "docs".into(), points: vec![] },
            Cred::Reader,
            world.token(Cred::Reader),
        ))
        .await
        .expect_err("reader");
    assert_eq!(reader.message(), "a reader key cannot upsert points");
    let mut admin = world.server.admin().await;
    let tenant_key = admin
        .list_tenants(with(pb::ListTenantsRequest {}, Cred::TenantAdmin, world.token(Cred::TenantAdmin)))
        .await
        .expect_err("tenant key on admin");
    assert!(tenant_key.message().contains("tenant API keys cannot call the admin service"));
    world.server.stop().await;
}
