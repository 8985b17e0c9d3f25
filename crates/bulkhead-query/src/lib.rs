//! Bulkhead's embedded API: open a database, get a scope, and reach one tenant's collections through it.
//!
//! ```no_run
//! use bulkhead_query::{Database, DocId, MasterKey, Metric, NewPoint, StoreOptions, TenantName};
//! # fn main() -> Result<(), bulkhead_query::QueryError> {
//! let db = Database::open("data".as_ref(), MasterKey::generate(), StoreOptions::default())?;
//! let acme = TenantName::new("acme")?;
//! db.operator().create_tenant(&acme)?;
//! let scope = db.operator().trusted_host_scope(&acme, "example")?;
//! let tenant = db.tenant(&scope)?;
//! tenant.create_collection("docs", 3, Metric::Cosine)?;
//! tenant.upsert("docs", &[NewPoint::new(DocId::new("a")?, vec![1.0, 0.0, 0.0], "hello")])?;
//! let hits = tenant.search("docs", &[1.0, 0.0, 0.0], 5)?;
//! # Ok(()) }
//! ```
//!
//! There is no way to search, read or write without a [`TenantScope`], and no way to make one except
//! by authentication or the named trusted-host door (see `bulkhead-storage`'s `scope.rs`).

mod attrs;
mod budget;
mod cache;
mod collection;
mod error;
mod exact;
mod filter;
mod jobs;

pub use attrs::MatchReason;
pub use budget::Budget;
pub use bulkhead_crypto::{MASTER_KEY_ENV, MasterKey};
pub use bulkhead_storage::{
    AccessEvent, Acl, ApiKeyInfo, AuditCheck, AuditEvent, CollectionInfo, CollectionName, DirectoryCheck,
    DocId, Durability, IssuedApiKey, KeyBinding, MetaValue, Metric, NewPoint, Operation, PointRef,
    REFUSAL_EVENT_EVERY, Role, RotationProgress, StorageError, Store, StoreOptions, StoredPoint, Subject,
    SubjectHash, TenantInfo, TenantName, TenantPolicy, TenantScope, TenantUid, VersionedPolicy, limits,
};
pub use cache::CacheStats;
pub use error::QueryError;
pub use filter::{Filter, FilterValue, Principal};
pub use jobs::{INDEX_JOB_WORKERS, IndexJobCounts};

use bulkhead_storage::{IndexSnapshotSink, TenantHandle, validate_vector};
use collection::CollectionState;
pub use collection::{GraphStatus, IndexSource};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shorthand for query results.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// A collection's search state (`None` until its first search loads it, and again once evicted),
/// when it was last used, and the memory it held when last measured.
#[derive(Default)]
struct Slot {
    state: RwLock<Option<CollectionState>>,
    last_used: AtomicU64,
    memory: AtomicUsize,
    /// Moves on every write, delete or drop of the collection (under the state's write lock), so
    /// cached results computed before it no longer match. Survives eviction.
    epoch: AtomicU64,
    /// Held while a job saves its segment's snapshot and lists the saved segments.
    snapshots: parking_lot::Mutex<()>,
}

impl Slot {
    fn measure(&self, state: &Option<CollectionState>) {
        self.memory.store(state.as_ref().map_or(0, CollectionState::memory_bytes), Ordering::Relaxed);
    }
}

type IndexSlot = Arc<Slot>;

/// Queues a background index job on the database's pool (see [`run_job`]).
fn spawn_job(
    jobs: &jobs::Jobs,
    tenant: TenantUid,
    slot: IndexSlot,
    sink: Arc<IndexSnapshotSink>,
    threshold: usize,
    job: collection::BuildJob,
) {
    let cancel = Arc::clone(&job.cancel);
    let pool = jobs.clone();
    jobs.submit(tenant, cancel, move || run_job(&pool, tenant, &slot, &sink, threshold, job));
}

