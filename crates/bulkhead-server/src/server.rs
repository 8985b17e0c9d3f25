//! The tonic server: both services behind the admission layer (`admission.rs`), reflection, the
//! connection, stream and message limits, HTTP/2 keepalive, the bounded, deadline-checked hand-off
//! of every call's storage work to tokio's blocking pool, and the background tasks
//! (`background.rs`) it starts.

use crate::ServerError;
use crate::admin::AdminService;
use crate::admission::{AdmissionLayer, AdmittedCall, AdmittedOperator, Timing};
use crate::auth::{self, AdminToken, AuthError, DataOp};
use crate::background;
use crate::budget::RequestBudget;
use crate::data::DataService;
use crate::limits;
use crate::lockout::Lockout;
use crate::metrics::{self, Metrics};
use crate::proto::admin_server::AdminServer;
use crate::proto::data_plane_server::DataPlaneServer;
use crate::quota::{QuotaDefaults, Quotas, TenantLimits};
use crate::status;
use crate::tls::ServerTls;
use bulkhead_query::{Database, StorageError, TenantScope, TenantUid};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::Status;

/// The data plane's name in the health service (and in every method's path).
const DATA_PLANE_SERVICE: &str = <DataPlaneServer<DataService> as tonic::server::NamedService>::NAME;

/// The admin plane's name in the health service.
const ADMIN_SERVICE: &str = <AdminServer<AdminService> as tonic::server::NamedService>::NAME;

/// What one connection and one request may consume (see `docs/LIMITS.md`).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest message encoded, and largest decoded by any method ([`limits::MAX_MESSAGE_BYTES`]);
    /// each method has a tighter limit of its own ([`limits::request_message_limit`]).
    pub max_message_bytes: usize,
    /// HTTP/2 streams in flight per connection ([`limits::MAX_CONCURRENT_STREAMS`]).
    pub max_concurrent_streams: u32,
    /// The request deadline ([`limits::REQUEST_TIMEOUT`]); a shorter client `grpc-timeout` wins.
    pub request_timeout: Duration,
    /// The deadline of `ExportTenant` and `ImportTenant` ([`limits::ARCHIVE_TIMEOUT`]); a shorter
    /// client `grpc-timeout` wins.
    pub archive_timeout: Duration,
    /// Storage operations run at once over the whole server ([`limits::MAX_CONCURRENT_WORK`]).
    pub max_concurrent_work: usize,
    /// Client connections open at once ([`limits::MAX_CONNECTIONS`]); at the cap the server stops
    /// accepting until one closes.
    pub max_connections: usize,
    /// Request bytes held in memory at once over all calls
    /// ([`limits::REQUEST_MEMORY_BUDGET_BYTES`]; see `budget.rs`).
    pub request_memory_budget_bytes: usize,
    /// How long audit events are kept: older ones are pruned hourly, leaving a verifiable
    /// checkpoint. `None` (the default) keeps them forever.
    pub audit_retention: Option<Duration>,
    /// The quotas of a tenant whose policy sets none (see `quota.rs`).
    pub quotas: QuotaDefaults,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_message_bytes: limits::MAX_MESSAGE_BYTES,
            max_concurrent_streams: limits::MAX_CONCURRENT_STREAMS,
            request_timeout: limits::REQUEST_TIMEOUT,
            archive_timeout: limits::ARCHIVE_TIMEOUT,
            max_concurrent_work: limits::MAX_CONCURRENT_WORK,
            max_connections: limits::MAX_CONNECTIONS,
            request_memory_budget_bytes: limits::REQUEST_MEMORY_BUDGET_BYTES,
            audit_retention: None,
            quotas: QuotaDefaults::for_work(limits::MAX_CONCURRENT_WORK),
        }
    }
}

