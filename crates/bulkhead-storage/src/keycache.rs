//! API keys that authenticated, kept in memory so that the next call with the same key is checked
//! without a registry read and a decryption (see [`Store::authenticate`](crate::Store)).
//!
//! An entry holds what the key's record says (its tenant, the keyed hash of its secret, its role,
//! binding and expiry), never the secret. It stands only while the record it copies would still
//! authenticate: every write that could make the key refuse (revocation, a lock, the tenant's
//! deletion, a key rotation) removes the entries it concerns after its batch commits, and expiry
//! is checked on every use against the store's clock. A check that missed the cache reads the
//! record and then inserts it; it inserts only if no removal happened since it began to read
//! (the cache's epoch), so a record read before a revocation committed never outlives it.

use crate::ids::TenantUid;
use crate::scope::{KeyBinding, Role};
use parking_lot::RwLock;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// Keys held at once; a full cache drops an arbitrary entry for a new one (the dropped key's next
/// call reads its record again). At most a few hundred bytes each (a user binding's names).
pub(crate) const MAX_CACHED_KEYS: usize = 65_536;

/// What an authenticated key's record says. No `Debug`: it holds the keyed hash of a secret.
#[derive(Clone)]
pub(crate) struct CachedKey {
    pub(crate) tenant: TenantUid,
    pub(crate) secret_tag: Zeroizing<[u8; 32]>,
    pub(crate) role: Role,
    pub(crate) binding: KeyBinding,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) grant: Option<[u8; 16]>,
}

impl CachedKey {
    /// Whether the key has expired at `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|t| t <= now_ms)
    }
}

/// The cache (see the module documentation).
#[derive(Default)]
pub(crate) struct KeyCache(RwLock<Entries>);

#[derive(Default)]
struct Entries {
    /// Counts removals; an insert that began under an older epoch is dropped.
    epoch: u64,
    keys: HashMap<[u8; 16], CachedKey>,
}

/// The epoch a cache miss read before it read the key's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u64);

impl KeyCache {
    /// The entry of a key id, if it is cached.
    pub(crate) fn get(&self, key_id: &[u8; 16]) -> Option<CachedKey> {
        self.0.read().keys.get(key_id).cloned()
    }

    /// The epoch to read before a key's record is read, for [`KeyCache::insert`].
    pub(crate) fn epoch(&self) -> Epoch {
        Epoch(self.0.read().epoch)
    }

    /// Caches a key whose record authenticated, unless an entry was removed since `read_at`
    /// (the record may be the one the removal superseded).
    pub(crate) fn insert(&self, read_at: Epoch, key_id: [u8; 16], key: CachedKey) {
        let mut entries = self.0.write();
        if entries.epoch != read_at.0 {
            return;
        }
        if entries.keys.len() >= MAX_CACHED_KEYS
            && !entries.keys.contains_key(&key_id)
            && let Some(victim) = entries.keys.keys().next().copied()
        {
            entries.keys.remove(&victim);
        }
        entries.keys.insert(key_id, key);
    }

    /// Removes one key (revoked, locked).
    pub(crate) fn remove(&self, key_id: &[u8; 16]) {
        let mut entries = self.0.write();
        entries.epoch += 1;
        entries.keys.remove(key_id);
    }

    /// Removes every key of a tenant (deleted, its keys rotated).
    pub(crate) fn remove_tenant(&self, tenant: TenantUid) {
        let mut entries = self.0.write();
        entries.epoch += 1;
        entries.keys.retain(|_, key| key.tenant != tenant);
    }

    /// Removes every key (the master key rotated).
    pub(crate) fn clear(&self) {
        let mut entries = self.0.write();
        entries.epoch += 1;
        entries.keys.clear();
    }

    /// How many keys are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.read().keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: u8) -> CachedKey {
        CachedKey {
            tenant: TenantUid::from_bytes([tenant; 16]),
            secret_tag: Zeroizing::new([7; 32]),
            role: Role::Reader,
            binding: KeyBinding::Service { on_behalf_of: false },
            expires_ms: Some(1_000),
            grant: None,
        }
    }

    #[test]
    fn an_insert_that_began_before_a_removal_is_dropped() {
        let cache = KeyCache::default();
        let before = cache.epoch();
        cache.remove(&[9; 16]);
        cache.insert(before, [1; 16], key(1));
        assert!(cache.get(&[1; 16]).is_none());
        cache.insert(cache.epoch(), [1; 16], key(1));
        assert!(cache.get(&[1; 16]).is_some());
    }

    #[test]
    fn removals_reach_the_key_its_tenant_or_all() {
        let cache = KeyCache::default();
        for (id, tenant) in [(1, 1), (2, 1), (3, 2)] {
            cache.insert(cache.epoch(), [id; 16], key(tenant));
        }
        cache.remove(&[1; 16]);
        assert!(cache.get(&[1; 16]).is_none() && cache.get(&[2; 16]).is_some());
        cache.remove_tenant(TenantUid::from_bytes([1; 16]));
        assert!(cache.get(&[2; 16]).is_none() && cache.get(&[3; 16]).is_some());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_stays_at_its_bound() {
        let cache = KeyCache::default();
        for i in 0..MAX_CACHED_KEYS as u32 + 10 {
            let mut id = [0; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            cache.insert(cache.epoch(), id, key(1));
        }
        assert_eq!(cache.len(), MAX_CACHED_KEYS);
    }

    #[test]
    fn expiry_is_read_against_the_time_given() {
        assert!(!key(1).expired(999));
        assert!(key(1).expired(1_000));
    }
}