/// A job on a pool worker: builds, installs the result if the job is still wanted, queues the jobs
/// that are due next, then saves the new segment and lists the saved segments in the collection's
/// head. Saves of one collection take turns (`Slot::snapshots`), so a head never drops a segment
/// whose chunks are still being written, and the last head written describes the latest state. A
/// cancelled job (its collection evicted or dropped meanwhile) ends quietly.
fn run_job(
    jobs: &jobs::Jobs,
    tenant: TenantUid,
    slot: &IndexSlot,
    sink: &Arc<IndexSnapshotSink>,
    threshold: usize,
    job: collection::BuildJob,
) {
    if job.cancelled() {
        jobs.note_cancelled();
        return;
    }
    let cancel = Arc::clone(&job.cancel);
    let (id, built) = collection::build(job);
    let mut guard = slot.state.write();
    let Some(state) = guard.as_mut() else {
        jobs.note_cancelled();
        return;
    };
    let mut built = match built {
        Ok(built) => built,
        Err(_) if cancel.load(Ordering::Relaxed) => {
            jobs.note_cancelled();
            state.abandon(id);
            return;
        }
        Err(e) => {
            jobs.note_finished();
            tracing::warn!(error = %e, "a background index job failed; its points stay where they were");
            state.abandon(id);
            return;
        }
    };
    jobs.note_finished();
    let generation = built.generation;
    let snapshot = std::mem::take(&mut built.snapshot);
    match state.install(id, built) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "a finished index job could not be installed");
            state.abandon(id);
            return;
        }
    }
    // Writes that arrived meanwhile may have filled the delta again, and a flush may call for a
    // merge.
    match state.take_jobs(threshold) {
        Ok(next) => {
            for job in next {
                spawn_job(jobs, tenant, Arc::clone(slot), Arc::clone(sink), threshold, job);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not take the collection's points for an index job"),
    }
    slot.measure(&guard);
    drop(guard);
    let _turn = slot.snapshots.lock();
    if let Some(saved) = collection::save_segment(sink, &snapshot) {
        drop(snapshot);
        let listed = slot.state.write().as_mut().and_then(|state| state.mark_saved(generation, saved));
        if let Some(listed) = listed {
            collection::list_segments(sink, &listed);
        }
    }
}

/// Collections with at least this many points in their exact-scan delta get an HNSW segment built in
/// the background (cosine and L2 collections; dot collections stay exact).
pub const DEFAULT_GRAPH_THRESHOLD: usize = 20_000;

/// Encryptions under one data-key generation after which a tenant's key is rotated automatically:
/// 2^30, well below the 2^32 that NIST SP 800-38D allows for random 96-bit nonces.
pub const DEFAULT_AUTO_ROTATE_ENCRYPTIONS: u64 = 1 << 30;

/// The default memory budget for loaded search state (segments and exact-scan arenas): 2 GiB.
pub const DEFAULT_INDEX_MEMORY_BUDGET: usize = 2 << 30;

/// An open database: the store plus the in-memory search state of the collections in use.
pub struct Database {
    /// First, so that it is dropped first: its workers are stopped (running jobs cancelled) and
    /// joined while the store is still open.
    jobs: jobs::JobPool,
    store: Store,
    indexes: RwLock<HashMap<(TenantUid, u32), IndexSlot>>,
    graph_threshold: AtomicUsize,
    memory_budget: AtomicUsize,
    clock: AtomicU64,
    cache: Option<cache::ResultCache>,
    auto_rotate: AtomicU64,
    access_audit: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("store", &self.store).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) a data directory.
    pub fn open(path: &Path, master: MasterKey, options: StoreOptions) -> Result<Database> {
        Ok(Database::open_store(Store::open(path, master, options)?))
    }

    fn open_store(store: Store) -> Database {
        Database {
            jobs: jobs::JobPool::new(jobs::INDEX_JOB_WORKERS),
            store,
            indexes: RwLock::new(HashMap::new()),
            graph_threshold: AtomicUsize::new(DEFAULT_GRAPH_THRESHOLD),
            memory_budget: AtomicUsize::new(DEFAULT_INDEX_MEMORY_BUDGET),
            clock: AtomicU64::new(0),
            cache: None,
            auto_rotate: AtomicU64::new(DEFAULT_AUTO_ROTATE_ENCRYPTIONS),
            access_audit: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Turns the access audit trail off (it is on by default): data operations and refusals then
    /// leave no event. Administrative events are always recorded. For a host that keeps its own
    /// trail, and for measuring the trail's cost (docs/BENCHMARKS.md).
    pub fn without_access_audit(self) -> Database {
        self.set_access_audit(false);
        self
    }

    /// Turns the access audit trail on or off for the operations that start from now on.
    pub fn set_access_audit(&self, on: bool) {
        self.access_audit.store(on, Ordering::Relaxed);
    }

    /// Records in the scope's tenant trail that a request was refused before it reached the tenant's
    /// data (its role is below the operation's, or the request was malformed). `operation` and
    /// `outcome` are short codes (`search`, `permission-denied`).
    ///
    /// # Errors
    ///
    /// A storage error if the event could not be written.
    pub fn audit_refusal(
        &self,
        scope: &TenantScope,
        operation: &str,
        outcome: &str,
    ) -> Result<(), StorageError> {
        if !self.access_audit.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.store.audit_refusal(scope, operation, outcome)
    }

    /// Sets after how many encryptions under one data-key generation a tenant's key is rotated
    /// automatically (default [`DEFAULT_AUTO_ROTATE_ENCRYPTIONS`]): the write that reaches it starts
    /// the rotation, and whoever drives rotations (the server's task) finishes it.
    pub fn with_auto_rotation(self, encryptions: u64) -> Database {
        self.auto_rotate.store(encryptions.max(1), Ordering::Relaxed);
        self
    }

    /// Starts a rotation of the handle's tenant if its write generation has sealed the configured
    /// number of values and none runs yet. A failure is logged: the write itself has succeeded.
    fn maybe_auto_rotate(&self, handle: &TenantHandle<'_>) {
        if handle.encryptions() < self.auto_rotate.load(Ordering::Relaxed) {
            return;
        }
        let uid = handle.tenant_uid();
        match self.store.rotation_status(uid) {
            Ok(Some(_)) => {}
            Ok(None) => match self.store.start_automatic_rotation(uid) {
                Ok(progress) => tracing::warn!(
                    tenant = %uid.short(),
                    generation = progress.target_generation,
                    "encryption limit reached: tenant key rotation started automatically"
                ),
                Err(e) => {
                    tracing::warn!(tenant = %uid.short(), error = %e, "automatic key rotation failed to start")
                }
            },
            Err(e) => tracing::warn!(tenant = %uid.short(), error = %e, "cannot read the rotation state"),
        }
    }

    /// Turns on the search-result cache, holding at most `entries` results (see
    /// [`Tenant::search_request`] for what a cache key contains). Off by default.
    pub fn with_result_cache(mut self, entries: usize) -> Database {
        self.cache = Some(cache::ResultCache::new(entries));
        self
    }

    /// Crypto-shreds a tenant (see `bulkhead-storage`'s `rotation.rs`): its keys are destroyed
    /// first, then its column family dropped; its loaded indexes and cached results are forgotten
    /// and its API keys deleted. Returns how many API keys went with it.
    pub fn delete_tenant(&self, name: &TenantName) -> Result<usize, StorageError> {
        let uid = self.store.tenant_info(name)?.uid;
        let revoked = self.store.delete_tenant(name)?;
        self.indexes.write().retain(|(tenant, _), _| *tenant != uid);
        if let Some(cache) = &self.cache {
            cache.forget_tenant(uid.as_bytes());
        }
        Ok(revoked)
    }

    /// The result cache's counters (all zero when it is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(cache::ResultCache::stats).unwrap_or_default()
    }

    /// Opens a data directory with the previous master key as a fallback: a keyring still under the
    /// previous key is re-wrapped under `master` first (see `Store::open_with_previous`).
    pub fn open_with_previous(
        path: &Path,
        master: MasterKey,
        previous: Option<MasterKey>,
        options: StoreOptions,
    ) -> Result<Database> {
        let db = Database::open_store(Store::open_with_previous(path, master, previous, options)?);
        Ok(db)
    }

    /// Sets the memory budget for loaded search state (default [`DEFAULT_INDEX_MEMORY_BUDGET`]).
    /// When loading a collection takes the total over it, the least recently used other collections
    /// are evicted (one with a background job running too: the job is cancelled); an evicted one loads again,
    /// from its snapshot, on its next search.
    pub fn with_index_memory_budget(self, bytes: usize) -> Database {
        self.set_index_memory_budget(bytes);
        self
    }

    /// As [`Database::with_index_memory_budget`], on an open database. Takes effect at the next load.
    pub fn set_index_memory_budget(&self, bytes: usize) {
        self.memory_budget.store(bytes, Ordering::Relaxed);
    }

    /// Approximate bytes of search state loaded now, over every tenant.
    pub fn index_memory(&self) -> usize {
        self.indexes.read().values().map(|slot| slot.memory.load(Ordering::Relaxed)).sum()
    }

    /// Evicts least recently used collections other than `keep` until the loaded state fits the
    /// budget. Slots another thread holds are skipped rather than waited for.
    fn enforce_budget(&self, keep: &IndexSlot) {
        let budget = self.memory_budget.load(Ordering::Relaxed);
        let mut total = self.index_memory();
        if total <= budget {
            return;
        }
        let mut candidates: Vec<IndexSlot> =
            self.indexes.read().values().filter(|slot| !Arc::ptr_eq(slot, keep)).cloned().collect();
        candidates.sort_by_key(|slot| slot.last_used.load(Ordering::Relaxed));
        for slot in candidates {
            if total <= budget {
                break;
            }
            let Some(mut state) = slot.state.try_write() else { continue };
            if state.is_none() {
                continue;
            }
            // A collection with a job running is evicted like any other: dropping its state
            // cancels the job (its build stops at the next chunk) and frees what it held.
            total = total.saturating_sub(slot.memory.load(Ordering::Relaxed));
            *state = None;
            slot.measure(&state);
            tracing::debug!("evicted a collection's search state to stay within the memory budget");
        }
    }

    /// Sets how many exact-scan points a collection accumulates before an HNSW segment is built for
    /// it in the background (default [`DEFAULT_GRAPH_THRESHOLD`]). Takes effect at each collection's
    /// next write or load.
    pub fn with_graph_threshold(self, points: usize) -> Database {
        self.set_graph_threshold(points);
        self
    }

    /// As [`Database::with_graph_threshold`], on an open database.
    pub fn set_graph_threshold(&self, points: usize) {
        self.graph_threshold.store(points.max(1), Ordering::Relaxed);
    }

    /// Queues the background jobs (flush, merge, purge) the collection in `slot` needs now on the
    /// database's job pool (`jobs.rs`). Called with the slot's write lock held by the caller
    /// (`state`). Each job installs its segment, queues whatever jobs are due next, then saves the
    /// segment's snapshot outside the lock.
    fn maybe_build(
        &self,
        handle: &TenantHandle<'_>,
        collection: &CollectionInfo,
        slot: &IndexSlot,
        state: &mut CollectionState,
    ) -> Result<()> {
        let threshold = self.graph_threshold.load(Ordering::Relaxed);
        let jobs = state.take_jobs(threshold)?;
        if jobs.is_empty() {
            return Ok(());
        }
        let sink = Arc::new(handle.index_snapshot_sink(collection)?);
        for job in jobs {
            spawn_job(
                self.jobs.jobs(),
                handle.tenant_uid(),
                Arc::clone(slot),
                Arc::clone(&sink),
                threshold,
                job,
            );
        }
        Ok(())
    }

    /// The background index job pool's counts: jobs queued and running now, finished and
    /// cancelled since the database opened.
    pub fn index_jobs(&self) -> IndexJobCounts {
        self.jobs.jobs().counts()
    }

    /// Operator work (tenants, API keys) and the doors that mint scopes. It reaches no tenant
    /// records: data goes only through [`Database::tenant`], which keeps the search state in step.
    pub fn operator(&self) -> Operator<'_> {
        Operator { store: &self.store }
    }

    /// One tenant's data, reached through its scope.
    pub fn tenant<'d>(&'d self, scope: &TenantScope) -> Result<Tenant<'d>> {
        Ok(Tenant { db: self, handle: self.store.tenant(scope)?, events: std::cell::Cell::new(0) })
    }

    /// The search state of one collection, created empty (unloaded) on first use. Keyed by the
    /// collection's number, which a recreated collection of the same name does not share.
    fn index_slot(&self, tenant: TenantUid, collection: &CollectionInfo) -> IndexSlot {
        let key = (tenant, collection.number());
        // The read guard must be gone before the write lock is taken.
        let existing = self.indexes.read().get(&key).cloned();
        let slot = existing.unwrap_or_else(|| Arc::clone(self.indexes.write().entry(key).or_default()));
        slot.last_used.store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        slot
    }

    fn forget_index(&self, tenant: TenantUid, collection: &CollectionInfo) {
        self.indexes.write().remove(&(tenant, collection.number()));
    }
}

