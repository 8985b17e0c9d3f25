//! Dedicated instances: a dedicated tenant's records in a RocksDB instance of their own, in a
//! directory of their own under the dedicated root (which may be on another disk), in the folder
//! named after the data directory's random id (so that two data directories given the same root
//! never open, or remove as orphans, each other's instances).
//!
//! Most of a tenant's writes also write to the main instance: the access event of the write, the
//! tenant's encryption-count reservation, the records of a rotation or a tier move. Two instances
//! share no write-ahead log, so such a batch commits in three steps, one instance's lock held:
//!
//! 1. the dedicated instance's part, and with it an *intent*: the main instance's part, in full
//!    (RocksDB's own encoding of the batch), under the next intent number of the instance;
//! 2. the main instance's part, and with it the instance's *done* record, set to that number;
//! 3. the intent is deleted.
//!
//! A crash after step 1 leaves an intent whose number is above the done record: opening the engine
//! commits its main part then (before anything else reads the main instance). A crash after step 2
//! leaves one at or below it, which is only deleted. So after an open, the main part of a batch is
//! committed exactly when its dedicated part is. With `Fsync` durability the intent is deleted at
//! once; with `Process` durability (no fsync) it stays until the main instance's log has been
//! synced past it (every [`INTENT_SYNC_EVERY`] intents, and at open), so that a power loss cannot
//! keep the records and lose their main part. A main write that fails without a crash leaves the
//! intent too, and the engine then refuses every write until the next open commits it (a write of
//! the main instance meanwhile could take the place the intent's audit event holds).
//!
//! An intent is replayed only if every write in it is one the store puts there
//! ([`layout::intent_may_write`]: the tenant's own audit, encryption-count and rotation records):
//! one that is not (a tampered directory) leaves that instance unopened, and its tenant
//! unavailable, like an instance that does not open. A removed instance's directory is renamed
//! to a tombstone first (at once), then deleted in the background; tombstones left by a crash are
//! deleted at the next open.
//!
//! ```text
//! instance        column family   key                 value
//! dedicated       "default"       the tenant's records, as in its own column family
//! dedicated       "intent"        u64 BE number       the main part of a batch (RocksDB batch)
//! main            sys             "intent-done/" dir  u64 BE: the last intent committed
//! main            sys             "meta/store-id"     16 random bytes: the folder's name
//! main            sys             "meta/dedicated-root"  the root last given (UTF-8)
//! ```

use super::{Engine, Family};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout;
use parking_lot::Mutex;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, WriteBatch, WriteBatchIteratorCf, WriteOptions};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The column family of a dedicated instance that holds its intents.
const INTENT_CF: &str = "intent";
/// How many 5 ms waits making an instance spends on a removed one of the same name still in use.
const REMOVAL_WAITS: u32 = 1_000;
/// With `Process` durability, the main instance's log is synced, and the intents it covers
/// deleted, every this many intents of an instance.
pub(crate) const INTENT_SYNC_EVERY: u64 = 256;
/// The name a removed instance's directory is renamed to starts with this.
const TOMBSTONE_PREFIX: &str = ".removed-";

/// One dedicated tenant's RocksDB instance.
pub(crate) struct Instance {
    // Declared before `remover`, so that it is closed before its directory is removed.
    db: DB,
    /// Its directory name, which names its done record.
    name: String,
    /// The last intent number used; held while a batch that writes to both instances commits.
    intents: Mutex<u64>,
    /// The engine's: set when a main write failed after a dedicated part committed.
    poisoned: Arc<AtomicBool>,
    remover: Remover,
}

