//! The registry: tenants and their API keys, sealed under the registry's own keys in the system
//! column family. Operator operations; they reach no tenant data. Every change commits fsynced, in
//! one batch with its audit event and, when it runs out, the registry cipher's encryption-count
//! reservation. Layouts: `layout/system.rs`.

use crate::engine::{Batch, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::keyring::ENCRYPTION_RESERVATION;
use crate::layout::{self, ApiKeyRecord, Placement, SYS_CF, SYSTEM_OWNER, TenantRecord};
use crate::scope::{KeyBinding, Role};
use crate::store::Store;
use crate::tenant::Location;
use bulkhead_crypto::{DataKey, OwnerCipher, Purpose, SealContext, random_bytes};
use std::fmt;

/// A tenant as the operator sees it.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// The tenant's name.
    pub name: TenantName,
    /// Its opaque uid.
    pub uid: TenantUid,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Where its records live.
    pub placement: Placement,
}

/// An API key as listed to the operator: never the secret.
#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    /// The public key id (the part of the key before the secret).
    pub key_id: String,
    /// The role it grants.
    pub role: Role,
    /// The operator's label.
    pub label: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Expiry, if any.
    pub expires_ms: Option<u64>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Whether it is locked (a burst or a run of refusals) until an operator unlocks it.
    pub locked: bool,
    /// Whom its searches run for.
    pub binding: KeyBinding,
    /// The break-glass access grant it was issued for, if any (a reader key that expires with it).
    pub grant_id: Option<String>,
}

/// A newly issued API key. The secret is shown once and never stored.
pub struct IssuedApiKey {
    /// The full key to hand to the client: `bk_<key id>_<secret>`.
    pub token: String,
    /// The public key id.
    pub key_id: String,
}

impl fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedApiKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Store {
    /// Seals a registry record into `batch` and commits it (fsynced), with the registry cipher's
    /// encryption-count reservation when it runs out. The caller holds `registry_lock`, whose guard is
    /// `reserved`; it moves only after the batch has committed.
    pub(crate) fn commit_registry(
        &self,
        reserved: &mut u64,
        batch: Batch,
        key: &[u8],
        record: &[u8],
    ) -> Result<()> {
        self.commit_registry_records(reserved, batch, &[(key, record)])
    }

    /// As [`Store::commit_registry`], with several records sealed into the one batch.
    pub(crate) fn commit_registry_records(
        &self,
        reserved: &mut u64,
        mut batch: Batch,
        records: &[(&[u8], &[u8])],
    ) -> Result<()> {
        let sys = self.sys()?;
        let mut next = *reserved;
        let seals = records.len() as u64;
        if self.system.encryptions() + seals > next {
            next = self.system.encryptions() + seals + ENCRYPTION_RESERVATION;
            let count_key = layout::encryption_count_key(&SYSTEM_OWNER, 1);
            batch.put(&sys, &count_key, layout::control_value(&self.system, &count_key, &next.to_be_bytes()));
        }
        for (key, record) in records {
            let ctx = SealContext { column_family: SYS_CF.as_bytes(), record_key: key };
            batch.put(&sys, key, self.system.seal(Purpose::Registry, ctx, record)?);
        }
        self.sys_write(batch)?;
        *reserved = next;
        Ok(())
    }

    /// Opens a sealed registry record stored at `key`.
    pub(crate) fn open_registry(&self, key: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Ok(self.system.open(
            Purpose::Registry,
            SealContext { column_family: SYS_CF.as_bytes(), record_key: key },
            sealed,
        )?)
    }

    /// The registry key of the tenant named `name`.
    pub(crate) fn tenant_registry_key(&self, name: &TenantName) -> Vec<u8> {
        layout::tenant_key(&self.system, name)
    }

    /// Creates a tenant with fresh keys, in the store's default tier
    /// ([`StoreOptions::default_placement`](crate::StoreOptions)).
    pub fn create_tenant(&self, name: &TenantName) -> Result<TenantInfo> {
        self.create_tenant_in(name, self.default_placement)
    }

