//! Bulkhead's storage: one RocksDB instance holding a sealed registry and keyring, and tenants' records,
//! sealed under each tenant's keys, in a column family of their own, in one shared by many small
//! tenants, or in a RocksDB instance of their own (the three tiers, [`Placement`]).
//!
//! The only way to a tenant's records is [`Store::tenant`], which demands a [`TenantScope`]; scopes are
//! minted only by [`Store::authenticate`] (an API key) and [`Store::trusted_host_scope`], both in
//! `auth.rs`. This is the only crate that names `rocksdb`, and `engine.rs` and `engine/dedicated.rs`
//! the only files in it that do. Byte layouts are all in `layout.rs` and the files below `layout/`.

mod archive;
mod audit;
mod auth;
mod clock;
mod engine;
mod error;
mod grant;
mod ids;
mod keycache;
mod keylock;
mod keyring;
mod layout;
mod model;
mod operation;
mod policy;
mod quota;
mod registry;
mod rotation;
mod scope;
mod snapshot;
mod store;
mod tenant;
mod tier;

pub use archive::{ArchiveProgress, ExportSummary, ImportSummary};
pub use audit::{
    AccessEvent, AuditCheck, AuditEvent, DirectoryCheck, MAX_AUDITED_DOCUMENTS, Subject, SubjectHash,
};
pub use auth::REFUSAL_EVENT_EVERY;
pub use clock::{Clock, ManualClock};
pub use engine::EngineMemory;
pub use error::{Result, StorageError};
pub use grant::{
    AccessGrantInfo, DEFAULT_GRANT_TTL, GrantState, MAX_GRANT_REASON_BYTES, MAX_GRANT_TTL, MIN_GRANT_TTL,
};
pub use ids::{CollectionName, DocId, TenantName, TenantUid, limits};
pub use layout::{Placement, STORAGE_FORMAT};
pub use model::{
    Acl, CollectionInfo, MetaValue, Metric, NewPoint, PointPayload, PointRef, StoredPoint, validate_vector,
};
pub use operation::Operation;
pub use policy::{MAX_POLICY_NOTE_BYTES, MAX_POLICY_PREFIXES, TenantPolicy, TenantQuotas, VersionedPolicy};
pub use quota::{
    DEFAULT_MAX_COLLECTIONS, DEFAULT_MAX_STORED_BYTES, DEFAULT_MAX_VECTORS, StorageQuotas, TenantUsage,
};
pub use registry::{ApiKeyInfo, FIRST_KEY_TTL, IssuedApiKey, MAX_API_KEYS_PER_TENANT, TenantInfo};
pub use rotation::RotationProgress;
pub use scope::{KeyBinding, Role, TenantScope};
pub use snapshot::{IndexSnapshotSink, SavedSegment, SnapshotSaved};
pub use store::{DEFAULT_MAX_LOADED_TENANTS, Durability, Store, StoreOptions};
pub use tenant::TenantHandle;
pub use tier::MoveProgress;

#[cfg(test)]
mod tests;