/// Removes a removed instance's directory once the instance is closed.
struct Remover {
    path: PathBuf,
    name: String,
    remove: AtomicBool,
    removing: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Remover {
    fn drop(&mut self) {
        if self.remove.load(Ordering::Acquire) {
            // Renamed at once, so that the name is free for a new instance; deleted (which can
            // take long) in the background.
            let tomb = self.path.with_file_name(format!(
                "{TOMBSTONE_PREFIX}{}-{}",
                self.name,
                hex::encode(bulkhead_crypto::random_bytes::<8>())
            ));
            match std::fs::rename(&self.path, &tomb) {
                Ok(()) => {
                    std::thread::spawn(move || delete_directory(&tomb));
                }
                Err(e) => tracing::error!(error = %e, "could not remove a dedicated tenant's directory"),
            }
            self.removing.lock().remove(&self.name);
        }
    }
}

/// Deletes a directory, or, for a symbolic link to one, the directory it points to and the link.
fn delete_directory(path: &Path) {
    let deleted = match std::fs::read_link(path) {
        // A relative target is relative to the link's own folder.
        Ok(target) => {
            std::fs::remove_dir_all(path.parent().map_or(target.clone(), |folder| folder.join(&target)))
                .and_then(|()| std::fs::remove_file(path))
        }
        Err(_) => std::fs::remove_dir_all(path),
    };
    if let Err(e) = deleted {
        tracing::error!(error = %e, "could not delete a removed dedicated tenant's directory");
    }
}

#[cfg(test)]
thread_local! {
    /// Set by a test to stop the next batch that writes to both instances after its first step,
    /// as a crash there would.
    pub(crate) static STOP_AFTER_INTENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Refuses every write once a batch committed in a dedicated instance and not in the main one.
pub(super) fn refuse_if_poisoned(poisoned: &AtomicBool) -> Result<()> {
    if poisoned.load(Ordering::Acquire) {
        return Err(StorageError::Engine(
            "a dedicated tenant's write did not finish; writes resume when the store is opened again".into(),
        ));
    }
    Ok(())
}

impl Instance {
    /// The RocksDB instance.
    pub(super) fn db(&self) -> &DB {
        &self.db
    }

    /// Tells instances apart (snapshots check that they are read with their own instance).
    pub(super) fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Commits a batch that writes to this instance only.
    pub(super) fn write(&self, own: WriteBatch, options: &WriteOptions) -> Result<()> {
        refuse_if_poisoned(&self.poisoned)?;
        Ok(self.db.write_opt(own, options)?)
    }

    /// Commits a batch that writes to this instance (`own`) and to the main one (`main_part`), in
    /// the three steps the module documentation draws; `synced`: the writes are fsynced.
    pub(super) fn commit_with_main(
        &self,
        main: &DB,
        mut own: WriteBatch,
        mut main_part: WriteBatch,
        options: &WriteOptions,
        synced: bool,
    ) -> Result<()> {
        let mut last = self.intents.lock();
        refuse_if_poisoned(&self.poisoned)?;
        let number = *last + 1;
        let sys =
            main.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        main_part.put_cf(&sys, layout::intent_done_key(&self.name), number.to_be_bytes());
        let intents = self.intent_family()?;
        own.put_cf(&intents, number.to_be_bytes(), main_part.data());
        self.db.write_opt(own, options)?;
        #[cfg(test)]
        if STOP_AFTER_INTENT.with(|stop| stop.replace(false)) {
            self.poisoned.store(true, Ordering::Release);
            return Err(StorageError::Engine("stopped after the intent (test)".into()));
        }
        if let Err(e) = main.write_opt(main_part, options) {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(
                "a dedicated tenant's write committed in its instance but not in the main one; \
                 writes are refused until the store is opened again"
            );
            return Err(e.into());
        }
        *last = number;
        // A failure below leaves intents at or below the done record, which the next open deletes.
        let pruned = if synced {
            self.db.delete_cf(&intents, number.to_be_bytes())
        } else if number.is_multiple_of(INTENT_SYNC_EVERY) {
            // The main log synced covers every intent so far: none is needed after a power loss.
            main.flush_wal(true).and_then(|()| {
                self.db.delete_range_cf(&intents, 0u64.to_be_bytes(), (number + 1).to_be_bytes())
            })
        } else {
            Ok(())
        };
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "could not delete committed intents; the next open will");
        }
        Ok(())
    }

    fn intent_family(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db.cf_handle(INTENT_CF).ok_or(StorageError::Codec("missing intent column family"))
    }

