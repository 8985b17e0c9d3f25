//! A real server for one test: a fresh RocksDB directory under a temporary directory, a random master
//! key and admin token, the tonic server on 127.0.0.1 with an ephemeral port, and a clean stop.

use bulkhead_query::{Clock, Database, ManualClock, MasterKey, StoreOptions};
use bulkhead_server::proto as pb;
use bulkhead_server::proto::admin_client::AdminClient;
use bulkhead_server::proto::data_plane_client::DataPlaneClient;
use bulkhead_server::{
    AdminToken, ClientTls, RequestMemory, Server, ServerLimits, ServerTls, WorkGate, client,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::transport::Channel;

// The messages live with the wire helpers, which the binary's tests share.
pub use crate::wire::{point, req, search};

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where the server's metrics are served (`GET /metrics`).
    pub metrics_addr: SocketAddr,
    pub db: Arc<Database>,
    pub admin_token: String,
    /// The approver token: the second credential, which alone approves break-glass grants.
    pub approver_token: String,
    pub gate: WorkGate,
    /// The server's request memory budget.
    pub request_memory: RequestMemory,
    /// Each tenant's first key (a tenant-admin key the operator issued), which issues the others.
    bootstrap: std::sync::Mutex<std::collections::HashMap<String, String>>,
    client_tls: Option<ClientTls>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), bulkhead_server::ServerError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with_limits(ServerLimits::default()).await
    }

    pub async fn with_limits(limits: ServerLimits) -> TestServer {
        TestServer::with(limits, None).await
    }

    /// A server over TLS with this identity, whose helpers connect trusting `trust`.
    pub async fn with_tls(tls: ServerTls, trust: ClientTls) -> TestServer {
        TestServer::with(ServerLimits::default(), Some((tls, trust))).await
    }

    /// A server whose database reads `clock`, so that the test moves time (key expiry, the
    /// refusal window, audit timestamps, the idle flush) instead of sleeping.
    pub async fn on_clock(clock: &ManualClock) -> TestServer {
        let (dir, master) = (tempfile::tempdir().expect("tempdir"), MasterKey::generate());
        TestServer::over_on(dir, master, ServerLimits::default(), None, clock.clone().into()).await
    }

    /// A server whose admin token counts as a development one (`bulkhead serve` without a
    /// configured token): its IssueApiKey issues any key, not only a tenant's first.
    pub async fn development() -> TestServer {
        let (dir, master) = (tempfile::tempdir().expect("tempdir"), MasterKey::generate());
        TestServer::build(dir, master, ServerLimits::default(), None, Clock::System, true).await
    }

    async fn with(limits: ServerLimits, tls: Option<(ServerTls, ClientTls)>) -> TestServer {
        TestServer::over(tempfile::tempdir().expect("tempdir"), MasterKey::generate(), limits, tls).await
    }

    /// A server over the database in `dir/db` (made by the test beforehand, under `master`).
    pub async fn over(
        dir: tempfile::TempDir,
        master: MasterKey,
        limits: ServerLimits,
        tls: Option<(ServerTls, ClientTls)>,
    ) -> TestServer {
        TestServer::over_on(dir, master, limits, tls, Clock::System).await
    }

    /// As [`TestServer::over`], with the database on `clock`.
    async fn over_on(
        dir: tempfile::TempDir,
        master: MasterKey,
        limits: ServerLimits,
        tls: Option<(ServerTls, ClientTls)>,
        clock: Clock,
    ) -> TestServer {
        TestServer::build(dir, master, limits, tls, clock, false).await
    }

    async fn build(
        dir: tempfile::TempDir,
        master: MasterKey,
        limits: ServerLimits,
        tls: Option<(ServerTls, ClientTls)>,
        clock: Clock,
        development: bool,
    ) -> TestServer {
        let options = StoreOptions { clock, ..StoreOptions::default() };
        let db = Arc::new(Database::open(&dir.path().join("db"), master, options).expect("open"));
        let admin = AdminToken::generate();
        let admin_token = admin.expose().to_owned();
        let approver = AdminToken::generate();
        let approver_token = approver.expose().to_owned();
        let mut server =
            Server::new(Arc::clone(&db), admin, limits).with_approver(approver).expect("approver");
        if development {
            server = server.with_development_admin_token().expect("development token");
        }
        let (tls, client_tls) = tls.unzip();
        if let Some(tls) = tls {
            server = server.with_tls(tls);
        }
        let gate = server.work_gate();
        let request_memory = server.request_memory();
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind metrics");
        let metrics_addr = metrics_listener.local_addr().expect("metrics addr");
        // The metrics task ends with the test's runtime.
        drop(server.serve_metrics(metrics_listener));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            db,
            admin_token,
            approver_token,
            gate,
            request_memory,
            bootstrap: Default::default(),
            client_tls,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn channel(&self) -> Channel {
        client::connect_with(&self.addr.to_string(), self.client_tls.as_ref()).await.expect("connect")
    }

    pub async fn data(&self) -> DataPlaneClient<Channel> {
        client::data_plane(self.channel().await)
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        client::admin(self.channel().await)
    }

    /// A new master key in a private file inside the test's directory (for master-key rotation).
    pub fn key_file(&self) -> std::path::PathBuf {
        let path = self._dir.path().join(format!("master-{}.key", hex_suffix()));
        MasterKey::generate().write_new_file(&path).expect("key file");
        path
    }

    /// Creates a tenant through the admin service.
    pub async fn tenant(&self, name: &str) {
        let mut admin = self.admin().await;
        admin
            .create_tenant(req(
                pb::CreateTenantRequest { name: name.into(), ..Default::default() },
                &self.admin_token,
            ))
            .await
            .expect("create tenant");
    }

    /// Issues a key of `tenant`; returns (token, key id). As a deployment does: the tenant's first
    /// key is a tenant-admin key the operator issues (the admin service issues only a first key),
    /// and every other key is issued by it on the data plane. A first request for another role
    /// issues that tenant-admin key first.
    pub async fn key(&self, tenant: &str, role: pb::Role) -> (String, String) {
        let bootstrap = self.bootstrap.lock().expect("bootstrap").get(tenant).cloned();
        let bootstrap = match bootstrap {
            Some(token) => token,
            None => {
                let (token, key_id) = self.first_key(tenant, pb::Role::TenantAdmin).await;
                self.bootstrap.lock().expect("bootstrap").insert(tenant.to_owned(), token.clone());
                if role == pb::Role::TenantAdmin {
                    return (token, key_id);
                }
                token
            }
        };
        // Test keys may act on behalf of the end users their searches name.
        let request = pb::IssueOwnApiKeyRequest {
            role: role as i32,
            label: String::new(),
            expires_ms: None,
            binding: Some(pb::issue_own_api_key_request::Binding::OnBehalfOf(true)),
        };
        let mut data = self.data().await;
        let issued = data.issue_own_api_key(req(request, &bootstrap)).await.expect("issue own").into_inner();
        (issued.token, issued.key_id)
    }

    /// Issues a key of `tenant` on the data plane with the tenant's first (tenant-admin) key: the
    /// request as given (a binding, an expiry). Returns (token, key id).
    pub async fn own_key(&self, tenant: &str, request: pb::IssueOwnApiKeyRequest) -> (String, String) {
        let bootstrap = self.bootstrap.lock().expect("bootstrap").get(tenant).cloned();
        let bootstrap = match bootstrap {
            Some(token) => token,
            None => self.key(tenant, pb::Role::TenantAdmin).await.0,
        };
        let mut data = self.data().await;
        let issued = data.issue_own_api_key(req(request, &bootstrap)).await.expect("issue own").into_inner();
        (issued.token, issued.key_id)
    }

    /// A tenant-admin key of `tenant` through a break-glass grant of role tenant-admin (requested
    /// and activated with the admin token, approved with the approver token): how a tenant with no
    /// usable admin key (an imported one) gets one. It becomes the key that issues the tenant's
    /// other keys in [`TestServer::key`]. Returns (token, grant).
    pub async fn recover(&self, tenant: &str) -> (String, pb::AccessGrant) {
        let mut admin = self.admin().await;
        let request = pb::RequestAccessGrantRequest {
            tenant: tenant.into(),
            reason: "recovery: the tenant has no admin key".into(),
            ttl_seconds: Some(3_600),
            role: pb::Role::TenantAdmin as i32,
        };
        let grant = admin.request_access_grant(req(request, &self.admin_token)).await.expect("request");
        let grant_id = grant.into_inner().grant_id;
        let approve = pb::ApproveAccessGrantRequest {
            tenant: tenant.into(),
            grant_id: grant_id.clone(),
            role: pb::Role::TenantAdmin as i32,
        };
        admin.approve_access_grant(req(approve, &self.approver_token)).await.expect("approve");
        let activate = pb::ActivateAccessGrantRequest { tenant: tenant.into(), grant_id };
        let active = admin
            .activate_access_grant(req(activate, &self.admin_token))
            .await
            .expect("activate")
            .into_inner();
        self.bootstrap.lock().expect("bootstrap").insert(tenant.to_owned(), active.token.clone());
        (active.token, active.grant.expect("grant"))
    }

    /// Issues the tenant's first key through the admin service; returns (token, key id).
    pub async fn first_key(&self, tenant: &str, role: pb::Role) -> (String, String) {
        let mut admin = self.admin().await;
        let request = pb::IssueApiKeyRequest {
            tenant: tenant.into(),
            role: role as i32,
            label: String::new(),
            expires_ms: None,
            binding: Some(pb::issue_api_key_request::Binding::OnBehalfOf(true)),
        };
        let issued = admin.issue_api_key(req(request, &self.admin_token)).await.expect("issue").into_inner();
        (issued.token, issued.key_id)
    }

    /// Stops the server (finishing calls in flight) and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stopped cleanly");
        }
        self.db.operator().flush().expect("flush");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A collection of dimension 3 and two points, made with a tenant-admin key.