/// State shared by both services.
pub(crate) struct Shared {
    pub(crate) db: Arc<Database>,
    pub(crate) admin: AdminToken,
    /// The second credential, which alone approves break-glass grants; without it break-glass is
    /// unavailable.
    pub(crate) approver: Option<AdminToken>,
    /// Whether the admin token is a development one (generated into the data directory): then the
    /// operator's IssueApiKey issues any key, not only a tenant's first.
    pub(crate) development_admin: bool,
    pub(crate) limits: ServerLimits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) budget: Arc<RequestBudget>,
    work: Arc<Semaphore>,
    quotas: Quotas,
    pub(crate) lockout: Lockout,
}

/// The server over one open database.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    tls: Option<Arc<ServerTls>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("limits", &self.shared.limits)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A handle on the server's request memory budget.
#[derive(Debug, Clone)]
pub struct RequestMemory(Arc<RequestBudget>);

impl RequestMemory {
    /// Bytes of the budget not reserved by any call right now.
    pub fn available(&self) -> usize {
        self.0.available()
    }
}

/// A handle on the server's work permits, for tests that need every permit busy.
#[derive(Debug, Clone)]
pub struct WorkGate(Arc<Semaphore>);

impl WorkGate {
    /// Takes every permit until the returned permit is dropped: calls then wait for a permit (and their
    /// deadline) without touching storage.
    pub async fn hold_all(&self, permits: u32) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).acquire_many_owned(permits).await.ok()
    }
}

impl Server {
    /// A server over `db`, accepting `admin` as the admin credential.
    pub fn new(db: Arc<Database>, admin: AdminToken, limits: ServerLimits) -> Server {
        let work = Arc::new(Semaphore::new(limits.max_concurrent_work.max(1)));
        let metrics = Arc::new(Metrics::new());
        let budget = Arc::new(RequestBudget::new(limits.request_memory_budget_bytes));
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let quotas = Quotas::new(limits.quotas, cores);
        let lockout = Lockout::new(db.clock().now());
        let (approver, development_admin) = (None, false);
        let shared =
            Shared { db, admin, approver, development_admin, limits, metrics, budget, work, quotas, lockout };
        Server { shared: Arc::new(shared), tls: None }
    }

    /// Accepts `approver` as the approver token: the second credential, which alone approves
    /// break-glass grants (docs/SECURITY.md, "Break-glass access"). Refused if it is the admin
    /// token: the requester of a grant must not be able to approve it.
    pub fn with_approver(mut self, approver: AdminToken) -> Result<Server, ServerError> {
        if self.shared.admin.matches(approver.expose()) {
            return Err(ServerError::ApproverIsAdmin);
        }
        let shared = Arc::get_mut(&mut self.shared).ok_or(ServerError::ApproverAfterStart)?;
        shared.approver = Some(approver);
        Ok(self)
    }

    /// Marks the admin token as a development one (generated into the data directory, an insecure
    /// mode that `bulkhead serve` warns about): its IssueApiKey may then issue any key of any
    /// tenant, as before issue 8. Without it (a configured admin token), IssueApiKey issues only a
    /// tenant's first key, and tenant-admins issue the rest on the data plane.
    pub fn with_development_admin_token(mut self) -> Result<Server, ServerError> {
        let shared = Arc::get_mut(&mut self.shared).ok_or(ServerError::ApproverAfterStart)?;
        shared.development_admin = true;
        Ok(self)
    }

