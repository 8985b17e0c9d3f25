//! The store: one RocksDB instance, its registry and keyring, and the doors that mint tenant scopes.

use crate::audit::AccessEvent;
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout::{self, ApiKeyRecord, Placement, SYS_CF, SYSTEM_OWNER, TenantRecord};
use crate::scope::{KeyBinding, Role, TenantScope};
use crate::tenant::{TenantHandle, TenantState};
use bulkhead_crypto::{
    DataKey, MasterKey, OwnerCipher, Purpose, SealContext, constant_time_eq, random_bytes,
};
use parking_lot::{Mutex, RwLock};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Encryptions reserved at a time per key generation: the persisted count is always an upper bound of
/// the real one, written before the values it covers.
pub(crate) const ENCRYPTION_RESERVATION: u64 = 1 << 16;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durability: Durability::Process }
    }
}

/// An open data directory. Tenant data is reached only through [`Store::tenant`] with a scope.
pub struct Store {
    /// Shared only with [`IndexSnapshotSink`](crate::IndexSnapshotSink)s, which hold it weakly and
    /// upgrade it only while `open` says the store is open, so dropping the store closes RocksDB.
    pub(crate) db: Arc<DB>,
    /// `true` while the store is open; set to `false` (under the write lock) when it is dropped.
    pub(crate) open: Arc<RwLock<bool>>,
    path: PathBuf,
    instance: u64,
    /// The master key and its version; replaced (under the registry lock) by a master-key rotation.
    master: RwLock<(MasterKey, u32)>,
    pub(crate) system: OwnerCipher,
    pub(crate) tenants: RwLock<HashMap<TenantUid, Arc<TenantState>>>,
    /// Serialises registry writes; holds the registry cipher's reserved encryption count.
    pub(crate) registry_lock: Mutex<u64>,
    /// The ends of the audit chains, and the lock that orders appends to them.
    pub(crate) audit_heads: crate::audit::AuditHeads,
    pub(crate) data_write: WriteOptions,
    pub(crate) durability: Durability,
    /// Per API key id and kind of refusal, refused presentations not yet written to the audit trail
    /// (see [`Store::authenticate`]).
    refusals: Mutex<HashMap<([u8; 16], &'static str), Refusals>>,
}

/// Refusals of one key id within the current window.
struct Refusals {
    /// When the last event for this key id was written.
    written_at: std::time::Instant,
    /// Refusals since then that were folded into the next event instead of writing their own.
    folded: u64,
}

/// At most one refusal event per API key id and kind of refusal (wrong secret, revoked, expired) per
/// this long: a client repeating a wrong secret for a known key id cannot grow the tenant's trail
/// faster, and each event says how many refusals it stands for.
pub const REFUSAL_EVENT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Key ids whose refusals are tracked at once; beyond it, entries older than a minute are dropped
/// (their folded count, if any, is logged).
const MAX_TRACKED_REFUSALS: usize = 10_000;

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

/// A tenant as the operator sees it.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// The tenant's name.
    pub name: TenantName,
    /// Its opaque uid.
    pub uid: TenantUid,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Where its records live.
    pub placement: Placement,
}

/// An API key as listed to the operator: never the secret.
#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    /// The public key id (the part of the key before the secret).
    pub key_id: String,
    /// The role it grants.
    pub role: Role,
    /// The operator's label.
    pub label: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Expiry, if any.
    pub expires_ms: Option<u64>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Whom its searches run for.
    pub binding: KeyBinding,
}

/// A newly issued API key. The secret is shown once and never stored.
pub struct IssuedApiKey {
    /// The full key to hand to the client: `bk_<key id>_<secret>`.
    pub token: String,
    /// The public key id.
    pub key_id: String,
}

impl fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedApiKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_keep_log_file_num(4);
    opts
}