pub async fn seed(server: &TestServer, tenant: &str) -> String {
    server.tenant(tenant).await;
    let (admin, _) = server.key(tenant, pb::Role::TenantAdmin).await;
    let mut data = server.data().await;
    data.create_collection(req(
        pb::CreateCollectionRequest { name: "docs".into(), dimension: 3, metric: pb::Metric::Cosine as i32 },
        &admin,
    ))
    .await
    .expect("create collection");
    let points = vec![point("a", [1.0, 0.0, 0.0], "alpha"), point("b", [0.0, 1.0, 0.0], "beta")];
    data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, &admin)).await.expect("upsert");
    admin
}

/// The collection's point count, read through the library (not the server under test).
/// Sets the tenant's quotas (over its current policy version).
pub fn set_quotas(server: &TestServer, tenant: &str, quotas: bulkhead_query::TenantQuotas) {
    let name = bulkhead_query::TenantName::new(tenant).expect("name");
    let op = server.db.operator();
    let version = op.policy(&name).expect("policy").version;
    let policy = bulkhead_query::TenantPolicy { quotas, ..bulkhead_query::TenantPolicy::default() };
    op.set_policy(&name, policy, version, "quota test").expect("set policy");
}

pub fn count(server: &TestServer, tenant: &str, collection: &str) -> u64 {
    let name = bulkhead_query::TenantName::new(tenant).expect("name");
    let scope = server.db.operator().trusted_host_scope(&name, "test inspection").expect("scope");
    server.db.tenant(&scope).expect("tenant").count(collection).expect("count")
}

/// The tenant's collection names, read through the library.
pub fn collections(server: &TestServer, tenant: &str) -> Vec<String> {
    let name = bulkhead_query::TenantName::new(tenant).expect("name");
    let scope = server.db.operator().trusted_host_scope(&name, "test inspection").expect("scope");
    server
        .db
        .tenant(&scope)
        .expect("tenant")
        .collections()
        .expect("list")
        .iter()
        .map(|c| c.name.as_str().to_owned())
        .collect()
}

/// A random suffix for file names.
fn hex_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
