//! Break-glass access grants: the approved, audited way for an operator to read a tenant's data,
//! or to give a tenant that lost its admin keys (or an imported one, which has none) a tenant-admin
//! key. An operator requests a grant for one tenant with a reason, a role (reader unless it asks
//! for another) and a time to live; a second credential approves it (which credential may do what
//! is the server's rule: the storage layer records what was decided); the operator then activates
//! it, which issues one API key of the grant's role for that tenant that expires with the grant and
//! whose record names the grant. Revoking the grant revokes its key at once.
//!
//! A break-glass key is an ordinary API key: its scope comes from [`Store::authenticate`], it is
//! refused after its expiry, its revocation or its tenant's deletion like any key, and its role
//! allows no write, no collection change and no audit export. What sets it apart is in its record
//! and its scope ([`TenantScope::grant_id`](crate::TenantScope::grant_id)): every access event it
//! leaves carries the note `break-glass grant <grant id>`, and it is audited even when the database
//! turns access auditing off. A reader grant's key allows no write; a tenant-admin grant's key can
//! do what any tenant-admin key does, including issue keys that outlive it (each such issue is an
//! event that names the grant): that is what recovery needs, and what its approver approves.
//!
//! Every step (requested, approved, a refused approval, activated, revoked) is an event in the
//! tenant's own trail, in the same fsynced batch as the change, with the grant id and the reason in
//! its note; the tenant exports them with its own tenant-admin key. The reason is sealed in the grant
//! record, and never logged.

use crate::engine::{Batch, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::layout::{self, ApiKeyRecord, GrantRecord};
use crate::registry::{IssuedApiKey, TenantInfo};
use crate::scope::{KeyBinding, Role};
use crate::store::Store;
use bulkhead_crypto::random_bytes;
use std::fmt;
use std::time::Duration;

/// A grant's time to live when the request gives none.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(3600);
/// The shortest time to live a grant may ask for.
pub const MIN_GRANT_TTL: Duration = Duration::from_secs(60);
/// The longest time to live a grant may ask for.
pub const MAX_GRANT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest reason, in bytes.
pub const MAX_GRANT_REASON_BYTES: usize = 512;

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Requested, waiting for the approver credential.
    Pending,
    /// Approved; the requester may activate it (once) to receive its key.
    Approved,
    /// Its key was issued and works until the grant expires or is revoked.
    Active,
    /// Past its expiry (its key, if any, is refused).
    Expired,
    /// Revoked (its key, if any, is revoked with it).
    Revoked,
}