/// The operator's view of a database: tenants, API keys, and the two doors that mint scopes.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'d> {
    store: &'d Store,
}

impl Operator<'_> {
    /// Creates a tenant with its own column family and keys.
    pub fn create_tenant(&self, name: &TenantName) -> Result<TenantInfo, StorageError> {
        self.store.create_tenant(name)
    }

    /// Lists tenants.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>, StorageError> {
        self.store.list_tenants()
    }

    /// Looks a tenant up by name.
    pub fn tenant_info(&self, name: &TenantName) -> Result<TenantInfo, StorageError> {
        self.store.tenant_info(name)
    }

    /// Issues an API key (its token is the only copy of the secret).
    pub fn issue_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
    ) -> Result<IssuedApiKey, StorageError> {
        self.store.issue_api_key(tenant, role, label, expires_ms)
    }

    /// Issues an API key bound to a user (its searches run as that user) or a service key that may
    /// act on behalf of users a request names (see [`KeyBinding`]).
    pub fn issue_bound_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey, StorageError> {
        self.store.issue_bound_api_key(tenant, role, label, expires_ms, binding)
    }

    /// Starts a tenant-key rotation: a new data-key generation seals every write from now on. Drive
    /// it to the end with [`Operator::rotation_step`].
    pub fn rotate_tenant_key(&self, tenant: &TenantName) -> Result<RotationProgress, StorageError> {
        self.store.rotate_tenant_key(tenant)
    }

    /// Re-seals up to `max_records` older records of the tenant's rotation; `None` if none runs.
    /// Resumable: the cursor is persisted with every batch.
    pub fn rotation_step(
        &self,
        tenant: TenantUid,
        max_records: usize,
    ) -> Result<Option<RotationProgress>, StorageError> {
        self.store.rotation_step(tenant, max_records)
    }

    /// A tenant's rotation progress, `None` if none runs.
    pub fn rotation_status(&self, tenant: TenantUid) -> Result<Option<RotationProgress>, StorageError> {
        self.store.rotation_status(tenant)
    }

    /// The data-key generation that seals the tenant's new writes.
    pub fn key_generation(&self, tenant: TenantUid) -> Result<u32, StorageError> {
        self.store.key_generation(tenant)
    }

    /// A tenant's administrative audit events, oldest first; kept after the tenant is deleted. The
    /// system's own chain (master-key events) is under the all-zero uid.
    pub fn audit_events(&self, tenant: TenantUid) -> Result<Vec<AuditEvent>, StorageError> {
        self.store.audit_events(tenant)
    }

    /// Recomputes a tenant's audit chain and reports the first broken link, if any.
    pub fn audit_verify(&self, tenant: TenantUid) -> Result<AuditCheck, StorageError> {
        self.store.audit_verify(tenant)
    }

    /// Checks that every audit chain ever registered is still registered (a whole chain removed at
    /// the storage level shows here; see `bulkhead-storage`'s `audit.rs`).
    pub fn audit_directory_check(&self) -> Result<DirectoryCheck, StorageError> {
        self.store.audit_directory_check()
    }

    /// The tenant's policy in force and its version.
    pub fn policy(&self, tenant: &TenantName) -> Result<std::sync::Arc<VersionedPolicy>, StorageError> {
        self.store.policy(self.store.tenant_info(tenant)?.uid)
    }

    /// Replaces the tenant's policy if it is still at `expected_version`; returns the new version.
    /// The change is an audit event carrying `note`. Cached search results of the tenant stop
    /// matching (the version is part of their key).
    pub fn set_policy(
        &self,
        tenant: &TenantName,
        policy: TenantPolicy,
        expected_version: u64,
        note: &str,
    ) -> Result<u64, StorageError> {
        self.store.set_policy(tenant, policy, expected_version, note)
    }

    /// A page of a tenant's audit events (see [`Store::audit_page`]).
    pub fn audit_page(
        &self,
        tenant: TenantUid,
        from_seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<u64>), StorageError> {
        self.store.audit_page(tenant, from_seq, since_ms, limit)
    }

    /// Every uid with an audit chain: tenants, deleted tenants, and the system chain (zero uid).
    pub fn audit_tenants(&self) -> Result<Vec<TenantUid>, StorageError> {
        self.store.audit_tenants()
    }

    /// Deletes a tenant's audit events older than `before_ms`, leaving a verifiable checkpoint.
    pub fn audit_prune(&self, tenant: TenantUid, before_ms: u64) -> Result<u64, StorageError> {
        self.store.audit_prune(tenant, before_ms)
    }

    /// The keyed hash that stands for `value` in the tenant's audit events.
    pub fn audit_subject_hash(&self, tenant: TenantUid, subject: Subject, value: &[u8]) -> SubjectHash {
        self.store.audit_subject_hash(tenant, subject, value)
    }

    /// Records an operator's read of a tenant's administrative state (`admin-describe-tenant`,
    /// `admin-export-audit`, ...) in that tenant's trail.
    pub fn audit_admin_read(&self, tenant: TenantUid, operation: &str) -> Result<(), StorageError> {
        self.store.audit_access(tenant, &AccessEvent { operation, outcome: "ok", ..AccessEvent::default() })
    }

    /// Records in a tenant's trail the outcome of background work on it (`task`: `key-rotation`,
    /// `audit-prune`; `outcome`: `ok` when a run of failures ends, or the reason code of the
    /// failure that starts one).
    pub fn audit_background(&self, tenant: TenantUid, task: &str, outcome: &str) -> Result<(), StorageError> {
        let operation = format!("background-{task}");
        self.store
            .audit_access(tenant, &AccessEvent { operation: &operation, outcome, ..AccessEvent::default() })
    }

    /// Tenants whose rotation was interrupted (by a restart) and should be resumed.
    pub fn pending_rotations(&self) -> Result<Vec<TenantUid>, StorageError> {
        self.store.pending_rotations()
    }

    /// Rotates the master key online: every wrapped key is re-wrapped under `new` (one fsynced
    /// batch); no tenant data is re-encrypted. Returns the new master version.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<u32, StorageError> {
        self.store.rotate_master_key(new)
    }

    /// Revokes every API key of a tenant at once (the exposed-credential response; follow it with
    /// [`Operator::rotate_tenant_key`]). Returns how many were revoked.
    pub fn revoke_all_api_keys(&self, tenant: &TenantName) -> Result<usize, StorageError> {
        let mut revoked = 0;
        for key in self.store.list_api_keys(tenant)? {
            if !key.revoked {
                self.store.revoke_api_key(tenant, &key.key_id)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Lists a tenant's API keys, never their secrets.
    pub fn list_api_keys(&self, tenant: &TenantName) -> Result<Vec<ApiKeyInfo>, StorageError> {
        self.store.list_api_keys(tenant)
    }

    /// Revokes an API key of `tenant`; scopes minted from it stop working at once.
    pub fn revoke_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<(), StorageError> {
        self.store.revoke_api_key(tenant, key_id)
    }

    /// Checks an API key and mints a scope for its tenant and role.
    pub fn authenticate(&self, token: &str) -> Result<TenantScope, StorageError> {
        self.store.authenticate(token)
    }

    /// Mints a tenant-admin scope without a credential, for a process that is itself trusted; the
    /// reason is logged.
    pub fn trusted_host_scope(
        &self,
        tenant: &TenantName,
        reason: &'static str,
    ) -> Result<TenantScope, StorageError> {
        self.store.trusted_host_scope(tenant, reason)
    }

    /// Flushes memtables and the write-ahead log (before a clean shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.store.flush()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.store.path()
    }
}

/// One search result.
#[derive(Clone)]
pub struct SearchHit {
    /// The document id.
    pub id: DocId,
    /// Cosine similarity, inner product, or Euclidean distance, by the collection's metric. Hits come
    /// best first: highest similarity, or smallest distance.
    pub score: f32,
    /// The chunk's text.
    pub text: String,
    /// Its metadata.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Where it came from.
    pub source_uri: Option<String>,
    /// The write sequence number of the stored version.
    pub version: u64,
    /// The data-key generation that sealed it.
    pub key_generation: u32,
    /// Why the search's principal may see it (`None` for a search without a principal).
    pub matched_by: Option<MatchReason>,
    /// A fingerprint of the document's ACL, keyed per tenant: equal ACLs of one tenant have equal
    /// fingerprints, and it reveals nothing else.
    pub acl_fingerprint: [u8; 16],
    /// Which part of the index held it.
    pub index: IndexSource,
    /// The version of the tenant's policy the search ran under.
    pub policy_version: u64,
}

/// What a search asks for beyond the query vector.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// How many hits (1 to [`limits::MAX_K`]).
    pub k: usize,
    /// Graph candidates kept (1 to [`limits::MAX_EF`]); `None` for the default.
    pub ef: Option<usize>,
    /// The user the search runs for: only documents whose ACL lets this principal read them are
    /// considered, before ranking. `None` searches every document (for a trusted caller).
    pub principal: Option<&'a Principal>,
    /// A metadata filter, also applied before ranking.
    pub filter: Option<&'a Filter>,
}

