//! Bulkhead's embedded API: open a database, get a scope, and reach one tenant's collections through it.
//!
//! ```no_run
//! use bulkhead_query::{Database, DocId, MasterKey, Metric, NewPoint, StoreOptions, TenantName};
//! # fn main() -> Result<(), bulkhead_query::QueryError> {
//! let db = Database::open("data".as_ref(), MasterKey::generate(), StoreOptions::default())?;
//! let acme = TenantName::new("acme")?;
//! db.operator().create_tenant(&acme)?;
//! let scope = db.operator().trusted_host_scope(&acme, "example")?;
//! let tenant = db.tenant(&scope)?;
//! tenant.create_collection("docs", 3, Metric::Cosine)?;
//! tenant.upsert("docs", &[NewPoint::new(DocId::new("a")?, vec![1.0, 0.0, 0.0], "hello")])?;
//! let hits = tenant.search("docs", &[1.0, 0.0, 0.0], 5)?;
//! # Ok(()) }
//! ```
//!
//! There is no way to search, read or write without a [`TenantScope`], and no way to make one except
//! by authentication or the named trusted-host door (see `bulkhead-storage`'s `scope.rs`).

mod attrs;
mod budget;
mod cache;
mod collection;
mod database;
mod entry;
mod error;
mod exact;
mod filter;
mod format;
mod indexing;
mod jobs;
mod metric;
mod operator;
mod search;
mod tenant;

pub use attrs::MatchReason;
pub use budget::Budget;
pub use bulkhead_crypto::{MASTER_KEY_ENV, MasterKey};
pub use bulkhead_distance::DistanceError;
pub use bulkhead_index::{IndexError, lower_thread_priority};
pub use bulkhead_storage::{
    AccessEvent, AccessGrantInfo, Acl, ApiKeyInfo, ArchiveProgress, AuditCheck, AuditEvent, Clock,
    CollectionInfo, CollectionName, DEFAULT_GRANT_TTL, DEFAULT_MAX_COLLECTIONS, DEFAULT_MAX_LOADED_TENANTS,
    DEFAULT_MAX_STORED_BYTES, DEFAULT_MAX_VECTORS, DirectoryCheck, DocId, Durability, EngineMemory,
    ExportSummary, FIRST_KEY_TTL, GrantState, ImportSummary, IssuedApiKey, KeyBinding,
    MAX_API_KEYS_PER_TENANT, MAX_GRANT_REASON_BYTES, MAX_GRANT_TTL, MIN_GRANT_TTL, ManualClock, MetaValue,
    Metric, MoveProgress, NewPoint, Operation, Placement, PointRef, REFUSAL_EVENT_EVERY, Role,
    RotationProgress, StorageError, StorageQuotas, StoreOptions, StoredPoint, Subject, SubjectHash,
    TenantInfo, TenantName, TenantPolicy, TenantQuotas, TenantScope, TenantUid, TenantUsage, VersionedPolicy,
    limits,
};
pub use cache::CacheStats;
pub use collection::{GraphStatus, IndexSource};
pub use database::{
    DEFAULT_AUTO_ROTATE_ENCRYPTIONS, DEFAULT_GRAPH_THRESHOLD, DEFAULT_INDEX_MEMORY_BUDGET, Database,
};
pub use error::QueryError;
// The version of each on-disk format this build writes, one per format module (each committed
// data directory under `tests/golden/` records the four it was written with).
pub use bulkhead_crypto::FORMAT_VERSION as CRYPTO_FORMAT_VERSION;
pub use bulkhead_index::FORMAT_VERSION as INDEX_FORMAT_VERSION;
pub use bulkhead_storage::STORAGE_FORMAT;
pub use filter::{Filter, FilterValue, Principal};
pub use format::SNAPSHOT_VERSION;
pub use jobs::{INDEX_JOB_WORKERS, IndexJobCounts};
pub use operator::Operator;
pub use search::{SearchHit, SearchRequest};
pub use tenant::Tenant;

/// Shorthand for query results.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
