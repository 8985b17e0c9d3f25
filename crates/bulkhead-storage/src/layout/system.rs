//! The system column family `sys`: the storage format, the master key check, the keyring (wrapped
//! keys and its authenticated control records), the registry (tenants, API keys, policies) and the
//! tenant-key rotation cursors. The audit trail shares the family; `audit.rs` draws its records.
//!
//! ```text
//! key                                              value
//! "meta/format"                                    u32 BE storage format version
//! "meta/master-version"                            u32 BE current master key version
//! "meta/master-check/" version u32 BE              32-byte master key check value
//! "meta/store-id"                                  16 random bytes: names this data directory's
//!                                                  folder under the dedicated root
//! "meta/dedicated-root"                            UTF-8: the dedicated root last given
//! "intent-done/" "t-" uid hex                      u64 BE: the last intent of that dedicated
//!                                                  instance whose main part committed
//!                                                  (`engine/dedicated.rs`)
//! "keyring/" owner(16) "/" generation u32 BE       wrapped data key (generation 0: naming key)
//! "keyring/" owner(16) "/write"                    control: u32 BE write generation
//! "enc/" owner(16) generation u32 BE               control: u64 BE reserved encryption count (an
//!                                                  upper bound)
//! "rotate/" owner(16)                              control: RotationRecord (a generation, counts and
//!                                                  a record key, which holds only a uid and tags)
//! "place/" owner(16)                               control: 1 byte, the tenant's Placement (absent:
//!                                                  its own column family, as before tiers existed;
//!                                                  0 partitioned, 1 shared, 2 dedicated)
//! "moving/" owner(16)                              system control: a tier move under way, 3 bytes:
//!                                                  phase (0 copying, 1 switched), from, to
//! "importing/" uid(16)                             empty: a tenant archive is being imported under
//!                                                  this uid; written (fsynced) before its first
//!                                                  record, deleted in its commit, cleared at open
//! "tenant/" tag(32)                                sealed TenantRecord (registry cipher, Registry)
//! "apikey/" key id(16)                             sealed ApiKeyRecord (registry cipher, Registry)
//! "policy/" uid(16)                                sealed VersionedPolicy (registry cipher, Registry)
//! "keylock/" key id(16)                            sealed KeyLockRecord (registry cipher, Registry):
//!                                                  the API key is locked until an operator unlocks it
//! "grant/" grant id(16)                            sealed GrantRecord (registry cipher, Registry): a
//!                                                  break-glass access grant (`grant.rs`)
//! ```
//!
//! An *owner* is a tenant's uid, or sixteen zero bytes for the registry's own keys. The tenant
//! record's `tag` is an HMAC of the tenant's name under the registry's naming key (domain
//! `tenant-name`); an API key record holds an HMAC of the key's secret (domain `api-key-secret`),
//! never the secret.
//!
//! A *control* record is in plain text (nothing in it is tenant data) but authenticated, from
//! storage format 2 on: its value is the payload followed by a 32-byte tag, an HMAC under the
//! owner's naming key over the record key and the payload ([`control_value`]):
//!
//! ```text
//! value     payload (n bytes) | tag (32 bytes)
//! tag       HMAC(owner's naming key, "keyring-control", postcard((record key, payload)))
//! ```
//!
//! An edited write generation, encryption count or rotation cursor is then `KeyringCorrupt`, not a
//! silently stalled rotation or a nonce counter set back. Format 1 stored the bare payload; opening
//! such a directory tags every control record once (`Store::migrate_to_format_2`).

use super::{concat, encode};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::scope::{KeyBinding, Role};
use bulkhead_crypto::{OwnerCipher, RecordTag};
use serde::{Deserialize, Serialize};

/// The name of the system column family.
pub(crate) const SYS_CF: &str = "sys";
/// The owner of the registry's own keys.
pub(crate) const SYSTEM_OWNER: [u8; 16] = [0; 16];

