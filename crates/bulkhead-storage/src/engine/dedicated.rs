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
//! committed exactly when its dedicated part is. A main write that fails without a crash leaves
//! the intent too, and the instance then refuses every write until the next open commits it.
//!
//! ```text
//! instance        column family   key                 value
//! dedicated       "default"       the tenant's records, as in its own column family
//! dedicated       "intent"        u64 BE number       the main part of a batch (RocksDB batch)
//! main            sys             "intent-done/" dir  u64 BE: the last intent committed
//! ```

use super::{Engine, Family};
use crate::error::{Result, StorageError};
use crate::layout;
use parking_lot::Mutex;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, WriteBatch, WriteOptions};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The column family of a dedicated instance that holds its intents.
const INTENT_CF: &str = "intent";
/// How many 5 ms waits making an instance spends on a removed one of the same name still in use.
const REMOVAL_WAITS: u32 = 1_000;

/// One dedicated tenant's RocksDB instance.
pub(crate) struct Instance {
    // Declared before `remover`, so that it is closed before its directory is removed.
    db: DB,
    /// Its directory name, which names its done record.
    name: String,
    /// The last intent number used; held while a batch that writes to both instances commits.
    intents: Mutex<u64>,
    /// Set when a main write failed after this instance's part committed: writes are refused
    /// until the next open finishes that one.
    poisoned: AtomicBool,
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
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::error!(error = %e, "could not remove a dedicated tenant's directory");
            }
            self.removing.lock().remove(&self.name);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Set by a test to stop the next batch that writes to both instances after its first step,
    /// as a crash there would.
    pub(crate) static STOP_AFTER_INTENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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

    fn refuse_if_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StorageError::Engine(
                "a dedicated tenant's write did not finish; it finishes when the store is opened again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Commits a batch that writes to this instance only.
    pub(super) fn write(&self, own: WriteBatch, options: &WriteOptions) -> Result<()> {
        self.refuse_if_poisoned()?;
        Ok(self.db.write_opt(own, options)?)
    }

    /// Commits a batch that writes to this instance (`own`) and to the main one (`main_part`), in
    /// the three steps the module documentation draws.
    pub(super) fn commit_with_main(
        &self,
        main: &DB,
        mut own: WriteBatch,
        mut main_part: WriteBatch,
        options: &WriteOptions,
    ) -> Result<()> {
        let mut last = self.intents.lock();
        self.refuse_if_poisoned()?;
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
                 its writes are refused until the store is opened again"
            );
            return Err(e.into());
        }
        *last = number;
        // A failure here leaves an intent at or below the done record, which the next open deletes.
        if let Err(e) = self.db.delete_cf(&intents, number.to_be_bytes()) {
            tracing::warn!(error = %e, "could not delete a committed intent; the next open will");
        }
        Ok(())
    }

    fn intent_family(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db.cf_handle(INTENT_CF).ok_or(StorageError::Codec("missing intent column family"))
    }

    /// Commits, in the main instance, the intents a crash left above the done record, deletes
    /// every intent, and returns the last intent number used.
    fn finish_intents(&self, main: &DB, fsync: &WriteOptions) -> Result<u64> {
        let sys =
            main.cf_handle(layout::SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
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
                main.write_opt(WriteBatch::from_data(&main_part), fsync)?;
                tracing::warn!("finished a dedicated tenant's write that a crash interrupted");
            }
            last = last.max(number);
            self.db.delete_cf(&intents, &key)?;
        }
        Ok(last)
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
            poisoned: AtomicBool::new(false),
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

    /// Opens every dedicated instance under the root (at open).
    pub(super) fn open_dedicated_instances(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.dedicated_root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if layout::tenant_cf_uid(&name).is_none() || !entry.file_type()?.is_dir() {
                continue;
            }
            let instance = self.open_instance(&name)?;
            self.dedicated.lock().insert(name, instance);
        }
        Ok(())
    }

    /// The dedicated instance `name`, if it is open.
    pub(crate) fn dedicated(&self, name: &str) -> Option<Family<'_>> {
        self.dedicated.lock().get(name).map(|instance| Family::Dedicated(Arc::clone(instance)))
    }

    /// The names of the open dedicated instances.
    pub(crate) fn dedicated_names(&self) -> Vec<String> {
        self.dedicated.lock().keys().cloned().collect()
    }

    /// Makes (or opens) the dedicated instance `name`. An instance of that name that was removed
    /// and is still in use (by a call that read it just before) is waited for, about five seconds
    /// at most, then the call is refused.
    pub(crate) fn create_dedicated(&self, name: &str) -> Result<()> {
        for _ in 0..REMOVAL_WAITS {
            {
                let mut open = self.dedicated.lock();
                if open.contains_key(name) {
                    return Ok(());
                }
                if !self.removing.lock().contains(name) {
                    std::fs::create_dir_all(&self.dedicated_root)?;
                    let instance = self.open_instance(name)?;
                    open.insert(name.to_owned(), instance);
                    return Ok(());
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Err(StorageError::Engine("a removed dedicated instance of that name is still in use".into()))
    }

    /// Removes the dedicated instance `name`: closed and its directory removed as soon as nothing
    /// uses it (at once if nothing does). A directory that is not open is removed at once.
    pub(crate) fn remove_dedicated(&self, name: &str) -> Result<()> {
        let mut open = self.dedicated.lock();
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
                let path = self.dedicated_path(name);
                if path.exists() && !self.removing.lock().contains(name) {
                    std::fs::remove_dir_all(path)?;
                }
            }
        }
        Ok(())
    }

    /// Flushes every dedicated instance's memtable and write-ahead log.
    pub(crate) fn flush_dedicated(&self) -> Result<()> {
        let open: Vec<Arc<Instance>> = self.dedicated.lock().values().cloned().collect();
        for instance in open {
            instance.db.flush_wal(true)?;
            instance.db.flush()?;
        }
        Ok(())
    }
}
