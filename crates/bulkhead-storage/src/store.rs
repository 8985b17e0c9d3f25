//! The store: the open data directory, what it holds in memory, and opening it (the engine, the
//! keyring checked against the master key, orphans dropped, an older format migrated).
//!
//! The rooms around it: `keyring.rs` (owner ciphers, control records, master-key rotation, the
//! format-2 migration), `registry.rs` (tenants and API keys), `auth.rs` (the two doors that mint
//! scopes, and the handle a scope opens), `keycache.rs` (keys that authenticated),
//! `tenant/state.rs` (loading a tenant), `audit/`, `rotation.rs`, `policy.rs`, `quota.rs` (storage
//! quotas), `snapshot.rs` and `clock.rs` (where the store reads the time).

use crate::audit::AuditHeads;
use crate::auth::RefusalLog;
use crate::clock::Clock;
use crate::engine::{Batch, Engine, EngineMemory, Family};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::keycache::KeyCache;
use crate::layout::{self, Placement, SYS_CF};
use crate::quota::StorageQuotas;
use crate::tenant::TenantState;
use bulkhead_crypto::{MasterKey, OwnerCipher, constant_time_eq, random_bytes};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written to the write-ahead log before the call returns: survives a crash of the process
    /// (`kill -9`), not necessarily a power loss. The default, like most databases' default.
    Process,
    /// The write-ahead log is fsynced before the call returns: survives power loss, at a cost of one
    /// fsync per write batch.
    Fsync,
}

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability of data writes. Registry and keyring writes are always fsynced.
    pub durability: Durability,
    /// Where the store reads the time: [`Clock::System`] (the default), or a test's
    /// [`ManualClock`](crate::ManualClock).
    pub clock: Clock,
    /// The storage quotas of a tenant whose policy does not set them (each value separately):
    /// [`StorageQuotas::default`] unless the operator chooses others. `max_collections` is at most
    /// [`limits::MAX_COLLECTIONS_PER_TENANT`](crate::limits) ([`Store::open`] refuses more).
    pub default_quotas: StorageQuotas,
    /// The tier of a tenant created without one ([`Store::create_tenant`]): its own column family
    /// (`partitioned`, the default) or the shared one.
    pub default_placement: Placement,
    /// The memory RocksDB may hold, shared by every column family ([`EngineMemory`]).
    pub memory: EngineMemory,
    /// Tenants kept loaded (keys, counters, policy) at once; past it, those no call is using are
    /// dropped, least recently used first, and loaded again from the keyring when next used.
    pub max_loaded_tenants: usize,
    /// Where dedicated tenants' instances are ([`Placement::Dedicated`]): under it, in a folder
    /// named after the data directory's random id, a directory per tenant named after its uid. It
    /// may be on another disk. `None`: the root given last time (it is recorded), or `dedicated/`
    /// inside the data directory if none ever was. Moving it is moving that folder with it, with
    /// the store closed, and giving the new root: a dedicated tenant whose directory is not there
    /// is unavailable.
    pub dedicated_root: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Process,
            clock: Clock::System,
            default_quotas: StorageQuotas::default(),
            default_placement: Placement::OwnColumnFamily,
            memory: EngineMemory::default(),
            max_loaded_tenants: DEFAULT_MAX_LOADED_TENANTS,
            dedicated_root: None,
        }
    }
}

/// [`StoreOptions::max_loaded_tenants`] unless chosen.
pub const DEFAULT_MAX_LOADED_TENANTS: usize = 10_000;