pub(crate) const META_FORMAT: &[u8] = b"meta/format";
pub(crate) const META_MASTER_VERSION: &[u8] = b"meta/master-version";
/// The data directory's random id: the folder of its dedicated instances under the dedicated root
/// is named after it, so that two data directories given one root never take each other's.
pub(crate) const META_STORE_ID: &[u8] = b"meta/store-id";
/// The dedicated root last given when the store was opened (UTF-8), for an open that gives none.
pub(crate) const META_DEDICATED_ROOT: &[u8] = b"meta/dedicated-root";
const MASTER_CHECK_PREFIX: &[u8] = b"meta/master-check/";
/// Every wrapped key and write generation of every owner starts with this.
pub(crate) const KEYRING_PREFIX: &[u8] = b"keyring/";
/// Every encryption count of every owner starts with this.
pub(crate) const ENCRYPTION_COUNT_PREFIX: &[u8] = b"enc/";
/// Every running tenant-key rotation's record starts with this.
pub(crate) const ROTATION_PREFIX: &[u8] = b"rotate/";
pub(crate) const TENANT_PREFIX: &[u8] = b"tenant/";
pub(crate) const APIKEY_PREFIX: &[u8] = b"apikey/";
/// The index of API keys by tenant: `apikey-of/` + tenant uid + key id, an empty value. A locator
/// only: the key records it points to are the sealed, authenticated ones.
const APIKEY_OF_PREFIX: &[u8] = b"apikey-of/";
/// Present once every API key record has its index entry (written by the open that built it).
pub(crate) const META_APIKEY_INDEX: &[u8] = b"meta/apikey-index";
const POLICY_PREFIX: &[u8] = b"policy/";
const KEY_LOCK_PREFIX: &[u8] = b"keylock/";
/// Every break-glass access grant starts with this.
pub(crate) const GRANT_PREFIX: &[u8] = b"grant/";
const PLACEMENT_PREFIX: &[u8] = b"place/";
/// Every tier move under way has a record under this.
pub(crate) const MOVING_PREFIX: &[u8] = b"moving/";
/// Every done record of a dedicated instance starts with this.
pub(crate) const INTENT_DONE_PREFIX: &[u8] = b"intent-done/";
/// Every marker of an import in progress starts with this.
pub(crate) const IMPORT_MARKER_PREFIX: &[u8] = b"importing/";

/// The domain of control-record tags.
const CONTROL_DOMAIN: &[u8] = b"keyring-control";

pub(crate) fn master_check_key(version: u32) -> Vec<u8> {
    concat(&[MASTER_CHECK_PREFIX, &version.to_be_bytes()])
}

pub(crate) fn keyring_key(owner: &[u8; 16], generation: u32) -> Vec<u8> {
    concat(&[KEYRING_PREFIX, owner, b"/", &generation.to_be_bytes()])
}

pub(crate) fn keyring_write_key(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[KEYRING_PREFIX, owner, b"/write"])
}

/// Every keyring entry of an owner (its wrapped keys and its write generation) starts with this.
pub(crate) fn keyring_prefix(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[KEYRING_PREFIX, owner, b"/"])
}

/// The owner a keyring entry belongs to.
pub(crate) fn keyring_owner(key: &[u8]) -> Option<[u8; 16]> {
    key.get(KEYRING_PREFIX.len()..KEYRING_PREFIX.len() + 16)?.try_into().ok()
}

/// The owner and generation of a wrapped key's entry; `None` for the other keyring entries.
pub(crate) fn wrapped_key_of(key: &[u8]) -> Option<([u8; 16], u32)> {
    let prefix = KEYRING_PREFIX.len();
    if key.len() != prefix + 16 + 1 + 4 {
        return None;
    }
    let owner = key[prefix..prefix + 16].try_into().ok()?;
    let generation = u32::from_be_bytes(key[prefix + 17..].try_into().ok()?);
    Some((owner, generation))
}

