//! The tenant scope: the capability every data path demands, and the roles a credential can carry.
//!
//! A [`TenantScope`] has private fields and no `Clone`, `Default` or `From`; code outside this crate
//! cannot build one. Only two functions mint it: [`crate::Store::authenticate`], which checks an API
//! key against the hash in the keyring in constant time, and [`crate::Store::trusted_host_scope`], a
//! deliberately named door for embedded use in a process that is itself trusted, which demands a
//! written reason.

use crate::ids::TenantUid;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a credential may do inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Search and read.
    Reader,
    /// Everything a reader may do, plus upsert and delete points.
    Writer,
    /// Everything a writer may do, plus create and drop collections.
    TenantAdmin,
}

impl Role {
    /// Parses `reader`, `writer` or `tenant-admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "tenant-admin" => Some(Role::TenantAdmin),
            _ => None,
        }
    }

    /// The role's name as [`Role::parse`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::TenantAdmin => "tenant-admin",
        }
    }
}

/// Whom a credential searches for: its own user, or (a service key) whoever the request names.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyBinding {
    /// A backend's key. With `on_behalf_of`, a request may name the user it acts for (and then sees
    /// only what that user may read); without it, a request may not name one. A request that names
    /// no user sees every document of the tenant.
    Service {
        /// Whether requests may act on behalf of a user they name.
        on_behalf_of: bool,
    },
    /// One user's key: every search runs as this user with these groups, whatever the request says.
    User {
        /// The user id.
        user: String,
        /// The user's groups.
        groups: Vec<String>,
    },
}

impl fmt::Debug for KeyBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyBinding::Service { on_behalf_of } => {
                f.debug_struct("Service").field("on_behalf_of", on_behalf_of).finish()
            }
            KeyBinding::User { groups, .. } => write!(f, "User(<redacted>, {} groups)", groups.len()),
        }
    }
}

/// Proof that the holder was authorised for one tenant of one open database.
///
/// A scope minted from an API key remembers the key: [`crate::Store::tenant`] re-checks that the key is
/// neither revoked nor expired each time the scope is used, so a long-lived scope cannot outlive its
/// credential.
pub struct TenantScope {
    pub(crate) tenant: TenantUid,
    pub(crate) store_instance: u64,
    pub(crate) role: Role,
    pub(crate) key_id: Option<[u8; 16]>,
    pub(crate) binding: KeyBinding,
    /// The break-glass access grant the key was issued for (`grant.rs`), if any.
    pub(crate) grant: Option<[u8; 16]>,
}

impl fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantScope")
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("break_glass", &self.grant.is_some())
            .finish()
    }
}

impl TenantScope {
    /// The role this scope carries.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whom the scope's searches run for. A trusted-host scope is a service binding that may act on
    /// behalf of users.
    pub fn binding(&self) -> &KeyBinding {
        &self.binding
    }

    /// The public id of the API key that minted this scope (none for a trusted-host scope).
    pub fn key_id(&self) -> Option<String> {
        self.key_id.map(hex::encode)
    }

    /// The tenant's opaque uid (for logs and metrics; it reveals nothing).
    pub fn tenant_uid(&self) -> TenantUid {
        self.tenant
    }

    /// The id of the break-glass access grant whose key minted this scope, if it was one: every
    /// event of such a scope names the grant in the tenant's trail.
    pub fn grant_id(&self) -> Option<String> {
        self.grant.map(hex::encode)
    }
}
