//! The storage crate's error type. Messages name causes, never tenant data, ids or key material.

use bulkhead_crypto::CryptoError;

/// Everything the storage layer can report.
///
/// Not `#[non_exhaustive]`: the crate is internal to the workspace (never published), and the
/// server's one conversion to a gRPC status (`bulkhead-server/src/status.rs`) names every variant,
/// so that a new variant does not compile until someone decides what a client sees for it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The master key does not match the one this data directory was created with. Checked once at
    /// open against a stored check value, so a wrong key never produces garbage or a cascade of
    /// integrity errors.
    #[error(
        "wrong master key: the data directory was written under a different master key \
         (version {master_version})"
    )]
    WrongMasterKey { master_version: u32 },

    /// Neither the current master key nor the previous one given as a fallback opens the keyring.
    #[error(
        "neither the current nor the previous master key opens this data directory \
         (keyring version {master_version})"
    )]
    MasterKeysWrong { master_version: u32 },

    /// A tenant's (or the registry's) wrapped keys did not open although the master key check passed:
    /// the keyring was tampered with or is corrupt.
    #[error("keyring entry did not open under the master key (tampered or corrupt keyring)")]
    KeyringCorrupt,

    /// A stored value failed authentication: altered, truncated, or copied from another tenant, column
    /// family or record key. Reported without the record's key or content.
    #[error("a stored value failed authentication (tampered, corrupt, or moved from another place)")]
    Integrity,

    /// Something the caller asked for does not exist in its scope. The same error whether it never
    /// existed or belongs to another tenant, so that it reveals nothing across tenants.
    #[error("{what} not found")]
    NotFound { what: &'static str },

    /// The thing to create exists already (in the caller's own scope).
    #[error("{what} already exists")]
    AlreadyExists { what: &'static str },

    /// A value the caller passed breaks a documented rule or limit; `reason` says which, never echoing
    /// the value.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// No valid credential: unknown, malformed, revoked or expired API key. One message for all cases so
    /// that probing learns nothing.
    #[error("invalid or expired credential")]
    Unauthenticated,

    /// The API key is valid but locked, after a burst of requests or a run of refusals, until an
    /// operator unlocks it.
    #[error("this API key is locked (a burst of requests or a run of refusals); an operator unlocks it")]
    KeyLocked,

    /// A break-glass access grant cannot take this step where it stands (not approved yet,
    /// approved or activated already, expired, revoked): the request is well-formed, the grant's
    /// state refuses it, and `reason` says which state (never the grant's reason text).
    #[error("the access grant {reason}")]
    GrantState { reason: &'static str },

    /// The operator asked for a key of a tenant that has had keys (or was imported): the operator's
    /// key issue is limited to a tenant's first key, so that it cannot mint itself a way into a
    /// tenant's data past the break-glass approval. The request is well-formed; the tenant's state
    /// refuses it, and the message says what to do instead.
    #[error(
        "this tenant has had API keys (or was imported): the operator issues only a tenant's first key. \
         A tenant-admin key of the tenant issues further keys on the data plane (IssueOwnApiKey, \
         `bulkhead client key issue`); a tenant that lost every admin key gets one through a \
         break-glass grant of role tenant-admin (`bulkhead admin grant request --role tenant-admin`)"
    )]
    KeysIssuedAlready,

    /// The credential is valid but its role does not allow the operation.
    #[error("the credential's role does not allow {operation}")]
    PermissionDenied { operation: &'static str },

    /// The tenant's (or the registry's) write key has sealed its hard limit of values
    /// (`bulkhead_crypto::HARD_ENCRYPTION_LIMIT`): writes are refused until a key rotation makes a
    /// new generation the write key. Its own class because the remedy is known and nothing is
    /// broken: the rotation task starts one automatically long before the limit.
    #[error(
        "the tenant's data key has sealed its limit of values; writes resume once its key rotation starts"
    )]
    EncryptionLimit,

    /// A write would take the tenant past one of its storage quotas (`quota`: `max_vectors`,
    /// `max_stored_bytes` or `max_collections`), whose value in force is `limit`; refused before
    /// anything was written, so nothing changed. Its own class (not `InvalidArgument`) because the
    /// same request succeeds once the tenant stores less or its quota is raised. The message names
    /// the quota and its limit, never the tenant's data or the usage of anyone else.
    #[error(
        "over quota: the write would take the tenant past its {quota} of {limit} (set by the tenant's \
         policy, else by the server's default); delete data or have the operator raise the quota"
    )]
    QuotaExceeded { quota: &'static str, limit: u64 },

    /// A new API key would take its tenant past [`crate::MAX_API_KEYS_PER_TENANT`] keys, every one
    /// of them live (revoked and expired keys are forgotten to make room). Nothing was written.
    #[error(
        "the tenant holds {limit} live API keys, the most a tenant may hold; revoke the keys it no \
         longer uses (revoked and expired keys are forgotten to make room)"
    )]
    KeyLimit { limit: u64 },

    /// A tenant archive given to an import was refused before anything of it became visible:
    /// not an archive, another format version, written under another master key, cut short,
    /// altered, or out of order. `reason` is one of a fixed set of phrases, never archive content.
    /// Its own class because the remedy is the archive (or the master key), not the request.
    #[error("tenant archive refused: {reason}")]
    BadArchive { reason: &'static str },

    /// A scope minted by another open database was presented to this one.
    #[error("the scope was not issued by this database")]
    ForeignScope,

    /// RocksDB reported an error (I/O, corruption, or a full disk). Its message names files and column
    /// families, which are opaque, never tenant data. (Converted in `engine.rs`, the one file that
    /// names RocksDB.)
    #[error("storage engine error: {0}")]
    Engine(String),

    /// The data directory could not be created or read.
    #[error("data directory error: {0}")]
    Io(#[from] std::io::Error),

    /// A record decoded from an authenticated value did not parse: a bug or an incompatible format.
    #[error("stored record has an unknown layout ({0})")]
    Codec(&'static str),

    /// A crypto failure other than those classified above.
    #[error(transparent)]
    Crypto(CryptoError),

    /// The tenant's keyring or records did not open when it was loaded (`cause`, a reason code,
    /// for the operator: the log and the tenant's audit trail; the message does not say it): it is
    /// unavailable until the store is opened again; every other tenant is served.
    #[error(
        "this tenant is unavailable: its stored data does not open (damaged or tampered on disk); \
         other tenants are unaffected, and the operator has the cause"
    )]
    TenantUnavailable { cause: &'static str },
}

impl StorageError {
    /// A short, stable code for the audit trail and metrics (`not-found`, `permission-denied`, ...).
    pub fn reason_code(&self) -> &'static str {
        match self {
            StorageError::WrongMasterKey { .. } | StorageError::MasterKeysWrong { .. } => "wrong-master-key",
            StorageError::KeyringCorrupt => "keyring-corrupt",
            // The cause's code: why the tenant is unavailable.
            StorageError::TenantUnavailable { cause } => cause,
            StorageError::Integrity => "integrity",
            StorageError::NotFound { .. } => "not-found",
            StorageError::AlreadyExists { .. } => "already-exists",
            StorageError::InvalidArgument { .. } => "invalid-argument",
            StorageError::Unauthenticated => "unauthenticated",
            StorageError::KeyLocked => "locked-key",
            StorageError::PermissionDenied { .. } => "permission-denied",
            StorageError::GrantState { .. } | StorageError::KeysIssuedAlready => "failed-precondition",
            StorageError::ForeignScope => "foreign-scope",
            StorageError::EncryptionLimit => "encryption-limit",
            StorageError::QuotaExceeded { .. } => "quota-exceeded",
            StorageError::KeyLimit { .. } => "key-limit",
            StorageError::BadArchive { .. } => "bad-archive",
            StorageError::Engine(_)
            | StorageError::Io(_)
            | StorageError::Codec(_)
            | StorageError::Crypto(_) => "internal",
        }
    }
}

impl From<CryptoError> for StorageError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Integrity | CryptoError::GenerationUnavailable { .. } => StorageError::Integrity,
            CryptoError::UnwrapFailed => StorageError::KeyringCorrupt,
            CryptoError::EncryptionLimit { .. } => StorageError::EncryptionLimit,
            other => StorageError::Crypto(other),
        }
    }
}

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