pub(crate) fn encryption_count_key(owner: &[u8; 16], generation: u32) -> Vec<u8> {
    concat(&[ENCRYPTION_COUNT_PREFIX, owner, &generation.to_be_bytes()])
}

/// Every encryption count of one owner starts with this.
pub(crate) fn encryption_counts_prefix(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[ENCRYPTION_COUNT_PREFIX, owner])
}

/// The owner an encryption count belongs to.
pub(crate) fn encryption_count_owner(key: &[u8]) -> Option<[u8; 16]> {
    let prefix = ENCRYPTION_COUNT_PREFIX.len();
    key.get(prefix..prefix + 16)?.try_into().ok()
}

pub(crate) fn rotation_key(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[ROTATION_PREFIX, owner])
}

/// The owner of a rotation record, from its key.
pub(crate) fn rotation_owner(key: &[u8]) -> Option<[u8; 16]> {
    key.get(ROTATION_PREFIX.len()..)?.try_into().ok()
}

/// The registry key of the tenant named `name`: a tag of the name, never the name.
pub(crate) fn tenant_key(system: &OwnerCipher, name: &TenantName) -> Vec<u8> {
    let tag: RecordTag = system.tag(b"tenant-name", name.as_str().as_bytes());
    concat(&[TENANT_PREFIX, &tag.0])
}

pub(crate) fn apikey_key(key_id: &[u8; 16]) -> Vec<u8> {
    concat(&[APIKEY_PREFIX, key_id])
}

/// The index entry of the API key `key_id` of tenant `uid`.
pub(crate) fn apikey_of_key(uid: &[u8; 16], key_id: &[u8; 16]) -> Vec<u8> {
    concat(&[APIKEY_OF_PREFIX, uid, key_id])
}

/// The prefix of tenant `uid`'s API key index entries.
pub(crate) fn apikey_of_prefix(uid: &[u8; 16]) -> Vec<u8> {
    concat(&[APIKEY_OF_PREFIX, uid])
}

/// The key id of an index entry under `apikey_of_prefix`.
pub(crate) fn apikey_of_id(key: &[u8]) -> Option<[u8; 16]> {
    key.get(APIKEY_OF_PREFIX.len() + 16..)?.try_into().ok()
}

/// The key of an API key's lock record.
pub(crate) fn key_lock_key(key_id: &[u8; 16]) -> Vec<u8> {
    concat(&[KEY_LOCK_PREFIX, key_id])
}

/// The key of a break-glass access grant's record.
pub(crate) fn grant_key(grant_id: &[u8; 16]) -> Vec<u8> {
    concat(&[GRANT_PREFIX, grant_id])
}

/// The grant id of a grant record, from its key.
pub(crate) fn grant_id(key: &[u8]) -> Option<[u8; 16]> {
    key.get(GRANT_PREFIX.len()..)?.try_into().ok()
}

/// The key id of an API key record, from its key.
pub(crate) fn apikey_id(key: &[u8]) -> &[u8] {
    key.get(APIKEY_PREFIX.len()..).unwrap_or_default()
}

/// What an API key record holds of the key's secret.
pub(crate) fn api_key_secret_tag(system: &OwnerCipher, secret: &[u8]) -> [u8; 32] {
    system.tag(b"api-key-secret", secret).0
}

pub(crate) fn policy_key(uid: &[u8; 16]) -> Vec<u8> {
    concat(&[POLICY_PREFIX, uid])
}

/// The key of a tenant's placement record (a control record).
pub(crate) fn placement_key(uid: &[u8; 16]) -> Vec<u8> {
    concat(&[PLACEMENT_PREFIX, uid])
}

/// The key of a tenant's tier-move record (a control record under the registry's own keys, so
/// that opening the store can finish or undo a move without the tenant's keys).
/// The key of a dedicated instance's done record: the number of its last intent whose main part
/// committed (`engine/dedicated.rs`). `instance` is the instance's directory name.
pub(crate) fn intent_done_key(instance: &str) -> Vec<u8> {
    concat(&[INTENT_DONE_PREFIX, instance.as_bytes()])
}