    /// Creates a tenant with fresh keys in the tier `placement`.
    pub fn create_tenant_in(&self, name: &TenantName, placement: Placement) -> Result<TenantInfo> {
        let mut reserved = self.registry_lock.lock();
        let key = self.tenant_registry_key(name);
        let sys = self.sys()?;
        if self.db.get(&sys, &key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tenant" });
        }
        let uid = TenantUid::random();
        let record = TenantRecord {
            name: name.as_str().to_owned(),
            uid: *uid.as_bytes(),
            created_ms: self.now_ms(),
            placement,
        };
        // The place first: if we crash after this, an orphan empty column family (or instance)
        // remains, which open drops; the registry entry below is what makes the tenant exist. The
        // shared family is made once, by the first shared tenant.
        Location::of(&uid, placement).make(&self.db)?;
        let kek = self.kek(uid.as_bytes());
        let (naming, data) = (DataKey::generate(0), DataKey::generate(1));
        let mut batch = Batch::default();
        batch.put(&sys, layout::keyring_key(uid.as_bytes(), 0), kek.wrap(&naming).as_bytes());
        batch.put(&sys, layout::keyring_key(uid.as_bytes(), 1), kek.wrap(&data).as_bytes());
        // The write generation is a control record, tagged under the tenant's own naming key.
        let cipher = OwnerCipher::new(uid.as_bytes(), &naming, &[data], 1, 0)?;
        let write_key = layout::keyring_write_key(uid.as_bytes());
        batch.put(&sys, &write_key, layout::control_value(&cipher, &write_key, &1u32.to_be_bytes()));
        let place_key = layout::placement_key(uid.as_bytes());
        batch.put(&sys, &place_key, layout::control_value(&cipher, &place_key, &[placement.to_byte()]));
        drop(cipher);
        let _pending = self.audit_into(&mut batch, &uid, "tenant-created", None)?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        tracing::info!(tenant = %uid.short(), "tenant created");
        Ok(TenantInfo { name: name.clone(), uid, created_ms: record.created_ms, placement: record.placement })
    }

