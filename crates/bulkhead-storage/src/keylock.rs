//! Locked API keys: a key the server locked (a burst of requests, a run of refusals; the server's
//! `lockout.rs` decides) is refused by [`Store::authenticate`] until an operator unlocks it. The
//! lock is a sealed registry record beside the key's (`"keylock/"`, drawn in `layout/system.rs`),
//! written and removed with its audit event in one fsynced batch, so it survives a restart.

use crate::engine::Batch;
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout::{self, KeyLockRecord};
use crate::store::Store;

/// Longest lock reason, in bytes.
const MAX_LOCK_REASON_BYTES: usize = 64;

impl Store {
    /// Whether the API key with this id is locked.
    pub(crate) fn key_locked(&self, key_id: &[u8; 16]) -> Result<bool> {
        Ok(self.db.get(&self.sys()?, layout::key_lock_key(key_id))?.is_some())
    }

    /// Locks an API key of `tenant` (given by its id in hex) for `reason`, with an audit event in
    /// the tenant's trail. Returns `false` if it was already locked. A key of another tenant, or an
    /// unknown one, is not found.
    pub fn lock_api_key(&self, tenant: TenantUid, key_id: &str, reason: &str) -> Result<bool> {
        if reason.is_empty() || reason.len() > MAX_LOCK_REASON_BYTES || reason.chars().any(char::is_control) {
            return Err(StorageError::InvalidArgument {
                field: "reason",
                reason: format!("1 to {MAX_LOCK_REASON_BYTES} bytes, no control characters"),
            });
        }
        let mut reserved = self.registry_lock.lock();
        let raw_id = self.tenant_key(&tenant, key_id)?;
        if self.key_locked(&raw_id)? {
            return Ok(false);
        }
        let record = KeyLockRecord {
            tenant_uid: *tenant.as_bytes(),
            locked_ms: self.now_ms(),
            reason: reason.to_owned(),
        };
        let mut batch = Batch::default();
        let mut event = self.admin_record("api-key-locked", Some(key_id));
        event.note = Some(reason.to_owned());
        let _pending = self.audit_record_into(&mut batch, &tenant, event)?;
        self.commit_registry(&mut reserved, batch, &layout::key_lock_key(&raw_id), &layout::encode(&record))?;
        self.key_cache.remove(&raw_id);
        tracing::warn!(tenant = %tenant.short(), key_id, reason, "api key locked");
        Ok(true)
    }

    /// Unlocks an API key of `tenant`, with an audit event. Returns `false` if it was not locked.
    pub fn unlock_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<bool> {
        let _reserved = self.registry_lock.lock();
        let uid = self.tenant_info(tenant)?.uid;
        let raw_id = self.tenant_key(&uid, key_id)?;
        if !self.key_locked(&raw_id)? {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.delete(&self.sys()?, layout::key_lock_key(&raw_id));
        let _pending = self.audit_into(&mut batch, &uid, "api-key-unlocked", Some(key_id))?;
        self.sys_write(batch)?;
        tracing::info!(tenant = %uid.short(), key_id, "api key unlocked");
        Ok(true)
    }

    /// The raw id of an API key of `tenant`; not found for a malformed id, an unknown key or a key
    /// of another tenant alike.
    fn tenant_key(&self, tenant: &TenantUid, key_id: &str) -> Result<[u8; 16]> {
        match self.load_api_key(key_id)? {
            Some((raw_id, record)) if record.tenant_uid == *tenant.as_bytes() => Ok(raw_id),
            _ => Err(StorageError::NotFound { what: "api key" }),
        }
    }
}