/// Whether the main part of a dedicated tenant's batch (an intent, `engine/dedicated.rs`) may write
/// `key`: only the tenant's own audit records and encryption-count, rotation and done records, and
/// the audit directory's count. An intent that writes anything else was not written by the store
/// and is refused at open.
pub(crate) fn intent_may_write(uid: &TenantUid, instance: &str, key: &[u8]) -> bool {
    let owner = uid.as_bytes();
    key == intent_done_key(instance).as_slice()
        || key == super::CHAINS_KEY
        || key == rotation_key(owner).as_slice()
        || key.starts_with(&encryption_counts_prefix(owner))
        || key.starts_with(&super::audit_events_prefix(uid))
        || key == super::audit_checkpoint_key(uid).as_slice()
        || key == super::audit_anchor_key(uid).as_slice()
        || key == super::audit_registration_key(uid).as_slice()
}

pub(crate) fn moving_key(uid: &[u8; 16]) -> Vec<u8> {
    concat(&[MOVING_PREFIX, uid])
}

/// The tenant a tier-move record is about, from its key.
pub(crate) fn moving_owner(key: &[u8]) -> Option<[u8; 16]> {
    key.get(MOVING_PREFIX.len()..)?.try_into().ok()
}

/// The key of the marker of an import in progress under `uid` (`Store::import_tenant`): while it
/// exists, whatever the uid has in the shared column family, or its own column family, is the
/// import's and is removed if the import does not commit.
pub(crate) fn import_marker_key(uid: &[u8; 16]) -> Vec<u8> {
    concat(&[IMPORT_MARKER_PREFIX, uid])
}

/// The uid of an import marker, from its key.
pub(crate) fn import_marker_uid(key: &[u8]) -> Option<[u8; 16]> {
    key.get(IMPORT_MARKER_PREFIX.len()..)?.try_into().ok()
}

/// A control record's stored value: `payload` then its tag under `owner`'s naming key.
pub(crate) fn control_value(owner: &OwnerCipher, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let tag = owner.tag(CONTROL_DOMAIN, &encode(&(key, payload)));
    [payload, &tag.0].concat()
}

/// The payload of a control record whose tag holds under `owner`'s naming key, or
/// [`StorageError::KeyringCorrupt`].
pub(crate) fn open_control(owner: &OwnerCipher, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
    let (payload, tag) = split_control(value)?;
    let expected = owner.tag(CONTROL_DOMAIN, &encode(&(key, payload)));
    if !bulkhead_crypto::constant_time_eq(&expected.0, tag) {
        return Err(StorageError::KeyringCorrupt);
    }
    Ok(payload.to_vec())
}

/// A control record's payload and tag, not yet checked (to read the write generation an owner's
/// cipher is built from, before the cipher exists to check it).
pub(crate) fn split_control(value: &[u8]) -> Result<(&[u8], &[u8])> {
    if value.len() < 32 {
        return Err(StorageError::KeyringCorrupt);
    }
    Ok(value.split_at(value.len() - 32))
}

/// How a tenant's records are placed: its isolation tier. Every record key starts with the
/// tenant's uid and every value is sealed under the tenant's keys, bound to its key and to the
/// tenant's own namespace (`t-<uid>`, whichever column family holds it), in either tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Placement {
    /// `partitioned`: the tenant has its own column family (its own memtable and table files).
    OwnColumnFamily,
    /// `shared`: the tenant's records are in the one column family that shared tenants share, under
    /// its uid prefix. Costs no column family, so a node holds many small tenants; deleted by
    /// destroying its keys with a range delete over its prefix, in one batch.
    Shared,
    /// `dedicated`: the tenant has a RocksDB instance of its own (its own write-ahead log,
    /// memtables, table files and compactions), in a directory of its own named like its column
    /// family would be, under the store's dedicated root (which may be on another disk).
    Dedicated,
}

