//! Index snapshots: a collection's serialised search index, sealed in chunks under the tenant's
//! index-snapshot key and stored next to its records (layout in `layout.rs`).
//!
//! A snapshot is derived data: the records are the source of truth, and a snapshot that is missing,
//! damaged or fails to authenticate is reported as an error for the caller to rebuild from them.
//! Saving runs on a background thread through an [`IndexSnapshotSink`], which outlives the request
//! that started the build but not the [`Store`]: it holds the database weakly.

use crate::error::{Result, StorageError};
use crate::layout::{self, INDEX_CHUNK_BYTES, IndexHeadRecord, Kind};
use crate::model::CollectionInfo;
use crate::store::{Durability, Store};
use crate::tenant::{TenantHandle, TenantState};
use bulkhead_crypto::{Purpose, random_bytes};
use parking_lot::RwLock;
use rocksdb::{DB, WriteBatch, WriteOptions};
use std::fmt;
use std::sync::{Arc, Weak};
use zeroize::Zeroizing;

/// Chunks sealed and written per write batch (and per hold of the tenant's write lock).
const CHUNKS_PER_BATCH: usize = 8;

/// Writes index snapshots of one collection from any thread, for as long as the store is open.
pub struct IndexSnapshotSink {
    db: Weak<DB>,
    open: Arc<RwLock<bool>>,
    state: Arc<TenantState>,
    collection: CollectionInfo,
    sync: bool,
}

impl fmt::Debug for IndexSnapshotSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexSnapshotSink")
            .field("tenant", &self.state.uid)
            .field("collection", &self.collection.number)
            .finish_non_exhaustive()
    }
}

/// What [`IndexSnapshotSink::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSaved {
    /// The snapshot is stored and current.
    Saved,
    /// The store was closed or the collection dropped first; nothing was left behind.
    Skipped,
}

impl IndexSnapshotSink {
    /// Replaces the collection's index snapshot with `bytes`.
    ///
    /// The new chunks go under a fresh segment id, a few at a time, each batch under the tenant's
    /// write lock (which keeps the encryption-count reservation exact); the last batch switches the
    /// head to them and deletes every other segment's chunks, so a crash at any point leaves either
    /// the old snapshot or the new one current, plus at most some unreferenced chunks that the next
    /// save deletes.
    pub fn save(&self, bytes: &[u8]) -> Result<SnapshotSaved> {
        let open = self.open.read();
        let Some(db) = self.db.upgrade().filter(|_| *open) else { return Ok(SnapshotSaved::Skipped) };
        let cf = db.cf_handle(&self.state.cf_name).ok_or(StorageError::NotFound { what: "tenant" })?;
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        let number = self.collection.number;
        let keys = &self.state.keys;
        // Below u64::MAX, so that `segment + 1` bounds the range of the segments after it.
        let segment = u64::from_be_bytes(random_bytes()) >> 1;
        let chunks: Vec<&[u8]> = bytes.chunks(INDEX_CHUNK_BYTES).collect();
        let chunk_count = u32::try_from(chunks.len())
            .map_err(|_| StorageError::InvalidArgument { field: "index", reason: "too large".into() })?;
        let (older, newer) = (
            (keys.index_chunk(number, 0, 0), keys.index_chunk(number, segment, 0)),
            (keys.index_chunk(number, segment + 1, 0), keys.point_range(Kind::IndexChunk, number).1),
        );
        let mut written = 0;
        loop {
            let batch_chunks = &chunks[written..chunks.len().min(written + CHUNKS_PER_BATCH)];
            let last = written + batch_chunks.len() == chunks.len();
            let mut write = self.state.write.lock();
            // A dropped (or dropped and recreated) collection gets no snapshot: delete what this
            // save wrote so far, which `drop_collection` may have missed.
            let current = self.state.collection_record(&db, &cf, &self.collection.name)?;
            let mut batch = WriteBatch::default();
            if current.is_none_or(|record| record.number != number) {
                batch.delete_range_cf(&cf, older.1.clone(), newer.0.clone());
                db.write_opt(batch, &wo)?;
                return Ok(SnapshotSaved::Skipped);
            }
            let upcoming = batch_chunks.len() as u64 + u64::from(last);
            let reserved = self.state.reserve(&db, &write, upcoming, &mut batch)?;
            for (i, chunk) in batch_chunks.iter().enumerate() {
                let key = keys.index_chunk(number, segment, (written + i) as u32);
                batch.put_cf(&cf, &key, self.state.seal(Purpose::IndexSnapshots, &key, chunk));
            }
            if last {
                let head = IndexHeadRecord { segment, chunks: chunk_count, bytes: bytes.len() as u64 };
                let key = keys.index_head(number);
                batch.put_cf(
                    &cf,
                    &key,
                    self.state.seal(Purpose::IndexSnapshots, &key, &layout::encode(&head)),
                );
                batch.delete_range_cf(&cf, older.0.clone(), older.1.clone());
                batch.delete_range_cf(&cf, newer.0.clone(), newer.1.clone());
            }
            db.write_opt(batch, &wo)?;
            write.reserved_encryptions = reserved;
            written += batch_chunks.len();
            if last {
                return Ok(SnapshotSaved::Saved);
            }
        }
    }
}

