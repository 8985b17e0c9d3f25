//! The storage engine: RocksDB behind thin wrappers. This is the only file of the crate that names
//! `rocksdb`; the rest opens, reads and writes through the types here.
//!
//! The wrappers add no logic of their own and no copies: a pinned read hands back RocksDB's own
//! buffer, an iteration yields the boxed key and value RocksDB's iterator makes, and the two write
//! modes' options are made once, when the database opens.
//!
//! Besides the main instance (the system column family, the shared one and the partitioned tenants'
//! own), each dedicated tenant has a RocksDB instance of its own, in its own directory
//! (`engine/dedicated.rs`, which also commits a batch that writes to both).

use crate::error::{Result, StorageError};
use crate::store::Durability;
mod dedicated;

pub(crate) use dedicated::Instance;
#[cfg(test)]
pub(crate) use dedicated::STOP_AFTER_INTENT;

use parking_lot::{Mutex, RwLock};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, BoundColumnFamily, Cache, ColumnFamilyDescriptor,
    CompactOptions, DB, DBIteratorWithThreadMode, DBPinnableSlice, Direction, FlushOptions, IteratorMode,
    Options, PrefixRange, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteBufferManager, WriteOptions,
};
use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        StorageError::Engine(e.into_string())
    }
}

/// One key and its value as an iteration yields them.
pub(crate) type Entry = (Box<[u8]>, Box<[u8]>);

/// The memory RocksDB may hold, whatever the number of column families (tenants): one block cache
/// that every column family reads through, and the memtables of all column families together,
/// charged to that same cache (a write buffer manager), so the cache's capacity bounds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineMemory {
    /// The block cache's capacity, memtables included.
    pub cache_bytes: usize,
    /// The memtables of all column families together; past it the largest is flushed.
    pub write_buffer_bytes: usize,
}

impl Default for EngineMemory {
    /// 128 MiB in all, up to 64 MiB of it memtables.
    fn default() -> Self {
        EngineMemory { cache_bytes: 128 << 20, write_buffer_bytes: 64 << 20 }
    }
}

/// The open database, with the options of its two kinds of write made once.
pub(crate) struct Engine {
    db: DB,
    /// Written to the write-ahead log, which is fsynced before the write returns.
    fsync: WriteOptions,
    /// Written to the write-ahead log, without an fsync.
    log: WriteOptions,
    /// The options every column family is opened and created with (the shared cache).
    family_options: Options,
    /// The options a dedicated instance is opened with: the same cache and write buffer manager.
    instance_options: Options,
    cache: Cache,
    /// Where dedicated instances are made, each in the directory named after its tenant: this data
    /// directory's folder under the dedicated root.
    dedicated_root: PathBuf,
    /// The open dedicated instances, by directory name.
    dedicated: RwLock<HashMap<String, Arc<Instance>>>,
    /// Held while a dedicated instance is made, one at a time.
    creating: Mutex<()>,
    /// Set when a batch committed in a dedicated instance and not in the main one: every write is
    /// refused until the next open finishes it (`engine/dedicated.rs`).
    poisoned: Arc<AtomicBool>,
    /// Dedicated instances removed while something still used them: their directories go when the
    /// last user lets go, and until then no instance of the same name is made.
    removing: Arc<Mutex<HashSet<String>>>,
}

/// Where a tenant's records are in an open engine: a column family of the main instance, or a
/// dedicated tenant's own instance.
pub(crate) enum Family<'e> {
    /// A column family of the main instance.
    Main(Arc<BoundColumnFamily<'e>>),
    /// A dedicated instance (its records are in its default column family).
    Dedicated(Arc<Instance>),
}

/// A consistent view of one instance (the main one, or a dedicated one) at the moment it was taken.
pub(crate) struct Snapshot<'e> {
    view: SnapshotWithThreadMode<'e, DB>,
    /// The dedicated instance it is a view of (its address), or `None` for the main one.
    of: Option<usize>,
}

/// A value read in place: RocksDB's buffer, not a copy.
pub(crate) struct Pinned<'e>(DBPinnableSlice<'e>);

impl Deref for Pinned<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Writes that commit together or not at all: to the main instance, and to at most one dedicated
/// instance (a batch that writes to both commits as `engine/dedicated.rs` draws).
#[derive(Default)]
pub(crate) struct Batch {
    main: WriteBatch,
    dedicated: Option<(Arc<Instance>, WriteBatch)>,
    /// Set when the batch was given writes for a second dedicated instance: no write commits it.
    spans_two: bool,
}

