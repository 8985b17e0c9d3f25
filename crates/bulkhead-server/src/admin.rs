//! The `bulkhead.v1.Admin` service: tenants, API keys and break-glass grants, for the operator's admin
//! credential (and the approver token, which may only approve a grant).
//! Its two streaming calls, the tenant archives, are in `archive.rs`.

use crate::admission::{AdmittedApprover, AdmittedOperator};
use crate::auth;
use crate::convert;
use crate::limits;
use crate::proto as pb;
use crate::proto::admin_server::Admin;
use crate::server::Shared;
use crate::status::{self, invalid};
use bulkhead_query::{Database, MasterKey, Placement, Role, StorageError, TenantName, TenantUid};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) struct AdminService {
    shared: Arc<Shared>,
}

impl AdminService {
    pub(crate) fn new(shared: Arc<Shared>) -> AdminService {
        AdminService { shared }
    }

    async fn call<Req: Send + 'static, T: prost::Message + 'static>(
        &self,
        request: Request<Req>,
        operation: &'static str,
        work: impl FnOnce(&Database, Req) -> Result<T, Status> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        let (_, extensions, message) = request.into_parts();
        let admitted = extensions.get::<AdmittedOperator>();
        Ok(Response::new(self.shared.admin(admitted, operation, move |db| work(db, message)).await?))
    }
}

/// Refuses a break-glass step on a server without an approver token.
fn break_glass_configured(shared: &crate::server::Shared) -> Result<(), Status> {
    if shared.approver.is_none() {
        return Err(Status::failed_precondition(
            "break-glass is not configured: start the server with an approver token \
             (--approver-token-file, [server] approver_token_file, or BULKHEAD_APPROVER_TOKEN), \
             the second credential that approves access grants",
        ));
    }
    Ok(())
}

/// The time to live a grant request asks for (absent: the default).
fn grant_ttl(ttl_seconds: Option<u32>) -> Option<std::time::Duration> {
    ttl_seconds.map(|s| std::time::Duration::from_secs(u64::from(s)))
}

fn tenant_name(name: String) -> Result<TenantName, Status> {
    TenantName::new(name).map_err(status::from_storage)
}

/// A tenant named by its name, or (a deleted tenant, whose name is gone) by its full uid in hex.
fn tenant_uid(db: &Database, tenant: &str) -> Result<TenantUid, Status> {
    if let Some(uid) = TenantUid::from_hex(tenant) {
        return Ok(uid);
    }
    Ok(db.operator().tenant_info(&tenant_name(tenant.to_owned())?).map_err(status::from_storage)?.uid)
}

