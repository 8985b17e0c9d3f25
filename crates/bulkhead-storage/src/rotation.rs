//! Tenant-key rotation and crypto-shredding.
//!
//! **Rotation.** [`Store::rotate_tenant_key`] makes a new data-key generation the write key at once
//! (the wrapped key, the write generation and a rotation record are one fsynced batch, persisted
//! before the new key is used). Then [`Store::rotation_step`], called repeatedly by whoever drives it
//! (a background task, or the CLI with a progress bar), re-seals a bounded batch of the tenant's
//! records under the new generation, in key order, committing the records and the advanced cursor in
//! one atomic batch; it resumes from the cursor after a restart. When the scan reaches the end, the
//! older generations' wrapped keys are deleted (fsynced) and dropped from memory: from then on
//! nothing sealed under them can be opened, and nothing needs to be.
//!
//! **Shredding.** [`Store::delete_tenant`] first deletes the tenant's wrapped keys, its registry
//! entry and its API keys in one fsynced batch; only then does it drop the column family. After the
//! first step no record of the tenant can be decrypted by anyone; if the process dies before the
//! second, the next open drops the keyless column family (see `Store::open`).

use crate::engine::{Batch, Engine, Entry, Family, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout::{self, Placement, RotationRecord};
use crate::store::Store;
use crate::tenant::{TenantState, WriteState};
use bulkhead_crypto::{DataKey, OwnerCipher, Purpose};
use parking_lot::MutexGuard;

/// How far a tenant-key rotation has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationProgress {
    /// The generation records are being re-sealed under (the write generation).
    pub target_generation: u32,
    /// Sealed records scanned so far (counted as `total` is).
    pub done: u64,
    /// Sealed records the tenant held when the rotation started (an estimate, raised to `done` when
    /// writes made during the rotation add more), so `done <= total` always.
    pub total: u64,
    /// Whether the rotation has finished and the older keys are destroyed.
    pub finished: bool,
}

impl Store {
    /// Starts a tenant-key rotation: a new data-key generation becomes the write key at once. Fails
    /// with `AlreadyExists` if one is already running (resume it with [`Store::rotation_step`]).
    pub fn rotate_tenant_key(&self, name: &TenantName) -> Result<RotationProgress> {
        self.rotate_tenant_key_of(self.tenant_info(name)?.uid)
    }

    /// As [`Store::rotate_tenant_key`], by the tenant's uid. The progress total is the exact number of
    /// sealed records, counted by a scan before any lock is taken.
    pub fn rotate_tenant_key_of(&self, uid: TenantUid) -> Result<RotationProgress> {
        let total = self.count_sealed(&*self.load_tenant(uid)?)?;
        self.start_rotation(uid, total)
    }

    /// The tenant's sealed records, counted by a scan of its keys.
    fn count_sealed(&self, state: &TenantState) -> Result<u64> {
        let cf = state.family(&self.db)?;
        Ok(self
            .db
            .entries(&cf, Keys::Prefix(state.uid.as_bytes()))
            .filter(|r| r.as_ref().is_ok_and(|(k, _)| layout::sealed_purpose(k).is_some()))
            .count() as u64)
    }

    /// Starts a rotation the write path asked for (an encryption limit reached): the progress total
    /// of a tenant with its own column family is RocksDB's key-count estimate, which costs nothing,
    /// instead of a scan of a tenant that has sealed a billion values; a shared column family's
    /// estimate counts every shared tenant, so a shared tenant (small, by the tier's purpose) is
    /// counted by a scan.
    pub fn start_automatic_rotation(&self, uid: TenantUid) -> Result<RotationProgress> {
        let state = self.load_tenant(uid)?;
        let total = match state.placement() {
            Placement::OwnColumnFamily | Placement::Dedicated => {
                self.db.estimated_keys(&state.family(&self.db)?)?.unwrap_or(0)
            }
            Placement::Shared => self.count_sealed(&state)?,
        };
        self.start_rotation(uid, total)
    }

