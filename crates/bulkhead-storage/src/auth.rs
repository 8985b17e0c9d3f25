//! The two doors that mint a [`TenantScope`] ([`Store::authenticate`], an API key checked in
//! constant time, and [`Store::trusted_host_scope`], with a written reason), the refusals of
//! presented keys folded into at most one audit event per key per second, and [`Store::tenant`],
//! the handle a scope opens. No other file builds a scope (checked by `tests/it/invariants.rs`).

use crate::audit::AccessEvent;
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout;
use crate::scope::{KeyBinding, Role, TenantScope};
use crate::store::Store;
use crate::tenant::TenantHandle;
use bulkhead_crypto::constant_time_eq;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one refusal event per API key id and kind of refusal (wrong secret, revoked, expired) per
/// this long: a client repeating a wrong secret for a known key id cannot grow the tenant's trail
/// faster, and each event says how many refusals it stands for. Measured on the store's
/// [`Clock`](crate::Clock).
pub const REFUSAL_EVENT_EVERY: Duration = Duration::from_secs(1);

/// Key ids whose refusals are tracked at once; beyond it, entries older than a minute are dropped
/// (their folded count, if any, is logged).
const MAX_TRACKED_REFUSALS: usize = 10_000;

/// Per API key id and kind of refusal, refused presentations not yet written to the audit trail.
#[derive(Default)]
pub(crate) struct RefusalLog(Mutex<HashMap<([u8; 16], &'static str), Refusals>>);

/// Refusals of one key id within the current window.
struct Refusals {
    /// When the last event for this key id was written.
    written_at: Instant,
    /// Refusals since then that were folded into the next event instead of writing their own.
    folded: u64,
}

impl RefusalLog {
    /// Counts one refusal of `key_id` for `outcome`: `None` if it is folded into the next event,
    /// or the number of earlier refusals folded into the event to write now. `now` is read from
    /// the store's clock.
    fn count(&self, key_id: [u8; 16], outcome: &'static str, now: Instant) -> Option<u64> {
        let mut refusals = self.0.lock();
        if refusals.len() >= MAX_TRACKED_REFUSALS {
            refusals.retain(|_, r| {
                let keep = now.duration_since(r.written_at) < Duration::from_secs(60);
                if !keep && r.folded > 0 {
                    tracing::warn!(
                        folded = r.folded,
                        "refused credential presentations dropped from tracking before their event"
                    );
                }
                keep
            });
        }
        match refusals.get_mut(&(key_id, outcome)) {
            Some(r) if now.duration_since(r.written_at) < REFUSAL_EVENT_EVERY => {
                r.folded += 1;
                None
            }
            Some(r) => {
                let folded = r.folded;
                *r = Refusals { written_at: now, folded: 0 };
                Some(folded)
            }
            None => {
                refusals.insert((key_id, outcome), Refusals { written_at: now, folded: 0 });
                Some(0)
            }
        }
    }
}

impl Store {
    /// Checks an API key (`bk_<key id>_<secret>`) against the keyring, in constant time, and mints a
    /// scope for its tenant and role. Unknown, malformed, revoked and expired keys all get
    /// [`StorageError::Unauthenticated`]; a locked key (see `keylock.rs`) gets
    /// [`StorageError::KeyLocked`].
    pub fn authenticate(&self, token: &str) -> Result<TenantScope> {
        let mut parts = token.strip_prefix("bk_").unwrap_or("").splitn(2, '_');
        let (Some(key_id), Some(secret_hex)) = (parts.next(), parts.next()) else {
            return Err(StorageError::Unauthenticated);
        };
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(secret_hex, secret.as_mut()).is_err() {
            return Err(StorageError::Unauthenticated);
        }
        let presented = layout::api_key_secret_tag(&self.system, secret.as_ref());
        let Some((raw_key_id, record)) = self.load_api_key(key_id)? else {
            return Err(StorageError::Unauthenticated);
        };
        let secret_ok = constant_time_eq(&presented, &record.secret_tag);
        let expired = record.expires_ms.is_some_and(|t| t <= self.now_ms());
        let uid = TenantUid::from_bytes(record.tenant_uid);
        if !secret_ok || record.revoked || expired {
            // The key names its tenant: the refusal goes into that tenant's trail (the caller still
            // learns only "unauthenticated"). A key of a deleted tenant is gone with its records.
            let outcome = if !secret_ok {
                "wrong-secret"
            } else if record.revoked {
                "revoked-key"
            } else {
                "expired-key"
            };
            self.record_refused_key(uid, raw_key_id, key_id, outcome)?;
            return Err(StorageError::Unauthenticated);
        }
        // A locked key proved its secret, so it may learn why it is refused.
        if self.key_locked(&raw_key_id)? {
            self.record_refused_key(uid, raw_key_id, key_id, "locked-key")?;
            return Err(StorageError::KeyLocked);
        }
        // A key whose tenant is gone authenticates nobody.
        self.load_tenant(uid).map_err(|e| match e {
            StorageError::NotFound { .. } => StorageError::Unauthenticated,
            other => other,
        })?;
        Ok(TenantScope {
            tenant: uid,
            store_instance: self.instance,
            role: record.role,
            key_id: Some(raw_key_id),
            binding: record.binding,
        })
    }

    /// Writes the refusal of a presented key to its tenant's trail, at most once per
    /// [`REFUSAL_EVENT_EVERY`] per key id and outcome: a refusal inside the window is counted, and
    /// the next event of that key id and outcome says how many it stands for. Nothing is written
    /// under a global lock: only the key id's entry and the tenant's own chain are touched.
    fn record_refused_key(
        &self,
        uid: TenantUid,
        raw_key_id: [u8; 16],
        key_id: &str,
        outcome: &'static str,
    ) -> Result<()> {
        let Some(folded) = self.refusals.count(raw_key_id, outcome, self.clock().now()) else {
            return Ok(());
        };
        let note = (folded > 0).then(|| format!("{folded} more refusals of this key before this one"));
        self.audit_access(
            uid,
            &AccessEvent {
                operation: "authenticate",
                key_id: Some(key_id),
                outcome,
                note: note.as_deref(),
                ..AccessEvent::default()
            },
        )
    }

    /// Records in the scope's tenant trail that a request with this scope was refused before it
    /// reached the tenant's data (a role below the operation's, a malformed request).
    pub fn audit_refusal(&self, scope: &TenantScope, operation: &str, outcome: &str) -> Result<()> {
        let key_id = scope.key_id();
        self.audit_access(
            scope.tenant,
            &AccessEvent { operation, key_id: key_id.as_deref(), outcome, ..AccessEvent::default() },
        )
    }

    /// Mints a tenant-admin scope for `tenant` without a credential, for a process that embeds the
    /// database and is itself the trust boundary (a test, a migration, a single-tenant app). The
    /// reason is logged; grep for this name when auditing a code base.
    pub fn trusted_host_scope(&self, tenant: &TenantName, reason: &'static str) -> Result<TenantScope> {
        let info = self.tenant_info(tenant)?;
        self.load_tenant(info.uid)?;
        tracing::warn!(tenant = %info.uid.short(), reason, "trusted-host scope minted");
        Ok(TenantScope {
            tenant: info.uid,
            store_instance: self.instance,
            role: Role::TenantAdmin,
            key_id: None,
            binding: KeyBinding::Service { on_behalf_of: true },
        })
    }

    /// The data handle of the scope's tenant: the only way to its records.
    pub fn tenant<'s>(&'s self, scope: &TenantScope) -> Result<TenantHandle<'s>> {
        if scope.store_instance != self.instance {
            return Err(StorageError::ForeignScope);
        }
        if let Some(key_id) = &scope.key_id {
            let still_valid = self.load_api_key(&hex::encode(key_id))?.is_some_and(|(_, record)| {
                !record.revoked && record.expires_ms.is_none_or(|t| t > self.now_ms())
            });
            if !still_valid {
                return Err(StorageError::Unauthenticated);
            }
            if self.key_locked(key_id)? {
                return Err(StorageError::KeyLocked);
            }
        }
        let state = self.load_tenant(scope.tenant)?;
        TenantHandle::new(self, state, scope)
    }
}
