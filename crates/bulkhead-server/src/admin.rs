//! The `bulkhead.v1.Admin` service: tenants and API keys, for the operator's admin credential only.

use crate::convert;
use crate::limits;
use crate::proto as pb;
use crate::proto::admin_server::Admin;
use crate::server::Shared;
use crate::status::{self, invalid};
use bulkhead_query::{Database, TenantName};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) struct AdminService {
    shared: Arc<Shared>,
}

impl AdminService {
    pub(crate) fn new(shared: Arc<Shared>) -> AdminService {
        AdminService { shared }
    }

    async fn call<Req: Send + 'static, T: Send + 'static>(
        &self,
        request: Request<Req>,
        work: impl FnOnce(&Database, Req) -> Result<T, Status> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        let (metadata, _, message) = request.into_parts();
        Ok(Response::new(self.shared.admin(&metadata, move |db| work(db, message)).await?))
    }
}

fn tenant_name(name: String) -> Result<TenantName, Status> {
    TenantName::new(name).map_err(status::from_storage)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.call(request, |db, req| {
            let info = db.operator().create_tenant(&tenant_name(req.name)?).map_err(status::from_storage)?;
            tracing::info!(tenant = %info.uid.short(), "tenant created through the admin service");
            Ok(convert::tenant_to(&info))
        })
        .await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.call(request, |db, _| {
            let tenants = db.operator().list_tenants().map_err(status::from_storage)?;
            Ok(pb::ListTenantsResponse { tenants: tenants.iter().map(convert::tenant_to).collect() })
        })
        .await
    }

    async fn describe_tenant(
        &self,
        request: Request<pb::DescribeTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.call(request, |db, req| {
            let info = db.operator().tenant_info(&tenant_name(req.name)?).map_err(status::from_storage)?;
            Ok(convert::tenant_to(&info))
        })
        .await
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        // Checked like every admin call (a caller without the admin token learns nothing), then
        // refused: deleting a tenant means crypto-shredding it, which the embedded API does not offer
        // yet (the rotation and shredding issue).
        self.call(request, |_, _| {
            Err(Status::unimplemented(
                "deleting a tenant is not implemented yet: it arrives with crypto-shredding (revoke the \
                 tenant's keys meanwhile)",
            ))
        })
        .await
    }

    async fn issue_api_key(
        &self,
        request: Request<pb::IssueApiKeyRequest>,
    ) -> Result<Response<pb::IssueApiKeyResponse>, Status> {
        self.call(request, |db, req| {
            let role = convert::role_from(req.role)?;
            if req.label.len() > limits::MAX_KEY_LABEL_BYTES {
                return Err(invalid(
                    "label",
                    format!("must be at most {} bytes", limits::MAX_KEY_LABEL_BYTES),
                ));
            }
            if req.expires_ms.is_some_and(|t| t <= now_ms()) {
                return Err(invalid("expires_ms", "must be in the future"));
            }
            let issued = db
                .operator()
                .issue_api_key(&tenant_name(req.tenant)?, role, &req.label, req.expires_ms)
                .map_err(status::from_storage)?;
            Ok(pb::IssueApiKeyResponse { token: issued.token.clone(), key_id: issued.key_id.clone() })
        })
        .await
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        self.call(request, |db, req| {
            let keys =
                db.operator().list_api_keys(&tenant_name(req.tenant)?).map_err(status::from_storage)?;
            Ok(pb::ListApiKeysResponse { keys: keys.into_iter().map(convert::api_key_to).collect() })
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        self.call(request, |db, req| {
            db.operator()
                .revoke_api_key(&tenant_name(req.tenant)?, &req.key_id)
                .map_err(status::from_storage)?;
            Ok(pb::RevokeApiKeyResponse {})
        })
        .await
    }
}
