//! A loaded tenant: its cipher, write counters (usage among them) and policy, loaded once per open
//! store from the keyring (control records checked) and shared by every handle of the tenant.

use crate::engine::{Batch, Engine, Family};
use crate::error::{Result, StorageError};
use crate::ids::{CollectionName, TenantUid};
use crate::keyring::ENCRYPTION_RESERVATION;
use crate::layout::{self, CollectionRecord, Kind, Placement, TenantKeys, UsageRecord};
use crate::model::CollectionInfo;
use crate::policy::VersionedPolicy;
use crate::store::{Store, system_family};
use bulkhead_crypto::{OwnerCipher, Purpose, RecordTag, SealContext};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters that only the tenant's writer changes, under its lock.
pub(crate) struct WriteState {
    pub(crate) sequence: u64,
    pub(crate) next_collection: u32,
    pub(crate) reserved_encryptions: u64,
    /// The tenant's usage as stored at its `U` record, once read or written (`None` before, and
    /// for a tenant without the record until a write has stored it).
    pub(crate) usage: Option<UsageRecord>,
}

/// Where a tenant's records are.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) placement: Placement,
    /// Its own column family `t-<uid hex>`, or `shared`.
    pub(crate) family_name: String,
}

impl Location {
    pub(crate) fn of(uid: &TenantUid, placement: Placement) -> Location {
        let family_name = match placement {
            Placement::OwnColumnFamily | Placement::Dedicated => layout::tenant_cf_name(uid),
            Placement::Shared => layout::SHARED_CF.to_owned(),
        };
        Location { placement, family_name }
    }

    /// Where the records are; `NotFound` once the place was removed.
    pub(crate) fn family<'e>(&self, db: &'e Engine) -> Result<Family<'e>> {
        match self.placement {
            Placement::Dedicated => db.dedicated(&self.family_name),
            Placement::OwnColumnFamily | Placement::Shared => db.family(&self.family_name),
        }
        .ok_or(StorageError::NotFound { what: "tenant" })
    }

    /// Makes the place: the tenant's own column family if it does not exist, the shared column
    /// family if no shared tenant made it yet, or a new, empty dedicated instance (whatever held
    /// its name is stale: `Engine::create_dedicated`).
    pub(crate) fn make(&self, db: &Engine) -> Result<()> {
        match self.placement {
            Placement::Dedicated => db.create_dedicated(&self.family_name),
            Placement::OwnColumnFamily | Placement::Shared if db.family(&self.family_name).is_none() => {
                db.create_family(&self.family_name)
            }
            Placement::OwnColumnFamily | Placement::Shared => Ok(()),
        }
    }

    /// Removes a tenant's records from one place: its own column family is dropped, and its own
    /// instance removed, at once; its prefix of the shared column family is range-deleted in
    /// `batch`, to commit with what the caller commits. A place that does not exist holds nothing
    /// to remove.
    pub(crate) fn clear(db: &Engine, uid: &TenantUid, placement: Placement, batch: &mut Batch) -> Result<()> {
        let location = Location::of(uid, placement);
        match placement {
            Placement::OwnColumnFamily if db.family(&location.family_name).is_some() => {
                db.drop_family(&location.family_name)?;
            }
            Placement::OwnColumnFamily => {}
            Placement::Dedicated => db.remove_dedicated(&location.family_name)?,
            Placement::Shared => {
                if let Some(shared) = db.family(&location.family_name) {
                    let (from, to) = layout::tenant_key_range(uid);
                    batch.delete_range(&shared, from, to);
                }
            }
        }
        Ok(())
    }
}

/// A loaded tenant: its keys and write state. Shared by every handle of the tenant.
pub(crate) struct TenantState {
    pub(crate) uid: TenantUid,
    /// The tenant's namespace, `t-<uid hex>`, that every sealed value of the tenant is bound to,
    /// whichever column family holds it.
    pub(crate) cf_name: String,
    /// Its tier and the column family that holds its records; replaced, under the write lock, when
    /// a tier move switches (`tier.rs`). A handle keeps the location it was made with.
    pub(crate) location: RwLock<Arc<Location>>,
    pub(crate) keys: TenantKeys,
    /// Swapped (under the tenant's write lock) when a key rotation starts and when it finishes.
    pub(crate) cipher: RwLock<OwnerCipher>,
    pub(crate) write: Mutex<WriteState>,
    /// The policy in force; replaced by [`Store::set_policy`].
    pub(crate) policy: RwLock<Arc<VersionedPolicy>>,
    /// The tenant's collections, by name, once looked up: a write or search checks its collection
    /// here instead of reading and opening the sealed record again. Only collections that exist are
    /// held (at most [`limits::MAX_COLLECTIONS_PER_TENANT`](crate::limits)); creating and dropping
    /// one updates the map once the batch has committed.
    pub(crate) collections: RwLock<HashMap<CollectionName, CollectionInfo>>,
    /// Set (under the write lock) when the tenant is deleted: a write still holding a handle then
    /// commits nothing.
    pub(crate) deleted: AtomicBool,
    /// When it was last loaded for a call ([`Store::load_tenant`]'s tick), to drop the least
    /// recently used first.
    last_used: AtomicU64,
}