    /// Serves the metrics (`GET /metrics`, OpenMetrics text) on `listener` until the returned task
    /// is aborted. Keep it off the public network: it names tenants by uid and shows their traffic.
    pub fn serve_metrics(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::metrics::serve(
            listener,
            Arc::clone(&self.shared.metrics),
            Arc::clone(&self.shared.db),
        ))
    }

    /// Serves over TLS with this identity (without it, in plaintext).
    pub fn with_tls(mut self, tls: ServerTls) -> Server {
        self.tls = Some(Arc::new(tls));
        self
    }

    /// Whether the server will serve over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The work permits (see [`WorkGate`]).
    pub fn work_gate(&self) -> WorkGate {
        WorkGate(Arc::clone(&self.shared.work))
    }

    /// The request memory budget, to read how much of it is free (tests check that every call
    /// returns what it reserved).
    pub fn request_memory(&self) -> RequestMemory {
        RequestMemory(Arc::clone(&self.shared.budget))
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets calls in flight
    /// finish, and returns. The caller flushes the database afterwards.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let limits = &self.shared.limits;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(ServerError::Reflection)?;
        // The standard health service: SERVING for the server ("") and both services while it
        // accepts calls, NOT_SERVING from the shutdown signal on. Open like reflection (no
        // credential: a load balancer has none), with the small message limit.
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<DataPlaneServer<DataService>>().await;
        health_reporter.set_serving::<AdminServer<AdminService>>().await;
        let shutdown = async move {
            shutdown.await;
            for service in ["", DATA_PLANE_SERVICE, ADMIN_SERVICE] {
                health_reporter.set_service_status(service, tonic_health::ServingStatus::NotServing).await;
            }
        };
        // tonic's own size limits are a backstop that never fires: requests are held to their
        // method's limit, at most this one, by the admission layer, and answers by `deliverable`,
        // each with the server's own RESOURCE_EXHAUSTED.
        let data = DataPlaneServer::new(DataService::new(Arc::clone(&self.shared)))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let admin = AdminServer::new(AdminService::new(Arc::clone(&self.shared)))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.config().timeout(limits::CONNECTION_HANDSHAKE_TIMEOUT))
                .map_err(ServerError::Transport)?;
        }
        let (db, metrics) = (&self.shared.db, &self.shared.metrics);
        let rotations = tokio::spawn(background::drive_rotations(Arc::clone(db), Arc::clone(metrics)));
        let retention = limits
            .audit_retention
            .map(|keep| tokio::spawn(background::prune_audit(Arc::clone(db), Arc::clone(metrics), keep)));
        let served = builder
            .max_concurrent_streams(limits.max_concurrent_streams)
            // Adaptive flow control, from HTTP/2's initial window (`HTTP2_STREAM_WINDOW_BYTES`).
            .http2_adaptive_window(Some(true))
            .http2_keepalive_interval(Some(limits::HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(limits::HTTP2_KEEPALIVE_TIMEOUT))
            .layer(AdmissionLayer::new(Arc::clone(&self.shared)))
            .add_service(data)
            .add_service(admin)
            .add_service(reflection)
            .add_service(health)
            .serve_with_incoming_shutdown(
                crate::connections::Incoming::new(listener, limits.max_connections),
                shutdown,
            )
            .await;
        rotations.abort();
        if let Some(retention) = retention {
            retention.abort();
        }
        served.map_err(ServerError::Transport)
    }
}

/// When a call arrived, now, and its deadline: the server's, or the client's `grpc-timeout` if
/// sooner.
pub(crate) fn timing(headers: &http::HeaderMap, limit: Duration) -> Timing {
    let client = headers.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
    let budget = client.map_or(limit, |c| c.min(limit));
    let arrived = Instant::now();
    Timing { arrived, deadline: arrived + budget, budget }
}

/// The refusal of a call that reached its handler without passing the admission layer: a bug, and
/// nothing runs.
pub(crate) fn not_admitted() -> Status {
    tracing::error!("a call reached its handler without admission");
    Status::internal("internal error (see the server log)")
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// What the storage work of one call may consult: its deadline, and the flag set once nobody waits
/// for its answer any more (the deadline passed, or the client went away). Searches check both at
/// their check points and stop there, releasing their work permit (`bulkhead_query::Budget`).
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    deadline: std::time::Instant,
    cancelled: Arc<AtomicBool>,
    /// The largest search answer: [`limits::MAX_RESPONSE_BYTES`], or the message limit if smaller.
    answer_bytes: usize,
}