impl Placement {
    /// Every tier.
    pub const ALL: [Placement; 3] = [Placement::OwnColumnFamily, Placement::Shared, Placement::Dedicated];

    /// The tier's name: `partitioned`, `shared` or `dedicated`.
    pub fn name(self) -> &'static str {
        match self {
            Placement::OwnColumnFamily => "partitioned",
            Placement::Shared => "shared",
            Placement::Dedicated => "dedicated",
        }
    }

    /// The tier named `name` (`partitioned`, `shared` or `dedicated`).
    pub fn from_name(name: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|placement| placement.name() == name)
    }

    /// Its byte in the placement record.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Placement::OwnColumnFamily => 0,
            Placement::Shared => 1,
            Placement::Dedicated => 2,
        }
    }

    /// The placement of a placement record's byte.
    pub(crate) fn from_byte(byte: u8) -> Result<Placement> {
        Placement::ALL
            .into_iter()
            .find(|placement| placement.to_byte() == byte)
            .ok_or(StorageError::KeyringCorrupt)
    }
}

/// A tenant's registry entry (sealed under the registry's keys).
///
/// ```text
/// name        string          the tenant's name
/// uid         16 bytes        its random uid
/// created_ms  varint u64      creation time
/// placement   variant index   0: OwnColumnFamily, 1: Shared (as created; the `place/` record is
///                             what is in force)
/// keys_issued 1 byte          1 once an API key was issued for it, or it was imported: the
///                             operator's first-key issue is refused from then on (absent from
///                             records written before it existed, which read as 1)
/// imported_ms option u64      when it was last imported from an archive (a copy under a new
///                             name or a restore under its own); absent from older records (read
///                             as none)
/// operator_revoked_ms
///             option u64      when the operator last revoked one of its keys; absent from older
///                             records (read as none)
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub(crate) name: String,
    pub(crate) uid: [u8; 16],
    pub(crate) created_ms: u64,
    pub(crate) placement: Placement,
    pub(crate) keys_issued: bool,
    pub(crate) imported_ms: Option<u64>,
    pub(crate) operator_revoked_ms: Option<u64>,
}

/// [`TenantRecord`] as written before the approver's context (a copy, the operator's revocations)
/// was recorded.
#[derive(Deserialize)]
struct TenantRecordV2 {
    name: String,
    uid: [u8; 16],
    created_ms: u64,
    placement: Placement,
    keys_issued: bool,
}

/// [`TenantRecord`] as written before the first-key marker existed.
#[derive(Deserialize)]
struct TenantRecordV1 {
    name: String,
    uid: [u8; 16],
    created_ms: u64,
    placement: Placement,
}

/// A stored [`TenantRecord`] of any of its layouts. A record of the first layout reads as a tenant
/// that has had keys: whether it had any was not recorded, so the operator's first-key issue fails
/// closed for it (a break-glass grant of role tenant-admin gives it a key). A record older than
/// the approver's context reads as neither a copy nor revoked by the operator: that history was not
/// recorded.
pub(crate) fn decode_tenant(bytes: &[u8]) -> Result<TenantRecord> {
    if let Ok(record) = postcard::from_bytes::<TenantRecord>(bytes) {
        return Ok(record);
    }
    let (name, uid, created_ms, placement, keys_issued) =
        match postcard::take_from_bytes::<TenantRecordV2>(bytes) {
            Ok((old, [])) => (old.name, old.uid, old.created_ms, old.placement, old.keys_issued),
            _ => match postcard::take_from_bytes::<TenantRecordV1>(bytes) {
                Ok((old, [])) => (old.name, old.uid, old.created_ms, old.placement, true),
                _ => return Err(StorageError::Codec("tenant")),
            },
        };
    Ok(TenantRecord {
        name,
        uid,
        created_ms,
        placement,
        keys_issued,
        imported_ms: None,
        operator_revoked_ms: None,
    })
}

