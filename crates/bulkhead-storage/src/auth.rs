//! The two doors that mint a [`TenantScope`] ([`Store::authenticate`], an API key checked in
//! constant time, and [`Store::trusted_host_scope`], with a written reason), the refusals of
//! presented keys folded into at most one audit event per key per second, and [`Store::tenant`],
//! the handle a scope opens. No other file builds a scope (checked by `tests/it/invariants.rs`).

use crate::audit::AccessEvent;
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::keycache::CachedKey;
use crate::layout;
use crate::scope::{KeyBinding, Role, TenantScope};
use crate::store::Store;
use crate::tenant::TenantHandle;
use bulkhead_crypto::constant_time_eq;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A presented API key, parsed: its id as given and as bytes, and the keyed hash of its secret.
struct Presented<'t> {
    key_id: &'t str,
    raw_key_id: [u8; 16],
    tag: Zeroizing<[u8; 32]>,
}

impl<'t> Presented<'t> {
    /// `None` for anything that is not `bk_<32 hex digits>_<64 hex digits>`.
    fn parse(store: &Store, token: &'t str) -> Option<Presented<'t>> {
        let (key_id, secret_hex) = token.strip_prefix("bk_")?.split_once('_')?;
        let mut raw_key_id = [0u8; 16];
        hex::decode_to_slice(key_id, &mut raw_key_id).ok()?;
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret_hex, secret.as_mut()).ok()?;
        let tag = Zeroizing::new(layout::api_key_secret_tag(&store.system, secret.as_ref()));
        Some(Presented { key_id, raw_key_id, tag })
    }
}

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
    /// [`StorageError::KeyLocked`]. A key that authenticated before is checked from memory
    /// ([`Store::authenticate_cached`]); any other presentation reads the key's record.
    pub fn authenticate(&self, token: &str) -> Result<TenantScope> {
        let Some(presented) = Presented::parse(self, token) else {
            return Err(StorageError::Unauthenticated);
        };
        if let Some(scope) = self.cached_scope(&presented) {
            return Ok(scope);
        }
        // Read before the record, so that a removal racing this check keeps the record out.
        let read_at = self.key_cache.epoch();
        let Some((raw_key_id, record)) = self.load_api_key(presented.key_id)? else {
            return Err(StorageError::Unauthenticated);
        };
        let secret_ok = constant_time_eq(presented.tag.as_ref(), &record.secret_tag);
        let expired = record.expires_ms.is_some_and(|t| t <= self.now_ms());
        let uid = TenantUid::from_bytes(record.tenant_uid);
        let key_id = presented.key_id;
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
        // A key missing from its tenant's index would be hidden from the tenant's own list (and its
        // limit and deletion): every key is written with its entry, so one without is refused, and
        // said, rather than served unseen.
        if self.db.get(&self.sys()?, layout::apikey_of_key(&record.tenant_uid, &raw_key_id))?.is_none() {
            tracing::error!(tenant = %uid.short(), "an api key record has no index entry; refused");
            return Err(StorageError::Unauthenticated);
        }
        // A key whose tenant is gone authenticates nobody.
        self.load_tenant(uid).map_err(|e| match e {
            StorageError::NotFound { .. } => StorageError::Unauthenticated,
            other => other,
        })?;
        let cached = CachedKey {
            tenant: uid,
            secret_tag: Zeroizing::new(record.secret_tag),
            role: record.role,
            binding: record.binding,
            expires_ms: record.expires_ms,
            grant: record.grant,
        };
        let scope = self.mint(raw_key_id, &cached);
        self.key_cache.insert(read_at, raw_key_id, cached);
        Ok(scope)
    }

    /// The scope of an API key that authenticated before and still would, checked from memory
    /// alone: no read, no write, no audit event. `None` means only that memory cannot tell (a key
    /// not cached, a wrong secret, an expired key, a malformed token): ask
    /// [`Store::authenticate`], which reads the record and records a refusal.
    pub fn authenticate_cached(&self, token: &str) -> Option<TenantScope> {
        self.cached_scope(&Presented::parse(self, token)?)
    }

    fn cached_scope(&self, presented: &Presented<'_>) -> Option<TenantScope> {
        let cached = self.key_cache.get(&presented.raw_key_id)?;
        let secret_ok = constant_time_eq(presented.tag.as_ref(), cached.secret_tag.as_ref());
        (secret_ok && !cached.expired(self.now_ms())).then(|| self.mint(presented.raw_key_id, &cached))
    }

    /// Whether a key of `tenant` is cached and unexpired.
    fn still_cached(&self, key_id: &[u8; 16], tenant: TenantUid) -> bool {
        self.key_cache.get(key_id).is_some_and(|k| k.tenant == tenant && !k.expired(self.now_ms()))
    }

    /// The scope of an API key that authenticated.
    fn mint(&self, raw_key_id: [u8; 16], key: &CachedKey) -> TenantScope {
        TenantScope {
            tenant: key.tenant,
            store_instance: self.instance,
            role: key.role,
            key_id: Some(raw_key_id),
            binding: key.binding.clone(),
            grant: key.grant,
        }
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
        let note = scope.grant.as_ref().map(crate::grant::break_glass_note);
        self.audit_access(
            scope.tenant,
            &AccessEvent {
                operation,
                key_id: key_id.as_deref(),
                outcome,
                note: note.as_deref(),
                ..AccessEvent::default()
            },
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
            grant: None,
        })
    }

    /// The data handle of the scope's tenant: the only way to its records.
    pub fn tenant<'s>(&'s self, scope: &TenantScope) -> Result<TenantHandle<'s>> {
        if scope.store_instance != self.instance {
            return Err(StorageError::ForeignScope);
        }
        if let Some(key_id) = &scope.key_id
            && !self.still_cached(key_id, scope.tenant)
        {
            // Not in memory: the record says (a cached key is neither revoked nor locked, since
            // both remove it).
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