impl SearchRequest<'_> {
    /// `k` hits, every other option at its default.
    pub fn top(k: usize) -> SearchRequest<'static> {
        SearchRequest { k, ef: None, principal: None, filter: None }
    }
}

impl SearchHit {
    /// An upper bound of the bytes this hit takes in an encoded answer (its strings, metadata and
    /// fixed fields with their framing): what a [`Budget`]'s response bytes are charged.
    pub fn encoded_bytes_upper_bound(&self) -> usize {
        // Per string or value: its bytes plus a tag and a length prefix (at most 1 + 5 bytes).
        const FRAMING: usize = 6;
        let metadata: usize = self
            .metadata
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    MetaValue::Keyword(k) => k.len() + FRAMING,
                    MetaValue::Keywords(list) => {
                        list.iter().map(|k| k.len() + FRAMING).sum::<usize>() + FRAMING
                    }
                    MetaValue::Number(_) => 9 + FRAMING,
                    MetaValue::Bool(_) => 2 + FRAMING,
                };
                // A map entry is a message of its own: key, value, and their framing.
                key.len() + value + 3 * FRAMING
            })
            .sum();
        // The id, text and source URI, then the fixed fields (score, version, generations,
        // matched-by, the 16-byte fingerprint, the index source) and the hit's own framing.
        self.id.as_str().len()
            + self.text.len()
            + self.source_uri.as_ref().map_or(0, String::len)
            + 3 * FRAMING
            + metadata
            + 96
    }
}

