//! Moving a tenant between tiers online ([`Store::move_tenant`]): its records are copied, as they
//! are sealed (a value is bound to the tenant's namespace and key, not to the column family that
//! holds it), from a RocksDB snapshot while reads and writes go on; then the changes since, from a
//! newer snapshot, again while they shrink; then, with the tenant's writes fenced, the last changes
//! and the switch: the placement record, the registry entry and the move's record in one fsynced
//! batch. The old copy is removed once no handle made before the switch reads from it.
//!
//! A crash leaves the tenant whole in exactly one place: the `moving/` record says how far the move
//! got, and opening the store removes the copy that is not the tenant's ([`Store::finish_moves`]):
//! before the switch the new one, after it the old one.

use crate::engine::{Batch, Engine, Entry, Family, Keys, Snapshot};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout::{self, Placement};
use crate::store::{Durability, Store};
use crate::tenant::{Location, TenantState};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::iter::Peekable;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes of records copied per batch.
const COPY_BATCH_BYTES: usize = 4 << 20;
/// Catch-up rounds before the writes are fenced, whatever the changes of the last one.
const MAX_ROUNDS: u32 = 8;
/// A catch-up round that copied at most this many changes is the last before the fence.
const FENCE_AT_CHANGES: u64 = 1_000;
/// How long the old copy waits for the handles that still read it before it is removed anyway.
const OLD_READERS_WAIT: Duration = Duration::from_secs(30);

/// How far a tier move got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveProgress {
    /// The tier the tenant is moving from.
    pub from: Placement,
    /// The tier the tenant is moving to.
    pub target: Placement,
    /// Records written to the new place so far (puts and deletes, every round).
    pub copied: u64,
    /// Copy rounds done: the first copies everything, each next one the changes since.
    pub rounds: u32,
    /// Whether the switch happened: the tenant is in its new tier.
    pub switched: bool,
}

/// The moves under way in this process, as far as each got ([`Store::move_status`]).
#[derive(Default)]
pub(crate) struct Moves(Mutex<HashMap<TenantUid, MoveProgress>>);

/// Removes a move from [`Moves`] when dropped.
struct Shown<'m>(&'m Moves, TenantUid);

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        self.0.0.lock().remove(&self.1);
    }
}

impl Moves {
    fn show(&self, uid: TenantUid, progress: MoveProgress) -> Shown<'_> {
        self.0.lock().insert(uid, progress);
        Shown(self, uid)
    }

    fn update(&self, uid: TenantUid, progress: MoveProgress) {
        self.0.lock().insert(uid, progress);
    }
}

/// The phases a `moving/` record names.
const COPYING: u8 = 0;
const SWITCHED: u8 = 1;

impl Store {
    /// Moves a tenant to the tier `target`, online (see the module documentation); `progress` is
    /// told after every round and at the switch. A tenant already in `target` is left as it is.
    /// Refused while a key rotation of the tenant runs, or another move.
    pub fn move_tenant(
        &self,
        name: &TenantName,
        target: Placement,
        mut progress: impl FnMut(MoveProgress),
    ) -> Result<MoveProgress> {
        let info = self.tenant_info(name)?;
        let uid = info.uid;
        let state = self.load_tenant(uid)?;
        let from = state.placement();
        let mut done = MoveProgress { from, target, copied: 0, rounds: 0, switched: false };
        if from == target {
            return Ok(done);
        }
        self.begin_move(uid, from, target)?;
        // Seen by `move_status` until the move returns, however it returns.
        let _shown = self.moves.show(uid, done);
        let mut progress = |now: MoveProgress| {
            self.moves.update(uid, now);
            progress(now);
        };
        let to = Location::of(&uid, target);
        let old = match self.copy_and_switch(&state, &info.name, &to, &mut done, &mut progress) {
            Ok(old) => old,
            Err(e) => {
                // Nothing switched: the new copy goes, the move's record with it.
                self.remove_copy(uid, target)?;
                self.sys_write(self.end_move(uid)?)?;
                return Err(e);
            }
        };
        progress(done);
        // The old copy stays while handles made before the switch still read it. (Should this
        // fail, the move's record says "switched", and the next open removes the old copy.)
        let waited = self.clock().now();
        while Arc::strong_count(&old) > 1 && self.clock().now().duration_since(waited) < OLD_READERS_WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.remove_copy(uid, old.placement)?;
        self.sys_write(self.end_move(uid)?)?;
        Ok(done)
    }