impl GrantState {
    /// `pending`, `approved`, `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Approved => "approved",
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

/// A grant as the operator sees it.
#[derive(Clone)]
pub struct AccessGrantInfo {
    /// The grant's public id (32 hex characters).
    pub grant_id: String,
    /// The tenant it opens.
    pub tenant: TenantUid,
    /// The operator's reason.
    pub reason: String,
    /// When it was requested (milliseconds since the Unix epoch).
    pub requested_ms: u64,
    /// When it and its key stop working.
    pub expires_ms: u64,
    /// When the approver credential approved it.
    pub approved_ms: Option<u64>,
    /// The role of the key its activation issues (reader unless the request asked for another).
    pub role: Role,
    /// The key issued at its activation.
    pub key_id: Option<String>,
    /// When it was revoked.
    pub revoked_ms: Option<u64>,
    /// Where it stands now.
    pub state: GrantState,
    /// What the approver weighs a grant against, from the tenant as it stands now: when it was
    /// last imported from an archive ([`TenantInfo::imported_ms`]), and when the
    /// operator last revoked one of its keys ([`TenantInfo::operator_revoked_keys_ms`]).
    pub tenant_imported_ms: Option<u64>,
    /// See `tenant_imported_ms`.
    pub operator_revoked_keys_ms: Option<u64>,
}

impl fmt::Debug for AccessGrantInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reason may describe the tenant's data: never printed.
        f.debug_struct("AccessGrantInfo")
            .field("grant_id", &self.grant_id)
            .field("tenant", &self.tenant)
            .field("state", &self.state)
            .field("role", &self.role)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// The note every access event of a break-glass key carries.
pub(crate) fn break_glass_note(grant: &[u8; 16]) -> String {
    format!("break-glass grant {}", hex::encode(grant))
}

/// Whether `c` is an invisible formatting character (zero-width, bidirectional override or
/// isolate, word joiner, byte-order mark): one that would make a reason display as other text.
fn changes_display(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}')
        || matches!(c, '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// The note of a grant's own events: its id, its role, its expiry and its reason.
fn grant_note(grant: &[u8; 16], record: &GrantRecord) -> String {
    let (id, role) = (hex::encode(grant), record.role.as_str());
    format!("grant {id}; role {role}; expires_ms {}; reason: {}", record.expires_ms, record.reason)
}

/// Refuses an empty, blank, too long or control-character reason, and a time to live outside
/// [`MIN_GRANT_TTL`]..=[`MAX_GRANT_TTL`]. The errors never echo the reason.
fn validate_request(reason: &str, ttl: Duration) -> Result<()> {
    if reason.trim().is_empty()
        || reason.len() > MAX_GRANT_REASON_BYTES
        || reason.chars().any(|c| c.is_control() || changes_display(c))
    {
        return Err(StorageError::InvalidArgument {
            field: "reason",
            reason: format!(
                "required: 1 to {MAX_GRANT_REASON_BYTES} bytes, not blank, no control or invisible \
                 formatting characters"
            ),
        });
    }
    if !(MIN_GRANT_TTL..=MAX_GRANT_TTL).contains(&ttl) {
        return Err(StorageError::InvalidArgument {
            field: "ttl",
            reason: format!(
                "must be {} to {} seconds (default {})",
                MIN_GRANT_TTL.as_secs(),
                MAX_GRANT_TTL.as_secs(),
                DEFAULT_GRANT_TTL.as_secs()
            ),
        });
    }
    Ok(())
}

/// Why a tenant-admin grant is refused for a tenant that has a tenant-admin key.
const ADMIN_GRANT_REFUSAL: &str = "is of role tenant-admin, which is for a tenant without a live \
    tenant-admin key (one that lost them all, or an imported one); this tenant has one, and its \
    tenant-admins issue its keys";

impl Store {
    /// Requests a break-glass grant for a key of `role` (reader, when `None`) of `tenant` for
    /// `reason`, valid for `ttl` from now (the default is [`DEFAULT_GRANT_TTL`]). It gives no access
    /// until it is approved and activated.
    pub fn request_access_grant(
        &self,
        tenant: &TenantName,
        reason: &str,
        ttl: Option<Duration>,
        role: Option<Role>,
    ) -> Result<AccessGrantInfo> {
        let ttl = ttl.unwrap_or(DEFAULT_GRANT_TTL);
        validate_request(reason, ttl)?;
        let mut reserved = self.registry_lock.lock();
        let info = self.tenant_info(tenant)?;
        let role = role.unwrap_or(Role::Reader);
        if role == Role::TenantAdmin && self.has_live_admin_key(&info.uid)? {
            return Err(StorageError::GrantState { reason: ADMIN_GRANT_REFUSAL });
        }
        let grant_id: [u8; 16] = random_bytes();
        let now = self.now_ms();
        let record = GrantRecord {
            tenant_uid: *info.uid.as_bytes(),
            reason: reason.to_owned(),
            requested_ms: now,
            expires_ms: now.saturating_add(ttl.as_millis() as u64),
            approved_ms: None,
            key_id: None,
            revoked_ms: None,
            role,
        };
        let mut batch = Batch::default();
        let mut event = self.admin_record("access-grant-requested", None);
        event.note = Some(grant_note(&grant_id, &record));
        let _pending = self.audit_record_into(&mut batch, &info.uid, event)?;
        self.commit_registry(&mut reserved, batch, &layout::grant_key(&grant_id), &layout::encode(&record))?;
        let grant = hex::encode(grant_id);
        tracing::warn!(tenant = %info.uid.short(), grant = %grant, "break-glass grant requested");
        self.grant_info(&info, grant_id, record)
    }

    /// Whether the tenant `uid` has a tenant-admin key that is neither revoked, expired nor a
    /// break-glass key.
    fn has_live_admin_key(&self, uid: &TenantUid) -> Result<bool> {
        let now = self.now_ms();
        Ok(self.key_records_of(uid)?.iter().any(|(_, key)| {
            key.role == Role::TenantAdmin
                && !key.revoked
                && key.grant.is_none()
                && key.expires_ms.is_none_or(|t| t > now)
        }))
    }

    /// Approves a pending grant of `tenant`. The caller has checked that the approving credential
    /// is the second one (the server's approver token), not the requester's. A grant that is not
    /// pending (approved already, expired, revoked) is refused with
    /// [`StorageError::GrantState`], and the refusal is an event in the tenant's trail.
    pub fn approve_access_grant(&self, tenant: &TenantName, grant_id: &str) -> Result<AccessGrantInfo> {
        self.approve_access_grant_as(tenant, grant_id, None)
    }

    /// As [`Store::approve_access_grant`], for a grant of the role the approver names: a grant of
    /// another role is refused (`GrantState`) and the refusal is an event, so that an approval
    /// given for a reader's grant never opens a tenant-admin's.
    pub fn approve_access_grant_as(
        &self,
        tenant: &TenantName,
        grant_id: &str,
        role: Option<Role>,
    ) -> Result<AccessGrantInfo> {
        let mut reserved = self.registry_lock.lock();
        let (info, raw_id, mut record) = self.load_grant(tenant, grant_id)?;
        let state = self.grant_state(&record)?;
        let other_role = role.is_some_and(|role| role != record.role);
        if state != GrantState::Pending || other_role {
            let refusal = match state {
                GrantState::Expired => "has expired",
                GrantState::Revoked => "was revoked",
                GrantState::Pending => "is of another role than the approval names",
                _ => "was approved already",
            };
            let refused = "access-grant-approval-refused";
            self.write_grant_refusal(&info.uid, &raw_id, &record, refused, "failed-precondition")?;
            return Err(StorageError::GrantState { reason: refusal });
        }
        record.approved_ms = Some(self.now_ms());
        let mut batch = Batch::default();
        let mut event = self.admin_record("access-grant-approved", None);
        event.note = Some(grant_note(&raw_id, &record));
        let _pending = self.audit_record_into(&mut batch, &info.uid, event)?;
        self.commit_registry(&mut reserved, batch, &layout::grant_key(&raw_id), &layout::encode(&record))?;
        tracing::warn!(tenant = %info.uid.short(), grant = grant_id, "break-glass grant approved");
        self.grant_info(&info, raw_id, record)
    }

    /// Records in the tenant's trail that an approval of its grant was refused (`outcome`: for
    /// example `permission-denied` when the requester's own credential tried to approve). Errors
    /// with [`StorageError::NotFound`] for a grant that is not the tenant's.
    pub fn refuse_access_grant_approval(
        &self,
        tenant: &TenantName,
        grant_id: &str,
        outcome: &str,
    ) -> Result<()> {
        let _reserved = self.registry_lock.lock();
        let (info, raw_id, record) = self.load_grant(tenant, grant_id)?;
        self.write_grant_refusal(&info.uid, &raw_id, &record, "access-grant-approval-refused", outcome)?;
        tracing::warn!(tenant = %info.uid.short(), grant = grant_id, outcome, "break-glass approval refused");
        Ok(())
    }

    /// Activates an approved, unexpired grant, once: issues an API key of the grant's role for its
    /// tenant that expires with the grant and whose record names it. The returned token is the only
    /// copy of the key's secret (stored, like every key's, as a keyed hash only).
    pub fn activate_access_grant(
        &self,
        tenant: &TenantName,
        grant_id: &str,
    ) -> Result<(AccessGrantInfo, IssuedApiKey)> {
        let mut reserved = self.registry_lock.lock();
        let (info, raw_id, mut record) = self.load_grant(tenant, grant_id)?;
        let refusal = match self.grant_state(&record)? {
            // Checked again: a tenant-admin key may have come since the request.
            GrantState::Approved
                if record.role == Role::TenantAdmin && self.has_live_admin_key(&info.uid)? =>
            {
                Some(ADMIN_GRANT_REFUSAL)
            }
            GrantState::Approved => None,
            GrantState::Pending => Some("is not approved yet: the approver credential approves it first"),
            GrantState::Active => Some("was activated already (its key is shown once); request a new grant"),
            GrantState::Expired => Some("has expired"),
            GrantState::Revoked => Some("was revoked"),
        };
        if let Some(reason) = refusal {
            // A refused activation (before approval, or a second key asked for) is evidence too.
            let refused = "access-grant-activation-refused";
            self.write_grant_refusal(&info.uid, &raw_id, &record, refused, "failed-precondition")?;
            return Err(StorageError::GrantState { reason });
        }
        let key_id: [u8; 16] = random_bytes();
        let secret = zeroize::Zeroizing::new(random_bytes::<32>());
        // The tenant has had a key now: the operator's first-key door closes, as for its own keys.
        let (tenant_key, mut tenant_record) = self.tenant_record(tenant)?;
        let marker = (!tenant_record.keys_issued).then(|| {
            tenant_record.keys_issued = true;
            layout::encode(&tenant_record)
        });
        let key_record = ApiKeyRecord {
            tenant_uid: *info.uid.as_bytes(),
            secret_tag: layout::api_key_secret_tag(&self.system, secret.as_ref()),
            role: record.role,
            label: format!("break-glass {}", hex::encode(raw_id)),
            created_ms: self.now_ms(),
            expires_ms: Some(record.expires_ms),
            revoked: false,
            binding: KeyBinding::Service { on_behalf_of: false },
            grant: Some(raw_id),
        };
        record.key_id = Some(key_id);
        let key_hex = hex::encode(key_id);
        let mut batch = Batch::default();
        let mut event = self.admin_record("access-grant-activated", Some(&key_hex));
        event.note = Some(grant_note(&raw_id, &record));
        let _pending = self.audit_record_into(&mut batch, &info.uid, event)?;
        let grant_key = layout::grant_key(&raw_id);
        let (grant_bytes, key_bytes) = (layout::encode(&record), layout::encode(&key_record));
        let api_key = layout::apikey_key(&key_id);
        batch.put(&self.sys()?, layout::apikey_of_key(info.uid.as_bytes(), &key_id), []);
        let mut records = vec![(grant_key.as_slice(), grant_bytes.as_slice()), (&api_key, &key_bytes)];
        records.extend(marker.as_deref().map(|bytes| (tenant_key.as_slice(), bytes)));
        self.commit_registry_records(&mut reserved, batch, &records)?;
        tracing::warn!(
            tenant = %info.uid.short(),
            grant = grant_id,
            key_id = %key_hex,
            role = record.role.as_str(),
            "break-glass grant activated: key issued"
        );
        let token = format!("bk_{key_hex}_{}", hex::encode(secret.as_ref()));
        // Built from what was just written, without another read: a failed read here would lose
        // the only copy of the token of a grant that cannot be activated again.
        let info = grant_info_as(&info, raw_id, record, GrantState::Active);
        Ok((info, IssuedApiKey { token, key_id: key_hex }))
    }

    /// Revokes a grant of `tenant` and, if it was activated, its key, in one batch; the key is
    /// refused from the next call on (its cached entry goes with the commit). Revoking a revoked
    /// grant changes nothing.
    pub fn revoke_access_grant(&self, tenant: &TenantName, grant_id: &str) -> Result<AccessGrantInfo> {
        let mut reserved = self.registry_lock.lock();
        let (info, raw_id, mut record) = self.load_grant(tenant, grant_id)?;
        if record.revoked_ms.is_some() {
            return self.grant_info(&info, raw_id, record);
        }
        record.revoked_ms = Some(self.now_ms());
        let key = match record.key_id {
            Some(key_id) => match self.load_api_key(&hex::encode(key_id))? {
                Some((raw, mut key_record)) if key_record.tenant_uid == *info.uid.as_bytes() => {
                    key_record.revoked = true;
                    Some((raw, layout::encode(&key_record)))
                }
                _ => None,
            },
            None => None,
        };
        let key_hex = record.key_id.map(hex::encode);
        let mut batch = Batch::default();
        let mut event = self.admin_record("access-grant-revoked", key_hex.as_deref());
        event.note = Some(grant_note(&raw_id, &record));
        let _pending = self.audit_record_into(&mut batch, &info.uid, event)?;
        let grant_key = layout::grant_key(&raw_id);
        let grant_bytes = layout::encode(&record);
        match &key {
            Some((raw, key_bytes)) => {
                let api_key = layout::apikey_key(raw);
                self.commit_registry_records(
                    &mut reserved,
                    batch,
                    &[(&grant_key, &grant_bytes), (&api_key, key_bytes)],
                )?;
                // After the commit: a check that read the record before it cannot cache it.
                self.key_cache.remove(raw);
            }
            None => self.commit_registry(&mut reserved, batch, &grant_key, &grant_bytes)?,
        }
        tracing::warn!(tenant = %info.uid.short(), grant = grant_id, "break-glass grant revoked");
        self.grant_info(&info, raw_id, record)
    }

    /// Every grant of `tenant`, oldest first.
    pub fn list_access_grants(&self, tenant: &TenantName) -> Result<Vec<AccessGrantInfo>> {
        let info = self.tenant_info(tenant)?;
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::GRANT_PREFIX)) {
            let (key, value) = item?;
            let record = layout::decode_grant(&self.open_registry(&key, &value)?)?;
            if record.tenant_uid == *info.uid.as_bytes() {
                let raw_id = layout::grant_id(&key).ok_or(StorageError::Codec("access grant"))?;
                out.push(self.grant_info(&info, raw_id, record)?);
            }
        }
        out.sort_by(|a, b| a.requested_ms.cmp(&b.requested_ms).then(a.grant_id.cmp(&b.grant_id)));
        Ok(out)
    }

