//! Each tenant's versioned policy: which operations each role may perform, tighter query limits than
//! the global ones, and which source URIs its keys may write. Changed only by the operator
//! ([`Store::set_policy`]); every change increments the version and is an audit event with the
//! operator's note; the version in force is in every access event and every search hit.
//!
//! The policy is the record [`VersionedPolicy`], sealed like every registry record at
//! `"policy/" uid` (both drawn in `layout/system.rs`). A tenant without one has the default policy
//! (everything its roles allow, the global limits) at version 0.

pub use crate::layout::{TenantPolicy, TenantQuotas, VersionedPolicy};

use crate::engine::Batch;
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout;
use crate::operation::Operation;
use crate::scope::Role;
use crate::store::Store;
use std::sync::Arc;

/// Longest change note, in bytes.
pub const MAX_POLICY_NOTE_BYTES: usize = 256;
/// Most source URI prefixes in one policy.
pub const MAX_POLICY_PREFIXES: usize = 64;

impl TenantPolicy {
    /// Whether `role` may perform `operation` under this policy.
    pub fn allows(&self, role: Role, operation: Operation) -> bool {
        !self.denied.iter().any(|(r, op)| *r == role && op == operation.name())
    }

    /// Whether a point with this source URI may be written.
    pub fn allows_source(&self, source_uri: &str) -> bool {
        self.source_uri_prefixes.is_empty()
            || self.source_uri_prefixes.iter().any(|p| source_uri.starts_with(p.as_str()))
    }

    fn validate(&self) -> Result<()> {
        let invalid =
            |reason: &str| StorageError::InvalidArgument { field: "policy", reason: reason.to_owned() };
        if self.denied.len() > 64 {
            return Err(invalid("at most 64 denied operations"));
        }
        if let Some((_, unknown)) = self.denied.iter().find(|(_, op)| Operation::from_name(op).is_none()) {
            // A typo would deny nothing: refuse it, naming only the operations that exist (the
            // unknown name is the operator's own input, but it goes no further than this message).
            let known: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
            return Err(invalid(&format!(
                "{:?} is not an operation; the operations are {}",
                unknown.chars().take(64).collect::<String>(),
                known.join(", ")
            )));
        }
        if self.source_uri_prefixes.len() > MAX_POLICY_PREFIXES {
            return Err(invalid("at most 64 source URI prefixes"));
        }
        if self
            .source_uri_prefixes
            .iter()
            .any(|p| p.is_empty() || p.len() > crate::limits::MAX_SOURCE_URI_BYTES)
        {
            return Err(invalid("a source URI prefix is 1 byte to the source URI limit"));
        }
        if [self.max_k, self.max_ef, self.max_filter_conditions].contains(&Some(0)) {
            return Err(invalid("a limit is at least 1"));
        }
        let q = &self.quotas;
        if q.requests_per_second == Some(0)
            || q.write_bytes_per_second == Some(0)
            || q.max_concurrent_searches == Some(0)
        {
            return Err(invalid("a rate or concurrency quota is at least 1 (deny the operation instead)"));
        }
        if q.max_collections.is_some_and(|n| n as usize > crate::limits::MAX_COLLECTIONS_PER_TENANT) {
            return Err(invalid("max_collections is at most the global limit"));
        }
        Ok(())
    }
}

impl Store {
    /// The tenant's policy in force (cached with the tenant's state).
    pub fn policy(&self, uid: TenantUid) -> Result<Arc<VersionedPolicy>> {
        Ok(Arc::clone(&self.load_tenant(uid)?.policy.read()))
    }

    /// Reads a tenant's stored policy (the default if it has none).
    pub(crate) fn stored_policy(&self, uid: &TenantUid) -> Result<VersionedPolicy> {
        let key = layout::policy_key(uid.as_bytes());
        match self.db.get(&self.sys()?, &key)? {
            None => Ok(VersionedPolicy::default()),
            Some(sealed) => layout::decode_policy(&self.open_registry(&key, &sealed)?),
        }
    }

    /// Replaces the tenant's policy, if its version is still `expected_version` (so that two
    /// operators editing at once cannot overwrite each other's change unseen). The new version, the
    /// policy and an audit event with `note` commit in one fsynced batch. Returns the new version.
    pub fn set_policy(
        &self,
        tenant: &TenantName,
        policy: TenantPolicy,
        expected_version: u64,
        note: &str,
    ) -> Result<u64> {
        policy.validate()?;
        if note.len() > MAX_POLICY_NOTE_BYTES || note.chars().any(char::is_control) {
            return Err(StorageError::InvalidArgument {
                field: "note",
                reason: format!("at most {MAX_POLICY_NOTE_BYTES} bytes, no control characters"),
            });
        }
        let mut reserved = self.registry_lock.lock();
        let uid = self.tenant_info(tenant)?.uid;
        let state = self.load_tenant(uid)?;
        let current = self.stored_policy(&uid)?;
        if current.version != expected_version {
            return Err(StorageError::InvalidArgument {
                field: "expected_version",
                reason: format!("the policy is at version {}, not {expected_version}", current.version),
            });
        }
        let next = VersionedPolicy { version: current.version + 1, changed_ms: self.now_ms(), policy };
        let mut batch = Batch::default();
        let mut event = self.admin_record("policy-changed", None);
        event.policy_version = Some(next.version);
        event.note = Some(note.to_owned());
        let _pending = self.audit_record_into(&mut batch, &uid, event)?;
        self.commit_registry(
            &mut reserved,
            batch,
            &layout::policy_key(uid.as_bytes()),
            &layout::encode(&next),
        )?;
        let version = next.version;
        *state.policy.write() = Arc::new(next);
        tracing::info!(tenant = %uid.short(), version, "tenant policy changed");
        Ok(version)
    }
}