    fn start_rotation(&self, uid: TenantUid, total: u64) -> Result<RotationProgress> {
        let owner = *uid.as_bytes();
        let state = self.load_tenant(uid)?;
        let _registry = self.registry_lock.lock();
        let sys = self.sys()?;
        if self.db.get(&sys, layout::rotation_key(&owner))?.is_some() {
            return Err(StorageError::AlreadyExists { what: "key rotation" });
        }
        // A tier move copies the records as they are sealed; it and a rotation do not overlap.
        if self.db.get(&sys, layout::moving_key(&owner))?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tier move" });
        }
        let mut write = state.write.lock();
        let target =
            state.cipher.read().write_generation().checked_add(1).ok_or(StorageError::InvalidArgument {
                field: "tenant",
                reason: "the tenant's key has been rotated as often as generations can count".into(),
            })?;
        let kek = self.kek(&owner);
        let record = RotationRecord { target, after: None, done: 0, total };
        let mut batch = Batch::default();
        batch.put(&sys, layout::keyring_key(&owner, target), kek.wrap(&DataKey::generate(target)).as_bytes());
        {
            // Control records, tagged under the tenant's naming key (the same in every generation).
            let cipher = state.cipher.read();
            let write_key = layout::keyring_write_key(&owner);
            batch.put(&sys, &write_key, layout::control_value(&cipher, &write_key, &target.to_be_bytes()));
            let rotation_key = layout::rotation_key(&owner);
            let value = layout::control_value(&cipher, &rotation_key, &layout::encode(&record));
            batch.put(&sys, &rotation_key, value);
        }
        let _pending = self.audit_into(&mut batch, &uid, "tenant-key-rotation-started", None)?;
        self.sys_write(batch)?;
        // Persisted: from here the new generation seals every write. Its encryption count starts at 0.
        let cipher = self.owner_cipher(&owner, 0)?;
        *state.cipher.write() = cipher;
        write.reserved_encryptions = 0;
        // API keys do not depend on the tenant's data keys, but their next calls read the records
        // again: a rotation, often a response to a suspected leak, also rechecks every credential.
        self.key_cache.remove_tenant(uid);
        tracing::info!(tenant = %uid.short(), generation = target, "tenant key rotation started");
        Ok(RotationProgress { target_generation: target, done: 0, total, finished: false })
    }

    /// The data-key generation that seals the tenant's new writes.
    pub fn key_generation(&self, uid: TenantUid) -> Result<u32> {
        Ok(self.load_tenant(uid)?.cipher.read().write_generation())
    }

    /// The tenants with a rotation in progress (to resume after a restart).
    pub fn pending_rotations(&self) -> Result<Vec<TenantUid>> {
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::ROTATION_PREFIX)) {
            let (key, _) = item?;
            let owner = layout::rotation_owner(&key).ok_or(StorageError::Codec("rotation key"))?;
            out.push(TenantUid::from_bytes(owner));
        }
        Ok(out)
    }

    /// The tenant's rotation record, authenticated under its naming key; `None` if none runs.
    fn rotation_record(&self, state: &TenantState) -> Result<Option<RotationRecord>> {
        let key = layout::rotation_key(state.uid.as_bytes());
        let Some(raw) = self.db.get(&self.sys()?, &key)? else { return Ok(None) };
        let payload = layout::open_control(&state.cipher.read(), &key, &raw)?;
        Ok(Some(layout::decode(&payload, "rotation")?))
    }

    /// A tenant's rotation progress, `None` if none is running.
    pub fn rotation_status(&self, uid: TenantUid) -> Result<Option<RotationProgress>> {
        let state = self.load_tenant(uid)?;
        let Some(record) = self.rotation_record(&state)? else { return Ok(None) };
        Ok(Some(RotationProgress {
            target_generation: record.target,
            done: record.done,
            total: record.total,
            finished: false,
        }))
    }

    /// Re-seals up to `max_records` of the tenant's records sealed under an older generation (scanning
    /// at most `4 · max_records` records), under the tenant's write lock, and persists the cursor in
    /// the same batch. When the scan is complete, destroys the older generations' keys and reports
    /// `finished`. Returns `None` if no rotation is running.
    pub fn rotation_step(&self, uid: TenantUid, max_records: usize) -> Result<Option<RotationProgress>> {
        let owner = *uid.as_bytes();
        let state = self.load_tenant(uid)?;
        let sys = self.sys()?;
        let mut write = state.write.lock();
        if state.deleted.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StorageError::NotFound { what: "tenant" });
        }
        let cf = state.family(&self.db)?;
        let Some(mut record) = self.rotation_record(&state)? else { return Ok(None) };
        let scan = stale_records(&self.db, &cf, uid, &mut record, max_records.max(1))?;
        let mut batch = Batch::default();
        let reserved = state.reserve(&self.db, &write, scan.stale.len() as u64, &mut batch)?;
        for ((key, value), purpose) in &scan.stale {
            let plain = state.open(*purpose, key, value)?;
            batch.put(&cf, key, state.seal(*purpose, key, &plain)?);
        }
        // Counted as the total is (sealed records only); writes made during the rotation (an index
        // snapshot, a client's upsert) can add records the total did not count, so it is raised.
        record.done += scan.sealed as u64;
        record.total = record.total.max(record.done);
        let rotation_key = layout::rotation_key(&owner);
        let cursor = layout::control_value(&state.cipher.read(), &rotation_key, &layout::encode(&record));
        batch.put(&sys, &rotation_key, cursor);
        self.data_write(batch)?;
        write.reserved_encryptions = reserved;
        let mut progress = RotationProgress {
            target_generation: record.target,
            done: record.done,
            total: record.total,
            finished: false,
        };
        if scan.exhausted {
            // The registry lock is taken after the tenant's write lock is released (the order the
            // rotation's start takes them in is the reverse).
            self.finish_rotation(&state, record.target, write)?;
            progress.finished = true;
        }
        Ok(Some(progress))
    }

    /// Every record is under the `target` generation: destroys the older keys, durably first, then
    /// physically, and records the end of the rotation. Releases the tenant's write lock before it
    /// takes the registry lock.
    fn finish_rotation(
        &self,
        state: &TenantState,
        target: u32,
        write: MutexGuard<'_, WriteState>,
    ) -> Result<()> {
        let owner = *state.uid.as_bytes();
        let sys = self.sys()?;
        let mut batch = Batch::default();
        for generation in 1..target {
            batch.delete(&sys, layout::keyring_key(&owner, generation));
            batch.delete(&sys, layout::encryption_count_key(&owner, generation));
        }
        batch.delete(&sys, layout::rotation_key(&owner));
        self.sys_write(batch)?;
        // Tombstones are not destruction: rewrite what still holds the old wrapped keys.
        self.purge_destroyed(&[layout::keyring_prefix(&owner)])?;
        let encryptions = state.cipher.read().encryptions();
        let cipher = self.owner_cipher(&owner, encryptions)?;
        *state.cipher.write() = cipher;
        drop(write);
        let _registry = self.registry_lock.lock();
        self.audit(&state.uid, "tenant-key-rotation-finished", None)?;
        tracing::info!(
            tenant = %state.uid.short(),
            generation = target,
            "tenant key rotation finished; older keys destroyed"
        );
        Ok(())
    }

    /// Crypto-shreds a tenant: destroys its wrapped keys, registry entry and API keys, and deletes
    /// its records in the shared column family with one range delete (one fsynced batch, whatever
    /// the tenant's size), then drops its own column family or removes its own instance if it has
    /// one. The tenant's writes are
    /// fenced meanwhile, and any write still waiting is refused. Returns how many API keys were
    /// revoked with it.
    pub fn delete_tenant(&self, name: &TenantName) -> Result<usize> {
        let _registry = self.registry_lock.lock();
        let info = self.tenant_info(name)?;
        let owner = *info.uid.as_bytes();
        let sys = self.sys()?;
        // A tenant whose keys no longer open is deleted all the same: neither its placement record
        // nor its state is needed, both places are cleared.
        let loaded = self.tenants.read().get(&info.uid).cloned();
        let fence = loaded.as_ref().map(|state| state.write.lock());
        let mut batch = Batch::default();
        let shared = self.db.family(layout::SHARED_CF);
        if let Some(shared) = &shared {
            let (from, to) = layout::tenant_key_range(&info.uid);
            batch.delete_range(shared, from, to);
        }
        let registry_key = self.tenant_registry_key(name);
        let mut purged = vec![
            layout::keyring_prefix(&owner),
            layout::encryption_counts_prefix(&owner),
            layout::rotation_key(&owner),
            registry_key.clone(),
            layout::policy_key(&owner),
            layout::placement_key(&owner),
            layout::moving_key(&owner),
            layout::intent_done_key(&layout::tenant_cf_name(&info.uid)),
        ];
        for prefix in &purged[..2] {
            for item in self.db.entries(&sys, Keys::Prefix(prefix)) {
                batch.delete(&sys, item?.0);
            }
        }
        batch.delete(&sys, layout::keyring_write_key(&owner));
        for key in &purged[2..] {
            batch.delete(&sys, key);
        }
        // The audit event commits with the key destruction, in the system column family that
        // outlives the tenant.
        let pending = self.audit_into(&mut batch, &info.uid, "tenant-deleted", None)?;
        let mut revoked = 0;
        for (raw_id, _) in self.key_records_of(&info.uid)? {
            let key = layout::apikey_key(&raw_id);
            batch.delete(&sys, &key);
            batch.delete(&sys, layout::key_lock_key(&raw_id));
            purged.push(key);
            revoked += 1;
        }
        // The index entries too (a range: entries whose record was gone are included).
        for item in self.db.entries(&sys, Keys::Prefix(&layout::apikey_of_prefix(&owner))) {
            batch.delete(&sys, item?.0);
        }
        // Its break-glass grants (their reasons) go with it; their keys went above.
        for key in self.grant_keys_of(&owner)? {
            batch.delete(&sys, &key);
            purged.push(key);
        }
        self.sys_write(batch)?;
        drop(pending);
        if let Some(state) = &loaded {
            state.deleted.store(true, std::sync::atomic::Ordering::Release);
        }
        drop(fence);
        self.key_cache.remove_tenant(info.uid);
        // Its uid may come back, restored from an archive: it starts with a clean slate.
        self.unavailable.write().remove(&info.uid);
        // The keys are gone on disk; forget them in memory too. Handles still open keep a copy only
        // until they are dropped, and cannot commit (`deleted`).
        self.tenants.write().remove(&info.uid);
        tracing::warn!(tenant = %info.uid.short(), revoked, "tenant keys destroyed (crypto-shredded)");
        let own = layout::tenant_cf_name(&info.uid);
        if self.db.family(&own).is_some() {
            self.db.drop_family(&own)?;
        }
        // A dedicated tenant's instance is closed and its directory removed once no handle
        // still holds it (those cannot commit: `deleted`). Its keys are gone already: should
        // this fail, the next open removes it as an orphan.
        if let Err(e) = self.db.remove_dedicated(&own) {
            let tenant = info.uid.short();
            tracing::error!(%tenant, error = %e, "a deleted tenant's instance stays until the next open");
        }
        self.purge_destroyed(&purged)?;
        if let Some(shared) = &shared {
            // The range delete hides the records at once; this rewrites the table files that held
            // them, so that no file on disk still does.
            let (from, to) = layout::tenant_key_range(&info.uid);
            self.db.compact_to_bottom(shared, &from, &to);
        }
        tracing::info!(tenant = %info.uid.short(), "tenant records deleted");
        Ok(revoked)
    }

    /// Makes the deletion of the records under `prefixes` (in the system column family) physical,
    /// not just a tombstone: every column family's memtable is flushed (so no write-ahead log file
    /// still holding the deleted values is needed, and RocksDB deletes those files), then the key
    /// ranges are compacted down to the last level (so no table file holds the old values; the
    /// files they were in are deleted), and the new log is synced. What this cannot reach is
    /// listed in `docs/SECURITY.md` (copies taken before: backups, snapshots, freed disk blocks).
    pub(crate) fn purge_destroyed(&self, prefixes: &[Vec<u8>]) -> Result<()> {
        for name in Engine::list_families(self.path())? {
            if let Some(cf) = self.db.family(&name) {
                self.db.flush(&cf)?;
            }
        }
        let sys = self.sys()?;
        for prefix in prefixes {
            let mut end = prefix.clone();
            end.push(0xff);
            end.extend_from_slice(&[0xff; 32]);
            self.db.compact_to_bottom(&sys, prefix, &end);
        }
        self.db.sync_log()?;
        Ok(())
    }
}