impl Batch {
    /// Sets `key` to `value` in `family`.
    pub(crate) fn put(&mut self, family: &Family<'_>, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        match family {
            Family::Main(cf) => self.main.put_cf(cf, key, value),
            Family::Dedicated(instance) => {
                if let Some(batch) = self.own(instance) {
                    batch.put(key, value);
                }
            }
        }
    }

    /// Deletes `key` from `family`.
    pub(crate) fn delete(&mut self, family: &Family<'_>, key: impl AsRef<[u8]>) {
        match family {
            Family::Main(cf) => self.main.delete_cf(cf, key),
            Family::Dedicated(instance) => {
                if let Some(batch) = self.own(instance) {
                    batch.delete(key);
                }
            }
        }
    }

    /// Deletes the keys of `family` from `from` (included) to `to` (excluded).
    pub(crate) fn delete_range(&mut self, family: &Family<'_>, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        match family {
            Family::Main(cf) => self.main.delete_range_cf(cf, from.as_ref(), to.as_ref()),
            Family::Dedicated(instance) => {
                if let Some(batch) = self.own(instance) {
                    batch.delete_range(from.as_ref(), to.as_ref());
                }
            }
        }
    }

    /// The part of the batch for `instance`; `None` (and the batch marked) if it has writes for
    /// another dedicated instance already.
    fn own(&mut self, instance: &Arc<Instance>) -> Option<&mut WriteBatch> {
        if self.dedicated.as_ref().is_some_and(|(other, _)| !Arc::ptr_eq(other, instance)) {
            self.spans_two = true;
            return None;
        }
        let (_, batch) = self.dedicated.get_or_insert_with(|| (Arc::clone(instance), WriteBatch::default()));
        Some(batch)
    }
}

/// Which keys of a column family an iteration visits, in key order.
pub(crate) enum Keys<'k> {
    /// Every key.
    All,
    /// Every key that starts with this prefix.
    Prefix(&'k [u8]),
    /// The keys from the first (included) to the second (excluded).
    Range(Vec<u8>, Vec<u8>),
}

impl Keys<'_> {
    fn read_options(self) -> ReadOptions {
        let mut options = ReadOptions::default();
        match self {
            Keys::All => {}
            Keys::Prefix(prefix) => options.set_iterate_range(PrefixRange(prefix)),
            Keys::Range(from, to) => options.set_iterate_range(from..to),
        }
        options
    }
}

/// The entries of an iteration, in key order.
pub(crate) struct Entries<'e>(DBIteratorWithThreadMode<'e, DB>);

impl Iterator for Entries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        self.0.next().map(|entry| entry.map_err(StorageError::from))
    }
}