    /// Commits, in the main instance, the intents a crash left above the done record (each checked
    /// first: see the module documentation), deletes every intent, and returns the last intent
    /// number used.
    fn finish_intents(&self, main: &DB, fsync: &WriteOptions) -> Result<u64> {
        let sys =
            main.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        let uid = layout::tenant_cf_uid(&self.name)
            .map(TenantUid::from_bytes)
            .ok_or(StorageError::Codec("instance"))?;
        let done = match main.get_cf(&sys, layout::intent_done_key(&self.name))? {
            Some(v) => layout::be_u64(&v)?,
            None => 0,
        };
        let intents = self.intent_family()?;
        let mut last = done;
        let found: Vec<_> =
            self.db.iterator_cf(&intents, IteratorMode::Start).collect::<std::result::Result<_, _>>()?;
        for (key, main_part) in found {
            let number = layout::be_u64(&key)?;
            if number > done {
                let batch = WriteBatch::from_data(&main_part);
                let mut check = IntentCheck { uid, instance: &self.name, seen: 0, allowed: true };
                batch.iterate_cf(&mut check);
                if !check.allowed || check.seen != batch.len() {
                    return Err(StorageError::Codec("an intent that the store did not write"));
                }
                main.write_opt(batch, fsync)?;
                tracing::warn!("finished a dedicated tenant's write that a crash interrupted");
            }
            last = last.max(number);
            self.db.delete_cf(&intents, &key)?;
        }
        Ok(last)
    }
}

/// Checks the writes of an intent (see [`layout::intent_may_write`]); a merge, or a kind of write
/// these callbacks do not see (a range delete), leaves `seen` short of the batch's length.
struct IntentCheck<'a> {
    uid: TenantUid,
    instance: &'a str,
    seen: usize,
    allowed: bool,
}

impl WriteBatchIteratorCf for IntentCheck<'_> {
    fn put_cf(&mut self, _cf_id: u32, key: &[u8], _value: &[u8]) {
        self.seen += 1;
        self.allowed &= layout::intent_may_write(&self.uid, self.instance, key);
    }

    fn delete_cf(&mut self, _cf_id: u32, key: &[u8]) {
        self.seen += 1;
        self.allowed &= layout::intent_may_write(&self.uid, self.instance, key);
    }

    fn merge_cf(&mut self, _cf_id: u32, _key: &[u8], _value: &[u8]) {
        self.allowed = false;
    }
}

/// The folder of this data directory's dedicated instances under `root`: named after the id in
/// `meta/store-id`, which is made (fsynced) the first time.
pub(super) fn folder(main: &DB, root: &Path, fsync: &WriteOptions) -> Result<PathBuf> {
    let sys = main.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
    let id = match main.get_cf(&sys, layout::META_STORE_ID)? {
        Some(id) => id,
        None => {
            let id: [u8; 16] = bulkhead_crypto::random_bytes();
            main.put_cf_opt(&sys, layout::META_STORE_ID, id, fsync)?;
            id.to_vec()
        }
    };
    Ok(root.join(hex::encode(id)))
}

/// The dedicated root to use: the one given; else the one recorded in `meta/dedicated-root` when
/// one was last given (so that a process opened without it, an embedded command, finds the
/// server's); else `default`. A root given is recorded (fsynced) if it is not already.
pub(super) fn root(main: &DB, given: Option<&Path>, default: &Path, fsync: &WriteOptions) -> Result<PathBuf> {
    let sys = main.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
    let recorded = main.get_cf(&sys, layout::META_DEDICATED_ROOT)?.and_then(|v| String::from_utf8(v).ok());
    match given {
        Some(given) => {
            let text = given.to_str().ok_or(StorageError::InvalidArgument {
                field: "dedicated_root",
                reason: "must be valid UTF-8".into(),
            })?;
            if recorded.as_deref() != Some(text) {
                main.put_cf_opt(&sys, layout::META_DEDICATED_ROOT, text, fsync)?;
            }
            Ok(given.to_owned())
        }
        None => Ok(recorded.map_or_else(|| default.to_owned(), PathBuf::from)),
    }
}

impl Engine {
    /// The directory of the dedicated instance `name`.
    fn dedicated_path(&self, name: &str) -> PathBuf {
        self.dedicated_root.join(name)
    }

    /// Opens a dedicated instance (creating it if missing) and finishes its intents.
    fn open_instance(&self, name: &str) -> Result<Arc<Instance>> {
        let path = self.dedicated_path(name);
        let families =
            [INTENT_CF, "default"].map(|n| ColumnFamilyDescriptor::new(n, self.family_options.clone()));
        let db = DB::open_cf_descriptors(&self.instance_options, &path, families)?;
        let instance = Instance {
            db,
            name: name.to_owned(),
            intents: Mutex::new(0),
            poisoned: Arc::clone(&self.poisoned),
            remover: Remover {
                path,
                name: name.to_owned(),
                remove: AtomicBool::new(false),
                removing: Arc::clone(&self.removing),
            },
        };
        *instance.intents.lock() = instance.finish_intents(&self.db, &self.fsync)?;
        Ok(Arc::new(instance))
    }