const SYS_WRITE_SYNC: bool = true;

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
        std::fs::create_dir_all(path)?;
        let opts = db_options();
        let existing = if path.join("CURRENT").exists() { DB::list_cf(&opts, path)? } else { Vec::new() };
        let mut names: Vec<String> = existing;
        for required in ["default", SYS_CF] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_owned());
            }
        }
        let descriptors = names.iter().map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, descriptors)?;
        let mut data_write = WriteOptions::default();
        data_write.set_sync(options.durability == Durability::Fsync);

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
                    "the keyring opened under the previous master key and was re-wrapped under the current one"
                );
                Self::open_keyring(&db, &master)?
            }
            other => other?,
        };
        Self::drop_orphan_column_families(&db, &names)?;
        let store = Store {
            db: Arc::new(db),
            open: Arc::new(RwLock::new(true)),
            path: path.to_owned(),
            instance: u64::from_le_bytes(random_bytes()),
            master: RwLock::new((master, master_version)),
            system,
            tenants: RwLock::new(HashMap::new()),
            registry_lock: Mutex::new(reserved),
            audit_heads: crate::audit::AuditHeads::default(),
            data_write,
            durability: options.durability,
            refusals: Mutex::new(HashMap::new()),
        };
        if format == layout::STORAGE_FORMAT_1 {
            store.migrate_to_format_2()?;
        }
        Ok(store)
    }

    /// Verifies the master key (or initialises a new keyring) and opens the registry's own keys.
    /// Returns the master key version, the registry's cipher, its reserved encryption count, and
    /// the storage format the directory is in (format 1 is migrated by the caller).
    fn open_keyring(db: &DB, master: &MasterKey) -> Result<(u32, OwnerCipher, u64, u32)> {
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        match db.get_cf(&sys, layout::META_MASTER_VERSION)? {
            // A system column family with data but no master version is damaged: initialising it
            // would overwrite the registry's keys and lose every tenant.
            None if db.iterator_cf(&sys, IteratorMode::Start).next().is_some() => {
                Err(StorageError::KeyringCorrupt)
            }
            None => {
                let version = 1;
                let kek = master.kek(&SYSTEM_OWNER, version);
                let naming = DataKey::generate(0);
                let data = DataKey::generate(1);
                let mut batch = WriteBatch::default();
                batch.put_cf(&sys, layout::META_FORMAT, layout::STORAGE_FORMAT.to_be_bytes());
                batch.put_cf(&sys, layout::META_MASTER_VERSION, version.to_be_bytes());
                batch.put_cf(&sys, layout::master_check_key(version), master.check_value(version));
                batch.put_cf(&sys, layout::keyring_key(&SYSTEM_OWNER, 0), kek.wrap(&naming).as_bytes());
                batch.put_cf(&sys, layout::keyring_key(&SYSTEM_OWNER, 1), kek.wrap(&data).as_bytes());
                let cipher = OwnerCipher::new(&SYSTEM_OWNER, &naming, &[data], 1, 0)?;
                let write_key = layout::keyring_write_key(&SYSTEM_OWNER);
                batch.put_cf(
                    &sys,
                    &write_key,
                    layout::control_value(&cipher, &write_key, &1u32.to_be_bytes()),
                );
                // The audit directory exists from the start, so that removing every chain shows.
                let count_key = crate::audit::chains_key();
                batch.put_cf(&sys, count_key, Self::chain_count_with(&cipher, 0));
                let mut wo = WriteOptions::default();
                wo.set_sync(SYS_WRITE_SYNC);
                db.write_opt(batch, &wo)?;
                Ok((version, cipher, 0, layout::STORAGE_FORMAT))
            }
            Some(version) => {
                let version = layout::be_u32(&version)?;
                let format = db.get_cf(&sys, layout::META_FORMAT)?.ok_or(StorageError::Codec("format"))?;
                let format = layout::be_u32(&format)?;
                if format != layout::STORAGE_FORMAT && format != layout::STORAGE_FORMAT_1 {
                    return Err(StorageError::Codec("unsupported storage format version"));
                }
                let check = db.get_cf(&sys, layout::master_check_key(version))?;
                if !check.is_some_and(|c| constant_time_eq(&c, &master.check_value(version))) {
                    return Err(StorageError::WrongMasterKey { master_version: version });
                }
                let tagged = format != layout::STORAGE_FORMAT_1;
                let count_key = layout::encryption_count_key(&SYSTEM_OWNER, 1);
                let stored_count = db.get_cf(&sys, &count_key)?;
                let unchecked = match &stored_count {
                    Some(v) if tagged => Some(layout::be_u64(layout::split_control(v)?.0)?),
                    Some(v) => Some(layout::be_u64(v)?),
                    None => None,
                };
                let cipher = Self::load_owner_cipher(
                    db,
                    master,
                    version,
                    &SYSTEM_OWNER,
                    unchecked.unwrap_or(0),
                    tagged,
                )?;
                if tagged && let Some(v) = &stored_count {
                    layout::open_control(&cipher, &count_key, v)?;
                }
                Ok((version, cipher, unchecked.unwrap_or(0), format))
            }
        }
    }

    /// The authenticated chain-count record, under the registry's cipher (before the store exists).
    fn chain_count_with(system: &OwnerCipher, chains: u64) -> Vec<u8> {
        crate::audit::chain_count_value(system, chains)
    }

    /// Moves a format-1 directory to format 2 in one fsynced batch: every owner's control records
    /// (write generation, encryption counts, rotation cursor) get their tag, and every audit chain
    /// gets its anchor and registration, taken as they are now (there is nothing older to check
    /// them against), with the count of chains. An owner whose keys do not open (a keyring already
    /// corrupt) is left as it is: it fails on its own when loaded, and the rest migrate.
    fn migrate_to_format_2(&self) -> Result<()> {
        let sys = self.sys()?;
        let mut batch = WriteBatch::default();
        let mut owners: Vec<[u8; 16]> = Vec::new();
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(&b"keyring/"[..]));
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, _) = item?;
            if let Some(owner) = key.get(8..24).and_then(|o| <[u8; 16]>::try_from(o).ok())
                && owners.last() != Some(&owner)
            {
                owners.push(owner);
            }
        }
        let mut controls: Vec<(Vec<u8>, [u8; 16])> = Vec::new();
        for owner in &owners {
            controls.push((layout::keyring_write_key(owner), *owner));
            controls.push((layout::rotation_key(owner), *owner));
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(&b"enc/"[..]));
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, _) = item?;
            if let Some(owner) = key.get(4..20).and_then(|o| <[u8; 16]>::try_from(o).ok()) {
                controls.push((key.to_vec(), owner));
            }
        }
        let master = self.master.read();
        let mut ciphers: HashMap<[u8; 16], Option<OwnerCipher>> = HashMap::new();
        for (key, owner) in controls {
            let Some(value) = self.db.get_cf(&sys, &key)? else { continue };
            let cipher = ciphers.entry(owner).or_insert_with(|| {
                Self::load_owner_cipher(&self.db, &master.0, master.1, &owner, 0, false)
                    .inspect_err(|e| tracing::error!(owner = %TenantUid::from_bytes(owner).short(), error = %e, "an owner's keys do not open; its control records stay untagged"))
                    .ok()
            });
            if let Some(cipher) = cipher {
                batch.put_cf(&sys, &key, layout::control_value(cipher, &key, &value));
            }
        }
        drop(master);
        let chains = self.audit_tenants()?;
        for uid in &chains {
            if let Some(head) = self.unanchored_head(uid)? {
                for (key, value) in self.anchor_records(uid, head) {
                    batch.put_cf(&sys, key, value);
                }
            }
        }
        batch.put_cf(&sys, crate::audit::chains_key(), self.chain_count_record(chains.len() as u64));
        batch.put_cf(&sys, layout::META_FORMAT, layout::STORAGE_FORMAT.to_be_bytes());
        self.sys_write(batch)?;
        tracing::warn!(
            chains = chains.len(),
            "data directory migrated to storage format 2 (authenticated control records, anchored audit chains)"
        );
        Ok(())
    }

    /// Drops tenant column families that no keyring entry owns: left by a crash between creating a
    /// tenant's column family and writing its keys (`create_tenant` creates the family first). Without
    /// keys their content, if any, could never be read.
    fn drop_orphan_column_families(db: &DB, names: &[String]) -> Result<()> {
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        for name in names {
            let Some(uid_hex) = name.strip_prefix("t-") else { continue };
            let mut uid = [0u8; 16];
            if hex::decode_to_slice(uid_hex, &mut uid).is_err() {
                continue;
            }
            if db.get_cf(&sys, layout::keyring_write_key(&uid))?.is_none() {
                tracing::warn!(tenant = %TenantUid::from_bytes(uid).short(), "dropping an orphan tenant column family");
                db.drop_cf(name)?;
            }
        }
        Ok(())
    }

    /// The key-encryption key of `owner` under the current master key.
    pub(crate) fn kek(&self, owner: &[u8; 16]) -> bulkhead_crypto::Kek {
        let master = self.master.read();
        master.0.kek(owner, master.1)
    }

    /// `owner`'s cipher from the keyring, under the current master key.
    pub(crate) fn owner_cipher(&self, owner: &[u8; 16], encryptions: u64) -> Result<OwnerCipher> {
        let master = self.master.read();
        Self::load_owner_cipher(&self.db, &master.0, master.1, owner, encryptions, true)
    }

    fn stored_check(db: &DB, version: u32) -> Result<Vec<u8>> {
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        Ok(db.get_cf(&sys, layout::master_check_key(version))?.unwrap_or_default())
    }

    /// Re-wraps every wrapped key of every owner from `old` (at `old_version`) to `new` (at the next
    /// version), and switches the master version and check value, in one fsynced batch: a crash
    /// leaves the keyring entirely under one key or the other. Returns the new version.
    fn rewrap_keyring(db: &DB, old: &MasterKey, old_version: u32, new: &MasterKey) -> Result<u32> {
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        let new_version = old_version + 1;
        let mut batch = WriteBatch::default();
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(&b"keyring/"[..]));
        let prefix = b"keyring/".len();
        for item in db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, wrapped) = item?;
            // "keyring/" owner(16) "/" generation(4); the "/write" entries hold no key.
            if key.len() != prefix + 16 + 1 + 4 {
                continue;
            }
            let owner = &key[prefix..prefix + 16];
            let generation = u32::from_be_bytes(
                key[prefix + 17..].try_into().map_err(|_| StorageError::Codec("keyring key"))?,
            );
            let data_key = old
                .kek(owner, old_version)
                .unwrap_key(&wrapped, generation)
                .map_err(|_| StorageError::KeyringCorrupt)?;
            batch.put_cf(&sys, &key, new.kek(owner, new_version).wrap(&data_key).as_bytes());
        }
        batch.put_cf(&sys, layout::META_MASTER_VERSION, new_version.to_be_bytes());
        batch.put_cf(&sys, layout::master_check_key(new_version), new.check_value(new_version));
        batch.delete_cf(&sys, layout::master_check_key(old_version));
        let mut wo = WriteOptions::default();
        wo.set_sync(SYS_WRITE_SYNC);
        db.write_opt(batch, &wo)?;
        Ok(new_version)
    }

    /// Rotates the master key online: every wrapped key is re-wrapped under `new` in one fsynced
    /// batch, then `new` replaces the old key in memory. No tenant data is re-encrypted. Returns the
    /// new master version. The old key can be discarded once this returns.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<u32> {
        let _registry = self.registry_lock.lock();
        let mut master = self.master.write();
        let version = Self::rewrap_keyring(&self.db, &master.0, master.1, &new)?;
        *master = (new, version);
        drop(master);
        // The keys wrapped under the old master key are now only tombstoned versions: rewrite them
        // away, so that the old master key with today's files opens nothing.
        self.purge_destroyed(&[b"keyring/".to_vec()])?;
        // The system's own chain (the all-zero uid) records master-key events.
        self.audit(&TenantUid::from_bytes(layout::SYSTEM_OWNER), "master-key-rotated", None)?;
        tracing::warn!(version, "master key rotated");
        Ok(version)
    }

    /// Unwraps an owner's naming key and data keys and builds its cipher. With `tagged` (storage
    /// format 2), the write-generation record's tag is checked under the naming key it unwraps.
    pub(crate) fn load_owner_cipher(
        db: &DB,
        master: &MasterKey,
        master_version: u32,
        owner: &[u8; 16],
        encryptions: u64,
        tagged: bool,
    ) -> Result<OwnerCipher> {
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        let kek = master.kek(owner, master_version);
        let write_key = layout::keyring_write_key(owner);
        let write = db.get_cf(&sys, &write_key)?.ok_or(StorageError::KeyringCorrupt)?;
        let payload = if tagged { layout::split_control(&write)?.0 } else { &write[..] };
        let write_generation = layout::be_u32(payload).map_err(|_| StorageError::KeyringCorrupt)?;
        let naming_bytes =
            db.get_cf(&sys, layout::keyring_key(owner, 0))?.ok_or(StorageError::KeyringCorrupt)?;
        let naming = kek.unwrap_key(&naming_bytes, 0)?;
        let mut data_keys = Vec::new();
        for generation in 1..=write_generation {
            if let Some(wrapped) = db.get_cf(&sys, layout::keyring_key(owner, generation))? {
                data_keys.push(kek.unwrap_key(&wrapped, generation)?);
            }
        }
        let cipher = OwnerCipher::new(owner, &naming, &data_keys, write_generation, encryptions)
            .map_err(|_| StorageError::KeyringCorrupt)?;
        if tagged {
            layout::open_control(&cipher, &write_key, &write)?;
        }
        Ok(cipher)
    }

    pub(crate) fn sys(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))
    }

    pub(crate) fn sys_write(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(SYS_WRITE_SYNC);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Seals a registry record into `batch` and commits it (fsynced), with the registry cipher's
    /// encryption-count reservation when it runs out. The caller holds `registry_lock`, whose guard is
    /// `reserved`; it moves only after the batch has committed.
    pub(crate) fn commit_registry(
        &self,
        reserved: &mut u64,
        mut batch: WriteBatch,
        key: &[u8],
        record: &[u8],
    ) -> Result<()> {
        let sys = self.sys()?;
        let mut next = *reserved;
        if self.system.encryptions() + 1 > next {
            next = self.system.encryptions() + 1 + ENCRYPTION_RESERVATION;
            let count_key = layout::encryption_count_key(&SYSTEM_OWNER, 1);
            batch.put_cf(
                &sys,
                &count_key,
                layout::control_value(&self.system, &count_key, &next.to_be_bytes()),
            );
        }
        let ctx = SealContext { column_family: SYS_CF.as_bytes(), record_key: key };
        batch.put_cf(&sys, key, self.system.seal(Purpose::Registry, ctx, record)?);
        self.sys_write(batch)?;
        *reserved = next;
        Ok(())
    }

    pub(crate) fn open_registry(&self, key: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Ok(self.system.open(
            Purpose::Registry,
            SealContext { column_family: SYS_CF.as_bytes(), record_key: key },
            sealed,
        )?)
    }

    pub(crate) fn tenant_registry_key(&self, name: &TenantName) -> Vec<u8> {
        layout::tenant_key(&self.system.tag(b"tenant-name", name.as_str().as_bytes()))
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master key version in force.
    pub fn master_version(&self) -> u32 {
        self.master.read().1
    }

    // ---- Tenants (operator operations: they reach no tenant data) ----

    /// Creates a tenant with its own column family and fresh keys.
    pub fn create_tenant(&self, name: &TenantName) -> Result<TenantInfo> {
        let mut reserved = self.registry_lock.lock();
        let key = self.tenant_registry_key(name);
        let sys = self.sys()?;
        if self.db.get_cf(&sys, &key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tenant" });
        }
        let uid = TenantUid::random();
        let record = TenantRecord {
            name: name.as_str().to_owned(),
            uid: *uid.as_bytes(),
            created_ms: now_ms(),
            placement: Placement::OwnColumnFamily,
        };
        // The column family first: if we crash after this, an orphan empty column family remains,
        // which open ignores; the registry entry below is what makes the tenant exist.
        self.db.create_cf(layout::tenant_cf_name(&uid), &Options::default())?;
        let kek = self.kek(uid.as_bytes());
        let (naming, data) = (DataKey::generate(0), DataKey::generate(1));
        let mut batch = WriteBatch::default();
        batch.put_cf(&sys, layout::keyring_key(uid.as_bytes(), 0), kek.wrap(&naming).as_bytes());
        batch.put_cf(&sys, layout::keyring_key(uid.as_bytes(), 1), kek.wrap(&data).as_bytes());
        // The write generation is a control record, tagged under the tenant's own naming key.
        let cipher = OwnerCipher::new(uid.as_bytes(), &naming, &[data], 1, 0)?;
        let write_key = layout::keyring_write_key(uid.as_bytes());
        batch.put_cf(&sys, &write_key, layout::control_value(&cipher, &write_key, &1u32.to_be_bytes()));
        drop(cipher);
        let _audit_slot = self.audit_into(&mut batch, &uid, "tenant-created", None)?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        tracing::info!(tenant = %uid.short(), "tenant created");
        Ok(TenantInfo { name: name.clone(), uid, created_ms: record.created_ms, placement: record.placement })
    }

    /// Lists every tenant.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(layout::TENANT_PREFIX));
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, value) = item?;
            let record: TenantRecord = layout::decode(&self.open_registry(&key, &value)?, "tenant")?;
            out.push(TenantInfo {
                name: TenantName::new(record.name)?,
                uid: TenantUid::from_bytes(record.uid),
                created_ms: record.created_ms,
                placement: record.placement,
            });
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    /// Looks a tenant up by name.
    pub fn tenant_info(&self, name: &TenantName) -> Result<TenantInfo> {
        let key = self.tenant_registry_key(name);
        let sealed = self.db.get_cf(&self.sys()?, &key)?.ok_or(StorageError::NotFound { what: "tenant" })?;
        let record: TenantRecord = layout::decode(&self.open_registry(&key, &sealed)?, "tenant")?;
        Ok(TenantInfo {
            name: name.clone(),
            uid: TenantUid::from_bytes(record.uid),
            created_ms: record.created_ms,
            placement: record.placement,
        })
    }

    // ---- API keys ----

    /// Issues an API key for a tenant. The returned token is the only copy of the secret.
    pub fn issue_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
    ) -> Result<IssuedApiKey> {
        self.issue_bound_api_key(tenant, role, label, expires_ms, KeyBinding::Service { on_behalf_of: false })
    }

    /// Issues an API key with a binding: a user's key (its searches run as that user) or a service
    /// key that may or may not act on behalf of users it names. The user and each group are 1 to
    /// `MAX_PRINCIPAL_BYTES` bytes; at most `MAX_PRINCIPAL_GROUPS` groups.
    pub fn issue_bound_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        if label.len() > 128 {
            return Err(StorageError::InvalidArgument {
                field: "label",
                reason: "must be at most 128 bytes".into(),
            });
        }
        if let KeyBinding::User { user, groups } = &binding {
            // A key bound to a user reads as that user; a write, though, concerns a document id
            // whatever its ACL, so a user-bound writer could overwrite or delete documents its user
            // may not read, and the answer would tell it they exist. Such keys are refused: writes go
            // through service keys.
            if role != Role::Reader {
                return Err(StorageError::InvalidArgument {
                    field: "role",
                    reason: "a key bound to a user must be a reader; issue a service key to write".into(),
                });
            }
            let bad = |name: &String| name.is_empty() || name.len() > crate::limits::MAX_PRINCIPAL_BYTES;
            if bad(user) || groups.iter().any(bad) || groups.len() > crate::limits::MAX_PRINCIPAL_GROUPS {
                return Err(StorageError::InvalidArgument {
                    field: "binding",
                    reason: format!(
                        "the user and each group are 1 to {} bytes, at most {} groups",
                        crate::limits::MAX_PRINCIPAL_BYTES,
                        crate::limits::MAX_PRINCIPAL_GROUPS
                    ),
                });
            }
        }
        let info = self.tenant_info(tenant)?;
        let key_id: [u8; 16] = random_bytes();
        let secret: [u8; 32] = random_bytes();
        let record = ApiKeyRecord {
            tenant_uid: *info.uid.as_bytes(),
            secret_tag: self.system.tag(b"api-key-secret", &secret).0,
            role,
            label: label.to_owned(),
            created_ms: now_ms(),
            expires_ms,
            revoked: false,
            binding,
        };
        let key = layout::apikey_key(&key_id);
        let mut reserved = self.registry_lock.lock();
        let mut batch = WriteBatch::default();
        let _audit_slot =
            self.audit_into(&mut batch, &info.uid, "api-key-issued", Some(&hex::encode(key_id)))?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        let key_id = hex::encode(key_id);
        tracing::info!(tenant = %info.uid.short(), key_id = %key_id, role = role.as_str(), "api key issued");
        Ok(IssuedApiKey { token: format!("bk_{key_id}_{}", hex::encode(secret)), key_id })
    }

    fn load_api_key(&self, key_id_hex: &str) -> Result<Option<([u8; 16], ApiKeyRecord)>> {
        let mut key_id = [0u8; 16];
        if hex::decode_to_slice(key_id_hex, &mut key_id).is_err() {
            return Ok(None);
        }
        let key = layout::apikey_key(&key_id);
        let Some(sealed) = self.db.get_cf(&self.sys()?, &key)? else { return Ok(None) };
        Ok(Some((key_id, layout::decode(&self.open_registry(&key, &sealed)?, "api key")?)))
    }

    /// Lists a tenant's API keys (never their secrets).
    pub fn list_api_keys(&self, tenant: &TenantName) -> Result<Vec<ApiKeyInfo>> {
        let info = self.tenant_info(tenant)?;
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(layout::APIKEY_PREFIX));
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, value) = item?;
            let record: ApiKeyRecord = layout::decode(&self.open_registry(&key, &value)?, "api key")?;
            if record.tenant_uid == *info.uid.as_bytes() {
                out.push(ApiKeyInfo {
                    key_id: hex::encode(&key[layout::APIKEY_PREFIX.len()..]),
                    role: record.role,
                    label: record.label,
                    created_ms: record.created_ms,
                    expires_ms: record.expires_ms,
                    revoked: record.revoked,
                    binding: record.binding,
                });
            }
        }
        Ok(out)
    }

    /// Revokes an API key of `tenant`. A key of another tenant is reported as not found.
    pub fn revoke_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<()> {
        let mut reserved = self.registry_lock.lock();
        let info = self.tenant_info(tenant)?;
        let Some((raw_id, mut record)) = self.load_api_key(key_id)? else {
            return Err(StorageError::NotFound { what: "api key" });
        };
        if record.tenant_uid != *info.uid.as_bytes() {
            return Err(StorageError::NotFound { what: "api key" });
        }
        record.revoked = true;
        let key = layout::apikey_key(&raw_id);
        let mut batch = WriteBatch::default();
        let _audit_slot = self.audit_into(&mut batch, &info.uid, "api-key-revoked", Some(key_id))?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        tracing::info!(tenant = %info.uid.short(), key_id, "api key revoked");
        Ok(())
    }

    // ---- The two doors that mint scopes ----

    /// Checks an API key (`bk_<key id>_<secret>`) against the keyring, in constant time, and mints a
    /// scope for its tenant and role. Unknown, malformed, revoked and expired keys all get
    /// [`StorageError::Unauthenticated`].
    pub fn authenticate(&self, token: &str) -> Result<TenantScope> {
        let mut parts = token.strip_prefix("bk_").unwrap_or("").splitn(2, '_');
        let (Some(key_id), Some(secret_hex)) = (parts.next(), parts.next()) else {
            return Err(StorageError::Unauthenticated);
        };
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(secret_hex, secret.as_mut()).is_err() {
            return Err(StorageError::Unauthenticated);
        }
        let presented = self.system.tag(b"api-key-secret", secret.as_ref());
        let Some((raw_key_id, record)) = self.load_api_key(key_id)? else {
            return Err(StorageError::Unauthenticated);
        };
        let secret_ok = constant_time_eq(&presented.0, &record.secret_tag);
        let expired = record.expires_ms.is_some_and(|t| t <= now_ms());
        let uid = TenantUid::from_bytes(record.tenant_uid);
        if !secret_ok || record.revoked || expired {
            // The key names its tenant: the refusal goes into that tenant's trail (the caller still
            // learns only "unauthenticated"). A key of a deleted tenant is gone with its records.
            let outcome = if !secret_ok {
                "wrong-secret"
            } else if record.revoked {
                "revoked-key"
            } else {
                "expired-key"
            };
            self.record_refused_key(uid, raw_key_id, key_id, outcome)?;
            return Err(StorageError::Unauthenticated);
        }
        // A key whose tenant is gone authenticates nobody.
        self.load_tenant(uid).map_err(|e| match e {
            StorageError::NotFound { .. } => StorageError::Unauthenticated,
            other => other,
        })?;
        Ok(TenantScope {
            tenant: uid,
            store_instance: self.instance,
            role: record.role,
            key_id: Some(raw_key_id),
            binding: record.binding,
        })
    }

    /// Writes the refusal of a presented key to its tenant's trail, at most once per
    /// [`REFUSAL_EVENT_EVERY`] per key id and outcome: a refusal inside the window is counted, and
    /// the next event of that key id and outcome says how many it stands for. Nothing is written under a global lock: only
    /// the key id's entry and the tenant's own chain are touched.
    fn record_refused_key(
        &self,
        uid: TenantUid,
        raw_key_id: [u8; 16],
        key_id: &str,
        outcome: &'static str,
    ) -> Result<()> {
        let now = std::time::Instant::now();
        let folded = {
            let mut refusals = self.refusals.lock();
            if refusals.len() >= MAX_TRACKED_REFUSALS {
                refusals.retain(|_, r| {
                    let keep = now.duration_since(r.written_at) < std::time::Duration::from_secs(60);
                    if !keep && r.folded > 0 {
                        tracing::warn!(
                            folded = r.folded,
                            "refused credential presentations dropped from tracking before their event"
                        );
                    }
                    keep
                });
            }
            match refusals.get_mut(&(raw_key_id, outcome)) {
                Some(r) if now.duration_since(r.written_at) < REFUSAL_EVENT_EVERY => {
                    r.folded += 1;
                    return Ok(());
                }
                Some(r) => {
                    let folded = r.folded;
                    *r = Refusals { written_at: now, folded: 0 };
                    folded
                }
                None => {
                    refusals.insert((raw_key_id, outcome), Refusals { written_at: now, folded: 0 });
                    0
                }
            }
        };
        let note = (folded > 0).then(|| format!("{folded} more refusals of this key before this one"));
        self.audit_access(
            uid,
            &AccessEvent {
                operation: "authenticate",
                key_id: Some(key_id),
                outcome,
                note: note.as_deref(),
                ..AccessEvent::default()
            },
        )
    }

    /// Records in the scope's tenant trail that a request with this scope was refused before it
    /// reached the tenant's data (a role below the operation's, a malformed request).
    pub fn audit_refusal(&self, scope: &TenantScope, operation: &str, outcome: &str) -> Result<()> {
        let key_id = scope.key_id();
        self.audit_access(
            scope.tenant,
            &AccessEvent { operation, key_id: key_id.as_deref(), outcome, ..AccessEvent::default() },
        )
    }

    /// Mints a tenant-admin scope for `tenant` without a credential, for a process that embeds the
    /// database and is itself the trust boundary (a test, a migration, a single-tenant app). The
    /// reason is logged; grep for this name when auditing a code base.
    pub fn trusted_host_scope(&self, tenant: &TenantName, reason: &'static str) -> Result<TenantScope> {
        let info = self.tenant_info(tenant)?;
        self.load_tenant(info.uid)?;
        tracing::warn!(tenant = %info.uid.short(), reason, "trusted-host scope minted");
        Ok(TenantScope {
            tenant: info.uid,
            store_instance: self.instance,
            role: Role::TenantAdmin,
            key_id: None,
            binding: KeyBinding::Service { on_behalf_of: true },
        })
    }

    /// The data handle of the scope's tenant: the only way to its records.
    pub fn tenant<'s>(&'s self, scope: &TenantScope) -> Result<TenantHandle<'s>> {
        if scope.store_instance != self.instance {
            return Err(StorageError::ForeignScope);
        }
        if let Some(key_id) = &scope.key_id {
            let still_valid = self
                .load_api_key(&hex::encode(key_id))?
                .is_some_and(|(_, record)| !record.revoked && record.expires_ms.is_none_or(|t| t > now_ms()));
            if !still_valid {
                return Err(StorageError::Unauthenticated);
            }
        }
        let state = self.load_tenant(scope.tenant)?;
        TenantHandle::new(self, state, scope)
    }

    /// Loads (once) a tenant's keys and counters.
    pub(crate) fn load_tenant(&self, uid: TenantUid) -> Result<Arc<TenantState>> {
        if let Some(state) = self.tenants.read().get(&uid) {
            return Ok(Arc::clone(state));
        }
        let mut tenants = self.tenants.write();
        if let Some(state) = tenants.get(&uid) {
            return Ok(Arc::clone(state));
        }
        let sys = self.sys()?;
        let owner = uid.as_bytes();
        let write = self.db.get_cf(&sys, layout::keyring_write_key(owner))?;
        let Some(write) = write else { return Err(StorageError::NotFound { what: "tenant" }) };
        // Checked below, once the cipher whose naming key tags it is built (`owner_cipher`).
        let generation =
            layout::be_u32(layout::split_control(&write)?.0).map_err(|_| StorageError::KeyringCorrupt)?;
        let count_key = layout::encryption_count_key(owner, generation);
        let stored_count = self.db.get_cf(&sys, &count_key)?;
        let reserved = match &stored_count {
            Some(v) => {
                layout::be_u64(layout::split_control(v)?.0).map_err(|_| StorageError::KeyringCorrupt)?
            }
            None => 0,
        };
        let cipher = self.owner_cipher(owner, reserved)?;
        if let Some(v) = &stored_count {
            layout::open_control(&cipher, &count_key, v)?;
        }
        // A rotation record that does not authenticate stops the tenant here, with a clear error,
        // rather than stalling its rotation later.
        if let Some(v) = self.db.get_cf(&sys, layout::rotation_key(owner))? {
            layout::open_control(&cipher, &layout::rotation_key(owner), &v)?;
        }
        let cf_name = layout::tenant_cf_name(&uid);
        if self.db.cf_handle(&cf_name).is_none() {
            return Err(StorageError::NotFound { what: "tenant" });
        }
        let policy = self.stored_policy(&uid)?;
        let state = Arc::new(TenantState::load(&self.db, uid, cf_name, cipher, reserved, policy)?);
        tenants.insert(uid, Arc::clone(&state));
        Ok(state)
    }

    /// Flushes memtables and the write-ahead log to disk (used before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        let mut names = vec![SYS_CF.to_owned()];
        names.extend(self.tenants.read().values().map(|t| t.cf_name.clone()));
        for name in names {
            if let Some(cf) = self.db.cf_handle(&name) {
                self.db.flush_cf(&cf)?;
            }
        }
        Ok(())
    }
}
