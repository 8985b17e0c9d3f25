//! The one place errors become `tonic::Status`. Messages carry only what the library's errors carry
//! (field names, limits, "collection not found"), never tenant data or secrets; internal failures are
//! logged here, with their cause, and reported to the client as a bare `INTERNAL`, and stored data
//! or keys that fail their integrity check likewise as a bare `DATA_LOSS`.

use bulkhead_query::{IndexError, QueryError, StorageError};
use tonic::Status;

/// A query-layer error as a status.
pub(crate) fn from_query(error: QueryError) -> Status {
    match error {
        QueryError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        QueryError::ResourceExhausted { .. } => Status::resource_exhausted(error.to_string()),
        QueryError::DeadlineExceeded => Status::deadline_exceeded(error.to_string()),
        QueryError::Cancelled => Status::cancelled(error.to_string()),
        QueryError::Storage(storage) => from_storage(storage),
        QueryError::Index(index) => from_index(&index),
        // The query vector was checked at the edge: a kernel refusing it afterwards is a bug.
        QueryError::Kernel(_) | QueryError::Internal(_) => internal(&error),
    }
}

/// An index error met while serving a call. Every variant is named, like the storage errors'.
fn from_index(error: &IndexError) -> Status {
    match error {
        IndexError::Cancelled => Status::cancelled(QueryError::Cancelled.to_string()),
        // The request's vector and parameters were validated before any index saw them, and a
        // damaged segment snapshot is rebuilt from the records rather than served: any of these
        // reaching a call is a bug.
        IndexError::InvalidParams { .. }
        | IndexError::DimensionMismatch { .. }
        | IndexError::NonFiniteQuery { .. }
        | IndexError::IdOutOfRange { .. }
        | IndexError::Vector(_)
        | IndexError::BuildFailed
        | IndexError::UnsupportedVersion { .. }
        | IndexError::Corrupt { .. }
        | IndexError::Io(_)
        | IndexError::MalformedVectorFile { .. } => internal(error),
    }
}

/// A storage-layer error as a status. Every variant is named, so that a new one does not compile
/// until it is given its status.
pub(crate) fn from_storage(error: StorageError) -> Status {
    match &error {
        StorageError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        // The same message whether the thing never existed or belongs to another tenant.
        StorageError::NotFound { .. } => Status::not_found(error.to_string()),
        StorageError::AlreadyExists { .. } => Status::already_exists(error.to_string()),
        StorageError::Unauthenticated => Status::unauthenticated(error.to_string()),
        StorageError::PermissionDenied { .. } => Status::permission_denied(error.to_string()),
        StorageError::KeyLocked => {
            Status::permission_denied(format!("{error} (`bulkhead admin unlock`; docs/LIMITS.md, lockout)"))
        }
        // The tenant's own state, with a known remedy (its key rotation): not the caller's fault,
        // not a server fault either.
        StorageError::EncryptionLimit => Status::failed_precondition(error.to_string()),
        // A break-glass grant's state refuses the step (not approved, expired, revoked, used).
        StorageError::GrantState { .. } | StorageError::KeysIssuedAlready => {
            Status::failed_precondition(error.to_string())
        }
        // A storage quota of the tenant (its policy's, or the server's default): the message names
        // the quota and its limit; the same write succeeds once the tenant stores less.
        StorageError::QuotaExceeded { .. } | StorageError::KeyLimit { .. } => {
            Status::resource_exhausted(error.to_string())
        }
        // A tenant archive the operator sent is not one this server can import (its reason is a
        // fixed phrase: cut, altered, another master key); the fix is the archive.
        StorageError::BadArchive { .. } => Status::invalid_argument(error.to_string()),
        // A stored value or keyring entry that does not authenticate: data damaged or tampered
        // with on disk, which no retry and no fix of the server repairs.
        StorageError::Integrity | StorageError::KeyringCorrupt => data_loss(&error),
        // One tenant's damaged keyring or records: that tenant is out of service (until a restart
        // after the operator repairs or restores it), the server and every other tenant are not.
        StorageError::TenantUnavailable { .. } => Status::unavailable(error.to_string()),
        StorageError::WrongMasterKey { .. }
        | StorageError::MasterKeysWrong { .. }
        | StorageError::ForeignScope
        | StorageError::Engine(_)
        | StorageError::Io(_)
        | StorageError::Codec(_)
        | StorageError::Crypto(_) => internal(&error),
    }
}

