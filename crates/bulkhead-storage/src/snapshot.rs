//! Index snapshots: a collection's serialised search index, sealed in chunks under the tenant's
//! index-snapshot key and stored next to its records (layout in `layout/tenant.rs`).
//!
//! A snapshot is derived data: the records are the source of truth, and a snapshot that is missing,
//! damaged or fails to authenticate is reported as an error for the caller to rebuild from them.
//! Saving runs on a background thread through an [`IndexSnapshotSink`], which outlives the request
//! that started the build but not the [`Store`]: it holds the database weakly.

use crate::engine::{Batch, Engine, Family};
use crate::error::{Result, StorageError};
use crate::layout::{self, INDEX_CHUNK_BYTES, IndexHeadRecord, IndexSegmentsRecord, Kind};
use crate::model::CollectionInfo;
use crate::store::{Durability, Store};
use crate::tenant::{TenantHandle, TenantState};
use bulkhead_crypto::{Purpose, random_bytes};
use parking_lot::RwLock;
use std::fmt;
use std::sync::{Arc, Weak};
use zeroize::Zeroizing;

/// Chunks sealed and written per write batch (and per hold of the tenant's write lock).
const CHUNKS_PER_BATCH: usize = 8;

/// Writes index snapshots of one collection from any thread, for as long as the store is open.
pub struct IndexSnapshotSink {
    db: Weak<Engine>,
    open: Arc<RwLock<bool>>,
    state: Arc<TenantState>,
    collection: CollectionInfo,
    durability: Durability,
}

impl fmt::Debug for IndexSnapshotSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexSnapshotSink")
            .field("tenant", &self.state.uid)
            .field("collection", &self.collection.number)
            .finish_non_exhaustive()
    }
}

/// What [`IndexSnapshotSink::save`] and [`IndexSnapshotSink::set_segments`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSaved {
    /// The snapshot is stored and current.
    Saved,
    /// The store was closed or the collection dropped first; nothing was left behind.
    Skipped,
}

/// One segment's snapshot as stored: an opaque id and its size. Returned by
/// [`IndexSnapshotSink::save_segment`] and [`TenantHandle::load_index_snapshots`], and passed back
/// to [`IndexSnapshotSink::set_segments`] to say which segments are current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedSegment {
    pub(crate) id: u64,
    pub(crate) chunks: u32,
    pub(crate) bytes: u64,
}

impl SavedSegment {
    fn record(self) -> IndexHeadRecord {
        IndexHeadRecord { segment: self.id, chunks: self.chunks, bytes: self.bytes }
    }
}

impl IndexSnapshotSink {
    /// Makes `bytes` the collection's only index snapshot: [`save_segment`](Self::save_segment),
    /// then [`set_segments`](Self::set_segments) with that one segment.
    pub fn save(&self, bytes: &[u8]) -> Result<SnapshotSaved> {
        match self.save_segment(bytes)? {
            Some(saved) => self.set_segments(&[saved]),
            None => Ok(SnapshotSaved::Skipped),
        }
    }

    /// Stores `bytes` as the snapshot of one segment under a fresh id, without making it current:
    /// it is read back only once [`set_segments`](Self::set_segments) lists it, and deleted by the
    /// next `set_segments` that does not. `None` if the store was closed or the collection dropped
    /// first (what was written is deleted).
    ///
    /// The chunks go a few at a time, each batch under the tenant's write lock (which keeps the
    /// encryption-count reservation exact). A caller that saves segments from several threads
    /// must not run `set_segments` while a `save_segment` it will list is still writing.
    pub fn save_segment(&self, bytes: &[u8]) -> Result<Option<SavedSegment>> {
        let open = self.open.read();
        let Some(db) = self.db.upgrade().filter(|_| *open) else { return Ok(None) };
        let number = self.collection.number;
        let keys = &self.state.keys;
        // Below u64::MAX, so that `segment + 1` bounds the range of the segments after it.
        let segment = u64::from_be_bytes(random_bytes()) >> 1;
        let chunks: Vec<&[u8]> = bytes.chunks(INDEX_CHUNK_BYTES).collect();
        let chunk_count = u32::try_from(chunks.len())
            .map_err(|_| StorageError::InvalidArgument { field: "index", reason: "too large".into() })?;
        let mut written = 0;
        while written < chunks.len() {
            let batch_chunks = &chunks[written..chunks.len().min(written + CHUNKS_PER_BATCH)];
            let mut write = self.state.write.lock();
            // Under the write lock: a tier move that switches between two batches has copied the
            // earlier ones, and the later ones go where the tenant is now.
            let cf = self.state.family(&db)?;
            let mut batch = Batch::default();
            if !self.collection_current(&db, &cf)? {
                // A dropped (or dropped and recreated) collection gets no snapshot: delete what
                // this save wrote so far, which `drop_collection` may have missed.
                batch.delete_range(
                    &cf,
                    keys.index_chunk(number, segment, 0),
                    keys.index_chunk(number, segment + 1, 0),
                );
                db.write(batch, self.durability)?;
                return Ok(None);
            }
            let reserved = self.state.reserve(&db, &write, batch_chunks.len() as u64, &mut batch)?;
            for (i, chunk) in batch_chunks.iter().enumerate() {
                let key = keys.index_chunk(number, segment, (written + i) as u32);
                batch.put(&cf, &key, self.state.seal(Purpose::IndexSnapshots, &key, chunk)?);
            }
            db.write(batch, self.durability)?;
            write.reserved_encryptions = reserved;
            written += batch_chunks.len();
        }
        Ok(Some(SavedSegment { id: segment, chunks: chunk_count, bytes: bytes.len() as u64 }))
    }

