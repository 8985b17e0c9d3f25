//! The database: the store plus the in-memory search state of the collections in use, and its
//! settings (graph threshold, memory budget and eviction, result cache, automatic key rotation,
//! access audit).

use crate::cache::{self, CacheStats};
use crate::entry::Entry;
use crate::jobs;
use crate::operator::Operator;
use crate::tenant::Tenant;
use crate::{MasterKey, Result};
use bulkhead_storage::{
    Clock, CollectionInfo, StorageError, Store, StoreOptions, TenantHandle, TenantName, TenantScope,
    TenantUid, VersionedPolicy,
};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    pub(crate) jobs: jobs::JobPool,
    pub(crate) store: Store,
    pub(crate) indexes: RwLock<HashMap<(TenantUid, u32), Entry>>,
    pub(crate) graph_threshold: AtomicUsize,
    pub(crate) memory_budget: AtomicUsize,
    /// Counts uses of collection entries: each use stamps its entry with the next tick, and the
    /// least recently used entries are evicted first.
    pub(crate) use_tick: AtomicU64,
    pub(crate) cache: Option<cache::ResultCache>,
    pub(crate) auto_rotate: AtomicU64,
    pub(crate) access_audit: std::sync::atomic::AtomicBool,
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

    pub(crate) fn open_store(store: Store) -> Database {
        Database {
            jobs: jobs::JobPool::new(jobs::INDEX_JOB_WORKERS),
            store,
            indexes: RwLock::new(HashMap::new()),
            graph_threshold: AtomicUsize::new(DEFAULT_GRAPH_THRESHOLD),
            memory_budget: AtomicUsize::new(DEFAULT_INDEX_MEMORY_BUDGET),
            use_tick: AtomicU64::new(0),
            cache: None,
            auto_rotate: AtomicU64::new(DEFAULT_AUTO_ROTATE_ENCRYPTIONS),
            access_audit: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The clock the database reads, set when it was opened ([`StoreOptions::clock`]): audit
    /// timestamps, API key expiry, the refusal-event window and the idle flush all follow it.
    pub fn clock(&self) -> &Clock {
        self.store.clock()
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
        // A break-glass key is audited whatever the setting.
        if !self.access_audit.load(Ordering::Relaxed) && scope.grant_id().is_none() {
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
    pub(crate) fn maybe_auto_rotate(&self, handle: &TenantHandle<'_>) {
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
                    let tenant = uid.short();
                    tracing::warn!(%tenant, error = %e, "automatic key rotation failed to start")
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
        self.indexes.read().values().map(|entry| entry.memory.load(Ordering::Relaxed)).sum()
    }

    /// Whether the loaded search state is below the memory budget (so a write may load its
    /// collection's state without evicting another's first).
    pub(crate) fn index_memory_has_room(&self) -> bool {
        self.index_memory() < self.memory_budget.load(Ordering::Relaxed)
    }

    /// Evicts least recently used collections other than `keep` until the loaded state fits the
    /// budget. Entries another thread holds are skipped rather than waited for.
    pub(crate) fn enforce_budget(&self, keep: &Entry) {
        let budget = self.memory_budget.load(Ordering::Relaxed);
        let mut total = self.index_memory();
        if total <= budget {
            return;
        }
        let mut candidates: Vec<Entry> =
            self.indexes.read().values().filter(|entry| !Arc::ptr_eq(entry, keep)).cloned().collect();
        candidates.sort_by_key(|entry| entry.last_used.load(Ordering::Relaxed));
        for entry in candidates {
            if total <= budget {
                break;
            }
            let Some(mut state) = entry.state.try_write() else { continue };
            if state.is_none() {
                continue;
            }
            // A collection with a job running is evicted like any other: dropping its state
            // cancels the job (its build stops at the next chunk) and frees what it held.
            total = total.saturating_sub(entry.memory.load(Ordering::Relaxed));
            *state = None;
            entry.measure(&state);
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

    /// Operator work (tenants, API keys) and the doors that mint scopes. It reaches no tenant
    /// records: data goes only through [`Database::tenant`], which keeps the search state in step.
    pub fn operator(&self) -> Operator<'_> {
        Operator { store: &self.store }
    }

    /// What RocksDB's shared block cache holds now, memtables included (bounded by
    /// [`EngineMemory::cache_bytes`](crate::EngineMemory)).
    pub fn engine_memory_bytes(&self) -> usize {
        self.store.engine_memory_bytes()
    }

    /// How many tenants are loaded now (`StoreOptions::max_loaded_tenants`).
    pub fn loaded_tenant_count(&self) -> usize {
        self.store.loaded_tenant_count()
    }

    /// How many column families the data directory has.
    pub fn column_family_count(&self) -> Result<usize, StorageError> {
        self.store.column_family_count()
    }

    /// The policy in force for a tenant (cached with the tenant; no record is read), for a server
    /// that applies the tenant's quotas before the work.
    pub fn policy_of(&self, tenant: TenantUid) -> Result<Arc<VersionedPolicy>, StorageError> {
        self.store.policy(tenant)
    }

    /// One tenant's data, reached through its scope.
    pub fn tenant<'d>(&'d self, scope: &TenantScope) -> Result<Tenant<'d>> {
        Ok(Tenant { db: self, handle: self.store.tenant(scope)?, events: std::cell::Cell::new(0) })
    }

    /// The search state of one collection, created empty (unloaded) on first use. Keyed by the
    /// collection's number, which a recreated collection of the same name does not share.
    pub(crate) fn entry_of(&self, tenant: TenantUid, collection: &CollectionInfo) -> Entry {
        let key = (tenant, collection.number());
        // The read guard must be gone before the write lock is taken.
        let existing = self.indexes.read().get(&key).cloned();
        let entry = existing.unwrap_or_else(|| Arc::clone(self.indexes.write().entry(key).or_default()));
        entry.last_used.store(self.use_tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        entry
    }

    pub(crate) fn forget_index(&self, tenant: TenantUid, collection: &CollectionInfo) {
        self.indexes.write().remove(&(tenant, collection.number()));
    }
}