impl Engine {
    /// Opens (or creates) the database in `path` with every column family it has, and the
    /// `required` ones created if missing, and every dedicated instance under the dedicated root
    /// (`dedicated_root`, else the one last given, else `dedicated/` in `path`), finishing, in the
    /// main instance, any write the process did not survive between the two. Returns the engine
    /// and the names of its column families.
    pub(crate) fn open(
        path: &Path,
        required: &[&str],
        memory: EngineMemory,
        dedicated_root: Option<&Path>,
    ) -> Result<(Engine, Vec<String>)> {
        let cache = Cache::new_lru_cache(memory.cache_bytes);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_keep_log_file_num(4);
        options.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager_with_cache(
            memory.write_buffer_bytes,
            false,
            cache.clone(),
        ));
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Index and filter blocks live in the cache too, so an idle column family's table files
        // hold no memory outside it.
        table.set_cache_index_and_filter_blocks(true);
        let mut family_options = Options::default();
        family_options.set_block_based_table_factory(&table);
        options.set_block_based_table_factory(&table);
        let mut names = if path.join("CURRENT").exists() { DB::list_cf(&options, path)? } else { Vec::new() };
        for name in required {
            if !names.iter().any(|n| n == name) {
                names.push((*name).to_owned());
            }
        }
        let descriptors = names.iter().map(|n| ColumnFamilyDescriptor::new(n, family_options.clone()));
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        let mut fsync = WriteOptions::default();
        fsync.set_sync(true);
        let mut log = WriteOptions::default();
        log.set_sync(false);
        let root = dedicated::root(&db, dedicated_root, &path.join("dedicated"), &fsync)?;
        let dedicated_root = dedicated::folder(&db, &root, &fsync)?;
        let engine = Engine {
            db,
            fsync,
            log,
            family_options,
            instance_options: options,
            cache,
            dedicated_root,
            dedicated: RwLock::new(HashMap::new()),
            creating: Mutex::new(()),
            poisoned: Arc::default(),
            removing: Arc::default(),
        };
        engine.open_dedicated_instances()?;
        Ok((engine, names))
    }

    /// The bytes the shared block cache holds now (memtable reservations included).
    pub(crate) fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// The column families of the database in `path`, as its files list them.
    pub(crate) fn list_families(path: &Path) -> Result<Vec<String>> {
        Ok(DB::list_cf(&Options::default(), path)?)
    }

    /// The column family `name` of the main instance, if it exists.
    pub(crate) fn family(&self, name: &str) -> Option<Family<'_>> {
        self.db.cf_handle(name).map(Family::Main)
    }

    /// Creates the column family `name` in the main instance.
    pub(crate) fn create_family(&self, name: &str) -> Result<()> {
        Ok(self.db.create_cf(name, &self.family_options)?)
    }

    /// Drops the column family `name` of the main instance (its files are deleted once nothing
    /// uses them).
    pub(crate) fn drop_family(&self, name: &str) -> Result<()> {
        Ok(self.db.drop_cf(name)?)
    }

    /// The value of `key` in `family`, copied out.
    pub(crate) fn get(&self, family: &Family<'_>, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        Ok(match family {
            Family::Main(cf) => self.db.get_cf(cf, key)?,
            Family::Dedicated(instance) => instance.db().get(key)?,
        })
    }

    /// The value of `key` in `family`, read in place.
    pub(crate) fn get_pinned<'a>(
        &'a self,
        family: &'a Family<'_>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Pinned<'a>>> {
        Ok(match family {
            Family::Main(cf) => self.db.get_pinned_cf(cf, key)?,
            Family::Dedicated(instance) => instance.db().get_pinned(key)?,
        }
        .map(Pinned))
    }

    /// The entries of `family` within `keys`, from the first.
    pub(crate) fn entries<'a>(&'a self, family: &'a Family<'_>, keys: Keys<'_>) -> Entries<'a> {
        self.iterate(family, keys, IteratorMode::Start)
    }

    /// The entries of `family` within `keys`, from `from` (or the first key after it) on.
    pub(crate) fn entries_from<'a>(
        &'a self,
        family: &'a Family<'_>,
        keys: Keys<'_>,
        from: &[u8],
    ) -> Entries<'a> {
        self.iterate(family, keys, IteratorMode::From(from, Direction::Forward))
    }

    /// The last entry of `family` within `keys`.
    pub(crate) fn last_entry(&self, family: &Family<'_>, keys: Keys<'_>) -> Result<Option<Entry>> {
        Ok(self.iterate(family, keys, IteratorMode::End).0.next().transpose()?)
    }

    fn iterate<'a>(&'a self, family: &'a Family<'_>, keys: Keys<'_>, mode: IteratorMode<'_>) -> Entries<'a> {
        self.iterate_with(family, keys.read_options(), mode)
    }

    fn iterate_with<'a>(
        &'a self,
        family: &'a Family<'_>,
        options: ReadOptions,
        mode: IteratorMode<'_>,
    ) -> Entries<'a> {
        Entries(match family {
            Family::Main(cf) => self.db.iterator_cf_opt(cf, options, mode),
            Family::Dedicated(instance) => instance.db().iterator_opt(mode, options),
        })
    }

    /// As [`Engine::entries`], for a scan of a whole collection: the blocks it reads are not added
    /// to the block cache, so that loading a collection's vectors (tens or hundreds of megabytes,
    /// read once into the index's own memory) neither evicts what point reads keep there (a
    /// search's payloads, credentials) nor holds the cache full of blocks nobody reads again.
    pub(crate) fn scan<'a>(&'a self, family: &'a Family<'_>, keys: Keys<'_>) -> Entries<'a> {
        let mut options = keys.read_options();
        options.fill_cache(false);
        self.iterate_with(family, options, IteratorMode::Start)
    }

    /// A consistent view of the main instance as it is now.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot { view: self.db.snapshot(), of: None }
    }

    /// A consistent view, as it is now, of the instance that holds `family`.
    pub(crate) fn snapshot_of<'a>(&'a self, family: &'a Family<'_>) -> Snapshot<'a> {
        match family {
            Family::Main(_) => self.snapshot(),
            Family::Dedicated(instance) => {
                Snapshot { view: instance.db().snapshot(), of: Some(instance.address()) }
            }
        }
    }

    /// Commits `batch` atomically, with the durability asked for. A batch that writes to the main
    /// instance and to a dedicated one commits as `engine/dedicated.rs` draws.
    pub(crate) fn write(&self, batch: Batch, durability: Durability) -> Result<()> {
        let options = match durability {
            Durability::Fsync => &self.fsync,
            Durability::Process => &self.log,
        };
        if batch.spans_two {
            return Err(StorageError::Engine("a batch wrote to two dedicated instances".into()));
        }
        dedicated::refuse_if_poisoned(&self.poisoned)?;
        match batch.dedicated {
            None => Ok(self.db.write_opt(batch.main, options)?),
            Some((instance, own)) if batch.main.is_empty() => instance.write(own, options),
            Some((instance, own)) => {
                let synced = durability == Durability::Fsync;
                instance.commit_with_main(&self.db, own, batch.main, options, synced)
            }
        }
    }

    /// Flushes the main instance's write-ahead log and fsyncs it.
    pub(crate) fn sync_log(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    /// Fsyncs the write-ahead log of the instance that holds `family`: before a write to the main
    /// instance that must not outlive what was written to a dedicated one (its own log).
    pub(crate) fn sync_log_of(&self, family: &Family<'_>) -> Result<()> {
        match family {
            Family::Main(_) => self.sync_log(),
            Family::Dedicated(instance) => Ok(instance.db().flush_wal(true)?),
        }
    }

    /// Flushes the memtable of `family` to a table file and waits for it.
    pub(crate) fn flush(&self, family: &Family<'_>) -> Result<()> {
        let mut options = FlushOptions::default();
        options.set_wait(true);
        match family {
            Family::Main(cf) => self.db.flush_cf_opt(cf, &options)?,
            Family::Dedicated(instance) => instance.db().flush_opt(&options)?,
        }
        Ok(())
    }

    /// Compacts the keys of `family` from `from` to `to` down to the last level, rewriting every
    /// table file that holds one of them, even at the last level already.
    pub(crate) fn compact_to_bottom(&self, family: &Family<'_>, from: &[u8], to: &[u8]) {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        options.set_exclusive_manual_compaction(true);
        match family {
            Family::Main(cf) => self.db.compact_range_cf_opt(cf, Some(from), Some(to), &options),
            Family::Dedicated(instance) => instance.db().compact_range_opt(Some(from), Some(to), &options),
        }
    }

    /// RocksDB's estimate of the number of keys in `family` (it costs no scan).
    pub(crate) fn estimated_keys(&self, family: &Family<'_>) -> Result<Option<u64>> {
        const PROPERTY: &str = "rocksdb.estimate-num-keys";
        Ok(match family {
            Family::Main(cf) => self.db.property_int_value_cf(cf, PROPERTY)?,
            Family::Dedicated(instance) => instance.db().property_int_value(PROPERTY)?,
        })
    }

    /// Sets `key` to `value` in `family` on its own, without an fsync (tests that play the attacker).
    #[cfg(test)]
    pub(crate) fn put(&self, family: &Family<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        match family {
            Family::Main(cf) => self.db.put_cf(cf, key, value)?,
            Family::Dedicated(instance) => instance.db().put(key, value)?,
        }
        Ok(())
    }

    /// Deletes `key` from `family` on its own, without an fsync (tests that play the attacker).
    #[cfg(test)]
    pub(crate) fn delete(&self, family: &Family<'_>, key: &[u8]) -> Result<()> {
        match family {
            Family::Main(cf) => self.db.delete_cf(cf, key)?,
            Family::Dedicated(instance) => instance.db().delete(key)?,
        }
        Ok(())
    }
}

impl Snapshot<'_> {
    /// Refuses a family of another instance than the one this is a view of.
    fn check(&self, family: &Family<'_>) -> Result<()> {
        let of = match family {
            Family::Main(_) => None,
            Family::Dedicated(instance) => Some(instance.address()),
        };
        if of != self.of {
            return Err(StorageError::Engine("a snapshot read a family of another instance".into()));
        }
        Ok(())
    }

    /// The value of `key` in `family` as it was when the snapshot was taken.
    pub(crate) fn get(&self, family: &Family<'_>, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.check(family)?;
        Ok(match family {
            Family::Main(cf) => self.view.get_cf(cf, key)?,
            Family::Dedicated(_) => self.view.get(key)?,
        })
    }

    /// The entries of `family` within `keys` as they were when the snapshot was taken.
    pub(crate) fn entries(&self, family: &Family<'_>, keys: Keys<'_>) -> Result<Entries<'_>> {
        self.check(family)?;
        Ok(Entries(match family {
            Family::Main(cf) => self.view.iterator_cf_opt(cf, keys.read_options(), IteratorMode::Start),
            Family::Dedicated(_) => self.view.iterator_opt(IteratorMode::Start, keys.read_options()),
        }))
    }
}