impl TenantState {
    pub(crate) fn load(
        db: &Engine,
        uid: TenantUid,
        placement: Placement,
        cipher: OwnerCipher,
        reserved: u64,
        policy: VersionedPolicy,
    ) -> Result<TenantState> {
        let keys = TenantKeys::new(&uid);
        let cf_name = layout::tenant_cf_name(&uid);
        let location = Location::of(&uid, placement);
        let cf = location.family(db)?;
        let sequence = match db.get(&cf, keys.singleton(Kind::Sequence))? {
            Some(v) => layout::be_u64(&v)?,
            None => 0,
        };
        let next_collection = match db.get(&cf, keys.singleton(Kind::NextCollection))? {
            Some(v) => layout::be_u32(&v)?,
            None => 1,
        };
        drop(cf);
        Ok(TenantState {
            uid,
            cf_name,
            location: RwLock::new(Arc::new(location)),
            keys,
            cipher: RwLock::new(cipher),
            write: Mutex::new(WriteState {
                sequence,
                next_collection,
                reserved_encryptions: reserved,
                usage: None,
            }),
            policy: RwLock::new(Arc::new(policy)),
            collections: RwLock::new(HashMap::new()),
            deleted: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        })
    }

    /// The column family that holds the tenant's records now; `NotFound` once its own was dropped.
    /// A writer reads it under the write lock, so that a tier move's switch cannot come between.
    pub(crate) fn family<'e>(&self, db: &'e Engine) -> Result<Family<'e>> {
        self.location.read().family(db)
    }

    /// Where the tenant's records are now.
    pub(crate) fn location(&self) -> Arc<Location> {
        Arc::clone(&self.location.read())
    }

    /// The tenant's tier now.
    pub(crate) fn placement(&self) -> Placement {
        self.location.read().placement
    }

    pub(crate) fn seal(&self, purpose: Purpose, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.read().seal(purpose, ctx, value)?)
    }

    pub(crate) fn open(
        &self,
        purpose: Purpose,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.read().open(purpose, ctx, sealed)?)
    }

    /// Adds the encryption-count reservation to `batch` if sealing `upcoming` more values would pass
    /// the persisted upper bound, and returns the reservation the batch leaves in force. Called under
    /// the write lock, before sealing; the caller stores the returned value in `WriteState` only once
    /// the batch has committed, so a failed write can never leave memory ahead of disk.
    pub(crate) fn reserve(
        &self,
        db: &Engine,
        write: &WriteState,
        upcoming: u64,
        batch: &mut Batch,
    ) -> Result<u64> {
        let needed = self.cipher.read().encryptions() + upcoming;
        if needed <= write.reserved_encryptions {
            return Ok(write.reserved_encryptions);
        }
        let reserved = needed + ENCRYPTION_RESERVATION;
        let sys = system_family(db)?;
        let cipher = self.cipher.read();
        let key = layout::encryption_count_key(self.uid.as_bytes(), cipher.write_generation());
        batch.put(&sys, &key, layout::control_value(&cipher, &key, &reserved.to_be_bytes()));
        Ok(reserved)
    }

    pub(crate) fn collection_tag(&self, name: &CollectionName) -> RecordTag {
        layout::collection_tag(&self.cipher.read(), name)
    }

    /// A collection by name: from memory once it has been looked up, else from its stored record,
    /// read and opened under the map's write lock (a drop that commits meanwhile removes the entry
    /// only after this one is in, so no dropped collection stays cached).
    pub(crate) fn collection(
        &self,
        db: &Engine,
        cf: &Family<'_>,
        name: &CollectionName,
    ) -> Result<Option<CollectionInfo>> {
        if let Some(info) = self.collections.read().get(name) {
            return Ok(Some(info.clone()));
        }
        let mut collections = self.collections.write();
        if let Some(info) = collections.get(name) {
            return Ok(Some(info.clone()));
        }
        let key = self.keys.collection(&self.collection_tag(name));
        let Some(sealed) = db.get_pinned(cf, &key)? else { return Ok(None) };
        let record = layout::decode(&self.open(Purpose::Payloads, &key, &sealed)?, "collection")?;
        let info = self.collection_info(record)?;
        collections.insert(name.clone(), info.clone());
        Ok(Some(info))
    }

    /// The collection a stored record describes.
    pub(crate) fn collection_info(&self, record: CollectionRecord) -> Result<CollectionInfo> {
        Ok(CollectionInfo {
            tenant: self.uid,
            number: record.number,
            // Names were validated when the collection was created; a stored name that no longer
            // passes (rules tightened since) is reported, not a panic.
            name: CollectionName::new(record.name).map_err(|_| StorageError::Codec("collection name"))?,
            dimension: record.dimension as usize,
            metric: record.metric,
            created_ms: record.created_ms,
        })
    }
}