impl fmt::Debug for SearchHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchHit")
            .field("score", &self.score)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A tenant's collections and points. Every method stays inside the scope's tenant.
pub struct Tenant<'d> {
    db: &'d Database,
    handle: TenantHandle<'d>,
    /// Access events recorded through this handle (see [`Tenant::audited_events`]).
    events: std::cell::Cell<u64>,
}

impl fmt::Debug for Tenant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant").field("handle", &self.handle).finish()
    }
}

/// What an access event says about an operation, before its outcome is known.
struct Audit<'a> {
    operation: Operation,
    collection: Option<&'a str>,
    principal: Option<&'a Principal>,
    query: Option<&'a [f32]>,
    documents: Vec<&'a str>,
}

impl<'a> Audit<'a> {
    fn new(operation: Operation) -> Audit<'a> {
        Audit { operation, collection: None, principal: None, query: None, documents: Vec::new() }
    }

    fn on(operation: Operation, collection: &'a str) -> Audit<'a> {
        Audit { collection: Some(collection), ..Audit::new(operation) }
    }
}

impl<'d> Tenant<'d> {
    /// Runs `work` and records its access event (operation, outcome, hashed subject, key id, key
    /// generation) in the tenant's audit trail. An event that cannot be written fails the operation:
    /// no evidence, no access.
    fn audited<T>(&self, audit: Audit<'_>, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let audited = self.db.access_audit.load(Ordering::Relaxed);
        if audited {
            // Staged before the work: a write commits it in its own batch (see
            // `TenantHandle::stage_audit`); anything else is written below with its outcome.
            let user = audit.principal.map(Principal::user).or(match self.handle.binding() {
                KeyBinding::User { user, .. } => Some(user.as_str()),
                KeyBinding::Service { .. } => None,
            });
            self.handle.stage_audit(AccessEvent {
                operation: audit.operation.name(),
                principal: user,
                collection: audit.collection,
                query: audit.query,
                documents: &audit.documents,
                ..AccessEvent::default()
            });
        }
        // The role the operation needs (the one table, `Operation::required_role`), then the
        // tenant's policy, which may deny an operation the role would allow.
        let result = if self.handle.role() < audit.operation.required_role() {
            Err(StorageError::PermissionDenied { operation: audit.operation.verb() }.into())
        } else if !self.handle.policy().policy.allows(self.handle.role(), audit.operation) {
            Err(StorageError::PermissionDenied { operation: "this operation under the tenant's policy" }
                .into())
        } else {
            work()
        };
        if !audited {
            return result;
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason_code(),
        };
        self.events.set(self.events.get() + 1);
        self.handle.finish_audit(outcome)?;
        result
    }