/// An open data directory. Tenant data is reached only through [`Store::tenant`] with a scope.
pub struct Store {
    /// Shared only with [`IndexSnapshotSink`](crate::IndexSnapshotSink)s, which hold it weakly and
    /// upgrade it only while `open` says the store is open, so dropping the store closes RocksDB.
    pub(crate) db: Arc<Engine>,
    /// `true` while the store is open; set to `false` (under the write lock) when it is dropped.
    pub(crate) open: Arc<RwLock<bool>>,
    path: PathBuf,
    /// Tells this open database's scopes from another's.
    pub(crate) instance: u64,
    /// The master key and its version; replaced (under the registry lock) by a master-key rotation.
    pub(crate) master: RwLock<(MasterKey, u32)>,
    pub(crate) system: OwnerCipher,
    pub(crate) tenants: RwLock<HashMap<TenantUid, Arc<TenantState>>>,
    /// Tenants whose keyring or records did not open, with the cause (`Store::load_tenant`).
    pub(crate) unavailable: RwLock<HashMap<TenantUid, &'static str>>,
    /// Serialises registry writes; holds the registry cipher's reserved encryption count.
    pub(crate) registry_lock: Mutex<u64>,
    /// The ends of the audit chains, and the lock that orders appends to them.
    pub(crate) audit_heads: AuditHeads,
    pub(crate) durability: Durability,
    /// Refused presentations of API keys not yet written to the audit trail (see
    /// [`Store::authenticate`]).
    pub(crate) refusals: RefusalLog,
    /// API keys that authenticated, so that their next calls skip the registry (`keycache.rs`).
    pub(crate) key_cache: KeyCache,
    /// Where timestamps, key expiry and the refusal window read the time.
    clock: Clock,
    /// The storage quotas of tenants whose policy sets none ([`StoreOptions::default_quotas`]).
    pub(crate) default_quotas: StorageQuotas,
    /// The tier of a tenant created without one ([`StoreOptions::default_placement`]).
    pub(crate) default_placement: Placement,
    /// The tier moves under way ([`Store::move_status`]).
    pub(crate) moves: crate::tier::Moves,
    /// [`StoreOptions::max_loaded_tenants`], and the clock of the loaded tenants' last use.
    pub(crate) max_loaded_tenants: usize,
    pub(crate) use_tick: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("master_version", &self.master.read().1)
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Waits for a snapshot save in progress, and stops any later one from reaching RocksDB.
        *self.open.write() = false;
    }
}

/// The system column family of an open engine.
pub(crate) fn system_family(db: &Engine) -> Result<Family<'_>> {
    db.family(SYS_CF).ok_or(StorageError::Codec("missing system column family"))
}

impl Store {
    /// Opens (or creates) the data directory `path` under `master`. Fails with
    /// [`StorageError::WrongMasterKey`] if the directory was created under another master key.
    pub fn open(path: &Path, master: MasterKey, options: StoreOptions) -> Result<Store> {
        Self::open_with_previous(path, master, None, options)
    }

    /// Opens the data directory with a fallback: if the keyring does not open under `master` but
    /// does under `previous`, every wrapped key is re-wrapped under `master` (a new master version, one
    /// fsynced batch) before anything else happens. That is how a master key is rotated offline: start
    /// with the new key as current and the old one as previous, once. Fails with
    /// [`StorageError::WrongMasterKey`] if `master` is wrong and there is no fallback, and with
    /// [`StorageError::MasterKeysWrong`] if both are wrong.
    pub fn open_with_previous(
        path: &Path,
        master: MasterKey,
        previous: Option<MasterKey>,
        options: StoreOptions,
    ) -> Result<Store> {
        options.default_quotas.validate()?;
        std::fs::create_dir_all(path)?;
        let (db, names) =
            Engine::open(path, &["default", SYS_CF], options.memory, options.dedicated_root.as_deref())?;
        let (master_version, system, reserved, format) = match Self::open_keyring(&db, &master) {
            Err(StorageError::WrongMasterKey { master_version }) => {
                let Some(previous) = previous else {
                    return Err(StorageError::WrongMasterKey { master_version });
                };
                if !constant_time_eq(
                    &Self::stored_check(&db, master_version)?,
                    &previous.check_value(master_version),
                ) {
                    return Err(StorageError::MasterKeysWrong { master_version });
                }
                Self::rewrap_keyring(&db, &previous, master_version, &master)?;
                tracing::warn!(
                    from = master_version,
                    to = master_version + 1,
                    "the keyring opened under the previous master key \
                     and was re-wrapped under the current one"
                );
                Self::open_keyring(&db, &master)?
            }
            other => other?,
        };
        Self::drop_orphan_column_families(&db, &names)?;
        Self::clear_interrupted_imports(&db)?;
        let store = Store {
            db: Arc::new(db),
            open: Arc::new(RwLock::new(true)),
            path: path.to_owned(),
            instance: u64::from_le_bytes(random_bytes()),
            master: RwLock::new((master, master_version)),
            system,
            tenants: RwLock::new(HashMap::new()),
            unavailable: RwLock::new(HashMap::new()),
            registry_lock: Mutex::new(reserved),
            audit_heads: AuditHeads::default(),
            durability: options.durability,
            refusals: RefusalLog::default(),
            key_cache: KeyCache::default(),
            clock: options.clock,
            default_quotas: options.default_quotas,
            default_placement: options.default_placement,
            moves: crate::tier::Moves::default(),
            max_loaded_tenants: options.max_loaded_tenants.max(1),
            use_tick: std::sync::atomic::AtomicU64::new(0),
        };
        if format == layout::STORAGE_FORMAT_1 {
            store.migrate_to_format_2()?;
        }
        store.index_api_keys()?;
        store.finish_moves()?;
        Ok(store)
    }

