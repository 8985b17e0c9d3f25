//! Authentication and authorisation: a request's `authorization: Bearer <token>` metadata becomes a
//! [`TenantScope`] (data plane) or the operator's right (admin plane), or the request is refused. The
//! role each data-plane RPC needs is the table [`DataOp::required_role`]; the principal a search runs
//! for is chosen in [`search_principal`]. Everything fails closed: no credential, no work.

use crate::ServerError;
use crate::proto;
use crate::status;
use bulkhead_query::{Database, Operation, Principal, Role, StorageError, TenantScope, TenantUid};
use std::fmt;
use std::path::Path;
use tonic::Status;
use zeroize::Zeroizing;

/// The environment variable that holds the admin token (for `bulkhead serve` and `bulkhead admin`).
pub const ADMIN_TOKEN_ENV: &str = "BULKHEAD_ADMIN_TOKEN";

/// The environment variable that holds the approver token, the second credential that approves
/// break-glass grants (for `bulkhead serve` and `bulkhead admin grant approve`).
pub const APPROVER_TOKEN_ENV: &str = "BULKHEAD_APPROVER_TOKEN";

/// Why a request was refused.
#[derive(Debug)]
pub(crate) enum AuthError {
    /// No `authorization` metadata.
    Missing,
    /// `authorization` is not `Bearer <token>`.
    Malformed,
    /// The library refused the key (unknown, revoked, expired) or could not check it.
    Storage(StorageError),
    /// The admin token was presented to the data plane.
    AdminOnDataPlane,
    /// The approver token was presented to anything but approving or listing grants.
    ApproverBeyondApproval,
    /// A tenant API key was presented to the admin plane.
    TenantKeyOnAdmin { tenant: TenantUid },
    /// The key's role is below what the operation needs.
    Role { role: Role, operation: &'static str, tenant: TenantUid, key: Option<String> },
}

impl AuthError {
    /// The reason code metrics count it under.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing-credential",
            AuthError::Malformed => "malformed-credential",
            AuthError::Storage(StorageError::Unauthenticated) => "unauthenticated",
            AuthError::Storage(StorageError::KeyLocked) => "locked-key",
            AuthError::Storage(StorageError::TenantUnavailable { .. }) => "tenant-unavailable",
            AuthError::Storage(_) => "internal",
            AuthError::AdminOnDataPlane => "admin-on-data-plane",
            AuthError::ApproverBeyondApproval => "approver-beyond-approval",
            AuthError::TenantKeyOnAdmin { .. } => "tenant-key-on-admin",
            AuthError::Role { .. } => "role",
        }
    }

    /// The tenant the refused credential belongs to, when it is known (as the metrics label it).
    pub(crate) fn tenant_label(&self) -> String {
        match self {
            AuthError::TenantKeyOnAdmin { tenant } | AuthError::Role { tenant, .. } => tenant.short(),
            _ => crate::metrics::NO_TENANT.to_owned(),
        }
    }
}

