//! A tenant's storage quotas: how many points, stored bytes and collections it may hold. Each is the
//! tenant policy's value ([`TenantQuotas`]) if it sets one, else the store's default
//! ([`StoreOptions::default_quotas`](crate::StoreOptions)). The counters they are checked against
//! are kept in `tenant/usage.rs`; the checks run in the writes, under the tenant's write lock, before
//! anything is sealed or written.

use crate::error::{Result, StorageError};
use crate::ids::limits;
use crate::policy::TenantQuotas;

/// The default of `max_vectors`: points a tenant may store over all its collections.
pub const DEFAULT_MAX_VECTORS: u64 = 100_000_000;

/// The default of `max_stored_bytes`: 1 TiB of stored bytes (see [`TenantUsage::stored_bytes`]).
pub const DEFAULT_MAX_STORED_BYTES: u64 = 1 << 40;

/// The default of `max_collections`: the global limit, [`limits::MAX_COLLECTIONS_PER_TENANT`].
pub const DEFAULT_MAX_COLLECTIONS: u32 = limits::MAX_COLLECTIONS_PER_TENANT as u32;

/// Storage quotas with every value set: the store's defaults, or those in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuotas {
    /// Most points stored over all the tenant's collections.
    pub max_vectors: u64,
    /// Most stored bytes over all the tenant's collections (see [`TenantUsage::stored_bytes`]).
    pub max_stored_bytes: u64,
    /// Most collections; at most [`limits::MAX_COLLECTIONS_PER_TENANT`].
    pub max_collections: u32,
}

impl Default for StorageQuotas {
    /// [`DEFAULT_MAX_VECTORS`], [`DEFAULT_MAX_STORED_BYTES`] and [`DEFAULT_MAX_COLLECTIONS`]:
    /// generous, but bounded, so that no tenant fills the disk by default.
    fn default() -> Self {
        StorageQuotas {
            max_vectors: DEFAULT_MAX_VECTORS,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            max_collections: DEFAULT_MAX_COLLECTIONS,
        }
    }
}

impl StorageQuotas {
    /// The quotas in force for a tenant whose policy sets `policy`: each value the policy sets, else
    /// this one (the store's default).
    pub fn with_policy(&self, policy: &TenantQuotas) -> StorageQuotas {
        StorageQuotas {
            max_vectors: policy.max_vectors.unwrap_or(self.max_vectors),
            max_stored_bytes: policy.max_stored_bytes.unwrap_or(self.max_stored_bytes),
            max_collections: policy.max_collections.unwrap_or(self.max_collections),
        }
    }

    /// Refuses defaults outside their range: `max_collections` above the global limit (0 is
    /// allowed for each: then a tenant writes only what its policy grants).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_collections as usize > limits::MAX_COLLECTIONS_PER_TENANT {
            return Err(StorageError::InvalidArgument {
                field: "default max_collections",
                reason: format!("is at most the global limit, {}", limits::MAX_COLLECTIONS_PER_TENANT),
            });
        }
        Ok(())
    }
}

/// What a tenant stores, as its quotas count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantUsage {
    /// Points over all the tenant's collections.
    pub points: u64,
    /// Stored bytes over all its collections: for each point, its vector (4 bytes a dimension) plus
    /// its encoded payload record (id, text, metadata, source URI, ACL, version). The bytes the
    /// tenant wrote, independent of the sealing and the keys around them: on disk each point takes
    /// 174 bytes more (two keys of 53 bytes, two sealing overheads of 34), before the storage
    /// engine's own overhead. Index snapshots, which are rebuilt from the points, are not counted.
    pub stored_bytes: u64,
    /// Collections.
    pub collections: u64,
}

/// Refuses a write that would take usage from `before` to `after`, past `limit`. A write that does
/// not increase usage (a replacement by something no larger, a delete) passes even over the limit,
/// so that a tenant over a lowered quota can always shrink.
pub(crate) fn check(quota: &'static str, before: u64, after: u64, limit: u64) -> Result<()> {
    if after > limit && after > before {
        return Err(StorageError::QuotaExceeded { quota, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
