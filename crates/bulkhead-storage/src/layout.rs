//! Every byte layout the storage crate writes: record keys, column family names, the records inside
//! values, and the bytes each stored MAC covers. No other file of the crate builds a key or encodes
//! a record. Nothing here is plaintext tenant data: keys hold opaque ids, keyed hashes and small
//! integers; tenant records are sealed before they are written.
//!
//! The full map, one line per kind of record (each file draws its own in detail):
//!
//! ```text
//! column family   key                                        value                      file
//! sys             "meta/format"                              u32 BE storage format      system.rs
//! sys             "meta/master-version"                      u32 BE master version      system.rs
//! sys             "meta/master-check/" version               master key check value     system.rs
//! sys             "keyring/" owner "/" generation            wrapped data key           system.rs
//! sys             "keyring/" owner "/write"                  control: write generation  system.rs
//! sys             "enc/" owner generation                    control: encryption count  system.rs
//! sys             "rotate/" owner                            control: RotationRecord    system.rs
//! sys             "tenant/" tag                              sealed TenantRecord        system.rs
//! sys             "apikey/" key id                           sealed ApiKeyRecord        system.rs
//! sys             "policy/" uid                              sealed VersionedPolicy     system.rs
//! sys             "keylock/" key id                          sealed KeyLockRecord       system.rs
//! sys             "grant/" grant id                          sealed GrantRecord         system.rs
//! sys             "place/" uid                               control: Placement         system.rs
//! sys             "moving/" uid                              control: a tier move       system.rs
//! sys             "meta/store-id"                            16 random bytes            engine/dedicated.rs
//! sys             "meta/dedicated-root"                      UTF-8 path                 engine/dedicated.rs
//! sys             "intent-done/" "t-" uid hex                u64 BE last intent done    engine/dedicated.rs
//! sys             "audit/" uid seq                           audit event (V1 or V2)     audit.rs
//! sys             "auditck/" uid                             Checkpoint                 audit.rs
//! sys             "audithead/" uid                           Anchor                     audit.rs
//! sys             "auditreg/" uid                            registration MAC           audit.rs
//! sys             "auditchains"                              ChainCount                 audit.rs
//! "t-" uid hex    uid 'C' tag                                sealed CollectionRecord    tenant.rs
//! "t-" uid hex    uid 'K' / 'S' / 'N' coll                   plain counters             tenant.rs
//! "t-" uid hex    uid 'U'                                    plain UsageRecord          tenant.rs
//! "t-" uid hex    uid 'B' coll                               u64 BE collection bytes    tenant.rs
//! "t-" uid hex    uid 'P' coll tag / uid 'V' coll tag        sealed payload / vector    tenant.rs
//! "t-" uid hex    uid 'J' coll / uid 'I' coll segment chunk  sealed index head / chunk  tenant.rs
//! "shared"        the same keys, of every shared-tier tenant                            tenant.rs
//! a dedicated tenant's own instance, in `<dedicated root>/<store id hex>/t-<uid hex>`:
//! "default"       the same keys, of that tenant alone                                   tenant.rs
//! "intent"        u64 BE number                              a main-instance batch      engine/dedicated.rs
//! ```
//!
//! A tenant archive, the file `Store::export_tenant` writes (not a RocksDB record), is drawn in
//! `archive.rs`.
//!
//! Integers are big-endian in keys (so that key order is numeric order). Records are postcard, their
//! fields in declaration order (each record's doc draws them): integers as varints, `[u8; N]` as its
//! N bytes, strings and byte strings as a varint length then the bytes, `Option` as a 0 or 1 byte then
//! the value, sequences and maps as a varint count then the items, enums as a varint variant index
//! then the variant's fields. Reordering a record's fields changes the format. Sealed values carry the
//! header `bulkhead-crypto/src/format.rs` draws.

mod archive;
mod audit;
mod system;
mod tenant;

pub use system::{Placement, TenantPolicy, TenantQuotas, VersionedPolicy};
pub(crate) use {archive::*, audit::*, system::*, tenant::*};

use crate::error::{Result, StorageError};
use serde::{Deserialize, Serialize};

/// The storage format version written to `meta/format`. Format 2 authenticates the keyring's
/// control records and anchors the audit chains; a format-1 directory is migrated when it opens.
/// Public so that tests can tell which formats this build writes (`tests/it/golden.rs` wants a
/// committed data directory of each); nothing outside this crate writes or reads it.
pub const STORAGE_FORMAT: u32 = 2;

/// The format before control records were authenticated and audit chains anchored.
pub(crate) const STORAGE_FORMAT_1: u32 = 1;

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A big-endian `u32` of exactly four bytes.
pub(crate) fn be_u32(bytes: &[u8]) -> Result<u32> {
    Ok(u32::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Codec("u32"))?))
}

/// A big-endian `u64` of exactly eight bytes.
pub(crate) fn be_u64(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Codec("u64"))?))
}

/// A record's postcard encoding. Written into room for a small record from the start: grown from
/// empty, an audit event's encoding took six reallocations.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, Vec::with_capacity(256)).expect("records serialise into memory")
}

/// A record from its postcard encoding; `what` names it in the error.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|_| StorageError::Codec(what))
}