/// The operator's admin credential. Compared in constant time; its `Debug` prints nothing of it. It
/// is a bearer secret like an API key, so whoever can read the file or the variable holding it can
/// administer every tenant. Held in memory that is wiped when it is dropped.
pub struct AdminToken(Zeroizing<String>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token from text; it must be at least 32 characters of visible ASCII, so that it cannot be
    /// guessed and fits in an HTTP header.
    pub fn new(token: impl Into<String>) -> Result<AdminToken, ServerError> {
        let given = Zeroizing::new(token.into());
        let token = Zeroizing::new(given.trim().to_owned());
        if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServerError::AdminTokenInvalid);
        }
        Ok(AdminToken(token))
    }

    /// A fresh random token (64 hex characters).
    pub fn generate() -> AdminToken {
        let secret = Zeroizing::new(bulkhead_crypto::random_bytes::<32>());
        AdminToken(Zeroizing::new(format!("bka_{}", hex::encode(secret.as_ref()))))
    }

    /// Reads a token file: a regular file of at most [`MAX_ADMIN_TOKEN_FILE_BYTES`], owned by the
    /// process's user and readable by it alone (the master key's check), into wiped memory.
    pub fn from_file(path: &Path) -> Result<AdminToken, ServerError> {
        AdminToken::from_file_named(path, "admin token")
    }

    /// As [`AdminToken::from_file`], for a token the errors call `what` (the approver token is held
    /// to the same rules as the admin token).
    pub fn from_file_named(path: &Path, what: &'static str) -> Result<AdminToken, ServerError> {
        let bytes = bulkhead_crypto::read_secret_file(path, what, MAX_ADMIN_TOKEN_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ServerError::AdminTokenNotText { path: path.to_owned() })?;
        AdminToken::new(text)
    }

    /// Writes the token to a new file with mode 0600; fails if the file exists.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        bulkhead_crypto::write_new_secret_file(path, self.0.as_str())
    }

    /// The token as text, to send it (client side only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that depends only on the lengths.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        bulkhead_crypto::constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

/// The longest admin token file read.
pub const MAX_ADMIN_TOKEN_FILE_BYTES: usize = 1024;

/// The bearer token of a request, or why there is none, in memory wiped on drop. Reads only the
/// headers (the request's metadata): no storage access, no body. (The header itself stays in the
/// request until the request is dropped, unwiped: see docs/SECURITY.md.)
pub(crate) fn bearer(headers: &http::HeaderMap) -> Result<Zeroizing<String>, AuthError> {
    let value = headers.get("authorization").ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Malformed)?;
    Ok(Zeroizing::new(token.to_owned()))
}

/// Every data-plane operation, with the role it needs. The authorisation matrix test walks the service
/// descriptor and fails if an RPC has no entry here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataOp {
    CreateCollection,
    ListCollections,
    DescribeCollection,
    DropCollection,
    Upsert,
    Get,
    Delete,
    Count,
    Search,
    SearchBatch,
    ExportAudit,
    IssueOwnApiKey,
    ListOwnApiKeys,
    RevokeOwnApiKey,
}

impl DataOp {
    /// The operation of a `bulkhead.v1.DataPlane` method, by the method's name in the request path.
    pub(crate) fn from_method(method: &str) -> Option<DataOp> {
        Some(match method {
            "CreateCollection" => DataOp::CreateCollection,
            "ListCollections" => DataOp::ListCollections,
            "DescribeCollection" => DataOp::DescribeCollection,
            "DropCollection" => DataOp::DropCollection,
            "Upsert" => DataOp::Upsert,
            "Get" => DataOp::Get,
            "Delete" => DataOp::Delete,
            "Count" => DataOp::Count,
            "Search" => DataOp::Search,
            "SearchBatch" => DataOp::SearchBatch,
            "ExportAudit" => DataOp::ExportAudit,
            "IssueOwnApiKey" => DataOp::IssueOwnApiKey,
            "ListOwnApiKeys" => DataOp::ListOwnApiKeys,
            "RevokeOwnApiKey" => DataOp::RevokeOwnApiKey,
            _ => return None,
        })
    }

    /// The library's operation it performs: the one table (`bulkhead_query::Operation`) of names,
    /// roles and refusal words that the audit trail and tenant policies share. A batch search is
    /// one search per query.
    pub(crate) fn operation(self) -> Operation {
        match self {
            DataOp::CreateCollection => Operation::CreateCollection,
            DataOp::ListCollections => Operation::ListCollections,
            DataOp::DescribeCollection => Operation::DescribeCollection,
            DataOp::DropCollection => Operation::DropCollection,
            DataOp::Upsert => Operation::Upsert,
            DataOp::Get => Operation::Get,
            DataOp::Delete => Operation::Delete,
            DataOp::Count => Operation::Count,
            DataOp::Search | DataOp::SearchBatch => Operation::Search,
            DataOp::ExportAudit => Operation::ExportAudit,
            DataOp::IssueOwnApiKey => Operation::IssueApiKey,
            DataOp::ListOwnApiKeys => Operation::ListApiKeys,
            DataOp::RevokeOwnApiKey => Operation::RevokeApiKey,
        }
    }