    /// Drops tenant column families and dedicated instances that no keyring entry owns: left by a
    /// crash between creating a tenant's place and writing its keys (`create_tenant` makes the place
    /// first), or between destroying a tenant's keys and removing its place. Without keys their
    /// content, if any, could never be read.
    fn drop_orphan_column_families(db: &Engine, names: &[String]) -> Result<()> {
        let sys = system_family(db)?;
        let orphan = |name: &str| -> Result<Option<TenantUid>> {
            let Some(uid) = layout::tenant_cf_uid(name) else { return Ok(None) };
            let keyless = db.get(&sys, layout::keyring_write_key(&uid))?.is_none();
            Ok(keyless.then(|| TenantUid::from_bytes(uid)))
        };
        for name in names {
            if let Some(uid) = orphan(name)? {
                tracing::warn!(tenant = %uid.short(), "dropping an orphan tenant column family");
                db.drop_family(name)?;
            }
        }
        for name in db.dedicated_names() {
            if let Some(uid) = orphan(&name)? {
                tracing::warn!(tenant = %uid.short(), "removing an orphan dedicated instance");
                db.remove_dedicated(&name)?;
            }
        }
        Ok(())
    }

    /// The system column family.
    pub(crate) fn sys(&self) -> Result<Family<'_>> {
        system_family(&self.db)
    }

    /// Commits a batch of system records, fsynced (registry and keyring writes always are).
    pub(crate) fn sys_write(&self, batch: Batch) -> Result<()> {
        self.db.write(batch, Durability::Fsync)
    }

    /// Commits a batch of tenant data with the store's data durability.
    pub(crate) fn data_write(&self, batch: Batch) -> Result<()> {
        self.db.write(batch, self.durability)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The clock the store reads (see [`StoreOptions::clock`]).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Milliseconds since the Unix epoch on the store's clock: every timestamp the store writes.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The storage quotas of a tenant whose policy sets none ([`StoreOptions::default_quotas`]).
    pub fn default_quotas(&self) -> StorageQuotas {
        self.default_quotas
    }

    /// What RocksDB's shared block cache holds now, in bytes (memtables included): the figure
    /// [`EngineMemory::cache_bytes`] bounds.
    pub fn engine_memory_bytes(&self) -> usize {
        self.db.cache_usage()
    }

    /// How many tenants are loaded now (at most [`StoreOptions::max_loaded_tenants`] unless more
    /// are in use at once).
    pub fn loaded_tenant_count(&self) -> usize {
        self.tenants.read().len()
    }

    /// How many column families the data directory's main instance has (the shared tier adds one
    /// in all, each partitioned tenant one; a dedicated tenant none).
    pub fn column_family_count(&self) -> Result<usize> {
        Ok(Engine::list_families(&self.path)?.len())
    }

    /// The master key version in force.
    pub fn master_version(&self) -> u32 {
        self.master.read().1
    }

    /// Flushes memtables and the write-ahead log to disk (used before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.db.sync_log()?;
        // Every family: the shared one, and the own families of tenants not loaded now.
        for name in Engine::list_families(&self.path)? {
            if let Some(cf) = self.db.family(&name) {
                self.db.flush(&cf)?;
            }
        }
        self.db.flush_dedicated()
    }
}
