//! The operator's view of a database: tenants, API keys, key rotations, the audit trail and the two
//! doors that mint scopes. It reaches no tenant records: data goes only through `Database::tenant`.

use crate::MasterKey;
use bulkhead_storage::{
    AccessEvent, AccessGrantInfo, ApiKeyInfo, ArchiveProgress, AuditCheck, AuditEvent, DirectoryCheck,
    ExportSummary, ImportSummary, IssuedApiKey, KeyBinding, MoveProgress, Placement, Role, RotationProgress,
    StorageError, Store, Subject, SubjectHash, TenantInfo, TenantName, TenantPolicy, TenantScope, TenantUid,
    VersionedPolicy,
};
use std::io::{Read, Write};
use std::path::Path;

/// The operator's view of a database: tenants, API keys, and the two doors that mint scopes.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'d> {
    pub(crate) store: &'d Store,
}

impl Operator<'_> {
    /// Creates a tenant with its own column family and keys.
    pub fn create_tenant(&self, name: &TenantName) -> Result<TenantInfo, StorageError> {
        self.store.create_tenant(name)
    }

    /// Moves a tenant to the tier `target` online: reads and writes go on while its records are
    /// copied, writes are fenced only for the last changes and the switch, and a crash at any point
    /// leaves it whole in one place. `progress` is told after every copy round and at the switch.
    pub fn move_tenant(
        &self,
        tenant: &TenantName,
        target: Placement,
        progress: impl FnMut(MoveProgress),
    ) -> Result<MoveProgress, StorageError> {
        self.store.move_tenant(tenant, target, progress)
    }

    /// How far the tier move of the tenant `uid` that runs now got (`None`: none runs).
    pub fn move_status(&self, uid: TenantUid) -> Option<MoveProgress> {
        self.store.move_status(uid)
    }

    /// Creates a tenant in the tier `placement` (`Placement::Shared`: many small tenants in one
    /// column family; `Placement::OwnColumnFamily`: its own; `Placement::Dedicated`: a RocksDB
    /// instance of its own).
    pub fn create_tenant_in(
        &self,
        name: &TenantName,
        placement: Placement,
    ) -> Result<TenantInfo, StorageError> {
        self.store.create_tenant_in(name, placement)
    }

    /// Lists tenants.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>, StorageError> {
        self.store.list_tenants()
    }

    /// Looks a tenant up by name.
    pub fn tenant_info(&self, name: &TenantName) -> Result<TenantInfo, StorageError> {
        self.store.tenant_info(name)
    }

    /// Issues an API key (its token is the only copy of the secret).
    pub fn issue_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
    ) -> Result<IssuedApiKey, StorageError> {
        self.store.issue_api_key(tenant, role, label, expires_ms)
    }

    /// Issues an API key bound to a user (its searches run as that user) or a service key that may
    /// act on behalf of users a request names (see [`KeyBinding`]).
    pub fn issue_bound_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey, StorageError> {
        self.store.issue_bound_api_key(tenant, role, label, expires_ms, binding)
    }

    /// As [`Operator::issue_bound_api_key`], but only the tenant's first key: refused
    /// ([`StorageError::KeysIssuedAlready`], an event in the tenant's trail) once it has had one
    /// or was imported. What a server with a configured admin token offers its operator.
    pub fn issue_first_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey, StorageError> {
        self.store.issue_first_api_key(tenant, role, label, expires_ms, binding)
    }

    /// Starts a tenant-key rotation: a new data-key generation seals every write from now on. Drive
    /// it to the end with [`Operator::rotation_step`].
    pub fn rotate_tenant_key(&self, tenant: &TenantName) -> Result<RotationProgress, StorageError> {
        self.store.rotate_tenant_key(tenant)
    }

    /// Re-seals up to `max_records` older records of the tenant's rotation; `None` if none runs.
    /// Resumable: the cursor is persisted with every batch.
    pub fn rotation_step(
        &self,
        tenant: TenantUid,
        max_records: usize,
    ) -> Result<Option<RotationProgress>, StorageError> {
        self.store.rotation_step(tenant, max_records)
    }

    /// A tenant's rotation progress, `None` if none runs.
    pub fn rotation_status(&self, tenant: TenantUid) -> Result<Option<RotationProgress>, StorageError> {
        self.store.rotation_status(tenant)
    }

    /// The data-key generation that seals the tenant's new writes.
    pub fn key_generation(&self, tenant: TenantUid) -> Result<u32, StorageError> {
        self.store.key_generation(tenant)
    }

    /// A tenant's administrative audit events, oldest first; kept after the tenant is deleted. The
    /// system's own chain (master-key events) is under the all-zero uid.
    pub fn audit_events(&self, tenant: TenantUid) -> Result<Vec<AuditEvent>, StorageError> {
        self.store.audit_events(tenant)
    }

    /// Recomputes a tenant's audit chain and reports the first broken link, if any.
    pub fn audit_verify(&self, tenant: TenantUid) -> Result<AuditCheck, StorageError> {
        self.store.audit_verify(tenant)
    }

    /// Checks that every audit chain ever registered is still registered (a whole chain removed at
    /// the storage level shows here; see `bulkhead-storage`'s `audit.rs`).
    pub fn audit_directory_check(&self) -> Result<DirectoryCheck, StorageError> {
        self.store.audit_directory_check()
    }

    /// The tenant's policy in force and its version.
    pub fn policy(&self, tenant: &TenantName) -> Result<std::sync::Arc<VersionedPolicy>, StorageError> {
        self.store.policy(self.store.tenant_info(tenant)?.uid)
    }

    /// Replaces the tenant's policy if it is still at `expected_version`; returns the new version.
    /// The change is an audit event carrying `note`. Cached search results of the tenant stop
    /// matching (the version is part of their key).
    pub fn set_policy(
        &self,
        tenant: &TenantName,
        policy: TenantPolicy,
        expected_version: u64,
        note: &str,
    ) -> Result<u64, StorageError> {
        self.store.set_policy(tenant, policy, expected_version, note)
    }

    /// A page of a tenant's audit events (see [`Store::audit_page`]).
    pub fn audit_page(
        &self,
        tenant: TenantUid,
        from_seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<u64>), StorageError> {
        self.store.audit_page(tenant, from_seq, since_ms, limit)
    }

    /// Every uid with an audit chain: tenants, deleted tenants, and the system chain (zero uid).
    pub fn audit_tenants(&self) -> Result<Vec<TenantUid>, StorageError> {
        self.store.audit_tenants()
    }

    /// Deletes a tenant's audit events older than `before_ms`, leaving a verifiable checkpoint.
    pub fn audit_prune(&self, tenant: TenantUid, before_ms: u64) -> Result<u64, StorageError> {
        self.store.audit_prune(tenant, before_ms)
    }

    /// The keyed hash that stands for `value` in the tenant's audit events.
    pub fn audit_subject_hash(&self, tenant: TenantUid, subject: Subject, value: &[u8]) -> SubjectHash {
        self.store.audit_subject_hash(tenant, subject, value)
    }

    /// Writes the tenant as a still-encrypted archive that only a server holding this master key
    /// can import (see `bulkhead-storage`'s `archive.rs`); `progress` is called after each frame.
    /// API keys are not carried.
    pub fn export_tenant(
        &self,
        tenant: &TenantName,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(ArchiveProgress),
    ) -> Result<ExportSummary, StorageError> {
        self.store.export_tenant(tenant, out, progress)
    }

    /// Restores a tenant from an archive, under its own name, or re-keyed under `new_name`, in the
    /// tier `tier` (`None`: the store's default); in every refusal nothing of it stays. Issue new
    /// API keys afterwards.
    pub fn import_tenant(
        &self,
        input: &mut dyn Read,
        new_name: Option<&TenantName>,
        tier: Option<Placement>,
        progress: &mut dyn FnMut(ArchiveProgress),
    ) -> Result<ImportSummary, StorageError> {
        self.store.import_tenant(input, new_name, tier, progress)
    }

    /// Records an operator's read of a tenant's administrative state (`admin-describe-tenant`,
    /// `admin-export-audit`, ...) in that tenant's trail.
    pub fn audit_admin_read(&self, tenant: TenantUid, operation: &str) -> Result<(), StorageError> {
        self.store.audit_access(tenant, &AccessEvent { operation, outcome: "ok", ..AccessEvent::default() })
    }

    /// Records in a tenant's trail the outcome of background work on it (`task`: `key-rotation`,
    /// `audit-prune`; `outcome`: `ok` when a run of failures ends, or the reason code of the
    /// failure that starts one).
    pub fn audit_background(&self, tenant: TenantUid, task: &str, outcome: &str) -> Result<(), StorageError> {
        let operation = format!("background-{task}");
        self.store
            .audit_access(tenant, &AccessEvent { operation: &operation, outcome, ..AccessEvent::default() })
    }

    /// Tenants whose rotation was interrupted (by a restart) and should be resumed.
    pub fn pending_rotations(&self) -> Result<Vec<TenantUid>, StorageError> {
        self.store.pending_rotations()
    }

    /// Rotates the master key online: every wrapped key is re-wrapped under `new` (one fsynced
    /// batch); no tenant data is re-encrypted. Returns the new master version.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<u32, StorageError> {
        self.store.rotate_master_key(new)
    }

    /// Revokes every API key of a tenant at once (the exposed-credential response; follow it with
    /// [`Operator::rotate_tenant_key`]). Returns how many were revoked.
    pub fn revoke_all_api_keys(&self, tenant: &TenantName) -> Result<usize, StorageError> {
        let mut revoked = 0;
        for key in self.store.list_api_keys(tenant)? {
            if !key.revoked {
                self.store.revoke_api_key(tenant, &key.key_id)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Lists a tenant's API keys, never their secrets.
    pub fn list_api_keys(&self, tenant: &TenantName) -> Result<Vec<ApiKeyInfo>, StorageError> {
        self.store.list_api_keys(tenant)
    }

    /// Locks an API key of `tenant` (a burst, a run of refusals: `reason`) until an operator
    /// unlocks it; `false` if it was locked already.
    pub fn lock_api_key(&self, tenant: TenantUid, key_id: &str, reason: &str) -> Result<bool, StorageError> {
        self.store.lock_api_key(tenant, key_id, reason)
    }

    /// Unlocks a locked API key of `tenant`; `false` if it was not locked.
    pub fn unlock_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<bool, StorageError> {
        self.store.unlock_api_key(tenant, key_id)
    }

    /// Revokes an API key of `tenant`; scopes minted from it stop working at once.
    pub fn revoke_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<(), StorageError> {
        self.store.revoke_api_key(tenant, key_id)
    }

    /// Requests a break-glass grant to read `tenant`'s data (`bulkhead_storage` `grant.rs`): it
    /// gives nothing until a second credential approves it and it is activated (into a reader key).
    pub fn request_access_grant(
        &self,
        tenant: &TenantName,
        reason: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<AccessGrantInfo, StorageError> {
        self.store.request_access_grant(tenant, reason, ttl, None)
    }

    /// As [`Operator::request_access_grant`], for a key of `role`: tenant-admin gives a tenant that
    /// lost its admin keys (or an imported one) a key to issue its own keys with again.
    pub fn request_access_grant_as(
        &self,
        tenant: &TenantName,
        reason: &str,
        ttl: Option<std::time::Duration>,
        role: Role,
    ) -> Result<AccessGrantInfo, StorageError> {
        self.store.request_access_grant(tenant, reason, ttl, Some(role))
    }

    /// Approves a pending grant. The caller has checked that the approving credential is the
    /// second one, not the requester's.
    pub fn approve_access_grant(
        &self,
        tenant: &TenantName,
        grant_id: &str,
    ) -> Result<AccessGrantInfo, StorageError> {
        self.store.approve_access_grant(tenant, grant_id)
    }

    /// As [`Operator::approve_access_grant`], for a grant of `role` only: a grant of another role
    /// is refused, and the refusal is an event in the tenant's trail.
    pub fn approve_access_grant_as(
        &self,
        tenant: &TenantName,
        grant_id: &str,
        role: Role,
    ) -> Result<AccessGrantInfo, StorageError> {
        self.store.approve_access_grant_as(tenant, grant_id, Some(role))
    }

    /// Records a refused approval of a grant in its tenant's trail.
    pub fn refuse_access_grant_approval(
        &self,
        tenant: &TenantName,
        grant_id: &str,
        outcome: &str,
    ) -> Result<(), StorageError> {
        self.store.refuse_access_grant_approval(tenant, grant_id, outcome)
    }

    /// Activates an approved grant (once): a reader key of its tenant that expires with it.
    pub fn activate_access_grant(
        &self,
        tenant: &TenantName,
        grant_id: &str,
    ) -> Result<(AccessGrantInfo, IssuedApiKey), StorageError> {
        self.store.activate_access_grant(tenant, grant_id)
    }

    /// Revokes a grant and its key at once.
    pub fn revoke_access_grant(
        &self,
        tenant: &TenantName,
        grant_id: &str,
    ) -> Result<AccessGrantInfo, StorageError> {
        self.store.revoke_access_grant(tenant, grant_id)
    }

    /// A tenant's grants, oldest first.
    pub fn list_access_grants(&self, tenant: &TenantName) -> Result<Vec<AccessGrantInfo>, StorageError> {
        self.store.list_access_grants(tenant)
    }

    /// Checks an API key and mints a scope for its tenant and role.
    pub fn authenticate(&self, token: &str) -> Result<TenantScope, StorageError> {
        self.store.authenticate(token)
    }

    /// The scope of a key that authenticated before and still would, from memory alone (no read,
    /// no write); `None` when memory cannot tell, and then [`Operator::authenticate`] decides.
    pub fn authenticate_cached(&self, token: &str) -> Option<TenantScope> {
        self.store.authenticate_cached(token)
    }

    /// Mints a tenant-admin scope without a credential, for a process that is itself trusted; the
    /// reason is logged.
    pub fn trusted_host_scope(
        &self,
        tenant: &TenantName,
        reason: &'static str,
    ) -> Result<TenantScope, StorageError> {
        self.store.trusted_host_scope(tenant, reason)
    }

    /// Flushes memtables and the write-ahead log (before a clean shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.store.flush()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.store.path()
    }
}
