//! Admission: the tower layer in front of every service. A call to the data plane or the admin
//! plane is authenticated on its headers (the `authorization: Bearer` metadata and the path that
//! names the method) before a byte of its body is read: a refused call is answered with its
//! status (`UNAUTHENTICATED`, `PERMISSION_DENIED`), counted and audited exactly as
//! `auth::authorize_data` and `auth::authorize_admin` do, and its body is dropped unread. Only an
//! admitted call's body reaches tonic, wrapped in a [`LimitedBody`] (its method's message limit
//! and the server's request memory budget) and decoded by the bounded codec (`codec.rs`).
//!
//! An admitted data-plane call carries its minted [`TenantScope`] to its handler in the request's
//! extensions ([`AdmittedCall`]), taken once; the scope itself is never cloned. A handler that
//! finds no admission refuses the call (fail closed). gRPC reflection stays open, with the small
//! message limit; any other path (an unknown service or method) gets the same treatment and is
//! answered `UNIMPLEMENTED` by tonic.

use crate::auth::{self, DataOp};
use crate::budget::{CALL, CallBudget, LimitedBody};
use crate::connections::ConnectionInfo;
use crate::limits::{self, MessageLimit};
use crate::quota::TenantLimits;
use crate::server::{self, Shared};
use crate::status;
use bulkhead_query::TenantScope;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TlsConnectInfo;

/// What a call is, by its path.
#[derive(Debug, Clone, Copy)]
enum Plane {
    Data(DataOp),
    Admin,
    /// Reflection, and any path no service of ours answers.
    Open,
}

impl Plane {
    fn of(path: &str) -> Plane {
        if let Some(method) = path.strip_prefix("/bulkhead.v1.DataPlane/") {
            return DataOp::from_method(method).map_or(Plane::Open, Plane::Data);
        }
        // Every known admin method; an unknown one is left to tonic (UNIMPLEMENTED).
        if path.starts_with("/bulkhead.v1.Admin/")
            && limits::REQUEST_MESSAGE_LIMITS.iter().any(|(p, _)| *p == path)
        {
            return Plane::Admin;
        }
        Plane::Open
    }
}

/// When a call arrived and when its deadline passes (the server's, or the client's
/// `grpc-timeout` if sooner).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) arrived: Instant,
    pub(crate) deadline: Instant,
    pub(crate) budget: Duration,
}

/// An admitted data-plane call: its scope, until its handler takes it, and its tenant's limits.
#[derive(Debug)]
struct Admitted {
    op: DataOp,
    timing: Timing,
    scope: Mutex<Option<TenantScope>>,
    limits: Arc<TenantLimits>,
}

impl Admitted {
    fn take(&self) -> Option<TenantScope> {
        self.scope.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// The request extension that carries an admitted data-plane call's scope to its handler. Cloning
/// it clones the handle, not the scope: the scope is taken once.
#[derive(Debug, Clone)]
pub(crate) struct AdmittedCall(Arc<Admitted>);

impl AdmittedCall {
    /// The scope, timing and tenant limits of a call admitted for `op`; `None` if it was not
    /// admitted for `op` or the scope was already taken.
    pub(crate) fn take(&self, op: DataOp) -> Option<(TenantScope, Timing, Arc<TenantLimits>)> {
        if self.0.op != op {
            tracing::error!(admitted = op.audit_name(), "a call reached the handler of another operation");
            return None;
        }
        self.0.take().map(|scope| (scope, self.0.timing, Arc::clone(&self.0.limits)))
    }
}

/// The request extension of an admin-plane call that presented the admin token or, for
/// [`APPROVER_METHODS`] only, the approver token.
#[derive(Debug, Clone)]
pub(crate) struct AdmittedOperator(pub(crate) Timing);

/// The request extension of an admin-plane call that presented the approver token (the second
/// credential of break-glass grants) rather than the admin token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdmittedApprover;

/// The methods the approver token may call: approving a grant, and listing a tenant's grants (so
/// that it sees the role, reason and expiry of what it approves).
pub(crate) const APPROVER_METHODS: [&str; 2] =
    ["/bulkhead.v1.Admin/ApproveAccessGrant", "/bulkhead.v1.Admin/ListAccessGrants"];

/// The layer (see the module documentation).
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    shared: Arc<Shared>,
}

impl AdmissionLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> AdmissionLayer {
        AdmissionLayer { shared }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service [`AdmissionLayer`] puts in front of the router.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> tower::Service<http::Request<Body>> for Admission<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(admit(Arc::clone(&self.shared), ready, request))
    }
}