/// What one rotation step's scan found.
struct Scan {
    /// Records sealed under an older generation than the target, with their purpose.
    stale: Vec<(Entry, Purpose)>,
    /// Records scanned (sealed or not: the bound on one step's work).
    scanned: usize,
    /// Sealed records scanned, whatever their generation: the progress, counted as the total is.
    sealed: usize,
    /// Whether the scan reached the end of the tenant's records.
    exhausted: bool,
}

/// Scans the tenant's records after the rotation's cursor, moving the cursor along, until `max`
/// stale records are found, `4 · max` records are scanned, or the records end.
fn stale_records(
    db: &Engine,
    cf: &Family<'_>,
    uid: TenantUid,
    record: &mut RotationRecord,
    max: usize,
) -> Result<Scan> {
    // The tenant's own keys only: a shared column family holds other tenants' too.
    let entries = match &record.after {
        Some(after) => db.entries_from(cf, Keys::Prefix(uid.as_bytes()), after),
        None => db.entries(cf, Keys::Prefix(uid.as_bytes())),
    };
    let mut scan = Scan { stale: Vec::new(), scanned: 0, sealed: 0, exhausted: true };
    for item in entries {
        let (key, value) = item?;
        if record.after.as_deref() == Some(&*key) {
            continue;
        }
        if scan.scanned == max * 4 || scan.stale.len() == max {
            scan.exhausted = false;
            break;
        }
        scan.scanned += 1;
        record.after = Some(key.to_vec());
        let Some(purpose) = layout::sealed_purpose(&key) else { continue };
        scan.sealed += 1;
        let generation = OwnerCipher::sealed_generation(&value).ok_or(StorageError::Integrity)?;
        if generation < record.target {
            scan.stale.push(((key, value), purpose));
        }
    }
    Ok(scan)
}