    /// The least role that may call it.
    pub(crate) fn required_role(self) -> Role {
        self.operation().required_role()
    }

    /// What it does, for a refusal's message.
    pub(crate) fn verb(self) -> &'static str {
        self.operation().verb()
    }

    /// Its name in the audit trail and in metrics.
    pub(crate) fn audit_name(self) -> &'static str {
        self.operation().name()
    }
}

/// Authenticates a data-plane call and checks its role, before any tenant data is touched.
pub(crate) fn authorize_data(
    db: &Database,
    admin: &AdminToken,
    approver: Option<&AdminToken>,
    token: &str,
    op: DataOp,
) -> Result<TenantScope, AuthError> {
    // Neither operator token reads tenant data: that takes a break-glass grant's key.
    if admin.matches(token) || approver.is_some_and(|a| a.matches(token)) {
        return Err(AuthError::AdminOnDataPlane);
    }
    let scope = db.operator().authenticate(token).map_err(AuthError::Storage)?;
    if scope.role() < op.required_role() {
        record_refusal(db, &scope, op.audit_name(), "permission-denied");
        return Err(AuthError::Role {
            role: scope.role(),
            operation: op.verb(),
            tenant: scope.tenant_uid(),
            key: scope.key_id(),
        });
    }
    Ok(scope)
}

/// Authenticates an admin-plane call: only the admin token passes. A valid tenant key is told it is
/// the wrong kind of credential; anything else is unauthenticated.
pub(crate) fn authorize_admin(db: &Database, admin: &AdminToken, token: &str) -> Result<(), AuthError> {
    if admin.matches(token) {
        return Ok(());
    }
    match db.operator().authenticate(token) {
        Ok(scope) => {
            record_refusal(db, &scope, "admin-plane", "permission-denied");
            Err(AuthError::TenantKeyOnAdmin { tenant: scope.tenant_uid() })
        }
        Err(e) => Err(AuthError::Storage(e)),
    }
}

/// Refuses a key label over the server's limit and an expiry that is not in the future (the operator's
/// and a tenant-admin's issue alike).
pub(crate) fn check_key_request(now_ms: u64, label: &str, expires_ms: Option<u64>) -> Result<(), Status> {
    if label.len() > crate::limits::MAX_KEY_LABEL_BYTES {
        return Err(crate::status::invalid(
            "label",
            format!("must be at most {} bytes", crate::limits::MAX_KEY_LABEL_BYTES),
        ));
    }
    if expires_ms.is_some_and(|t| t <= now_ms) {
        return Err(crate::status::invalid("expires_ms", "must be in the future"));
    }
    Ok(())
}

/// Records a refusal in the scope's tenant trail. The request is refused either way; an event that
/// cannot be written is logged (without the request's content).
pub(crate) fn record_refusal(db: &Database, scope: &TenantScope, operation: &str, outcome: &str) {
    if let Err(e) = db.audit_refusal(scope, operation, outcome) {
        tracing::error!(
            tenant = %scope.tenant_uid().short(),
            operation,
            error = %e,
            "could not record a refusal in the audit trail"
        );
    }
}

/// The principal a request names (on-behalf-of: the RAG backend holding the key speaks for its end
/// user), as the domain type. Whether the key may name one is decided by `bulkhead-query` from the
/// key's binding: a user-bound key always runs as its own user and a request naming another is
/// refused; a service key may name one only with the on-behalf-of right; without one, a service key
/// searches every document of the tenant.
pub(crate) fn search_principal(
    _scope: &TenantScope,
    requested: Option<proto::Principal>,
) -> Result<Option<Principal>, Status> {
    requested.map(|p| Principal::new(p.user, p.groups).map_err(status::from_query)).transpose()
}