    /// The registry keys of every grant of the tenant `owner` (its deletion removes them).
    pub(crate) fn grant_keys_of(&self, owner: &[u8; 16]) -> Result<Vec<Vec<u8>>> {
        let sys = self.sys()?;
        let mut keys = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::GRANT_PREFIX)) {
            let (key, value) = item?;
            let record = layout::decode_grant(&self.open_registry(&key, &value)?)?;
            if record.tenant_uid == *owner {
                keys.push(key.to_vec());
            }
        }
        Ok(keys)
    }

    /// The grant `grant_id` (hex) of `tenant`: one and the same [`StorageError::NotFound`] for a
    /// malformed id, an unknown grant and another tenant's.
    /// An unknown tenant is the same error too: the approver credential, which may not list
    /// tenants, learns nothing of their names here.
    fn load_grant(&self, tenant: &TenantName, grant_id: &str) -> Result<(TenantInfo, [u8; 16], GrantRecord)> {
        let not_found = StorageError::NotFound { what: "access grant" };
        let info = match self.tenant_info(tenant) {
            Err(StorageError::NotFound { .. }) => return Err(not_found),
            other => other?,
        };
        let mut raw_id = [0u8; 16];
        if hex::decode_to_slice(grant_id, &mut raw_id).is_err() {
            return Err(not_found);
        }
        let key = layout::grant_key(&raw_id);
        let Some(sealed) = self.db.get(&self.sys()?, &key)? else { return Err(not_found) };
        let record = layout::decode_grant(&self.open_registry(&key, &sealed)?)?;
        if record.tenant_uid != *info.uid.as_bytes() {
            return Err(not_found);
        }
        Ok((info, raw_id, record))
    }

    /// Where a grant stands now. An activated grant whose key was revoked on its own (a
    /// revoke-all, say) counts as revoked.
    fn grant_state(&self, record: &GrantRecord) -> Result<GrantState> {
        if record.revoked_ms.is_some() {
            return Ok(GrantState::Revoked);
        }
        if record.expires_ms <= self.now_ms() {
            return Ok(GrantState::Expired);
        }
        match record.key_id {
            Some(key_id) => {
                let key = self.load_api_key(&hex::encode(key_id))?;
                Ok(if key.is_some_and(|(_, k)| !k.revoked) {
                    GrantState::Active
                } else {
                    GrantState::Revoked
                })
            }
            None if record.approved_ms.is_some() => Ok(GrantState::Approved),
            None => Ok(GrantState::Pending),
        }
    }

    fn grant_info(
        &self,
        tenant: &TenantInfo,
        raw_id: [u8; 16],
        record: GrantRecord,
    ) -> Result<AccessGrantInfo> {
        let state = self.grant_state(&record)?;
        Ok(grant_info_as(tenant, raw_id, record, state))
    }

    /// Writes a refused step (`operation`: an approval or an activation) of a grant to its
    /// tenant's trail (fsynced).
    fn write_grant_refusal(
        &self,
        uid: &TenantUid,
        raw_id: &[u8; 16],
        record: &GrantRecord,
        operation: &str,
        outcome: &str,
    ) -> Result<()> {
        let mut batch = Batch::default();
        let mut event = self.admin_record(operation, None);
        event.outcome = outcome.to_owned();
        event.note = Some(grant_note(raw_id, record));
        let pending = self.audit_record_into(&mut batch, uid, event)?;
        self.sys_write(batch)?;
        pending.committed();
        Ok(())
    }
}

/// A grant's public view in the state `state`, with its tenant's context as `tenant` shows it.
fn grant_info_as(
    tenant: &TenantInfo,
    raw_id: [u8; 16],
    record: GrantRecord,
    state: GrantState,
) -> AccessGrantInfo {
    AccessGrantInfo {
        grant_id: hex::encode(raw_id),
        tenant: TenantUid::from_bytes(record.tenant_uid),
        reason: record.reason,
        requested_ms: record.requested_ms,
        expires_ms: record.expires_ms,
        approved_ms: record.approved_ms,
        role: record.role,
        key_id: record.key_id.map(hex::encode),
        revoked_ms: record.revoked_ms,
        state,
        tenant_imported_ms: tenant.imported_ms,
        operator_revoked_keys_ms: tenant.operator_revoked_keys_ms,
    }
}
