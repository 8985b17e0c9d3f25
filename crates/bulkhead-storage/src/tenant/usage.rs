//! A tenant's usage counters, which its storage quotas are checked against: its points and stored
//! bytes (the `U` record) and each collection's stored bytes (`B`; its points are its count, `N`).
//! They are read under the tenant's write lock and written in the batch of the write that changes
//! them, so a crash never leaves them apart from the records. A tenant written before they existed
//! has none: its first write counts its records ([`TenantHandle::recount_usage`]) and stores the
//! counters in its own batch. What a point counts as stored bytes: [`layout::stored_bytes`].

use super::{TenantHandle, WriteState};
use crate::engine::{Batch, Keys};
use crate::error::{Result, StorageError};
use crate::layout::{self, Kind, TenantKeys, UsageRecord};
use crate::quota::{StorageQuotas, TenantUsage};
use std::collections::BTreeMap;

/// The usage a write starts from, read under the tenant's write lock.
pub(crate) struct Usage {
    /// The tenant's points and stored bytes before the write.
    pub(crate) total: UsageRecord,
    /// Every collection's points and bytes, when the tenant had no stored counters and its records
    /// were counted: the write's batch stores them all. `None` when the counters were stored.
    recounted: Option<BTreeMap<u32, UsageRecord>>,
}

impl Usage {
    /// Adds to `batch` the tenant's totals after the write and collection `coll`'s bytes after it
    /// (`None`: the collection is dropped, its counter deleted), and, after a recount, every other
    /// collection's bytes. Returns the totals, which the caller keeps in its `WriteState` once the
    /// batch has committed (never before: memory must not get ahead of disk).
    pub(crate) fn stage(
        self,
        handle: &TenantHandle<'_>,
        batch: &mut Batch,
        total: UsageRecord,
        coll: u32,
        coll_bytes: Option<u64>,
    ) -> Result<UsageRecord> {
        let keys = &handle.state.keys;
        let cf = handle.cf()?;
        batch.put(&cf, keys.singleton(Kind::Usage), total.encode());
        for (other, usage) in self.recounted.iter().flatten().filter(|(c, _)| **c != coll) {
            batch.put(&cf, keys.collection_bytes(*other), usage.bytes.to_be_bytes());
        }
        match coll_bytes {
            Some(bytes) => batch.put(&cf, keys.collection_bytes(coll), bytes.to_be_bytes()),
            None => batch.delete(&cf, keys.collection_bytes(coll)),
        }
        Ok(total)
    }
}

impl TenantHandle<'_> {
    /// The storage quotas in force for this tenant: its policy's, else the store's defaults.
    pub fn quotas(&self) -> StorageQuotas {
        self.store.default_quotas.with_policy(&self.state.policy.read().policy.quotas)
    }

    /// What the tenant stores, by its counters (counted from its records if it has none yet; that
    /// count is stored by its next write). Waits for a write in progress.
    pub fn usage(&self) -> Result<TenantUsage> {
        let write = self.state.write.lock();
        let total = self.usage_locked(&write)?.total;
        Ok(TenantUsage {
            points: total.points,
            stored_bytes: total.bytes,
            collections: self.collections_stored()?,
        })
    }

    /// What the tenant stores, counted from its records rather than read from its counters: a check
    /// of the counters ([`TenantHandle::usage`] must agree). Reads every point record's length
    /// (opens none) while it holds the tenant's write lock, so writes wait for it.
    pub fn recount_usage(&self) -> Result<TenantUsage> {
        let _write = self.state.write.lock();
        let total = sum(&self.recount_locked()?);
        Ok(TenantUsage {
            points: total.points,
            stored_bytes: total.bytes,
            collections: self.collections_stored()?,
        })
    }

    /// The usage a write starts from: in memory once known, else the stored `U` record, else (a
    /// tenant written before the counters) counted from the records.
    pub(crate) fn usage_locked(&self, write: &WriteState) -> Result<Usage> {
        if let Some(total) = write.usage {
            return Ok(Usage { total, recounted: None });
        }
        if let Some(stored) = self.store.db.get(&self.cf()?, self.state.keys.singleton(Kind::Usage))? {
            return Ok(Usage { total: UsageRecord::decode(&stored)?, recounted: None });
        }
        let recounted = self.recount_locked()?;
        Ok(Usage { total: sum(&recounted), recounted: Some(recounted) })
    }

    /// Collection `coll`'s points and stored bytes before the write (its points from its count,
    /// `N`, unless they were just recounted).
    pub(crate) fn collection_usage_locked(&self, usage: &Usage, coll: u32) -> Result<UsageRecord> {
        if let Some(recounted) = &usage.recounted {
            return Ok(recounted.get(&coll).copied().unwrap_or_default());
        }
        let keys = &self.state.keys;
        let read = |key: Vec<u8>| -> Result<u64> {
            match self.store.db.get(&self.cf()?, key)? {
                Some(v) => layout::be_u64(&v),
                None => Ok(0),
            }
        };
        Ok(UsageRecord { points: read(keys.count(coll))?, bytes: read(keys.collection_bytes(coll))? })
    }

    /// Each collection's points (vector records) and stored bytes (payload and vector records),
    /// from the lengths of the stored records. Under the write lock.
    fn recount_locked(&self) -> Result<BTreeMap<u32, UsageRecord>> {
        let mut out: BTreeMap<u32, UsageRecord> = BTreeMap::new();
        for (kind, points) in [(Kind::Payload, 0), (Kind::Vector, 1)] {
            let (start, end) = self.state.keys.kind_range(kind);
            let cf = self.cf()?;
            for item in self.store.db.entries(&cf, Keys::Range(start, end)) {
                let (key, sealed) = item?;
                let coll = TenantKeys::collection_of_key(&key).ok_or(StorageError::Codec("point key"))?;
                let usage = out.entry(coll).or_default();
                usage.points += points;
                usage.bytes += layout::stored_bytes(&sealed)?;
            }
        }
        Ok(out)
    }

    /// The number of the tenant's collection records (counted by key; none is opened).
    pub(crate) fn collections_stored(&self) -> Result<u64> {
        let (start, end) = self.state.keys.kind_range(Kind::Collection);
        let mut count = 0;
        let cf = self.cf()?;
        for item in self.store.db.entries(&cf, Keys::Range(start, end)) {
            item?;
            count += 1;
        }
        Ok(count)
    }
}

/// The tenant's totals over its collections.
fn sum(collections: &BTreeMap<u32, UsageRecord>) -> UsageRecord {
    collections.values().fold(UsageRecord::default(), |total, c| UsageRecord {
        points: total.points + c.points,
        bytes: total.bytes + c.bytes,
    })
}