impl Store {
    /// Loads (once) a tenant's keys and counters.
    ///
    /// A tenant whose keyring or records do not open (damaged or tampered on disk) is marked
    /// unavailable: the failure is logged and written to the tenant's audit trail once, and from
    /// then on, until the store is opened again, every call for it is refused at once with
    /// [`StorageError::TenantUnavailable`], naming the cause, while every other tenant is served.
    pub(crate) fn load_tenant(&self, uid: TenantUid) -> Result<Arc<TenantState>> {
        if let Some(state) = self.tenants.read().get(&uid) {
            state.last_used.store(self.use_tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            return Ok(Arc::clone(state));
        }
        if let Some(cause) = self.unavailable.read().get(&uid) {
            return Err(StorageError::TenantUnavailable { cause });
        }
        let mut tenants = self.tenants.write();
        if let Some(state) = tenants.get(&uid) {
            return Ok(Arc::clone(state));
        }
        match self.open_tenant(uid) {
            Ok(state) => {
                state.last_used.store(self.use_tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
                let state = Arc::new(state);
                if tenants.len() >= self.max_loaded_tenants {
                    drop_idle(&mut tenants, self.max_loaded_tenants);
                }
                tenants.insert(uid, Arc::clone(&state));
                Ok(state)
            }
            Err(
                e @ (StorageError::KeyringCorrupt
                | StorageError::TenantUnavailable { .. }
                | StorageError::Integrity
                | StorageError::Codec(_)
                | StorageError::Crypto(_)),
            ) => {
                // Its audit event is written without the map's lock held.
                drop(tenants);
                Err(self.mark_unavailable(uid, &e))
            }
            Err(e) => Err(e),
        }
    }

    /// Marks a tenant unavailable for `cause` (see [`Store::load_tenant`]); the error to return.
    fn mark_unavailable(&self, uid: TenantUid, cause: &StorageError) -> StorageError {
        let cause = cause.reason_code();
        if self.unavailable.write().insert(uid, cause).is_none() {
            tracing::error!(
                tenant = %uid.short(),
                cause,
                "tenant unavailable: its keyring or records do not open; other tenants are served"
            );
            let mut event = self.admin_record("tenant-unavailable", None);
            event.outcome = cause.to_owned();
            let mut batch = crate::engine::Batch::default();
            let recorded = self.audit_record_into(&mut batch, &uid, event).and_then(|pending| {
                self.sys_write(batch)?;
                pending.committed();
                Ok(())
            });
            if let Err(e) = recorded {
                tracing::error!(tenant = %uid.short(), error = %e, "could not audit a tenant as unavailable");
            }
        }
        StorageError::TenantUnavailable { cause }
    }

    /// Reads a tenant's keys, counters, placement and policy, checking every control record.
    fn open_tenant(&self, uid: TenantUid) -> Result<TenantState> {
        let sys = self.sys()?;
        let owner = uid.as_bytes();
        let write = self.db.get(&sys, layout::keyring_write_key(owner))?;
        let Some(write) = write else { return Err(StorageError::NotFound { what: "tenant" }) };
        // Checked below, once the cipher whose naming key tags it is built (`owner_cipher`).
        let generation =
            layout::be_u32(layout::split_control(&write)?.0).map_err(|_| StorageError::KeyringCorrupt)?;
        let count_key = layout::encryption_count_key(owner, generation);
        let stored_count = self.db.get(&sys, &count_key)?;
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
        if let Some(v) = self.db.get(&sys, layout::rotation_key(owner))? {
            layout::open_control(&cipher, &layout::rotation_key(owner), &v)?;
        }
        let placement = match self.db.get(&sys, layout::placement_key(owner))? {
            Some(v) => {
                let byte = layout::open_control(&cipher, &layout::placement_key(owner), &v)?;
                Placement::from_byte(*byte.first().ok_or(StorageError::KeyringCorrupt)?)?
            }
            None => Placement::OwnColumnFamily,
        };
        if placement == Placement::Dedicated && Location::of(&uid, placement).family(&self.db).is_err() {
            // Its directory is not under the dedicated root (moved, or the root changed).
            return Err(StorageError::TenantUnavailable { cause: "dedicated-instance-missing" });
        }
        let policy = self.stored_policy(&uid)?;
        TenantState::load(&self.db, uid, placement, cipher, reserved, policy)
    }
}

/// Drops loaded tenants that no call is using (nothing else holds their state), least recently
/// used first, until a quarter of `max` is free; tenants in use stay, even past `max`. What a
/// dropped tenant held is on disk (keys, counters, policy), and its next call loads it again.
fn drop_idle(tenants: &mut HashMap<TenantUid, Arc<TenantState>>, max: usize) {
    let mut idle: Vec<(u64, TenantUid)> = tenants
        .iter()
        .filter(|(_, state)| Arc::strong_count(state) == 1)
        .map(|(uid, state)| (state.last_used.load(Ordering::Relaxed), *uid))
        .collect();
    idle.sort_unstable_by_key(|(tick, _)| *tick);
    let keep = max - max / 4;
    for (_, uid) in idle.into_iter().take(tenants.len().saturating_sub(keep)) {
        tenants.remove(&uid);
    }
}
