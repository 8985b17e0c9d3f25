//! Bulkhead's storage: one RocksDB instance holding a sealed registry and keyring, and one column family
//! per tenant whose records are sealed under that tenant's keys.
//!
//! The only way to a tenant's records is [`Store::tenant`], which demands a [`TenantScope`]; scopes are
//! minted only by [`Store::authenticate`] (an API key) and [`Store::trusted_host_scope`]. This is the
//! only crate that names `rocksdb`. Byte layouts are all in `layout.rs`.

mod audit;
mod error;
mod ids;
mod layout;
mod model;
mod operation;
mod policy;
mod rotation;
mod scope;
mod snapshot;
mod store;
mod tenant;

pub use audit::{
    AccessEvent, AuditCheck, AuditEvent, DirectoryCheck, MAX_AUDITED_DOCUMENTS, Subject, SubjectHash,
};
pub use error::{Result, StorageError};
pub use ids::{CollectionName, DocId, TenantName, TenantUid, limits};
pub use layout::Placement;
pub use model::{
    Acl, CollectionInfo, MetaValue, Metric, NewPoint, PointPayload, PointRef, StoredPoint, validate_vector,
};
pub use operation::Operation;
pub use policy::{MAX_POLICY_NOTE_BYTES, MAX_POLICY_PREFIXES, TenantPolicy, VersionedPolicy};
pub use rotation::RotationProgress;
pub use scope::{KeyBinding, Role, TenantScope};
pub use snapshot::{IndexSnapshotSink, SavedSegment, SnapshotSaved};
pub use store::{ApiKeyInfo, Durability, IssuedApiKey, REFUSAL_EVENT_EVERY, Store, StoreOptions, TenantInfo};
pub use tenant::TenantHandle;

#[cfg(test)]
mod tests;