    /// Opens every dedicated instance in this data directory's folder (at open), and deletes the
    /// tombstones of removed ones. One that does not open (damaged, locked, an intent the store did
    /// not write) is logged and left closed: its tenant is unavailable, the others are served.
    pub(super) fn open_dedicated_instances(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.dedicated_root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name.starts_with(TOMBSTONE_PREFIX) {
                delete_directory(&entry.path());
                continue;
            }
            // `metadata` follows a symbolic link: an instance may live on yet another disk.
            if layout::tenant_cf_uid(&name).is_none() || !std::fs::metadata(entry.path())?.is_dir() {
                continue;
            }
            match self.open_instance(&name) {
                Ok(instance) => {
                    self.dedicated.write().insert(name, instance);
                }
                Err(e) => {
                    let uid = layout::tenant_cf_uid(&name).map(TenantUid::from_bytes);
                    let tenant = uid.map(|uid| uid.short()).unwrap_or_default();
                    tracing::error!(
                        %tenant,
                        error = %e,
                        "a dedicated instance does not open; its tenant is unavailable, the others are served"
                    );
                }
            }
        }
        Ok(())
    }

    /// The dedicated instance `name`, if it is open.
    pub(crate) fn dedicated(&self, name: &str) -> Option<Family<'_>> {
        self.dedicated.read().get(name).map(|instance| Family::Dedicated(Arc::clone(instance)))
    }

    /// The names of the open dedicated instances.
    pub(crate) fn dedicated_names(&self) -> Vec<String> {
        self.dedicated.read().keys().cloned().collect()
    }

    /// Makes a new, empty dedicated instance `name` (a tenant's new place: created, moved or
    /// imported into the dedicated tier). Whatever holds that name already is stale (a copy whose
    /// removal a crash cut short) and is removed first; one still in use is waited for, about
    /// five seconds at most, then the call is refused. The instance is opened without the map's
    /// lock held, so that other tenants' calls do not wait for it.
    pub(crate) fn create_dedicated(&self, name: &str) -> Result<()> {
        let _one_at_a_time = self.creating.lock();
        self.remove_dedicated(name)?;
        for _ in 0..REMOVAL_WAITS {
            if !self.removing.lock().contains(name) {
                std::fs::create_dir_all(&self.dedicated_root)?;
                let instance = self.open_instance(name)?;
                self.dedicated.write().insert(name.to_owned(), instance);
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Err(StorageError::Engine("a removed dedicated instance of that name is still in use".into()))
    }

    /// Removes the dedicated instance `name`: closed and its directory removed as soon as nothing
    /// uses it (at once if nothing does). A directory that is not open is removed at once.
    pub(crate) fn remove_dedicated(&self, name: &str) -> Result<()> {
        let mut open = self.dedicated.write();
        match open.remove(name) {
            Some(instance) => {
                // Marked under the map's lock, so that no instance of the name is made meanwhile.
                self.removing.lock().insert(name.to_owned());
                instance.remover.remove.store(true, Ordering::Release);
                drop(open);
                // The last user lets go here or later; the directory goes then.
                drop(instance);
            }
            None => {
                let in_use = self.removing.lock().contains(name);
                drop(open);
                let path = self.dedicated_path(name);
                if !in_use && std::fs::symlink_metadata(&path).is_ok() {
                    delete_directory(&path);
                }
            }
        }
        Ok(())
    }

    /// Puts, in the instance `name`, an intent above any done record that deletes `key` from the
    /// main instance's system column family (a test that plays the attacker).
    #[cfg(test)]
    pub(crate) fn forge_intent(&self, name: &str, key: &[u8]) -> Result<()> {
        let open = self.dedicated.read();
        let instance = open.get(name).ok_or(StorageError::NotFound { what: "instance" })?;
        let sys = self.db.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("sys"))?;
        let mut main_part = WriteBatch::default();
        main_part.delete_cf(&sys, key);
        Ok(instance.db.put_cf(&instance.intent_family()?, u64::MAX.to_be_bytes(), main_part.data())?)
    }

    /// Flushes every dedicated instance's memtable and write-ahead log.
    pub(crate) fn flush_dedicated(&self) -> Result<()> {
        let open: Vec<Arc<Instance>> = self.dedicated.read().values().cloned().collect();
        for instance in open {
            instance.db.flush_wal(true)?;
            instance.db.flush()?;
        }
        Ok(())
    }
}
