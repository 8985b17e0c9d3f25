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
use crate::tenant::{Location, TenantHandle};
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
    /// When it was last imported from an archive (a copy of another tenant under a new name, or a
    /// restore under its own), if ever: its data came through the operator's hands, and it has no
    /// keys, so what an approver weighs a tenant-admin grant for it against.
    pub imported_ms: Option<u64>,
    /// When the operator last revoked one of its API keys (`RevokeApiKey`, `RevokeAllApiKeys`), if
    /// ever: a tenant that lost its admin keys that way is one the operator made eligible for a
    /// tenant-admin grant.
    pub operator_revoked_keys_ms: Option<u64>,
}

impl TenantInfo {
    /// The operator's view of the registry record `record` of the tenant `name`.
    pub(crate) fn of(name: TenantName, record: &TenantRecord) -> TenantInfo {
        TenantInfo {
            name,
            uid: TenantUid::from_bytes(record.uid),
            created_ms: record.created_ms,
            placement: record.placement,
            imported_ms: record.imported_ms,
            operator_revoked_keys_ms: record.operator_revoked_ms,
        }
    }
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
            keys_issued: false,
            imported_ms: None,
            operator_revoked_ms: None,
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
        Ok(TenantInfo::of(name.clone(), &record))
    }

    /// Lists every tenant.
    pub fn list_tenants(&self) -> Result<Vec<TenantInfo>> {
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::TENANT_PREFIX)) {
            let (key, value) = item?;
            let record = layout::decode_tenant(&self.open_registry(&key, &value)?)?;
            out.push(TenantInfo::of(TenantName::new(record.name.clone())?, &record));
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    /// Looks a tenant up by name.
    pub fn tenant_info(&self, name: &TenantName) -> Result<TenantInfo> {
        let (_, record) = self.tenant_record(name)?;
        Ok(TenantInfo::of(name.clone(), &record))
    }

    /// The registry key and record of the tenant named `name`.
    pub(crate) fn tenant_record(&self, name: &TenantName) -> Result<(Vec<u8>, TenantRecord)> {
        let key = self.tenant_registry_key(name);
        let sealed = self.db.get(&self.sys()?, &key)?.ok_or(StorageError::NotFound { what: "tenant" })?;
        let record = layout::decode_tenant(&self.open_registry(&key, &sealed)?)?;
        Ok((key, record))
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
    /// `MAX_PRINCIPAL_BYTES` bytes; at most `MAX_PRINCIPAL_GROUPS` groups. Any role, any number of
    /// times: the embedding host's (or a development server's) door. A server with a configured
    /// admin token uses [`Store::issue_first_api_key`].
    pub fn issue_bound_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        self.issue_operator_key(tenant, NewKey { role, label, expires_ms, binding }, false)
    }

    /// As [`Store::issue_bound_api_key`], but only a tenant's first key: refused with
    /// [`StorageError::KeysIssuedAlready`] (and the refusal is an event in the tenant's trail) once
    /// the tenant has had any key, or was imported. From then on its tenant-admins issue its keys
    /// ([`TenantHandle::issue_api_key`]), and a tenant that lost every admin key gets one through a
    /// break-glass grant of role tenant-admin. The check and the marker that closes it are under
    /// the registry lock and in the key's batch: of two concurrent first issues, one succeeds.
    ///
    /// The first key expires within [`FIRST_KEY_TTL`] (sooner if asked): it is how the tenant
    /// receives its own keys, not a key the operator keeps. The tenant issues its lasting
    /// tenant-admin key with it, lists its keys and revokes the ones it does not know.
    pub fn issue_first_api_key(
        &self,
        tenant: &TenantName,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        let latest = self.now_ms().saturating_add(FIRST_KEY_TTL.as_millis() as u64);
        let expires_ms = Some(expires_ms.map_or(latest, |t| t.min(latest)));
        self.issue_operator_key(tenant, NewKey { role, label, expires_ms, binding }, true)
    }

    fn issue_operator_key(
        &self,
        tenant: &TenantName,
        new: NewKey<'_>,
        first_only: bool,
    ) -> Result<IssuedApiKey> {
        validate_key_request(new.role, new.label, &new.binding)?;
        let mut reserved = self.registry_lock.lock();
        let (tenant_key, mut record) = self.tenant_record(tenant)?;
        let uid = TenantUid::from_bytes(record.uid);
        // The marker alone, without a scan of every key record (which would grow with all the
        // tenants' keys). Every operator issue sets it, an import sets it, and a tenant record
        // older than it reads as set. A key issued through a trusted-host scope's handle (the
        // embedding host, which holds the master key and could do anything anyway) sets none.
        if first_only && record.keys_issued {
            let mut batch = Batch::default();
            let mut event = self.admin_record("api-key-issue-refused", None);
            event.outcome = "failed-precondition".to_owned();
            event.note = Some(format!("role {}: not the tenant's first key", new.role.as_str()));
            let pending = self.audit_record_into(&mut batch, &uid, event)?;
            self.sys_write(batch)?;
            pending.committed();
            return Err(StorageError::KeysIssuedAlready);
        }
        let marker = (!record.keys_issued).then(|| {
            record.keys_issued = true;
            layout::encode(&record)
        });
        let marker = marker.as_deref().map(|bytes| (tenant_key.as_slice(), bytes));
        self.commit_new_key(&mut reserved, uid, new, None, marker)
    }

    /// Writes a new key of `uid` with its `api-key-issued` event (with `note`) and, if given, one
    /// more registry record, in one fsynced batch. The caller holds `registry_lock` (`reserved`).
    fn commit_new_key(
        &self,
        reserved: &mut u64,
        uid: TenantUid,
        new: NewKey<'_>,
        note: Option<String>,
        also: Option<(&[u8], &[u8])>,
    ) -> Result<IssuedApiKey> {
        let key_id: [u8; 16] = random_bytes();
        let secret = zeroize::Zeroizing::new(random_bytes::<32>());
        let role = new.role;
        let record = ApiKeyRecord {
            tenant_uid: *uid.as_bytes(),
            secret_tag: layout::api_key_secret_tag(&self.system, secret.as_ref()),
            role,
            label: new.label.to_owned(),
            created_ms: self.now_ms(),
            expires_ms: new.expires_ms,
            revoked: false,
            binding: new.binding,
            grant: None,
        };
        let mut batch = Batch::default();
        let forgotten = self.make_room_for_key(&uid, &mut batch)?;
        batch.put(&self.sys()?, layout::apikey_of_key(uid.as_bytes(), &key_id), []);
        let key_id = hex::encode(key_id);
        let key = layout::apikey_key(&hex_id(&key_id)?);
        let record = layout::encode(&record);
        let mut event = self.admin_record("api-key-issued", Some(&key_id));
        event.note = Some(match note {
            Some(note) => format!("role {}; {note}", role.as_str()),
            None => format!("role {}", role.as_str()),
        });
        let _pending = self.audit_record_into(&mut batch, &uid, event)?;
        let mut records = vec![(key.as_slice(), record.as_slice())];
        records.extend(also);
        self.commit_registry_records(reserved, batch, &records)?;
        for id in &forgotten {
            self.key_cache.remove(id);
        }
        tracing::info!(tenant = %uid.short(), key_id = %key_id, role = role.as_str(), "api key issued");
        Ok(IssuedApiKey { token: format!("bk_{key_id}_{}", hex::encode(secret.as_ref())), key_id })
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
        self.api_keys_of(&self.tenant_info(tenant)?.uid)
    }

    /// Every API key of the tenant `uid` (never their secrets).
    /// Through the index of keys by tenant: the cost is the tenant's own keys (at most
    /// [`MAX_API_KEYS_PER_TENANT`] and its break-glass keys), not every tenant's.
    pub(crate) fn api_keys_of(&self, uid: &TenantUid) -> Result<Vec<ApiKeyInfo>> {
        let mut out = Vec::new();
        for (raw_id, record) in self.key_records_of(uid)? {
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
        Ok(out)
    }

    /// The key records of tenant `uid`, found through the index of keys by tenant (each record
    /// opened and checked to be the tenant's: the index only locates them).
    pub(crate) fn key_records_of(&self, uid: &TenantUid) -> Result<Vec<([u8; 16], ApiKeyRecord)>> {
        let sys = self.sys()?;
        let mut out = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(&layout::apikey_of_prefix(uid.as_bytes()))) {
            let (index_key, _) = item?;
            let raw_id = layout::apikey_of_id(&index_key).ok_or(StorageError::Codec("api key index"))?;
            let key = layout::apikey_key(&raw_id);
            let Some(sealed) = self.db.get(&sys, &key)? else { continue };
            let record = layout::decode_api_key(&self.open_registry(&key, &sealed)?)?;
            if record.tenant_uid == *uid.as_bytes() {
                out.push((raw_id, record));
            }
        }
        Ok(out)
    }

    /// Makes room in `batch` for one more key of `uid`: below [`MAX_API_KEYS_PER_TENANT`] keys
    /// (break-glass keys not counted), nothing; at it, the tenant's revoked and expired keys are
    /// forgotten (their records, index entries and lock records; their events stay in the trail),
    /// and if none is, the issue is refused ([`StorageError::KeyLimit`]). Returns the forgotten
    /// key ids. The caller holds `registry_lock`.
    fn make_room_for_key(&self, uid: &TenantUid, batch: &mut Batch) -> Result<Vec<[u8; 16]>> {
        let keys: Vec<_> =
            self.key_records_of(uid)?.into_iter().filter(|(_, record)| record.grant.is_none()).collect();
        let keys_held = keys.len();
        if keys_held < MAX_API_KEYS_PER_TENANT {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let sys = self.sys()?;
        let mut forgotten = Vec::new();
        for (raw_id, record) in keys {
            if record.revoked || record.expires_ms.is_some_and(|t| t <= now) {
                batch.delete(&sys, layout::apikey_key(&raw_id));
                batch.delete(&sys, layout::apikey_of_key(uid.as_bytes(), &raw_id));
                batch.delete(&sys, layout::key_lock_key(&raw_id));
                forgotten.push(raw_id);
            }
        }
        // Still at the limit (every key live, or a tenant of an older version above it): refused.
        if keys_held - forgotten.len() >= MAX_API_KEYS_PER_TENANT {
            return Err(StorageError::KeyLimit { limit: MAX_API_KEYS_PER_TENANT as u64 });
        }
        let count = forgotten.len();
        tracing::info!(tenant = %uid.short(), forgotten = count, "revoked and expired api keys forgotten");
        Ok(forgotten)
    }

    /// Builds the index of API keys by tenant if this data directory has none yet (written by an
    /// older version): one scan of every key record, the entries in batches of 10,000 and the
    /// marker last.
    pub(crate) fn index_api_keys(&self) -> Result<()> {
        let sys = self.sys()?;
        if self.db.get(&sys, layout::META_APIKEY_INDEX)?.is_some() {
            return Ok(());
        }
        // In batches of bounded size (writing an entry twice is harmless, so a crash midway only
        // repeats the work), the marker last.
        let mut batch = Batch::default();
        let (mut keys, mut in_batch) = (0u64, 0);
        for item in self.db.entries(&sys, Keys::Prefix(layout::APIKEY_PREFIX)) {
            let (key, value) = item?;
            let opened = self.open_registry(&key, &value).and_then(|plain| layout::decode_api_key(&plain));
            let (Ok(record), Ok(raw_id)) = (opened, <[u8; 16]>::try_from(layout::apikey_id(&key))) else {
                // It cannot authenticate either: left out of the index, and said.
                tracing::error!("an api key record does not open; not indexed");
                continue;
            };
            batch.put(&sys, layout::apikey_of_key(&record.tenant_uid, &raw_id), []);
            (keys, in_batch) = (keys + 1, in_batch + 1);
            if in_batch == 10_000 {
                self.sys_write(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        batch.put(&sys, layout::META_APIKEY_INDEX, [1]);
        self.sys_write(batch)?;
        if keys > 0 {
            tracing::info!(keys, "api keys indexed by tenant");
        }
        Ok(())
    }

    /// Revokes an API key of `tenant`. A key of another tenant is reported as not found.
    /// The time is recorded in the tenant's registry record, in the same batch, for the approver
    /// of a later tenant-admin grant ([`TenantInfo::operator_revoked_keys_ms`]).
    /// Only the revocation of a live key that is not a break-glass key counts.
    pub fn revoke_api_key(&self, tenant: &TenantName, key_id: &str) -> Result<()> {
        let mut reserved = self.registry_lock.lock();
        let (tenant_key, mut record) = self.tenant_record(tenant)?;
        let uid = TenantUid::from_bytes(record.uid);
        let now = self.now_ms();
        let live = match self.load_api_key(key_id)? {
            Some((_, key)) if key.tenant_uid == record.uid => {
                !key.revoked && key.grant.is_none() && key.expires_ms.is_none_or(|t| t > now)
            }
            // Not this tenant's: `revoke_key_of` says "not found".
            _ => false,
        };
        if !live {
            return self.revoke_key_of(&mut reserved, uid, key_id, None, None);
        }
        record.operator_revoked_ms = Some(now);
        let updated = layout::encode(&record);
        self.revoke_key_of(&mut reserved, uid, key_id, None, Some((&tenant_key, &updated)))
    }

    /// Revokes the key `key_id` of `uid` (not found if it is another tenant's), with its
    /// `api-key-revoked` event (with `note`). The caller holds `registry_lock` (`reserved`).
    /// `also`: one more registry record to write in the same batch.
    fn revoke_key_of(
        &self,
        reserved: &mut u64,
        uid: TenantUid,
        key_id: &str,
        note: Option<String>,
        also: Option<(&[u8], &[u8])>,
    ) -> Result<()> {
        let Some((raw_id, mut record)) = self.load_api_key(key_id)? else {
            return Err(StorageError::NotFound { what: "api key" });
        };
        if record.tenant_uid != *uid.as_bytes() {
            return Err(StorageError::NotFound { what: "api key" });
        }
        record.revoked = true;
        let key = layout::apikey_key(&raw_id);
        let key_id = hex::encode(raw_id);
        let mut batch = Batch::default();
        let mut event = self.admin_record("api-key-revoked", Some(&key_id));
        event.note = note;
        let _pending = self.audit_record_into(&mut batch, &uid, event)?;
        let record = layout::encode(&record);
        let mut records = vec![(key.as_slice(), record.as_slice())];
        records.extend(also);
        self.commit_registry_records(reserved, batch, &records)?;
        // After the commit: a check that read the record before it cannot cache it (`keycache.rs`).
        self.key_cache.remove(&raw_id);
        tracing::info!(tenant = %uid.short(), key_id = %key_id, "api key revoked");
        Ok(())
    }
}

/// The most API keys a tenant holds, break-glass keys not counted. At the limit, a new key makes
/// the tenant's revoked and expired keys be forgotten; if all are live, it is refused.
pub const MAX_API_KEYS_PER_TENANT: usize = 1_000;

/// The longest a tenant's first key, the operator's ([`Store::issue_first_api_key`]), lasts.
pub const FIRST_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a new key is: its role, label, expiry and binding.
struct NewKey<'a> {
    role: Role,
    label: &'a str,
    expires_ms: Option<u64>,
    binding: KeyBinding,
}

/// The 16 bytes of a key id this file just wrote as hex.
fn hex_id(key_id: &str) -> Result<[u8; 16]> {
    let mut raw = [0u8; 16];
    hex::decode_to_slice(key_id, &mut raw).map_err(|_| StorageError::Codec("api key"))?;
    Ok(raw)
}

/// A tenant-admin's management of its own tenant's keys (the data plane's `IssueOwnApiKey`,
/// `ListOwnApiKeys`, `RevokeOwnApiKey`). The tenant is the handle's, which only its scope opens: no
/// call here names a tenant. Each issue and revocation is an event in the tenant's trail that names
/// the key that made it (and its break-glass grant, if it has one).
impl TenantHandle<'_> {
    /// Issues a key of this tenant, of any role up to tenant-admin, with the same label, expiry and
    /// binding rules as the operator's issue (never a break-glass key). Tenant-admin scopes only.
    pub fn issue_api_key(
        &self,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        self.require_key_admin("issue API keys")?;
        validate_key_request(role, label, &binding)?;
        let mut reserved = self.store.registry_lock.lock();
        self.still_here()?;
        let new = NewKey { role, label, expires_ms, binding };
        self.store.commit_new_key(&mut reserved, self.tenant_uid(), new, Some(self.actor_note()), None)
    }

    /// This tenant's API keys (never their secrets), break-glass keys included. Tenant-admin scopes
    /// only.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.require_key_admin("list API keys")?;
        self.store.api_keys_of(&self.tenant_uid())
    }

    /// Revokes a key of this tenant (any other key id is "not found"), its own included; scopes
    /// minted from it stop working at once. A break-glass key is refused (`GrantState`, failed
    /// precondition): it is revoked with its grant, on the admin plane. Tenant-admin scopes only.
    pub fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        self.require_key_admin("revoke API keys")?;
        let mut reserved = self.store.registry_lock.lock();
        self.still_here()?;
        let uid = self.tenant_uid();
        if let Some((_, record)) = self.store.load_api_key(key_id)?
            && record.tenant_uid == *uid.as_bytes()
            && record.grant.is_some()
        {
            // Not a permission refusal, which would count against the caller's key (and could
            // lock the tenant's own admin key): the key's state, like a grant's.
            return Err(StorageError::GrantState {
                reason: "owns this key: a break-glass key is revoked with its grant, on the admin plane",
            });
        }
        self.store.revoke_key_of(&mut reserved, uid, key_id, Some(self.actor_note()), None)
    }

    fn require_key_admin(&self, operation: &'static str) -> Result<()> {
        if self.role() < Role::TenantAdmin {
            return Err(StorageError::PermissionDenied { operation });
        }
        Ok(())
    }

    /// Refuses a tenant deleted since the handle was made (the registry lock is held: a deletion
    /// cannot start between this check and the commit).
    fn still_here(&self) -> Result<()> {
        match self.state.deleted.load(std::sync::atomic::Ordering::Acquire) {
            true => Err(StorageError::NotFound { what: "tenant" }),
            false => Ok(()),
        }
    }

    /// Who did it, for the event's note: the key of the scope (none: a trusted host's scope).
    fn actor_note(&self) -> String {
        let by = match self.key_id_hex() {
            Some(key_id) => format!("by tenant-admin key {key_id}"),
            None => "by a trusted-host scope".to_owned(),
        };
        match self.grant_hex() {
            Some(grant) => format!("{by}; break-glass grant {grant}"),
            None => by,
        }
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