impl CallContext {
    /// The budget of a search answer, ending with this call.
    pub(crate) fn search_budget(&self) -> bulkhead_query::Budget {
        bulkhead_query::Budget::new(Some(self.deadline), self.answer_bytes)
            .cancelled_by(Arc::clone(&self.cancelled))
    }
}

/// Sets a call's cancellation flag when dropped: when the call's future ends, whether it was
/// answered, timed out, or dropped because the client went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Shared {
    /// `answer` if its encoding fits in one message of the server's limit (`max_message_bytes`);
    /// otherwise the server's own `RESOURCE_EXHAUSTED`. Searches stop well before this, at their
    /// answer budget; this catches the rest (a point stored under a larger limit, an admin page).
    fn deliverable<T: prost::Message>(&self, answer: T) -> Result<T, Status> {
        let (bytes, limit) = (answer.encoded_len(), self.limits.max_message_bytes);
        if bytes <= limit {
            return Ok(answer);
        }
        Err(Status::resource_exhausted(format!(
            "answer too large: {bytes} bytes, over the server's message limit of {limit} bytes \
             (MAX_MESSAGE_BYTES, see docs/LIMITS.md)"
        )))
    }

    /// Runs `work` on the blocking pool once a work permit is free, within the call's deadline. No permit
    /// before the deadline: `DEADLINE_EXCEEDED`, and nothing was touched. Once the deadline passes or
    /// the call is dropped (its client went away), the work's [`CallContext`] says so: a search stops
    /// at its next check point and gives its permit back; other work, short by its limits, runs to its
    /// end (a write that was under way completes, as in any database whose client gave up waiting)
    /// and holds the permit until then.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        timing: Timing,
        held: Vec<OwnedSemaphorePermit>,
        work: impl FnOnce(&Shared, &CallContext) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let Timing { deadline, budget, .. } = timing;
        let permits = Arc::clone(&self.work);
        let permit = match tokio::time::timeout_at(deadline, permits.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Status::unavailable("the server is shutting down")),
            Err(_elapsed) => return Err(status::deadline_exceeded(budget)),
        };
        if Instant::now() >= deadline {
            return Err(status::deadline_exceeded(budget));
        }
        let shared = Arc::clone(self);
        // The work owns the decoded request: the call's share of the request memory budget stays
        // reserved until the work ends, even when the deadline passes first.
        let reserved = crate::budget::CALL.try_with(Arc::clone).ok();
        let context = CallContext {
            deadline: deadline.into_std(),
            cancelled: Arc::new(AtomicBool::new(false)),
            answer_bytes: limits::MAX_RESPONSE_BYTES.min(self.limits.max_message_bytes),
        };
        // Set however this future ends: answered, timed out below, or dropped with its connection.
        let _cancel = CancelOnDrop(Arc::clone(&context.cancelled));
        let task = tokio::task::spawn_blocking(move || {
            let _permits = (permit, held);
            let _reserved = reserved;
            work(&shared, &context)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(status::internal(&join)),
            Err(_elapsed) => Err(status::deadline_exceeded(budget)),
        }
    }

    /// A work permit (of `MAX_CONCURRENT_WORK`) for a call that runs its own blocking work (the
    /// archive calls, which stream while they work), within the call's deadline.
    pub(crate) async fn work_permit(&self, timing: Timing) -> Result<OwnedSemaphorePermit, Status> {
        let permits = Arc::clone(&self.work);
        match tokio::time::timeout_at(timing.deadline, permits.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(Status::unavailable("the server is shutting down")),
            Err(_elapsed) => Err(status::deadline_exceeded(timing.budget)),
        }
    }

    /// Counts an operator's call that ran outside [`Shared::admin`] (the archive calls).
    pub(crate) fn count_admin(&self, operation: &'static str, outcome: &'static str, timing: Timing) {
        self.metrics.request(metrics::OPERATOR.to_owned(), operation, outcome, timing.arrived.elapsed());
    }

    /// The limits of a tenant, under its policy in force.
    fn limits_of(&self, tenant: TenantUid) -> Result<Arc<TenantLimits>, AuthError> {
        let policy = self.db.policy_of(tenant).map_err(AuthError::Storage)?;
        Ok(self.quotas.of(tenant, &policy))
    }

    /// Authenticates a data-plane call (`auth::authorize_data`) and returns its scope with its
    /// tenant's limits, counting the call against its key's lockout windows: the call that takes a
    /// key past its tenant's burst threshold locks the key and is refused as a locked key's are,
    /// and a role refusal counts against the key's refusals. On the blocking pool.
    pub(crate) fn admit_data(
        &self,
        token: &str,
        op: DataOp,
    ) -> Result<(TenantScope, Arc<TenantLimits>), AuthError> {
        let approver = self.approver.as_ref();
        let scope =
            auth::authorize_data(&self.db, &self.admin, approver, token, op).inspect_err(|refused| {
                if let AuthError::Role { tenant, key: Some(key), .. } = refused {
                    self.count_denial(*tenant, key);
                }
            })?;
        let limits = self.limits_of(scope.tenant_uid())?;
        if let Some((key, reason)) = self.burst(&scope, &limits) {
            self.lock(scope.tenant_uid(), &key, reason);
            return Err(AuthError::Storage(StorageError::KeyLocked));
        }
        Ok((scope, limits))
    }

    /// [`Shared::admit_data`] from memory, on the caller's thread: `None` unless the key
    /// authenticated before and still would (`authenticate_cached`: no read, no write) and its role
    /// suffices, and then the blocking path decides (and audits a refusal). A cached key's tenant
    /// is loaded, so its policy is in memory too. Only a call that locks its key touches storage,
    /// on the blocking pool.
    pub(crate) async fn admit_cached(
        self: &Arc<Self>,
        token: &str,
        op: DataOp,
    ) -> Option<Result<(TenantScope, Arc<TenantLimits>), Status>> {
        if self.admin.matches(token) || self.is_approver(token) {
            return None;
        }
        let scope = self.db.operator().authenticate_cached(token)?;
        if scope.role() < op.required_role() {
            return None;
        }
        let limits = self.limits_of(scope.tenant_uid()).ok()?;
        let Some((key, reason)) = self.burst(&scope, &limits) else { return Some(Ok((scope, limits))) };
        let refused = AuthError::Storage(StorageError::KeyLocked);
        self.metrics.denial(refused.tenant_label(), refused.reason());
        let (shared, tenant) = (Arc::clone(self), scope.tenant_uid());
        if let Err(e) = tokio::task::spawn_blocking(move || shared.lock(tenant, &key, reason)).await {
            tracing::error!(error = %e, "could not lock an api key");
        }
        Some(Err(Status::from(refused)))
    }

    /// Counts a call against its key's lockout windows; the key and the reason when the call takes
    /// the key past its tenant's threshold (the caller locks it).
    fn burst(&self, scope: &TenantScope, limits: &TenantLimits) -> Option<(String, &'static str)> {
        let key = scope.key_id()?;
        let now = self.db.clock().now();
        let reason = self.lockout.request(scope.tenant_uid(), &key, now, limits.thresholds())?;
        Some((key, reason))
    }

    /// Counts a call refused by its tenant's quotas (metrics only: not an audit event).
    pub(crate) fn count_throttled(&self, tenant: TenantUid, op: DataOp, refused: &Status, timing: Timing) {
        let outcome = status::reason_code(refused.code());
        self.metrics.request(tenant.short(), op.audit_name(), outcome, timing.arrived.elapsed());
    }

    /// Counts a refusal (permission denied) of a tenant's key; locks the key at its tenant's
    /// threshold.
    pub(crate) fn count_denial(&self, tenant: TenantUid, key: &str) {
        let Ok(limits) = self.limits_of(tenant) else { return };
        let now = self.db.clock().now();
        if let Some(reason) = self.lockout.denied(key, now, limits.thresholds()) {
            self.lock(tenant, key, reason);
        }
    }

    /// Locks a key in storage (it is refused from its next call on, across restarts) and counts it.
    fn lock(&self, tenant: TenantUid, key: &str, reason: &'static str) {
        match self.db.operator().lock_api_key(tenant, key, reason) {
            Ok(_) => self.metrics.lockout(tenant.short(), reason),
            Err(e) => tracing::error!(tenant = %tenant.short(), error = %e, "could not lock an api key"),
        }
        self.lockout.forget(key);
    }

    /// The tenant's part of a call's admission, after its body was read (`bytes`, encoded): its
    /// upserted bytes a second (an upsert), then its permits (see `quota.rs`).
    async fn tenant_permits(
        &self,
        tenant: TenantUid,
        limits: &TenantLimits,
        op: DataOp,
        bytes: usize,
        timing: Timing,
    ) -> Result<Vec<OwnedSemaphorePermit>, Status> {
        if op == DataOp::Upsert {
            limits.admit_write(bytes)?;
        }
        let search = matches!(op, DataOp::Search | DataOp::SearchBatch);
        limits.enter(search, self.quotas.fair.contended(tenant), timing).await
    }

    /// A data-plane call, admitted by the admission layer, which authenticated its credential and
    /// role on the headers and left the scope in `admitted`; without it nothing runs. `work` gets
    /// the scope on the blocking pool.
    pub(crate) async fn data<T: prost::Message + 'static>(
        self: &Arc<Self>,
        admitted: Option<&AdmittedCall>,
        op: DataOp,
        bytes: usize,
        work: impl FnOnce(&Database, TenantScope, &CallContext) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let (scope, timing, limits) = admitted.and_then(|a| a.take(op)).ok_or_else(not_admitted)?;
        let held = match self.tenant_permits(scope.tenant_uid(), &limits, op, bytes, timing).await {
            Ok(held) => held,
            Err(refused) => {
                self.count_throttled(scope.tenant_uid(), op, &refused, timing);
                return Err(refused);
            }
        };
        self.blocking(timing, held, move |shared, context| {
            let (tenant, key) = (scope.tenant_uid(), scope.key_id());
            let result = work(&shared.db, scope, context).and_then(|answer| shared.deliverable(answer));
            // A refusal by the tenant's policy (or of a principal the key may not name) counts
            // against the key like a role refusal.
            if let (Err(refused), Some(key)) = (&result, key)
                && refused.code() == tonic::Code::PermissionDenied
            {
                shared.count_denial(tenant, &key);
            }
            let outcome = result.as_ref().map_or_else(|s| status::reason_code(s.code()), |_| "ok");
            shared.metrics.request(tenant.short(), op.audit_name(), outcome, timing.arrived.elapsed());
            result
        })
        .await
    }

    /// Whether `token` is the approver token (in constant time; `false` when none is configured).
    pub(crate) fn is_approver(&self, token: &str) -> bool {
        self.approver.as_ref().is_some_and(|a| a.matches(token))
    }

    /// An admin-plane call, admitted by the admission layer (the admin token; the approver token
    /// for the approval of a grant only).
    pub(crate) async fn admin<T: prost::Message + 'static>(
        self: &Arc<Self>,
        admitted: Option<&AdmittedOperator>,
        operation: &'static str,
        work: impl FnOnce(&Database) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let AdmittedOperator(timing) = admitted.cloned().ok_or_else(not_admitted)?;
        self.blocking(timing, Vec::new(), move |shared, _| {
            let result = work(&shared.db).and_then(|answer| shared.deliverable(answer));
            let outcome = result.as_ref().map_or_else(|s| status::reason_code(s.code()), |_| "ok");
            shared.metrics.request(
                metrics::OPERATOR.to_owned(),
                operation,
                outcome,
                timing.arrived.elapsed(),
            );
            result
        })
        .await
    }
}