async fn admit<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, S::Error>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let path = request.uri().path();
    let mut limit = limits::request_message_limit(path);
    if shared.limits.max_message_bytes < limit.bytes {
        limit = MessageLimit { bytes: shared.limits.max_message_bytes, name: "MAX_MESSAGE_BYTES" };
    }
    let plane = Plane::of(path);
    let approver_method = APPROVER_METHODS.contains(&path);
    if let Plane::Open = plane {
        let request = request.map(|body| Body::new(LimitedBody::new(body, limit, None, false)));
        return inner.call(request).await;
    }
    // The archive calls stream a whole tenant: they get the server's archive timeout instead.
    let timeout = match limits::ARCHIVE_METHODS.contains(&path) {
        true => shared.limits.archive_timeout,
        false => shared.limits.request_timeout,
    };
    let timing = server::timing(request.headers(), timeout);
    let token = match auth::bearer(request.headers()) {
        Ok(token) => token,
        Err(refused) => {
            shared.metrics.denial(refused.tenant_label(), refused.reason());
            return Ok(Status::from(refused).into_http());
        }
    };
    let mut request = request;
    match plane {
        Plane::Data(op) => {
            // A key that authenticated before is checked from memory on this thread; any other
            // credential goes to the blocking pool (see `authorize`).
            let admitted = match shared.admit_cached(&token, op).await {
                Some(admitted) => admitted,
                None => authorize(&shared, move |shared| shared.admit_data(&token, op)).await,
            };
            let (scope, limits) = match admitted {
                Ok(admitted) => admitted,
                Err(status) => return Ok(status.into_http()),
            };
            // The tenant's request rate, before a byte of the body is read. A throttled call is
            // counted, not audited: a flood must not turn into a flood of audit writes. Its body
            // is dropped unread, then its refusal held until its turn (`quota.rs`).
            if let Err(throttled) = limits.admit_headers(op == DataOp::Upsert) {
                let connection = held_on_connection(&request);
                let tenant = scope.tenant_uid();
                drop((request, scope));
                let held = shared.metrics.holding();
                if let Err(full) = limits.hold_refusal(&throttled, timing, connection.as_deref()).await {
                    shared.metrics.refusal_not_held(full);
                }
                drop(held);
                shared.count_throttled(tenant, op, &throttled.status, timing);
                return Ok(throttled.status.into_http());
            }
            let admitted = Arc::new(Admitted { op, timing, scope: Mutex::new(Some(scope)), limits });
            request.extensions_mut().insert(AdmittedCall(Arc::clone(&admitted)));
            let response = serve(&shared, inner, request, limit, timing).await?;
            // The handler takes the scope. If it is still here, the call was refused before its
            // handler ran (its body was over a limit, or did not decode): that refusal is counted
            // and audited like the handler's own refusals.
            if let Some(scope) = admitted.take() {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .map_or(tonic::Code::Internal, |v| tonic::Code::from_bytes(v.as_bytes()));
                refused_before_handler(&shared, scope, op, code, timing).await;
            }
            Ok(response)
        }
        Plane::Admin => {
            // The operator tokens are checked in constant time without storage; anything else is
            // looked up. The approver token may only approve and list grants.
            if shared.is_approver(&token) {
                if !approver_method {
                    let refused = auth::AuthError::ApproverBeyondApproval;
                    shared.metrics.denial(refused.tenant_label(), refused.reason());
                    return Ok(Status::from(refused).into_http());
                }
                request.extensions_mut().insert(AdmittedApprover);
            } else if !shared.admin.matches(&token) {
                let refused = authorize(&shared, move |shared| {
                    auth::authorize_admin(&shared.db, &shared.admin, &token)
                })
                .await;
                if let Err(status) = refused {
                    return Ok(status.into_http());
                }
            }
            request.extensions_mut().insert(AdmittedOperator(timing));
            serve(&shared, inner, request, limit, timing).await
        }
        Plane::Open => inner.call(request).await,
    }
}