    /// Makes `segments` the collection's current snapshot (the head lists them, in this order) and
    /// deletes every other segment's chunks, in one batch: a crash leaves the old list or the new
    /// one current, never a mix. An empty list deletes the head and every chunk.
    pub fn set_segments(&self, segments: &[SavedSegment]) -> Result<SnapshotSaved> {
        let open = self.open.read();
        let Some(db) = self.db.upgrade().filter(|_| *open) else { return Ok(SnapshotSaved::Skipped) };
        let number = self.collection.number;
        let keys = &self.state.keys;
        let mut write = self.state.write.lock();
        let cf = self.state.family(&db)?;
        if !self.collection_current(&db, &cf)? {
            return Ok(SnapshotSaved::Skipped);
        }
        let mut batch = Batch::default();
        let head_key = keys.index_head(number);
        let mut reserved = None;
        if segments.is_empty() {
            batch.delete(&cf, &head_key);
        } else {
            reserved = Some(self.state.reserve(&db, &write, 1, &mut batch)?);
            let head = IndexSegmentsRecord::new(segments.iter().map(|s| s.record()).collect());
            batch.put(
                &cf,
                &head_key,
                self.state.seal(Purpose::IndexSnapshots, &head_key, &layout::encode(&head))?,
            );
        }
        // Delete the gaps between the listed ids.
        let mut ids: Vec<u64> = segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut from = keys.index_chunk(number, 0, 0);
        for id in ids {
            batch.delete_range(&cf, from, keys.index_chunk(number, id, 0));
            from = keys.index_chunk(number, id + 1, 0);
        }
        batch.delete_range(&cf, from, keys.point_range(Kind::IndexChunk, number).1);
        db.write(batch, self.durability)?;
        if let Some(reserved) = reserved {
            write.reserved_encryptions = reserved;
        }
        Ok(SnapshotSaved::Saved)
    }

    /// Whether the collection this sink was made for still exists (not dropped, nor dropped and
    /// recreated under the same name). Called under the tenant's write lock.
    fn collection_current(&self, db: &Engine, cf: &Family<'_>) -> Result<bool> {
        let current = self.state.collection(db, cf, &self.collection.name)?;
        Ok(current.is_some_and(|info| info.number == self.collection.number))
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
            durability: store.durability,
        })
    }

    /// Reads and opens the collection's current index snapshot: each listed segment's bytes (or
    /// the error that segment gave), in the head's order; empty if there is none.
    ///
    /// # Errors
    ///
    /// For the head itself: [`StorageError::Integrity`] if it fails to authenticate (damaged,
    /// moved or sealed under another key), [`StorageError::Codec`] if it does not decode. Per
    /// segment, the same errors for a chunk, and `Codec` for a missing chunk or sizes that
    /// disagree. Either way the caller rebuilds what failed from the records.
    #[expect(clippy::type_complexity, reason = "one result per segment, beside the head's")]
    pub fn load_index_snapshots(
        &self,
        collection: &CollectionInfo,
    ) -> Result<Vec<(SavedSegment, Result<Zeroizing<Vec<u8>>>)>> {
        self.check_owner(collection)?;
        let db = &self.store.db;
        let cf = self.cf()?;
        let head_key = self.state.keys.index_head(collection.number);
        let Some(sealed) = db.get_pinned(&cf, &head_key)? else { return Ok(Vec::new()) };
        let plain = self.state.open(Purpose::IndexSnapshots, &head_key, &sealed)?;
        let segments = IndexSegmentsRecord::decode(&plain)?;
        Ok(segments
            .into_iter()
            .map(|head| {
                let saved = SavedSegment { id: head.segment, chunks: head.chunks, bytes: head.bytes };
                (saved, self.load_segment(collection, &head))
            })
            .collect())
    }

    /// Reads and opens one segment's chunks.
    fn load_segment(
        &self,
        collection: &CollectionInfo,
        head: &IndexHeadRecord,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let db = &self.store.db;
        let cf = self.cf()?;
        let keys = &self.state.keys;
        let max_bytes = u64::from(head.chunks) * INDEX_CHUNK_BYTES as u64;
        if head.bytes > max_bytes || head.bytes.saturating_add(INDEX_CHUNK_BYTES as u64) <= max_bytes {
            return Err(StorageError::Codec("index head"));
        }
        // Grows with the chunks actually present, so a damaged count cannot make it allocate.
        let mut out = Zeroizing::new(Vec::new());
        for chunk in 0..head.chunks {
            let key = keys.index_chunk(collection.number, head.segment, chunk);
            let sealed = db.get_pinned(&cf, &key)?.ok_or(StorageError::Codec("index chunk missing"))?;
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
        Ok(out)
    }
}