/// An API key's registry entry. The secret itself is never stored, only its keyed hash.
///
/// ```text
/// tenant_uid  16 bytes               the tenant it opens
/// secret_tag  32 bytes               HMAC of the secret (domain "api-key-secret")
/// role        variant index          0 reader, 1 writer, 2 tenant-admin
/// label       string
/// created_ms  varint u64
/// expires_ms  option, varint u64
/// revoked     1 byte
/// binding     variant index, fields  0 Service { on_behalf_of: 1 byte },
///                                    1 User { user: string, groups: count, strings }
/// grant       option, 16 bytes       the break-glass access grant it was issued for (absent from
///                                    records written before break-glass existed)
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    pub(crate) tenant_uid: [u8; 16],
    pub(crate) secret_tag: [u8; 32],
    pub(crate) role: Role,
    pub(crate) label: String,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) revoked: bool,
    pub(crate) binding: KeyBinding,
    pub(crate) grant: Option<[u8; 16]>,
}

/// [`ApiKeyRecord`] as written before break-glass grants existed: a record that ends after
/// `binding` is read as this, a key of no grant.
#[derive(Deserialize)]
struct ApiKeyRecordV1 {
    tenant_uid: [u8; 16],
    secret_tag: [u8; 32],
    role: Role,
    label: String,
    created_ms: u64,
    expires_ms: Option<u64>,
    revoked: bool,
    binding: KeyBinding,
}

/// A stored [`ApiKeyRecord`], of either layout: the current one, or the one before grants, whose
/// record ends where the grant would start (so neither can be read as the other).
pub(crate) fn decode_api_key(bytes: &[u8]) -> Result<ApiKeyRecord> {
    decode_either(bytes, "api key", |old: ApiKeyRecordV1| ApiKeyRecord {
        tenant_uid: old.tenant_uid,
        secret_tag: old.secret_tag,
        role: old.role,
        label: old.label,
        created_ms: old.created_ms,
        expires_ms: old.expires_ms,
        revoked: old.revoked,
        binding: old.binding,
        grant: None,
    })
}

/// A record of the current layout `New`, or else of the layout `Old` it extended (read as `New` by
/// `upgrade`), but only if `Old` is the whole record: a current record whose added fields fail to
/// decode is an error, never read as an old one.
fn decode_either<New: serde::de::DeserializeOwned, Old: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    upgrade: impl FnOnce(Old) -> New,
) -> Result<New> {
    if let Ok(record) = postcard::from_bytes::<New>(bytes) {
        return Ok(record);
    }
    match postcard::take_from_bytes::<Old>(bytes) {
        Ok((old, [])) => Ok(upgrade(old)),
        _ => Err(StorageError::Codec(what)),
    }
}

/// A break-glass access grant (`grant.rs`): an operator's request for access to one tenant, which
/// a second credential approves and which then issues one key of its role that expires with it.
///
/// ```text
/// tenant_uid    16 bytes
/// reason        string                the operator's reason (sealed: it may name the tenant's data)
/// requested_ms  varint u64
/// expires_ms    varint u64            the grant and its key stop here
/// approved_ms   option, varint u64
/// key_id        option, 16 bytes      the key issued at activation
/// revoked_ms    option, varint u64
/// role          variant index         the role of the key activation issues: 0 reader, 1 writer,
///                                     2 tenant-admin (absent from records written before it
///                                     existed, which read as reader)
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    pub(crate) tenant_uid: [u8; 16],
    pub(crate) reason: String,
    pub(crate) requested_ms: u64,
    pub(crate) expires_ms: u64,
    pub(crate) approved_ms: Option<u64>,
    pub(crate) key_id: Option<[u8; 16]>,
    pub(crate) revoked_ms: Option<u64>,
    pub(crate) role: Role,
}