impl TenantHandle<'_> {
    /// A sink that saves index snapshots of `collection` from a background thread.
    pub fn index_snapshot_sink(&self, collection: &CollectionInfo) -> Result<IndexSnapshotSink> {
        self.check_owner(collection)?;
        let store: &Store = self.store;
        Ok(IndexSnapshotSink {
            db: Arc::downgrade(&store.db),
            open: Arc::clone(&store.open),
            state: Arc::clone(&self.state),
            collection: collection.clone(),
            sync: store.durability == Durability::Fsync,
        })
    }

    /// Reads and opens the collection's current index snapshot; `None` if it has none.
    ///
    /// # Errors
    ///
    /// [`StorageError::Integrity`] if a chunk or the head fails to authenticate (damaged, moved or
    /// sealed under another key), [`StorageError::Codec`] if a chunk is missing or the sizes
    /// disagree. Either way the caller rebuilds the index from the records.
    pub fn load_index_snapshot(&self, collection: &CollectionInfo) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.check_owner(collection)?;
        let db = &self.store.db;
        let keys = &self.state.keys;
        let head_key = keys.index_head(collection.number);
        let Some(sealed) = db.get_pinned_cf(&self.cf, &head_key)? else { return Ok(None) };
        let head: IndexHeadRecord =
            layout::decode(&self.state.open(Purpose::IndexSnapshots, &head_key, &sealed)?, "index head")?;
        let max_bytes = u64::from(head.chunks) * INDEX_CHUNK_BYTES as u64;
        if head.bytes > max_bytes || head.bytes.saturating_add(INDEX_CHUNK_BYTES as u64) <= max_bytes {
            return Err(StorageError::Codec("index head"));
        }
        // Grows with the chunks actually present, so a damaged count cannot make it allocate.
        let mut out = Zeroizing::new(Vec::new());
        for chunk in 0..head.chunks {
            let key = keys.index_chunk(collection.number, head.segment, chunk);
            let sealed =
                db.get_pinned_cf(&self.cf, &key)?.ok_or(StorageError::Codec("index chunk missing"))?;
            let plain = self.state.open(Purpose::IndexSnapshots, &key, &sealed)?;
            let full = plain.len() == INDEX_CHUNK_BYTES;
            if chunk + 1 < head.chunks && !full {
                return Err(StorageError::Codec("index chunk"));
            }
            out.extend_from_slice(&plain);
        }
        if out.len() as u64 != head.bytes {
            return Err(StorageError::Codec("index size"));
        }
        Ok(Some(out))
    }
}