    /// How far the tier move of the tenant `uid` that runs now got (`None`: none runs).
    pub fn move_status(&self, uid: TenantUid) -> Option<MoveProgress> {
        self.moves.0.lock().get(&uid).copied()
    }

    /// Writes the move's record (phase "copying") and makes the new place's column family.
    fn begin_move(&self, uid: TenantUid, from: Placement, target: Placement) -> Result<()> {
        let _registry = self.registry_lock.lock();
        let sys = self.sys()?;
        let owner = uid.as_bytes();
        if self.db.get(&sys, layout::rotation_key(owner))?.is_some() {
            return Err(StorageError::AlreadyExists { what: "key rotation" });
        }
        let key = layout::moving_key(owner);
        if self.db.get(&sys, &key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tier move" });
        }
        let mut batch = Batch::default();
        let record = [COPYING, from.to_byte(), target.to_byte()];
        batch.put(&sys, &key, layout::control_value(&self.system, &key, &record));
        self.sys_write(batch)?;
        if let Err(e) = Location::of(&uid, target).make(&self.db) {
            // Nothing was copied: the move's record goes, so that the tenant can move or rotate.
            self.remove_copy(uid, target)?;
            self.sys_write(self.end_move(uid)?)?;
            return Err(e);
        }
        Ok(())
    }

    /// The rounds of copying, then the fenced last round and the switch. Returns where the tenant
    /// was.
    fn copy_and_switch(
        &self,
        state: &TenantState,
        name: &TenantName,
        to: &Location,
        done: &mut MoveProgress,
        progress: &mut impl FnMut(MoveProgress),
    ) -> Result<Arc<Location>> {
        let uid = state.uid;
        let old = state.location();
        let (source, target) = (old.family(&self.db)?, to.family(&self.db)?);
        let mut before: Option<Snapshot<'_>> = None;
        loop {
            let now = self.db.snapshot_of(&source);
            let changes = copy_changes(&self.db, &source, &target, uid, before.as_ref(), &now)?;
            done.copied += changes;
            done.rounds += 1;
            progress(*done);
            before = Some(now);
            if done.rounds >= MAX_ROUNDS || (done.rounds > 1 && changes <= FENCE_AT_CHANGES) {
                break;
            }
        }
        // The fence: the registry lock (as a rotation's start takes it, before the tenant's write
        // lock), then the tenant's writes.
        let mut reserved = self.registry_lock.lock();
        let write = state.write.lock();
        if state.deleted.load(Ordering::Acquire) {
            return Err(StorageError::NotFound { what: "tenant" });
        }
        let now = self.db.snapshot_of(&source);
        done.copied += copy_changes(&self.db, &source, &target, uid, before.as_ref(), &now)?;
        done.rounds += 1;
        // The copy was written without an fsync; the switch below is fsynced, and must not outlive
        // it (a dedicated instance's log is not the main one's).
        self.db.sync_log_of(&target)?;
        let sys = self.sys()?;
        let mut batch = Batch::default();
        let owner = uid.as_bytes();
        let place_key = layout::placement_key(owner);
        let place = layout::control_value(&state.cipher.read(), &place_key, &[to.placement.to_byte()]);
        batch.put(&sys, &place_key, place);
        let moving_key = layout::moving_key(owner);
        let record = [SWITCHED, old.placement.to_byte(), to.placement.to_byte()];
        batch.put(&sys, &moving_key, layout::control_value(&self.system, &moving_key, &record));
        let mut event = self.admin_record("tenant-moved", None);
        event.note = Some(format!("from {} to {}", old.placement.name(), to.placement.name()));
        let _pending = self.audit_record_into(&mut batch, &uid, event)?;
        // Everything else of the registry entry (its first-key marker) stays as it is.
        let (tenant_key, mut entry) = self.tenant_record(name)?;
        entry.placement = to.placement;
        self.commit_registry(&mut reserved, batch, &tenant_key, &layout::encode(&entry))?;
        *state.location.write() = Arc::new(Location::of(&uid, to.placement));
        drop(write);
        drop(reserved);
        done.switched = true;
        tracing::info!(tenant = %uid.short(), tier = to.placement.name(), "tenant moved");
        Ok(old)
    }