/// [`GrantRecord`] as written before grants named a role: every grant was a reader's.
#[derive(Deserialize)]
struct GrantRecordV1 {
    tenant_uid: [u8; 16],
    reason: String,
    requested_ms: u64,
    expires_ms: u64,
    approved_ms: Option<u64>,
    key_id: Option<[u8; 16]>,
    revoked_ms: Option<u64>,
}

/// A stored [`GrantRecord`] of either layout (an old one is a reader's grant).
pub(crate) fn decode_grant(bytes: &[u8]) -> Result<GrantRecord> {
    decode_either(bytes, "access grant", |old: GrantRecordV1| GrantRecord {
        tenant_uid: old.tenant_uid,
        reason: old.reason,
        requested_ms: old.requested_ms,
        expires_ms: old.expires_ms,
        approved_ms: old.approved_ms,
        key_id: old.key_id,
        revoked_ms: old.revoked_ms,
        role: Role::Reader,
    })
}

/// Why and when an API key was locked (see the server's `lockout.rs`); its key is the key id, and
/// it is removed by an unlock.
///
/// ```text
/// tenant_uid  16 bytes
/// locked_ms   varint u64
/// reason      string ("burst" or "denials")
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct KeyLockRecord {
    pub(crate) tenant_uid: [u8; 16],
    pub(crate) locked_ms: u64,
    pub(crate) reason: String,
}

/// A tenant-key rotation in progress: every record sealed under an older generation is re-sealed
/// under `target`, in key order; `after` is the last key done.
///
/// ```text
/// target  varint u32            the generation records are re-sealed under
/// after   option, byte string   the last record key done
/// done    varint u64            records scanned
/// total   varint u64            records at the start (an estimate)
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct RotationRecord {
    pub(crate) target: u32,
    pub(crate) after: Option<Vec<u8>>,
    pub(crate) done: u64,
    pub(crate) total: u64,
}

/// What a tenant's keys may do, on top of what their roles allow. Stored inside the tenant's
/// [`VersionedPolicy`]; its rules are in `policy.rs`.
///
/// ```text
/// denied                 count, then (role variant index, string) each
/// max_k                  option, varint u32
/// max_ef                 option, varint u32
/// max_filter_conditions  option, varint u32
/// source_uri_prefixes    count, then a string each
/// quotas                 TenantQuotas (absent from records written before quotas existed)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// Operations (by [`Operation::name`](crate::Operation::name): `search`, `upsert`, `count`,
    /// ...) refused to a role although the role would allow them. A higher role is not affected. A
    /// name that is not an operation is refused when the policy is set.
    pub denied: Vec<(Role, String)>,
    /// Largest `k` a search may ask for (at most the global limit).
    pub max_k: Option<u32>,
    /// Largest `ef` a search may ask for (at most the global limit).
    pub max_ef: Option<u32>,
    /// Most conditions in one search filter (at most the global limit).
    pub max_filter_conditions: Option<u32>,
    /// If not empty, every written point must carry a source URI that starts with one of these.
    pub source_uri_prefixes: Vec<String>,
    /// The tenant's resource quotas and lockout thresholds (each unset one is the server's default).
    pub quotas: TenantQuotas,
}