/// Records an operator's read of a tenant's administrative state in that tenant's trail.
fn audit_read(db: &Database, uid: TenantUid, operation: &str) -> Result<(), Status> {
    db.operator().audit_admin_read(uid, operation).map_err(status::from_storage)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn request_access_grant(
        &self,
        request: Request<pb::RequestAccessGrantRequest>,
    ) -> Result<Response<pb::AccessGrant>, Status> {
        break_glass_configured(&self.shared)?;
        self.call(request, "admin-request-access-grant", |db, req| {
            let name = tenant_name(req.tenant)?;
            // Unspecified: a reader's grant, as before grants had a role.
            let role = match req.role {
                0 => Role::Reader,
                role => convert::role_from(role)?,
            };
            let grant = db
                .operator()
                .request_access_grant_as(&name, &req.reason, grant_ttl(req.ttl_seconds), role)
                .map_err(status::from_storage)?;
            Ok(convert::grant_to(name.as_str(), grant))
        })
        .await
    }

    async fn approve_access_grant(
        &self,
        request: Request<pb::ApproveAccessGrantRequest>,
    ) -> Result<Response<pb::AccessGrant>, Status> {
        break_glass_configured(&self.shared)?;
        // The admission layer lets the approver token through to this call alone; the admin token
        // reaches it too, to be refused here, with the refusal in the tenant's trail.
        let by_approver = request.extensions().get::<AdmittedApprover>().is_some();
        self.call(request, "admin-approve-access-grant", move |db, req| {
            let name = tenant_name(req.tenant)?;
            if !by_approver {
                db.operator()
                    .refuse_access_grant_approval(&name, &req.grant_id, "permission-denied")
                    .map_err(status::from_storage)?;
                return Err(Status::permission_denied(
                    "the admin token cannot approve an access grant: approval needs the second \
                     credential, the approver token (`bulkhead admin grant approve`)",
                ));
            }
            // The approval names the role it approves: required, and a grant of another is refused.
            if req.role == 0 {
                return Err(invalid("role", "the role of the grant being approved (reader or tenant-admin)"));
            }
            let role = convert::role_from(req.role)?;
            let grant = db
                .operator()
                .approve_access_grant_as(&name, &req.grant_id, role)
                .map_err(status::from_storage)?;
            Ok(convert::grant_to(name.as_str(), grant))
        })
        .await
    }

    async fn activate_access_grant(
        &self,
        request: Request<pb::ActivateAccessGrantRequest>,
    ) -> Result<Response<pb::ActivateAccessGrantResponse>, Status> {
        break_glass_configured(&self.shared)?;
        self.call(request, "admin-activate-access-grant", |db, req| {
            let name = tenant_name(req.tenant)?;
            let (grant, key) =
                db.operator().activate_access_grant(&name, &req.grant_id).map_err(status::from_storage)?;
            let key_id = key.key_id.clone();
            Ok(pb::ActivateAccessGrantResponse {
                grant: Some(convert::grant_to(name.as_str(), grant)),
                token: key.token,
                key_id,
            })
        })
        .await
    }

    async fn list_access_grants(
        &self,
        request: Request<pb::ListAccessGrantsRequest>,
    ) -> Result<Response<pb::ListAccessGrantsResponse>, Status> {
        // The approver token reaches this call too (the admission layer lets it): it sees what it
        // is asked to approve, and learns no tenant names (an unknown tenant has no grants).
        let by_approver = request.extensions().get::<AdmittedApprover>().is_some();
        let operation = if by_approver { "approver-list-access-grants" } else { "admin-list-access-grants" };
        self.call(request, operation, move |db, req| {
            let name = tenant_name(req.tenant)?;
            let uid = match db.operator().tenant_info(&name) {
                Err(StorageError::NotFound { .. }) if by_approver => {
                    return Ok(pb::ListAccessGrantsResponse { grants: Vec::new() });
                }
                found => found.map_err(status::from_storage)?.uid,
            };
            audit_read(db, uid, operation)?;
            let grants = db.operator().list_access_grants(&name).map_err(status::from_storage)?;
            let grants = grants.into_iter().map(|g| convert::grant_to(name.as_str(), g)).collect();
            Ok(pb::ListAccessGrantsResponse { grants })
        })
        .await
    }

    /// Works without an approver token too: access can always be taken back.
    async fn revoke_access_grant(
        &self,
        request: Request<pb::RevokeAccessGrantRequest>,
    ) -> Result<Response<pb::AccessGrant>, Status> {
        self.call(request, "admin-revoke-access-grant", |db, req| {
            let name = tenant_name(req.tenant)?;
            let grant =
                db.operator().revoke_access_grant(&name, &req.grant_id).map_err(status::from_storage)?;
            Ok(convert::grant_to(name.as_str(), grant))
        })
        .await
    }

    type ExportTenantStream = crate::archive::ExportStream;

    async fn export_tenant(
        &self,
        request: Request<pb::ExportTenantRequest>,
    ) -> Result<Response<Self::ExportTenantStream>, Status> {
        crate::archive::export(&self.shared, request).await
    }

    async fn import_tenant(
        &self,
        request: Request<tonic::Streaming<pb::ImportTenantRequest>>,
    ) -> Result<Response<pb::ImportTenantResponse>, Status> {
        crate::archive::import(&self.shared, request).await
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.call(request, "admin-create-tenant", |db, req| {
            let name = tenant_name(req.name)?;
            let created = match req.tier.as_str() {
                "" => db.operator().create_tenant(&name),
                tier => {
                    let placement = Placement::from_name(tier).ok_or_else(|| {
                        Status::invalid_argument(
                            "tier must be `partitioned`, `shared` or `dedicated` (or empty: the default)",
                        )
                    })?;
                    db.operator().create_tenant_in(&name, placement)
                }
            };
            let info = created.map_err(status::from_storage)?;
            tracing::info!(tenant = %info.uid.short(), "tenant created through the admin service");
            Ok(convert::tenant_to(&info))
        })
        .await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.call(request, "admin-list-tenants", |db, _| {
            let tenants = db.operator().list_tenants().map_err(status::from_storage)?;
            Ok(pb::ListTenantsResponse { tenants: tenants.iter().map(convert::tenant_to).collect() })
        })
        .await
    }

    async fn describe_tenant(
        &self,
        request: Request<pb::DescribeTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.call(request, "admin-describe-tenant", |db, req| {
            let info = db.operator().tenant_info(&tenant_name(req.name)?).map_err(status::from_storage)?;
            audit_read(db, info.uid, "admin-describe-tenant")?;
            Ok(convert::tenant_to(&info))
        })
        .await
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        self.call(request, "admin-delete-tenant", |db, req| {
            let revoked = db.delete_tenant(&tenant_name(req.name)?).map_err(status::from_storage)?;
            Ok(pb::DeleteTenantResponse { revoked_keys: revoked as u32 })
        })
        .await
    }

    async fn move_tenant(
        &self,
        request: Request<pb::MoveTenantRequest>,
    ) -> Result<Response<pb::MoveTenantResponse>, Status> {
        self.call(request, "admin-move-tenant", |db, req| {
            let name = tenant_name(req.tenant)?;
            let tier = Placement::from_name(&req.tier).ok_or_else(|| {
                Status::invalid_argument("tier must be `partitioned`, `shared` or `dedicated`")
            })?;
            let done = db.operator().move_tenant(&name, tier, |_| {}).map_err(status::from_storage)?;
            Ok(pb::MoveTenantResponse {
                tier: tier.name().to_owned(),
                moved: done.switched,
                copied: done.copied,
                rounds: done.rounds,
            })
        })
        .await
    }

    async fn get_move_status(
        &self,
        request: Request<pb::GetMoveStatusRequest>,
    ) -> Result<Response<pb::MoveStatus>, Status> {
        self.call(request, "admin-get-move-status", |db, req| {
            let op = db.operator();
            let uid = op.tenant_info(&tenant_name(req.tenant)?).map_err(status::from_storage)?.uid;
            audit_read(db, uid, "admin-move-status")?;
            Ok(op.move_status(uid).map_or_else(pb::MoveStatus::default, |now| pb::MoveStatus {
                running: true,
                from_tier: now.from.name().to_owned(),
                to_tier: now.target.name().to_owned(),
                copied: now.copied,
                rounds: now.rounds,
                switched: now.switched,
            }))
        })
        .await
    }

    async fn revoke_all_api_keys(
        &self,
        request: Request<pb::RevokeAllApiKeysRequest>,
    ) -> Result<Response<pb::RevokeAllApiKeysResponse>, Status> {
        self.call(request, "admin-revoke-all-api-keys", |db, req| {
            let revoked =
                db.operator().revoke_all_api_keys(&tenant_name(req.tenant)?).map_err(status::from_storage)?;
            Ok(pb::RevokeAllApiKeysResponse { revoked: revoked as u32 })
        })
        .await
    }

    async fn rotate_tenant_key(
        &self,
        request: Request<pb::RotateTenantKeyRequest>,
    ) -> Result<Response<pb::RotationStatus>, Status> {
        self.call(request, "admin-rotate-tenant-key", |db, req| {
            let progress =
                db.operator().rotate_tenant_key(&tenant_name(req.tenant)?).map_err(status::from_storage)?;
            // The server's rotation task (server.rs) re-seals the older records from here on.
            Ok(convert::rotation_to(Some(progress), progress.target_generation))
        })
        .await
    }

    async fn get_rotation_status(
        &self,
        request: Request<pb::GetRotationStatusRequest>,
    ) -> Result<Response<pb::RotationStatus>, Status> {
        self.call(request, "admin-get-rotation-status", |db, req| {
            let op = db.operator();
            let uid = op.tenant_info(&tenant_name(req.tenant)?).map_err(status::from_storage)?.uid;
            audit_read(db, uid, "admin-rotation-status")?;
            let progress = op.rotation_status(uid).map_err(status::from_storage)?;
            let generation = op.key_generation(uid).map_err(status::from_storage)?;
            Ok(convert::rotation_to(progress, generation))
        })
        .await
    }

    async fn rotate_master_key(
        &self,
        request: Request<pb::RotateMasterKeyRequest>,
    ) -> Result<Response<pb::RotateMasterKeyResponse>, Status> {
        self.call(request, "admin-rotate-master-key", |db, req| {
            // The key file is read on the server's host: a regular file of at most 256 bytes, owned by
            // the server's user, mode 0600, holding 64 hex characters (MasterKey::from_file). Why a
            // path fails goes to the server's log only: the answer is the same whether the file is
            // missing, unreadable, of another owner or mode, or malformed, so that the admin plane
            // cannot be used to probe the host's files.
            let key = MasterKey::from_file(std::path::Path::new(&req.new_key_file)).map_err(|e| {
                tracing::warn!(error = %e, "rotate-master-key: the new key file cannot be used");
                invalid(
                    "new_key_file",
                    "not a usable master key file: it must be a regular file of at most 256 bytes owned by \
                     the server's user, mode 0600, holding 64 hex characters (the server's log says why)",
                )
            })?;
            let version = db.operator().rotate_master_key(key).map_err(status::from_storage)?;
            Ok(pb::RotateMasterKeyResponse { master_version: version })
        })
        .await
    }

    /// A configured admin token issues a tenant's first key only; the development one, any key.
    async fn issue_api_key(
        &self,
        request: Request<pb::IssueApiKeyRequest>,
    ) -> Result<Response<pb::IssueApiKeyResponse>, Status> {
        let any_key = self.shared.development_admin;
        self.call(request, "admin-issue-api-key", move |db, req| {
            let role = convert::role_from(req.role)?;
            auth::check_key_request(db.clock().now_ms(), &req.label, req.expires_ms)?;
            let binding = convert::binding_from(req.binding);
            let (name, operator) = (tenant_name(req.tenant)?, db.operator());
            let issued = match any_key {
                true => operator.issue_bound_api_key(&name, role, &req.label, req.expires_ms, binding),
                false => operator.issue_first_api_key(&name, role, &req.label, req.expires_ms, binding),
            };
            let issued = issued.map_err(status::from_storage)?;
            Ok(pb::IssueApiKeyResponse { token: issued.token.clone(), key_id: issued.key_id.clone() })
        })
        .await
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        self.call(request, "admin-list-api-keys", |db, req| {
            let name = tenant_name(req.tenant)?;
            let uid = db.operator().tenant_info(&name).map_err(status::from_storage)?.uid;
            audit_read(db, uid, "admin-list-api-keys")?;
            let keys = db.operator().list_api_keys(&name).map_err(status::from_storage)?;
            Ok(pb::ListApiKeysResponse { keys: keys.into_iter().map(convert::api_key_to).collect() })
        })
        .await
    }

    async fn unlock_api_key(
        &self,
        request: Request<pb::UnlockApiKeyRequest>,
    ) -> Result<Response<pb::UnlockApiKeyResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        self.call(request, "admin-unlock-api-key", move |db, req| {
            let was_locked = db
                .operator()
                .unlock_api_key(&tenant_name(req.tenant)?, &req.key_id)
                .map_err(status::from_storage)?;
            // The key starts afresh: its old requests and refusals no longer count. The windows
            // are keyed by the id as scopes spell it (lower-case hex); storage took either case.
            shared.lockout.forget(&req.key_id.to_ascii_lowercase());
            Ok(pb::UnlockApiKeyResponse { was_locked })
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        self.call(request, "admin-revoke-api-key", |db, req| {
            db.operator()
                .revoke_api_key(&tenant_name(req.tenant)?, &req.key_id)
                .map_err(status::from_storage)?;
            Ok(pb::RevokeApiKeyResponse {})
        })
        .await
    }

    async fn export_audit(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<pb::ExportAuditResponse>, Status> {
        self.call(request, "admin-export-audit", |db, req| {
            let uid = tenant_uid(db, &req.tenant)?;
            audit_read(db, uid, "admin-export-audit")?;
            let limit = limits::audit_page(req.limit)?;
            let (events, next) = db
                .operator()
                .audit_page(uid, req.from_seq, req.since_ms, limit)
                .map_err(status::from_storage)?;
            Ok(convert::audit_page_to(events, next))
        })
        .await
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        self.call(request, "admin-verify-audit", |db, req| {
            let op = db.operator();
            let uids = if req.tenant.is_empty() {
                op.audit_tenants().map_err(status::from_storage)?
            } else {
                vec![tenant_uid(db, &req.tenant)?]
            };
            let directory = match req.tenant.is_empty() {
                true => Some(op.audit_directory_check().map_err(status::from_storage)?),
                false => None,
            };
            let mut chains = Vec::with_capacity(uids.len());
            for uid in uids {
                let check = op.audit_verify(uid).map_err(status::from_storage)?;
                chains.push(pb::AuditChainCheck {
                    tenant_uid: uid.to_hex(),
                    events: check.events,
                    first_seq: check.first_seq,
                    first_broken: check.first_broken,
                    broken_reason: check.reason.map(str::to_owned),
                });
            }
            Ok(pb::VerifyAuditResponse {
                chains,
                chains_registered: directory.map(|d| d.registered),
                chains_expected: directory.and_then(|d| d.expected),
            })
        })
        .await
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyResponse>, Status> {
        self.call(request, "admin-get-policy", |db, req| {
            let name = tenant_name(req.tenant)?;
            let policy = db.operator().policy(&name).map_err(status::from_storage)?;
            Ok(convert::policy_to(&policy))
        })
        .await
    }

    async fn set_policy(
        &self,
        request: Request<pb::SetPolicyRequest>,
    ) -> Result<Response<pb::PolicyResponse>, Status> {
        self.call(request, "admin-set-policy", |db, req| {
            let name = tenant_name(req.tenant)?;
            let policy = convert::policy_from(req.policy.unwrap_or_default())?;
            let op = db.operator();
            op.set_policy(&name, policy, req.expected_version, &req.note).map_err(status::from_storage)?;
            let policy = op.policy(&name).map_err(status::from_storage)?;
            Ok(convert::policy_to(&policy))
        })
        .await
    }
}
