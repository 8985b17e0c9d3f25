//! The `bulkhead.v1.DataPlane` service: collections, points and search of the credential's tenant.
//! Each method names its operation (the role it needs is in `auth.rs`), converts the request
//! (`convert.rs`) and calls the embedded API on the blocking pool.

use crate::admission::AdmittedCall;
use crate::auth::{self, DataOp};
use crate::convert;
use crate::limits;
use crate::proto as pb;
use crate::proto::data_plane_server::DataPlane;
use crate::server::{CallContext, Shared};
use crate::status::{self, invalid};
use bulkhead_query::{Budget, KeyBinding, SearchRequest, Tenant, TenantScope};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) struct DataService {
    shared: Arc<Shared>,
}

impl DataService {
    pub(crate) fn new(shared: Arc<Shared>) -> DataService {
        DataService { shared }
    }

    /// Runs `work` on the scope's tenant: the scope the admission layer minted for `op`.
    async fn tenant<Req: prost::Message + 'static, T: prost::Message + 'static>(
        &self,
        request: Request<Req>,
        op: DataOp,
        work: impl FnOnce(&Tenant<'_>, &TenantScope, &CallContext, Req) -> Result<T, Status> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        let (_, extensions, message) = request.into_parts();
        let bytes = message.encoded_len();
        let result = self
            .shared
            .data(extensions.get::<AdmittedCall>(), op, bytes, move |db, scope, context| {
                let tenant = db.tenant(&scope).map_err(status::from_query)?;
                let result = work(&tenant, &scope, context, message);
                // A request refused here before it reached an operation (a malformed field, a batch
                // over a server limit) still leaves its event.
                if let Err(refused) = &result
                    && tenant.audited_events() == 0
                {
                    auth::record_refusal(db, &scope, op.audit_name(), status::reason_code(refused.code()));
                }
                result
            })
            .await?;
        Ok(Response::new(result))
    }
}

/// One search, from the fields a `SearchRequest` and a `BatchQuery` share, within the call's
/// budget (shared by every query of a batch).
fn search_one(
    tenant: &Tenant<'_>,
    scope: &TenantScope,
    collection: &str,
    query: pb::BatchQuery,
    budget: &Budget,
) -> Result<pb::SearchResponse, Status> {
    let principal = auth::search_principal(scope, query.principal)?;
    let filter = query.filter.map(convert::filter_from).transpose()?;
    let request = SearchRequest {
        k: query.k as usize,
        ef: query.ef.map(|ef| ef as usize),
        principal: principal.as_ref(),
        filter: filter.as_ref(),
    };
    let hits =
        tenant.search_within(collection, &query.vector, &request, budget).map_err(status::from_query)?;
    Ok(pb::SearchResponse { hits: hits.into_iter().map(convert::hit_to).collect() })
}

#[tonic::async_trait]
impl DataPlane for DataService {
    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        self.tenant(request, DataOp::CreateCollection, |tenant, _, _, req| {
            let metric = convert::metric_from(req.metric)?;
            let info = tenant
                .create_collection(&req.name, convert::dimension_from(req.dimension), metric)
                .map_err(status::from_query)?;
            Ok(convert::collection_to(&info))
        })
        .await
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        self.tenant(request, DataOp::ListCollections, |tenant, _, _, _| {
            let list = tenant.collections().map_err(status::from_query)?;
            Ok(pb::ListCollectionsResponse { collections: list.iter().map(convert::collection_to).collect() })
        })
        .await
    }

    async fn describe_collection(
        &self,
        request: Request<pb::DescribeCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        self.tenant(request, DataOp::DescribeCollection, |tenant, scope, _, req| {
            // The segment and delta sizes add up to every point of the collection, which a
            // user-bound key may not learn (its counts cover only what its user may read).
            if matches!(scope.binding(), KeyBinding::User { .. }) {
                return Ok(convert::collection_to(
                    &tenant.collection(&req.name).map_err(status::from_query)?,
                ));
            }
            let (info, graph) = tenant.describe(&req.name).map_err(status::from_query)?;
            let mut collection = convert::collection_to(&info);
            collection.index = Some(convert::index_status_to(&graph));
            Ok(collection)
        })
        .await
    }

    async fn drop_collection(
        &self,
        request: Request<pb::DropCollectionRequest>,
    ) -> Result<Response<pb::DropCollectionResponse>, Status> {
        self.tenant(request, DataOp::DropCollection, |tenant, _, _, req| {
            tenant.drop_collection(&req.name).map_err(status::from_query)?;
            Ok(pb::DropCollectionResponse {})
        })
        .await
    }

