//! The optional search-result cache. A key holds everything a result depends on: the tenant, the
//! collection and its data epoch (moved by every write, delete and ACL change), the tenant's key
//! generation, the principal's exact permissions, the filter, k, ef and the query vector's bits.
//! So two principals with different rights never share an entry, and no entry outlives a change to
//! the data it was computed from. Bounded by entry count; the oldest entry goes first.

use crate::SearchHit;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct ResultCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, Vec<SearchHit>>,
    order: VecDeque<Vec<u8>>,
}

/// Counters of the result cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Searches answered from the cache.
    pub hits: u64,
    /// Searches computed (and then cached).
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

impl ResultCache {
    pub(crate) fn new(capacity: usize) -> ResultCache {
        ResultCache {
            capacity,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<SearchHit>> {
        let found = self.inner.lock().map.get(key).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn put(&self, key: Vec<u8>, hits: Vec<SearchHit>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.map.insert(key.clone(), hits).is_none() {
            inner.order.push_back(key);
        }
        while inner.map.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.map.remove(&oldest);
        }
    }

    /// Drops every entry of a tenant (its keys start with the tenant's uid).
    pub(crate) fn forget_tenant(&self, uid: &[u8; 16]) {
        let mut inner = self.inner.lock();
        inner.map.retain(|key, _| !key.starts_with(uid));
        let Inner { map, order } = &mut *inner;
        order.retain(|key| map.contains_key(key));
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.inner.lock().map.len(),
        }
    }
}