/// A tenant's resource quotas and the thresholds that lock one of its keys; `None` takes the
/// server's default. Stored as the last field of [`TenantPolicy`].
///
/// ```text
/// max_vectors              option, varint u64
/// max_stored_bytes         option, varint u64
/// max_collections          option, varint u32
/// requests_per_second      option, varint u32
/// write_bytes_per_second   option, varint u64
/// max_concurrent_searches  option, varint u32
/// burst_multiple           option, varint u32
/// max_denials              option, varint u32
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TenantQuotas {
    /// Most points stored over all the tenant's collections.
    pub max_vectors: Option<u64>,
    /// Most bytes stored: each point's vector (4 bytes a dimension) plus its payload's encoded size.
    pub max_stored_bytes: Option<u64>,
    /// Most collections.
    pub max_collections: Option<u32>,
    /// Requests a second over all the tenant's keys (a token bucket holding one second's worth).
    pub requests_per_second: Option<u32>,
    /// Bytes of upserts a second (a token bucket holding one second's worth).
    pub write_bytes_per_second: Option<u64>,
    /// Searches of the tenant running at once.
    pub max_concurrent_searches: Option<u32>,
    /// A key whose requests in the last five minutes pass this multiple of its tenant's baseline
    /// (its usual rate) is locked until an operator unlocks it. 0 turns burst lockout off.
    pub burst_multiple: Option<u32>,
    /// A key refused this many times (permission denied) within five minutes is locked until an
    /// operator unlocks it. 0 turns denial lockout off.
    pub max_denials: Option<u32>,
}

/// [`TenantPolicy`] as written before quotas existed: a record that ends after
/// `source_uri_prefixes` is read as this and given the default quotas.
#[derive(Deserialize)]
struct TenantPolicyV1 {
    denied: Vec<(Role, String)>,
    max_k: Option<u32>,
    max_ef: Option<u32>,
    max_filter_conditions: Option<u32>,
    source_uri_prefixes: Vec<String>,
}

/// [`VersionedPolicy`] as written before quotas existed.
#[derive(Deserialize)]
struct VersionedPolicyV1 {
    version: u64,
    changed_ms: u64,
    policy: TenantPolicyV1,
}

/// A stored [`VersionedPolicy`], of either layout: the current one, or the one before quotas, whose
/// record ends where the quotas would start (so neither can be read as the other).
pub(crate) fn decode_policy(bytes: &[u8]) -> Result<VersionedPolicy> {
    decode_either(bytes, "policy", |old: VersionedPolicyV1| VersionedPolicy {
        version: old.version,
        changed_ms: old.changed_ms,
        policy: TenantPolicy {
            denied: old.policy.denied,
            max_k: old.policy.max_k,
            max_ef: old.policy.max_ef,
            max_filter_conditions: old.policy.max_filter_conditions,
            source_uri_prefixes: old.policy.source_uri_prefixes,
            quotas: TenantQuotas::default(),
        },
    })
}

/// A tenant's policy with its version: the record sealed at `"policy/" uid`. A tenant without one
/// has the default policy at version 0.
///
/// ```text
/// version     varint u64
/// changed_ms  varint u64
/// policy      TenantPolicy
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionedPolicy {
    /// 0 for the default policy; each change adds 1.
    pub version: u64,
    /// When it took effect (milliseconds since the Unix epoch; 0 for the default).
    pub changed_ms: u64,
    /// The policy.
    pub policy: TenantPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_records_of_every_layout_decode() {
        let (name, uid, created, placement) = ("acme".to_owned(), [7u8; 16], 1_234u64, Placement::Shared);
        let first = encode(&(&name, uid, created, placement));
        let second = encode(&(&name, uid, created, placement, false));
        let record = TenantRecord {
            name: name.clone(),
            uid,
            created_ms: created,
            placement,
            keys_issued: false,
            imported_ms: Some(5),
            operator_revoked_ms: Some(6),
        };
        let current = encode(&record);
        let read = |bytes: &[u8]| {
            let r = decode_tenant(bytes).expect("decodes");
            assert_eq!(
                (r.name.as_str(), r.uid, r.created_ms, r.placement),
                (name.as_str(), uid, created, placement)
            );
            (r.keys_issued, r.imported_ms, r.operator_revoked_ms)
        };
        // The first layout reads as a tenant that has had keys (fail closed), with no history.
        assert_eq!(read(&first), (true, None, None));
        assert_eq!(read(&second), (false, None, None));
        assert_eq!(read(&current), (false, Some(5), Some(6)));
        assert!(decode_tenant(&first[..first.len() - 1]).is_err(), "a cut record is an error");
    }
}