    /// How many access events this handle has recorded. A caller that refuses a request after
    /// opening the handle but before any operation (a malformed field) records the refusal itself
    /// when this is still 0 ([`Database::audit_refusal`]).
    pub fn audited_events(&self) -> u64 {
        self.events.get()
    }

    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        Ok(self.handle.collection(&CollectionName::new(name)?)?)
    }

    /// Creates a collection of `dimension`-sized vectors compared by `metric`.
    pub fn create_collection(&self, name: &str, dimension: usize, metric: Metric) -> Result<CollectionInfo> {
        self.audited(Audit::on(Operation::CreateCollection, name), || {
            Ok(self.handle.create_collection(&CollectionName::new(name)?, dimension, metric)?)
        })
    }

    /// Describes a collection.
    pub fn collection(&self, name: &str) -> Result<CollectionInfo> {
        self.audited(Audit::on(Operation::DescribeCollection, name), || self.collection_info(name))
    }

    /// Lists the tenant's collections.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let audit = Audit::new(Operation::ListCollections);
        self.audited(audit, || Ok(self.handle.list_collections()?))
    }

    /// Drops a collection with all its points.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.audited(Audit::on(Operation::DropCollection, name), || self.drop_collection_inner(name))
    }

    fn drop_collection_inner(&self, name: &str) -> Result<()> {
        let info = self.collection_info(name)?;
        let slot = self.db.index_slot(self.handle.tenant_uid(), &info);
        let mut index = slot.state.write();
        self.handle.drop_collection(&info)?;
        slot.epoch.fetch_add(1, Ordering::Relaxed);
        *index = None;
        slot.measure(&index);
        drop(index);
        self.db.forget_index(self.handle.tenant_uid(), &info);
        Ok(())
    }

    /// Inserts or replaces a batch of points, atomically. Returns each point's version.
    pub fn upsert(&self, collection: &str, points: &[NewPoint]) -> Result<Vec<u64>> {
        let audit = Audit {
            documents: points.iter().map(|p| p.id.as_str()).collect(),
            ..Audit::on(Operation::Upsert, collection)
        };
        self.audited(audit, || self.upsert_inner(collection, points))
    }

    fn upsert_inner(&self, collection: &str, points: &[NewPoint]) -> Result<Vec<u64>> {
        let policy = self.handle.policy();
        if !points.iter().all(|p| policy.policy.allows_source(p.source_uri.as_deref().unwrap_or(""))) {
            return Err(StorageError::PermissionDenied {
                operation: "writing a source URI outside the tenant policy's prefixes",
            }
            .into());
        }
        let info = self.collection_info(collection)?;
        let slot = self.db.index_slot(self.handle.tenant_uid(), &info);
        // Holding the collection's index lock across the write keeps the in-memory state in the same
        // order as the durable one.
        let mut index = slot.state.write();
        let written = self.handle.upsert(&info, points)?;
        slot.epoch.fetch_add(1, Ordering::Relaxed);
        if let Some(loaded) = index.as_mut() {
            let applied = written
                .iter()
                .zip(points)
                .try_for_each(|((point_ref, _), point)| {
                    loaded.upsert(*point_ref, &point.vector, &point.acl, &point.metadata)
                })
                .and_then(|()| self.db.maybe_build(&self.handle, &info, &slot, loaded));
            if let Err(e) = applied {
                // The write is durable; drop the in-memory state so the next search reloads it
                // from storage rather than serving a copy that missed this write.
                *index = None;
                slot.measure(&index);
                return Err(e);
            }
        }
        slot.measure(&index);
        drop(index);
        self.db.maybe_auto_rotate(&self.handle);
        Ok(written.into_iter().map(|(_, version)| version).collect())
    }

    /// Deletes points by id. Returns how many existed.
    pub fn delete(&self, collection: &str, ids: &[DocId]) -> Result<usize> {
        let audit = Audit {
            documents: ids.iter().map(DocId::as_str).collect(),
            ..Audit::on(Operation::Delete, collection)
        };
        self.audited(audit, || self.delete_inner(collection, ids))
    }

    fn delete_inner(&self, collection: &str, ids: &[DocId]) -> Result<usize> {
        let info = self.collection_info(collection)?;
        let slot = self.db.index_slot(self.handle.tenant_uid(), &info);
        let mut index = slot.state.write();
        let removed = self.handle.delete(&info, ids)?;
        slot.epoch.fetch_add(1, Ordering::Relaxed);
        if let Some(loaded) = index.as_mut() {
            // Enough deletes call for a purge of a segment's tombstones.
            let applied = removed
                .iter()
                .try_for_each(|point_ref| loaded.remove(point_ref))
                .and_then(|()| self.db.maybe_build(&self.handle, &info, &slot, loaded));
            if let Err(e) = applied {
                *index = None;
                slot.measure(&index);
                return Err(e);
            }
        }
        slot.measure(&index);
        Ok(removed.len())
    }

    /// Reads one point. A point that does not exist is `None`, and so is one the scope's user (a
    /// user-bound key) may not read: the two are indistinguishable.
    pub fn get(&self, collection: &str, id: &DocId) -> Result<Option<StoredPoint>> {
        self.get_as(collection, id, None)
    }

    /// As [`Tenant::get`], on behalf of `principal` (needs a service key with the on-behalf-of
    /// right; a user-bound key always reads as its user).
    pub fn get_as(
        &self,
        collection: &str,
        id: &DocId,
        principal: Option<&Principal>,
    ) -> Result<Option<StoredPoint>> {
        let audit =
            Audit { principal, documents: vec![id.as_str()], ..Audit::on(Operation::Get, collection) };
        self.audited(audit, || {
            let principal = self.effective_principal(principal)?;
            let info = self.collection_info(collection)?;
            let point = self.handle.get(&info, id)?;
            Ok(point.filter(|p| {
                principal.as_ref().is_none_or(|principal| attrs::acl_allows(&p.payload.acl, principal))
            }))
        })
    }

    /// The principal a request runs as: a user-bound key's own user (a request may not name
    /// another), or for a service key the user the request names, if the key may act on behalf of
    /// users.
    fn effective_principal(&self, requested: Option<&Principal>) -> Result<Option<Principal>> {
        match self.handle.binding() {
            KeyBinding::User { user, groups } => {
                if requested.is_some() {
                    return Err(StorageError::PermissionDenied {
                        operation: "naming a principal with a user-bound key",
                    }
                    .into());
                }
                Ok(Some(Principal::new(user.clone(), groups.iter().cloned())?))
            }
            KeyBinding::Service { on_behalf_of } => {
                if requested.is_some() && !on_behalf_of {
                    return Err(StorageError::PermissionDenied {
                        operation: "acting on behalf of a user without the right",
                    }
                    .into());
                }
                Ok(requested.cloned())
            }
        }
    }

    /// How a collection is searched right now: points in the HNSW segment, points in the exact
    /// delta, and whether a build runs. A collection not searched since the database opened reports
    /// everything as delta (its state loads on first search).
    pub fn graph_status(&self, collection: &str) -> Result<GraphStatus> {
        self.audited(Audit::on(Operation::DescribeCollection, collection), || {
            self.graph_status_inner(collection)
        })
    }

    /// A collection's description and how it is searched right now, as one operation (one audit
    /// event).
    pub fn describe(&self, collection: &str) -> Result<(CollectionInfo, GraphStatus)> {
        self.audited(Audit::on(Operation::DescribeCollection, collection), || {
            Ok((self.collection_info(collection)?, self.graph_status_inner(collection)?))
        })
    }

    fn graph_status_inner(&self, collection: &str) -> Result<GraphStatus> {
        let info = self.collection_info(collection)?;
        // Looking does not count as use: the slot is not created or moved up the eviction order.
        let slot = self.db.indexes.read().get(&(self.handle.tenant_uid(), info.number())).cloned();
        if let Some(slot) = &slot {
            self.flush_if_idle(&info, slot);
        }
        let guard = slot.as_ref().map(|slot| slot.state.read());
        Ok(match guard.as_ref().and_then(|g| g.as_ref()) {
            Some(state) => state.status(),
            None => GraphStatus {
                loaded: false,
                graph_points: 0,
                segments: 0,
                tombstones: 0,
                delta_points: self.handle.count(&info)? as usize,
                building: false,
                snapshot_saved: false,
                memory_bytes: 0,
            },
        })
    }

    /// The data-key generation new writes are sealed with.
    pub fn key_generation(&self) -> u32 {
        self.handle.write_generation()
    }

    /// A page of this tenant's own audit trail (tenant-admin scopes only): events from `from_seq`
    /// on at or after `since_ms`, at most `limit`, and where the next page starts. The export is
    /// itself an event.
    pub fn audit_page(
        &self,
        from_seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<u64>)> {
        let audit = Audit::new(Operation::ExportAudit);
        self.audited(audit, || {
            Ok(self.db.store.audit_page(self.handle.tenant_uid(), from_seq, since_ms, limit)?)
        })
    }

    /// Values sealed so far under the write generation (a persisted upper bound after a restart).
    pub fn encryptions(&self) -> u64 {
        self.handle.encryptions()
    }

    /// The number of points in a collection; for a user-bound key, the number its user may read
    /// (nothing about the others).
    pub fn count(&self, collection: &str) -> Result<u64> {
        self.count_as(collection, None)
    }

    /// As [`Tenant::count`], on behalf of `principal` (see [`Tenant::get_as`]).
    pub fn count_as(&self, collection: &str, principal: Option<&Principal>) -> Result<u64> {
        let audit = Audit { principal, ..Audit::on(Operation::Count, collection) };
        self.audited(audit, || self.count_inner(collection, principal))
    }

    fn count_inner(&self, collection: &str, principal: Option<&Principal>) -> Result<u64> {
        let principal = self.effective_principal(principal)?;
        let info = self.collection_info(collection)?;
        let Some(principal) = principal else { return Ok(self.handle.count(&info)?) };
        let slot = self.loaded_slot(&info)?;
        let guard = slot.state.read();
        let index = guard.as_ref().ok_or(StorageError::NotFound { what: "collection" })?;
        Ok(index.attrs().visible(&principal).len())
    }

    /// Starts the flush of a collection whose delta has waited, without writes, for
    /// [`collection::IDLE_FLUSH_AFTER`] (see [`CollectionState::take_jobs`]): searches and status
    /// reads check, so a collection that stops receiving writes ends up fully indexed. Never waits
    /// for the collection's lock; a failure is logged (the search goes on).
    fn flush_if_idle(&self, info: &CollectionInfo, slot: &IndexSlot) {
        let threshold = self.db.graph_threshold.load(Ordering::Relaxed);
        if !slot.state.read().as_ref().is_some_and(|state| state.idle_flush_due(threshold)) {
            return;
        }
        let Some(mut guard) = slot.state.try_write() else { return };
        if let Some(state) = guard.as_mut()
            && let Err(e) = self.db.maybe_build(&self.handle, info, slot, state)
        {
            tracing::warn!(error = %e, "could not start the flush of an idle collection");
        }
    }

    /// The collection's slot with its state loaded (loading it, and evicting others over the
    /// budget, if needed).
    fn loaded_slot(&self, info: &CollectionInfo) -> Result<IndexSlot> {
        let slot = self.db.index_slot(self.handle.tenant_uid(), info);
        if slot.state.read().is_none() {
            let mut loading = slot.state.write();
            if loading.is_none() {
                let mut state = CollectionState::load(&self.handle, info)?;
                self.db.maybe_build(&self.handle, info, &slot, &mut state)?;
                *loading = Some(state);
                slot.measure(&loading);
                drop(loading);
                self.db.enforce_budget(&slot);
            }
        }
        Ok(slot)
    }

    /// Top-`k` search: the best `k` points come back with their text, metadata and provenance. Small
    /// collections (and dot collections) are scanned exactly; large cosine and L2 collections are
    /// searched through their HNSW segment plus an exact scan of recent writes. `k` must be 1 to
    /// [`limits::MAX_K`]; the query vector must match the collection's dimension and be finite (and
    /// not zero for cosine).
    pub fn search(&self, collection: &str, vector: &[f32], k: usize) -> Result<Vec<SearchHit>> {
        self.search_with_ef(collection, vector, k, None)
    }

    /// As [`Tenant::search`], with the number of candidates a graph search keeps (`ef`, 1 to
    /// [`limits::MAX_EF`]; raised to `k` if smaller). `None` uses the default (64, or `k` if larger).
    /// Collections searched exactly ignore it.
    pub fn search_with_ef(
        &self,
        collection: &str,
        vector: &[f32],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<SearchHit>> {
        self.search_request(collection, vector, &SearchRequest { k, ef, principal: None, filter: None })
    }

    /// Permission-aware search: the best `request.k` documents that the request's principal may read
    /// and its filter matches, chosen among those documents only (a principal gets
    /// `min(k, visible)` hits). Each hit says why the principal sees it. The filter is validated
    /// against its limits before any work.
    pub fn search_request(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
    ) -> Result<Vec<SearchHit>> {
        self.search_within(collection, vector, request, &Budget::unlimited())
    }

    /// As [`Tenant::search_request`], within `budget`: the search stops with
    /// [`QueryError::DeadlineExceeded`] or [`QueryError::Cancelled`] at its next check point once
    /// the budget's deadline passes or its flag is set, and fails with
    /// [`QueryError::ResourceExhausted`] as soon as the hits read so far would exceed the budget's
    /// response bytes (shared by every search of one budget), before reading more.
    pub fn search_within(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(collection, vector, request, None, true, budget)
    }

    /// The opaque reference of a document id, as [`Tenant::search_observed`] reports candidates.
    #[doc(hidden)]
    pub fn point_ref(&self, collection: &str, id: &DocId) -> Result<PointRef> {
        let audit = Audit { documents: vec![id.as_str()], ..Audit::on(Operation::PointRef, collection) };
        self.audited(audit, || Ok(self.handle.point_ref(&self.collection_info(collection)?, id)?))
    }

    /// As [`Tenant::search_request`], showing `observe` the reference of every point a distance is
    /// computed for, graph routing included (for tests that prove no point outside the allowed set
    /// is ever scored).
    #[doc(hidden)]
    pub fn search_observed(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: &mut dyn FnMut(PointRef),
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(collection, vector, request, Some(observe), false, &Budget::unlimited())
    }

    /// The search itself; `use_cache` consults and fills the result cache, if there is one.
    fn search_inner(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: Option<&mut dyn FnMut(PointRef)>,
        use_cache: bool,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        let audit = Audit {
            principal: request.principal,
            query: Some(vector),
            ..Audit::on(Operation::Search, collection)
        };
        self.audited(audit, || self.search_unaudited(collection, vector, request, observe, use_cache, budget))
    }

    fn search_unaudited(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: Option<&mut dyn FnMut(PointRef)>,
        use_cache: bool,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        let SearchRequest { k, ef, principal, filter } = *request;
        // The tenant's policy may tighten the global limits, never loosen them.
        let policy = self.handle.policy();
        let tighter = |global: usize, own: Option<u32>| own.map_or(global, |own| global.min(own as usize));
        let max_k = tighter(limits::MAX_K, policy.policy.max_k);
        let max_ef = tighter(limits::MAX_EF, policy.policy.max_ef);
        if k == 0 || k > max_k {
            return Err(QueryError::InvalidArgument { field: "k", reason: format!("must be 1 to {max_k}") });
        }
        if ef.is_some_and(|ef| ef == 0 || ef > max_ef) {
            return Err(QueryError::InvalidArgument {
                field: "ef",
                reason: format!("must be 1 to {max_ef}"),
            });
        }
        if let Some(filter) = filter {
            filter.validate_within(tighter(
                limits::MAX_FILTER_CONDITIONS,
                policy.policy.max_filter_conditions,
            ))?;
        }
        let principal = self.effective_principal(principal)?;
        let principal = principal.as_ref();
        let info = self.collection_info(collection)?;
        validate_vector(vector, info.dimension, info.metric)?;
        budget.check()?;
        let slot = self.loaded_slot(&info)?;
        self.flush_if_idle(&info, &slot);
        budget.check()?;
        // The read guard is held until every hit's payload is read, so no write to this collection
        // can slip between ranking and reading (writers take the same lock for write).
        let guard = slot.state.read();
        let index = guard.as_ref().ok_or(StorageError::NotFound { what: "collection" })?;
        let cache = self.db.cache.as_ref().filter(|_| use_cache);
        let cache_key = cache.map(|_| {
            // Read under the state's read lock: the epoch is the one of the state ranked below.
            let mut key = self.handle.tenant_uid().as_bytes().to_vec();
            key.extend_from_slice(&info.number().to_le_bytes());
            key.extend_from_slice(&slot.epoch.load(Ordering::Relaxed).to_le_bytes());
            key.extend_from_slice(&self.handle.write_generation().to_le_bytes());
            key.extend_from_slice(&policy.version.to_le_bytes());
            match principal {
                Some(p) => {
                    key.push(1);
                    p.canonical(&mut key);
                }
                None => key.push(0),
            }
            match filter {
                Some(f) => {
                    key.push(1);
                    f.canonical(&mut key);
                }
                None => key.push(0),
            }
            key.extend_from_slice(&(k as u64).to_le_bytes());
            key.extend_from_slice(&ef.map_or(0, |ef| ef as u64 + 1).to_le_bytes());
            key.extend(vector.iter().flat_map(|x| x.to_bits().to_le_bytes()));
            key
        });
        if let (Some(cache), Some(key)) = (cache, cache_key.as_ref())
            && let Some(hits) = cache.get(key)
        {
            budget.charge(hits.iter().map(SearchHit::encoded_bytes_upper_bound).sum())?;
            return Ok(hits);
        }
        let attrs = index.attrs();
        let allowed = match (principal, filter) {
            (None, None) => None,
            (Some(p), None) => Some(attrs.visible(p)),
            (None, Some(f)) => Some(attrs.matching(f)),
            (Some(p), Some(f)) => Some(attrs.visible(p) & attrs.matching(f)),
        };
        let ranked = index.top_k(vector, k, ef, allowed.as_ref(), observe, budget)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for (point_ref, score) in ranked {
            budget.check()?;
            if let Some(point) = self.handle.get_payload_by_ref(&info, &point_ref)? {
                let matched_by =
                    principal.and_then(|p| attrs.slot(&point_ref).and_then(|s| attrs.reason(s, p)));
                let source = index.source(&point_ref).unwrap_or(IndexSource::Delta);
                let hit = SearchHit {
                    id: point.id,
                    score,
                    text: point.text,
                    metadata: point.metadata,
                    source_uri: point.source_uri,
                    version: point.version,
                    key_generation: point.key_generation,
                    matched_by,
                    acl_fingerprint: self.handle.acl_fingerprint(&point.acl),
                    index: source,
                    policy_version: policy.version,
                };
                // Charged before it joins the answer: an answer over the budget is refused with
                // at most the budget's worth of hits built.
                budget.charge(hit.encoded_bytes_upper_bound())?;
                hits.push(hit);
            }
        }
        if let (Some(cache), Some(key)) = (cache, cache_key) {
            cache.put(key, hits.clone());
        }
        Ok(hits)
    }
}