    async fn upsert(
        &self,
        request: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        self.tenant(request, DataOp::Upsert, |tenant, _, _, req| {
            // The library checks the batch limits too, but only after the points are built: refuse an
            // oversized batch before converting it.
            if req.points.len() > bulkhead_query::limits::MAX_BATCH_POINTS {
                return Err(invalid(
                    "points",
                    format!("at most {} points per batch", bulkhead_query::limits::MAX_BATCH_POINTS),
                ));
            }
            let points = req.points.into_iter().map(convert::point_from).collect::<Result<Vec<_>, _>>()?;
            let versions = tenant.upsert(&req.collection, &points).map_err(status::from_query)?;
            Ok(pb::UpsertResponse { versions })
        })
        .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.tenant(request, DataOp::Get, |tenant, scope, _, req| {
            let principal = auth::search_principal(scope, req.principal)?;
            let id = convert::doc_id_from(req.id)?;
            // The library's rules decide whom the read runs as (a key without the on-behalf-of right
            // cannot name a principal, as on search), and the principal is audited; a point the
            // principal may not read looks exactly like a missing one.
            let point = tenant
                .get_as(&req.collection, &id, principal.as_ref())
                .map_err(status::from_query)?
                .ok_or_else(|| Status::not_found("point not found"))?;
            Ok(pb::GetResponse { point: Some(convert::stored_to(point, req.with_vector)) })
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.tenant(request, DataOp::Delete, |tenant, _, _, req| {
            if req.ids.len() > bulkhead_query::limits::MAX_BATCH_POINTS {
                return Err(invalid(
                    "ids",
                    format!("at most {} ids per batch", bulkhead_query::limits::MAX_BATCH_POINTS),
                ));
            }
            let ids = req.ids.into_iter().map(convert::doc_id_from).collect::<Result<Vec<_>, _>>()?;
            let deleted = tenant.delete(&req.collection, &ids).map_err(status::from_query)?;
            Ok(pb::DeleteResponse { deleted: deleted as u64 })
        })
        .await
    }

    async fn count(&self, request: Request<pb::CountRequest>) -> Result<Response<pb::CountResponse>, Status> {
        self.tenant(request, DataOp::Count, |tenant, _, _, req| {
            Ok(pb::CountResponse { count: tenant.count(&req.collection).map_err(status::from_query)? })
        })
        .await
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        self.tenant(request, DataOp::Search, |tenant, scope, context, req| {
            let query = pb::BatchQuery {
                vector: req.vector,
                k: req.k,
                ef: req.ef,
                filter: req.filter,
                principal: req.principal,
            };
            search_one(tenant, scope, &req.collection, query, &context.search_budget())
        })
        .await
    }

    async fn search_batch(
        &self,
        request: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        self.tenant(request, DataOp::SearchBatch, |tenant, scope, context, req| {
            if req.queries.is_empty() || req.queries.len() > limits::MAX_SEARCH_BATCH {
                return Err(invalid(
                    "queries",
                    format!("must be 1 to {} per batch", limits::MAX_SEARCH_BATCH),
                ));
            }
            let budget = context.search_budget();
            let results = req
                .queries
                .into_iter()
                .map(|query| search_one(tenant, scope, &req.collection, query, &budget))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(pb::SearchBatchResponse { results })
        })
        .await
    }

    async fn export_audit(
        &self,
        request: Request<pb::ExportOwnAuditRequest>,
    ) -> Result<Response<pb::ExportAuditResponse>, Status> {
        self.tenant(request, DataOp::ExportAudit, |tenant, _, _, req| {
            let limit = limits::audit_page(req.limit)?;
            let (events, next) =
                tenant.audit_page(req.from_seq, req.since_ms, limit).map_err(status::from_query)?;
            Ok(convert::audit_page_to(events, next))
        })
        .await
    }

    async fn issue_own_api_key(
        &self,
        request: Request<pb::IssueOwnApiKeyRequest>,
    ) -> Result<Response<pb::IssueApiKeyResponse>, Status> {
        let clock = self.shared.db.clock().clone();
        self.tenant(request, DataOp::IssueOwnApiKey, move |tenant, _, _, req| {
            let role = convert::role_from(req.role)?;
            auth::check_key_request(clock.now_ms(), &req.label, req.expires_ms)?;
            let binding = convert::own_binding_from(req.binding);
            let issued = tenant
                .issue_api_key(role, &req.label, req.expires_ms, binding)
                .map_err(status::from_query)?;
            Ok(pb::IssueApiKeyResponse { token: issued.token.clone(), key_id: issued.key_id.clone() })
        })
        .await
    }

    async fn list_own_api_keys(
        &self,
        request: Request<pb::ListOwnApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        self.tenant(request, DataOp::ListOwnApiKeys, |tenant, _, _, _| {
            let keys = tenant.api_keys().map_err(status::from_query)?;
            Ok(pb::ListApiKeysResponse { keys: keys.into_iter().map(convert::api_key_to).collect() })
        })
        .await
    }

    async fn revoke_own_api_key(
        &self,
        request: Request<pb::RevokeOwnApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        self.tenant(request, DataOp::RevokeOwnApiKey, |tenant, _, _, req| {
            tenant.revoke_api_key(&req.key_id).map_err(status::from_query)?;
            Ok(pb::RevokeApiKeyResponse {})
        })
        .await
    }
}