/// The audit trail's reason code for a refused call's status.
pub(crate) fn reason_code(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::InvalidArgument | Code::OutOfRange => "invalid-argument",
        Code::NotFound => "not-found",
        Code::AlreadyExists => "already-exists",
        Code::PermissionDenied => "permission-denied",
        Code::Unauthenticated => "unauthenticated",
        Code::ResourceExhausted => "resource-exhausted",
        Code::DeadlineExceeded => "deadline-exceeded",
        Code::Cancelled => "cancelled",
        Code::FailedPrecondition | Code::Aborted => "failed-precondition",
        _ => "internal",
    }
}

/// A request argument the server itself refuses (a limit of its own, or a malformed proto value).
pub(crate) fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

/// A failure of the database or the server, not the caller's: logged with its cause (which never
/// holds tenant data), reported without it.
pub(crate) fn internal(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %error, "request failed inside the server");
    Status::internal("internal error (see the server log)")
}

/// Stored data or keys that failed their integrity check: logged with the cause (which never holds
/// tenant data), reported without it.
fn data_loss(error: &StorageError) -> Status {
    tracing::error!(error = %error, "request failed on stored data that does not authenticate");
    Status::data_loss("stored data failed its integrity check (see the server log)")
}

/// The request's deadline passed.
pub(crate) fn deadline_exceeded(limit: std::time::Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the request did not finish within its deadline ({} ms)",
        limit.as_millis()
    ))
}

impl From<crate::auth::AuthError> for Status {
    fn from(error: crate::auth::AuthError) -> Status {
        use crate::auth::AuthError;
        match error {
            AuthError::Missing => Status::unauthenticated(
                "missing credential: send the metadata `authorization: Bearer <token>`",
            ),
            AuthError::Malformed => {
                Status::unauthenticated("malformed credential: expected `authorization: Bearer <token>`")
            }
            AuthError::Storage(e) => from_storage(e),
            AuthError::AdminOnDataPlane => Status::permission_denied(
                "an operator credential (admin or approver token) cannot call the data plane; issue a \
                 tenant API key, or read a tenant's data under a break-glass grant (`bulkhead admin grant`)",
            ),
            AuthError::ApproverBeyondApproval => Status::permission_denied(
                "the approver token only approves and lists break-glass grants (ApproveAccessGrant, \
                 ListAccessGrants); use the admin token for everything else",
            ),
            AuthError::TenantKeyOnAdmin { .. } => {
                Status::permission_denied("tenant API keys cannot call the admin service")
            }
            AuthError::Role { role, operation, .. } => {
                Status::permission_denied(format!("a {} key cannot {operation}", role.as_str()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_failures_are_data_loss_and_say_nothing_of_their_cause() {
        for error in [StorageError::Integrity, StorageError::KeyringCorrupt] {
            let status = from_storage(error);
            assert_eq!(status.code(), tonic::Code::DataLoss);
            assert!(!status.message().contains("keyring"), "{}", status.message());
        }
        let status = from_storage(StorageError::TenantUnavailable { cause: "keyring-corrupt" });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(!status.message().contains("keyring"), "{}", status.message());
        assert!(status.message().contains("other tenants are unaffected"), "{}", status.message());
        let status = from_storage(StorageError::Engine("IO error: /data/000012.sst".to_owned()));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("sst"), "{}", status.message());
    }

    #[test]
    fn a_storage_quota_is_resource_exhausted_naming_the_quota_and_its_limit() {
        let quota = || StorageError::QuotaExceeded { quota: "max_vectors", limit: 1000 };
        for status in [from_storage(quota()), from_query(QueryError::Storage(quota()))] {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted);
            assert!(status.message().contains("max_vectors"), "{}", status.message());
            assert!(status.message().contains("1000"), "{}", status.message());
            assert_eq!(reason_code(status.code()), "resource-exhausted");
        }
    }

    #[test]
    fn index_errors_keep_their_class_through_the_query_layer() {
        let cancelled = from_query(QueryError::Index(IndexError::Cancelled));
        assert_eq!(cancelled.code(), tonic::Code::Cancelled);
        assert_eq!(cancelled.message(), from_query(QueryError::Cancelled).message());
        let corrupt = from_query(QueryError::Index(IndexError::Corrupt { reason: "bad checksum" }));
        assert_eq!(corrupt.code(), tonic::Code::Internal);
        assert!(!corrupt.message().contains("checksum"), "{}", corrupt.message());
        let storage = from_query(QueryError::Storage(StorageError::Integrity));
        assert_eq!(storage.code(), tonic::Code::DataLoss);
    }
}
