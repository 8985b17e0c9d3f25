//! The storage engine: RocksDB behind thin wrappers. This is the only file of the crate that names
//! `rocksdb`; the rest opens, reads and writes through the types here.
//!
//! The wrappers add no logic of their own and no copies: a pinned read hands back RocksDB's own
//! buffer, an iteration yields the boxed key and value RocksDB's iterator makes, and the two write
//! modes' options are made once, when the database opens.

use crate::error::{Result, StorageError};
use crate::store::Durability;
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, BoundColumnFamily, Cache, ColumnFamilyDescriptor,
    CompactOptions, DB, DBIteratorWithThreadMode, DBPinnableSlice, Direction, FlushOptions, IteratorMode,
    Options, PrefixRange, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteBufferManager, WriteOptions,
};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

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
    cache: Cache,
}

/// One column family of an open engine.
pub(crate) struct Family<'e>(Arc<BoundColumnFamily<'e>>);

/// A consistent view of the whole database at the moment it was taken.
pub(crate) struct Snapshot<'e>(SnapshotWithThreadMode<'e, DB>);

/// A value read in place: RocksDB's buffer, not a copy.
pub(crate) struct Pinned<'e>(DBPinnableSlice<'e>);

impl Deref for Pinned<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Writes that commit together or not at all.
#[derive(Default)]
pub(crate) struct Batch(WriteBatch);

impl Batch {
    /// Sets `key` to `value` in `family`.
    pub(crate) fn put(&mut self, family: &Family<'_>, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0.put_cf(&family.0, key, value);
    }

    /// Deletes `key` from `family`.
    pub(crate) fn delete(&mut self, family: &Family<'_>, key: impl AsRef<[u8]>) {
        self.0.delete_cf(&family.0, key);
    }

    /// Deletes the keys of `family` from `from` (included) to `to` (excluded).
    pub(crate) fn delete_range(&mut self, family: &Family<'_>, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        self.0.delete_range_cf(&family.0, from.as_ref(), to.as_ref());
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
    /// `required` ones created if missing. Returns the engine and the names of its column families.
    pub(crate) fn open(
        path: &Path,
        required: &[&str],
        memory: EngineMemory,
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
        Ok((Engine { db, fsync, log, family_options, cache }, names))
    }

    /// The bytes the shared block cache holds now (memtable reservations included).
    pub(crate) fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// The column families of the database in `path`, as its files list them.
    pub(crate) fn list_families(path: &Path) -> Result<Vec<String>> {
        Ok(DB::list_cf(&Options::default(), path)?)
    }

    /// The column family `name`, if it exists.
    pub(crate) fn family(&self, name: &str) -> Option<Family<'_>> {
        self.db.cf_handle(name).map(Family)
    }

    /// Creates the column family `name`.
    pub(crate) fn create_family(&self, name: &str) -> Result<()> {
        Ok(self.db.create_cf(name, &self.family_options)?)
    }

    /// Drops the column family `name` (its files are deleted once nothing uses them).
    pub(crate) fn drop_family(&self, name: &str) -> Result<()> {
        Ok(self.db.drop_cf(name)?)
    }

    /// The value of `key` in `family`, copied out.
    pub(crate) fn get(&self, family: &Family<'_>, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(&family.0, key)?)
    }

    /// The value of `key` in `family`, read in place.
    pub(crate) fn get_pinned(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Pinned<'_>>> {
        Ok(self.db.get_pinned_cf(&family.0, key)?.map(Pinned))
    }

    /// The entries of `family` within `keys`, from the first.
    pub(crate) fn entries(&self, family: &Family<'_>, keys: Keys<'_>) -> Entries<'_> {
        Entries(self.db.iterator_cf_opt(&family.0, keys.read_options(), IteratorMode::Start))
    }

    /// The entries of `family` within `keys`, from `from` (or the first key after it) on.
    pub(crate) fn entries_from(&self, family: &Family<'_>, keys: Keys<'_>, from: &[u8]) -> Entries<'_> {
        let mode = IteratorMode::From(from, Direction::Forward);
        Entries(self.db.iterator_cf_opt(&family.0, keys.read_options(), mode))
    }

    /// The last entry of `family` within `keys`.
    pub(crate) fn last_entry(&self, family: &Family<'_>, keys: Keys<'_>) -> Result<Option<Entry>> {
        Ok(self.db.iterator_cf_opt(&family.0, keys.read_options(), IteratorMode::End).next().transpose()?)
    }

    /// A consistent view of the database as it is now.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot(self.db.snapshot())
    }

    /// Commits `batch` atomically, with the durability asked for.
    pub(crate) fn write(&self, batch: Batch, durability: Durability) -> Result<()> {
        let options = match durability {
            Durability::Fsync => &self.fsync,
            Durability::Process => &self.log,
        };
        Ok(self.db.write_opt(batch.0, options)?)
    }

    /// Flushes the write-ahead log and fsyncs it.
    pub(crate) fn sync_log(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    /// Flushes the memtable of `family` to a table file and waits for it.
    pub(crate) fn flush(&self, family: &Family<'_>) -> Result<()> {
        let mut options = FlushOptions::default();
        options.set_wait(true);
        Ok(self.db.flush_cf_opt(&family.0, &options)?)
    }

    /// Compacts the keys of `family` from `from` to `to` down to the last level, rewriting every
    /// table file that holds one of them, even at the last level already.
    pub(crate) fn compact_to_bottom(&self, family: &Family<'_>, from: &[u8], to: &[u8]) {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        options.set_exclusive_manual_compaction(true);
        self.db.compact_range_cf_opt(&family.0, Some(from), Some(to), &options);
    }

    /// RocksDB's estimate of the number of keys in `family` (it costs no scan).
    pub(crate) fn estimated_keys(&self, family: &Family<'_>) -> Result<Option<u64>> {
        Ok(self.db.property_int_value_cf(&family.0, "rocksdb.estimate-num-keys")?)
    }

    /// Sets `key` to `value` in `family` on its own, without an fsync (tests that play the attacker).
    #[cfg(test)]
    pub(crate) fn put(&self, family: &Family<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_cf(&family.0, key, value)?)
    }

    /// Deletes `key` from `family` on its own, without an fsync (tests that play the attacker).
    #[cfg(test)]
    pub(crate) fn delete(&self, family: &Family<'_>, key: &[u8]) -> Result<()> {
        Ok(self.db.delete_cf(&family.0, key)?)
    }
}

impl Snapshot<'_> {
    /// The value of `key` in `family` as it was when the snapshot was taken.
    pub(crate) fn get(&self, family: &Family<'_>, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get_cf(&family.0, key)?)
    }

    /// The entries of `family` within `keys` as they were when the snapshot was taken.
    pub(crate) fn entries(&self, family: &Family<'_>, keys: Keys<'_>) -> Entries<'_> {
        Entries(self.0.iterator_cf_opt(&family.0, keys.read_options(), IteratorMode::Start))
    }
}