    /// Removes a tenant's records from one place: its own column family dropped or its own
    /// instance removed, its prefix in the shared one deleted (and compacted away).
    fn remove_copy(&self, uid: TenantUid, placement: Placement) -> Result<()> {
        let mut batch = Batch::default();
        Location::clear(&self.db, &uid, placement, &mut batch)?;
        self.db.write(batch, Durability::Fsync)?;
        if let (Placement::Shared, Some(shared)) = (placement, self.db.family(layout::SHARED_CF)) {
            let (from, to) = layout::tenant_key_range(&uid);
            self.db.compact_to_bottom(&shared, &from, &to);
        }
        Ok(())
    }

    /// A batch that deletes the move's record.
    fn end_move(&self, uid: TenantUid) -> Result<Batch> {
        let mut batch = Batch::default();
        batch.delete(&self.sys()?, layout::moving_key(uid.as_bytes()));
        Ok(batch)
    }

    /// Finishes what moves interrupted by a crash left (at open): before the switch the new copy
    /// is removed, after it the old one. A record that does not authenticate is left alone, logged.
    pub(crate) fn finish_moves(&self) -> Result<()> {
        let sys = self.sys()?;
        let mut found = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::MOVING_PREFIX)) {
            let (key, value) = item?;
            found.push((key, value));
        }
        for (key, value) in found {
            let Some(owner) = layout::moving_owner(&key) else { continue };
            let uid = TenantUid::from_bytes(owner);
            let record = match layout::open_control(&self.system, &key, &value) {
                Ok(record) if record.len() == 3 => record,
                _ => {
                    tracing::error!(tenant = %uid.short(), "a tier-move record does not authenticate; left");
                    continue;
                }
            };
            let (from, to) = (Placement::from_byte(record[1])?, Placement::from_byte(record[2])?);
            let stale = if record[0] == SWITCHED { from } else { to };
            self.remove_copy(uid, stale)?;
            self.sys_write(self.end_move(uid)?)?;
            tracing::warn!(tenant = %uid.short(), removed = stale.name(), "interrupted tier move finished");
        }
        // A dedicated instance whose tenant is not in the dedicated tier (a move out of it whose
        // removal of the old copy a crash cut short) is stale: it goes.
        for name in self.db.dedicated_names() {
            let Some(uid) = layout::tenant_cf_uid(&name).map(TenantUid::from_bytes) else { continue };
            if let Ok(state) = self.load_tenant(uid)
                && state.placement() != Placement::Dedicated
            {
                tracing::warn!(tenant = %uid.short(), "removing a stale dedicated instance");
                self.db.remove_dedicated(&name)?;
            }
        }
        Ok(())
    }
}

/// Writes to `target` what changed in the tenant's records of `source` from `before` (nothing, on
/// the first round) to `now`: new and changed records put, vanished ones deleted. Returns how many.
fn copy_changes(
    db: &Engine,
    source: &Family<'_>,
    target: &Family<'_>,
    uid: TenantUid,
    before: Option<&Snapshot<'_>>,
    now: &Snapshot<'_>,
) -> Result<u64> {
    let prefix = uid.as_bytes();
    let old: Box<dyn Iterator<Item = Result<Entry>> + '_> = match before {
        Some(snapshot) => Box::new(snapshot.entries(source, Keys::Prefix(prefix))?),
        None => Box::new(std::iter::empty()),
    };
    let mut old: Peekable<_> = old.peekable();
    let mut batch = Batch::default();
    let (mut bytes, mut changes) = (0usize, 0u64);
    let flush = |batch: &mut Batch, bytes: &mut usize| -> Result<()> {
        db.write(std::mem::take(batch), Durability::Process)?;
        *bytes = 0;
        Ok(())
    };
    for item in now.entries(source, Keys::Prefix(prefix))? {
        let (key, value) = item?;
        // Records of `before` that sort first are gone by `now`.
        while let Some(gone) = old.next_if(|e| e.as_ref().is_ok_and(|(k, _)| k < &key)) {
            batch.delete(target, gone?.0);
            changes += 1;
        }
        let same = old.next_if(|e| e.as_ref().is_ok_and(|(k, _)| *k == key)).transpose()?;
        if same.is_some_and(|(_, v)| v == value) {
            continue;
        }
        bytes += key.len() + value.len();
        batch.put(target, &key, &value);
        changes += 1;
        if bytes >= COPY_BATCH_BYTES {
            flush(&mut batch, &mut bytes)?;
        }
    }
    for gone in old {
        batch.delete(target, gone?.0);
        changes += 1;
    }
    flush(&mut batch, &mut bytes)?;
    Ok(changes)
}