/// The count of refusals held on the call's connection (`connections.rs`), over TCP or TLS.
fn held_on_connection(request: &http::Request<Body>) -> Option<Arc<AtomicUsize>> {
    let extensions = request.extensions();
    let info = extensions
        .get::<ConnectionInfo>()
        .or_else(|| extensions.get::<TlsConnectInfo<ConnectionInfo>>().map(TlsConnectInfo::get_ref));
    info.map(|info| Arc::clone(&info.held_refusals))
}

/// Passes an admitted call on, its body limited and budgeted; the call's reservations are held
/// until the service's future (the handler) is done.
async fn serve<S>(
    shared: &Arc<Shared>,
    mut inner: S,
    request: http::Request<Body>,
    limit: MessageLimit,
    timing: Timing,
) -> Result<http::Response<Body>, S::Error>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let call = Arc::new(CallBudget::new(Arc::clone(&shared.budget), timing.deadline, timing.budget));
    let unary = !limits::CLIENT_STREAMING_METHODS.contains(&request.uri().path());
    let request =
        request.map(|body| Body::new(LimitedBody::new(body, limit, Some(Arc::clone(&call)), unary)));
    CALL.scope(call, inner.call(request)).await
}

/// Runs a credential check that may read (and, for a refusal it audits, write) storage: any
/// credential except a key that authenticated before and still would, which
/// `Shared::admit_cached` checks from memory on the caller's thread (a keyed hash and a map
/// lookup, no storage).
///
/// On the blocking pool rather than inline. Measured on the development machine (2 cores shared
/// with a compiler, release build, the key's block cached, 20,000 checks in a row): a check costs
/// 1 to 3 µs inline (0.7 to 0.9 µs for an unknown key), and 9 to 32 µs of latency through
/// `spawn_blocking`, most of it the hand-off and the wake-up. The hand-off is worth its cost: a
/// check whose block is not cached reads the disk, and a revoked or expired key, a role refusal
/// and a tenant key on the admin plane also append an audit event, a RocksDB write that can stall
/// (write-stall backoff, a full memtable) for milliseconds or more. Inline, such a stall would
/// stop every connection the same runtime worker drives, including the refusals of a flood; on
/// the blocking pool it delays only its own call, as every other storage access in the server
/// does. A check needs no work permit (`MAX_CONCURRENT_WORK`), so a flood of bad
/// credentials does not take permits from admitted calls.
async fn authorize<T: Send + 'static>(
    shared: &Arc<Shared>,
    check: impl FnOnce(&Shared) -> Result<T, auth::AuthError> + Send + 'static,
) -> Result<T, Status> {
    let for_check = Arc::clone(shared);
    let checked = tokio::task::spawn_blocking(move || {
        check(&for_check).inspect_err(|e| for_check.metrics.denial(e.tenant_label(), e.reason()))
    })
    .await;
    match checked {
        Ok(Ok(admitted)) => Ok(admitted),
        Ok(Err(refused)) => Err(Status::from(refused)),
        Err(join) => Err(status::internal(&join)),
    }
}

/// Counts and audits a data-plane call refused after admission but before its handler, as the
/// handler does for its own refusals.
async fn refused_before_handler(
    shared: &Arc<Shared>,
    scope: TenantScope,
    op: DataOp,
    code: tonic::Code,
    timing: Timing,
) {
    let shared = Arc::clone(shared);
    let recorded = tokio::task::spawn_blocking(move || {
        let reason = status::reason_code(code);
        shared.metrics.request(scope.tenant_uid().short(), op.audit_name(), reason, timing.arrived.elapsed());
        auth::record_refusal(&shared.db, &scope, op.audit_name(), reason);
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record a refused call");
    }
}