    /// Lists every tenant.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>> {
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::TENANT_PREFIX)) {
            let (key, value) = item?;
            let record: TenantRecord = layout::decode(&self.open_registry(&key, &value)?, "tenant")?;
            out.push(TenantInfo {
                name: TenantName::new(record.name)?,
                uid: TenantUid::from_bytes(record.uid),
                created_ms: record.created_ms,
                placement: record.placement,
            });
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    /// Looks a tenant up by name.
    pub fn tenant_info(&self, name: &TenantName) -> Result<TenantInfo> {
        let key = self.tenant_registry_key(name);
        let sealed = self.db.get(&self.sys()?, &key)?.ok_or(StorageError::NotFound { what: "tenant" })?;
        let record: TenantRecord = layout::decode(&self.open_registry(&key, &sealed)?, "tenant")?;
        Ok(TenantInfo {
            name: name.clone(),
            uid: TenantUid::from_bytes(record.uid),
            created_ms: record.created_ms,
            placement: record.placement,
        })
    }

    /// Issues an API key for a tenant. The returned token is the only copy of the secret.
    pub fn issue_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
    ) -> Result<IssuedApiKey> {
        self.issue_bound_api_key(tenant, role, label, expires_ms, KeyBinding::Service { on_behalf_of: false })
    }

    /// Issues an API key with a binding: a user's key (its searches run as that user) or a service
    /// key that may or may not act on behalf of users it names. The user and each group are 1 to
    /// `MAX_PRINCIPAL_BYTES` bytes; at most `MAX_PRINCIPAL_GROUPS` groups.
    pub fn issue_bound_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        validate_key_request(role, label, &binding)?;
        let info = self.tenant_info(tenant)?;
        let key_id: [u8; 16] = random_bytes();
        let secret: [u8; 32] = random_bytes();
        let record = ApiKeyRecord {
            tenant_uid: *info.uid.as_bytes(),
            secret_tag: layout::api_key_secret_tag(&self.system, &secret),
            role,
            label: label.to_owned(),
            created_ms: self.now_ms(),
            expires_ms,
            revoked: false,
            binding,
            grant: None,
        };
        let key = layout::apikey_key(&key_id);
        let mut reserved = self.registry_lock.lock();
        let mut batch = Batch::default();
        let _pending =
            self.audit_into(&mut batch, &info.uid, "api-key-issued", Some(&hex::encode(key_id)))?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        let key_id = hex::encode(key_id);
        tracing::info!(tenant = %info.uid.short(), key_id = %key_id, role = role.as_str(), "api key issued");
        Ok(IssuedApiKey { token: format!("bk_{key_id}_{}", hex::encode(secret)), key_id })
    }

    /// The API key record of a key id given in hex, with the id's bytes; `None` for a malformed or
    /// unknown id.
    pub(crate) fn load_api_key(&self, key_id_hex: &str) -> Result<Option<([u8; 16], ApiKeyRecord)>> {
        let mut key_id = [0u8; 16];
        if hex::decode_to_slice(key_id_hex, &mut key_id).is_err() {
            return Ok(None);
        }
        let key = layout::apikey_key(&key_id);
        let Some(sealed) = self.db.get(&self.sys()?, &key)? else { return Ok(None) };
        Ok(Some((key_id, layout::decode_api_key(&self.open_registry(&key, &sealed)?)?)))
    }

    /// Lists a tenant's API keys (never their secrets).
    pub fn list_api_keys(&self, tenant: &TenantName) -> Result<Vec<ApiKeyInfo>> {
        let info = self.tenant_info(tenant)?;
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::APIKEY_PREFIX)) {
            let (key, value) = item?;
            let record: ApiKeyRecord = layout::decode_api_key(&self.open_registry(&key, &value)?)?;
            if record.tenant_uid == *info.uid.as_bytes() {
                let raw_id: [u8; 16] =
                    layout::apikey_id(&key).try_into().map_err(|_| StorageError::Codec("api key"))?;
                out.push(ApiKeyInfo {
                    key_id: hex::encode(raw_id),
                    locked: self.key_locked(&raw_id)?,
                    role: record.role,
                    label: record.label,
                    created_ms: record.created_ms,
                    expires_ms: record.expires_ms,
                    revoked: record.revoked,
                    binding: record.binding,
                    grant_id: record.grant.map(hex::encode),
                });
            }
        }
        Ok(out)
    }

    /// Revokes an API key of `tenant`. A key of another tenant is reported as not found.
    pub fn revoke_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<()> {
        let mut reserved = self.registry_lock.lock();
        let info = self.tenant_info(tenant)?;
        let Some((raw_id, mut record)) = self.load_api_key(key_id)? else {
            return Err(StorageError::NotFound { what: "api key" });
        };
        if record.tenant_uid != *info.uid.as_bytes() {
            return Err(StorageError::NotFound { what: "api key" });
        }
        record.revoked = true;
        let key = layout::apikey_key(&raw_id);
        let mut batch = Batch::default();
        let _pending = self.audit_into(&mut batch, &info.uid, "api-key-revoked", Some(key_id))?;
        self.commit_registry(&mut reserved, batch, &key, &layout::encode(&record))?;
        // After the commit: a check that read the record before it cannot cache it (`keycache.rs`).
        self.key_cache.remove(&raw_id);
        tracing::info!(tenant = %info.uid.short(), key_id, "api key revoked");
        Ok(())
    }
}

/// Refuses a label over 128 bytes, and a user-bound key that is not a reader or whose user and
/// groups break their limits.
fn validate_key_request(role: Role, label: &str, binding: &KeyBinding) -> Result<()> {
    if label.len() > 128 {
        return Err(StorageError::InvalidArgument {
            field: "label",
            reason: "must be at most 128 bytes".into(),
        });
    }
    if let KeyBinding::User { user, groups } = binding {
        // A key bound to a user reads as that user; a write, though, concerns a document id
        // whatever its ACL, so a user-bound writer could overwrite or delete documents its user
        // may not read, and the answer would tell it they exist. Such keys are refused: writes go
        // through service keys.
        if role != Role::Reader {
            return Err(StorageError::InvalidArgument {
                field: "role",
                reason: "a key bound to a user must be a reader; issue a service key to write".into(),
            });
        }
        let bad = |name: &String| name.is_empty() || name.len() > crate::limits::MAX_PRINCIPAL_BYTES;
        if bad(user) || groups.iter().any(bad) || groups.len() > crate::limits::MAX_PRINCIPAL_GROUPS {
            return Err(StorageError::InvalidArgument {
                field: "binding",
                reason: format!(
                    "the user and each group are 1 to {} bytes, at most {} groups",
                    crate::limits::MAX_PRINCIPAL_BYTES,
                    crate::limits::MAX_PRINCIPAL_GROUPS
                ),
            });
        }
    }
    Ok(())
}
