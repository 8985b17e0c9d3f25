//! The audit trail's records in the system column family, and the bytes each of their MACs covers
//! (every MAC is an HMAC-SHA256 under the registry's naming key, in its own domain):
//!
//! ```text
//! key                                   value
//! "audit/" uid(16) seq u64 BE           event: a bare postcard RecordV1 (written before access events
//!                                       existed; its first byte, a varint time in ms, is >= 0x80), or
//!                                       the byte EVENT_V2 then a postcard RecordV2
//! "auditck/" uid(16)                    Checkpoint: first kept seq, its predecessor's MAC, time, MAC
//! "audithead/" uid(16)                  Anchor: next seq, last event's MAC, MAC (storage format 2)
//! "auditreg/" uid(16)                   32-byte MAC of the uid: the chain exists (storage format 2)
//! "auditchains"                         ChainCount: how many chains are registered, MAC
//!
//! MAC                domain              over (postcard)
//! RecordV1           "audit"             (uid, seq, previous MAC, time, operation, key id, outcome)
//! RecordV2           "audit-v2"          (uid, seq, previous MAC, the record with a zero MAC)
//! Checkpoint         "audit-checkpoint"  (uid, first kept seq, its predecessor's MAC, time)
//! Anchor             "audit-anchor"      (uid, next seq, last event's MAC)
//! registration       "audit-chain"       the uid's 16 bytes
//! ChainCount         "audit-chain-count" the count, u64 BE
//! subject hash       "audit-subject"     (uid, the subject's domain, the value); first 16 bytes
//! ```
//!
//! The first event of a chain has seq 0 and the all-zero previous MAC.

use super::{be_u64, concat, decode, encode};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use bulkhead_crypto::OwnerCipher;
use serde::{Deserialize, Serialize};

/// Every event of every chain starts with this.
pub(crate) const AUDIT_PREFIX: &[u8] = b"audit/";
const CHECKPOINT_PREFIX: &[u8] = b"auditck/";
const ANCHOR_PREFIX: &[u8] = b"audithead/";
/// Every chain's registration starts with this.
pub(crate) const REGISTRATION_PREFIX: &[u8] = b"auditreg/";
/// The key of the record that counts the registered chains.
pub(crate) const CHAINS_KEY: &[u8] = b"auditchains";
/// The first byte of an event in the current format.
const EVENT_V2: u8 = 2;

pub(crate) fn audit_event_key(uid: &TenantUid, seq: u64) -> Vec<u8> {
    concat(&[AUDIT_PREFIX, uid.as_bytes(), &seq.to_be_bytes()])
}

/// Every event of one chain starts with this.
pub(crate) fn audit_events_prefix(uid: &TenantUid) -> Vec<u8> {
    concat(&[AUDIT_PREFIX, uid.as_bytes()])
}

/// A key past every event of one chain.
pub(crate) fn audit_events_end(uid: &TenantUid) -> Vec<u8> {
    after_uid(AUDIT_PREFIX, uid.as_bytes())
}

/// The sequence number of an event, from its key.
pub(crate) fn audit_event_seq(key: &[u8]) -> Result<u64> {
    key.get(AUDIT_PREFIX.len() + 16..)
        .filter(|rest| rest.len() == 8)
        .ok_or(StorageError::Codec("audit key"))
        .and_then(be_u64)
}

/// The uid of a key that is `prefix` followed by a uid (and perhaps more).
pub(crate) fn uid_after(prefix: &[u8], key: &[u8]) -> Option<[u8; 16]> {
    key.get(prefix.len()..prefix.len() + 16)?.try_into().ok()
}

/// A key past every key that is `prefix` followed by `uid` and at most eight more bytes.
pub(crate) fn after_uid(prefix: &[u8], uid: &[u8; 16]) -> Vec<u8> {
    concat(&[prefix, uid, &[0xff; 9]])
}

pub(crate) fn audit_checkpoint_key(uid: &TenantUid) -> Vec<u8> {
    concat(&[CHECKPOINT_PREFIX, uid.as_bytes()])
}

pub(crate) fn audit_anchor_key(uid: &TenantUid) -> Vec<u8> {
    concat(&[ANCHOR_PREFIX, uid.as_bytes()])
}

pub(crate) fn audit_registration_key(uid: &TenantUid) -> Vec<u8> {
    concat(&[REGISTRATION_PREFIX, uid.as_bytes()])
}

/// The end of a chain: the sequence number the next event takes and the MAC of the last one.
pub(crate) type Head = (u64, [u8; 32]);

/// An event as written before access events existed (only administrative events, always `ok`).
///
/// ```text
/// time_ms    varint u64
/// operation  string
/// key_id     option, string
/// outcome    string
/// mac        32 bytes
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct RecordV1 {
    pub(crate) time_ms: u64,
    pub(crate) operation: String,
    pub(crate) key_id: Option<String>,
    pub(crate) outcome: String,
    pub(crate) mac: [u8; 32],
}

/// An event in the current format. Values that would be tenant data are keyed hashes.
///
/// ```text
/// time_ms         varint u64
/// operation       string
/// key_id          option, string
/// outcome         string
/// key_generation  option, varint u32
/// principal       option, 16 bytes
/// collection      option, 16 bytes
/// query           option, 16 bytes
/// documents       count, then 16 bytes each
/// policy_version  option, varint u64
/// note            option, string
/// mac             32 bytes
/// ```
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct RecordV2 {
    pub(crate) time_ms: u64,
    pub(crate) operation: String,
    pub(crate) key_id: Option<String>,
    pub(crate) outcome: String,
    pub(crate) key_generation: Option<u32>,
    pub(crate) principal: Option<[u8; 16]>,
    pub(crate) collection: Option<[u8; 16]>,
    pub(crate) query: Option<[u8; 16]>,
    pub(crate) documents: Vec<[u8; 16]>,
    pub(crate) policy_version: Option<u64>,
    pub(crate) note: Option<String>,
    pub(crate) mac: [u8; 32],
}

impl RecordV2 {
    /// An event with no subject, key generation, policy version or note, and no MAC yet.
    pub(crate) fn bare(time_ms: u64, operation: String, key_id: Option<String>, outcome: String) -> RecordV2 {
        RecordV2 {
            time_ms,
            operation,
            key_id,
            outcome,
            key_generation: None,
            principal: None,
            collection: None,
            query: None,
            documents: Vec::new(),
            policy_version: None,
            note: None,
            mac: [0; 32],
        }
    }
}

/// An event's stored value in the current format.
pub(crate) fn event_value(record: &RecordV2) -> Vec<u8> {
    let mut value = Vec::with_capacity(256);
    value.push(EVENT_V2);
    postcard::to_extend(record, value).expect("records serialise into memory")
}

/// An event as read back, of either format.
pub(crate) enum Stored {
    V1(RecordV1),
    V2(RecordV2),
    /// Bytes that do not parse as an event (altered on disk): verification reports it as broken.
    Unreadable,
}

impl Stored {
    pub(crate) fn decode(bytes: &[u8]) -> Stored {
        let parsed = match bytes.split_first() {
            Some((&EVENT_V2, rest)) => decode(rest, "audit event").map(Stored::V2),
            _ => decode(bytes, "audit event").map(Stored::V1),
        };
        parsed.unwrap_or(Stored::Unreadable)
    }

    /// The MAC the event carries (zero for an unreadable one).
    pub(crate) fn mac(&self) -> [u8; 32] {
        match self {
            Stored::V1(r) => r.mac,
            Stored::V2(r) => r.mac,
            Stored::Unreadable => [0; 32],
        }
    }
}

/// The checkpoint pruning leaves: the chain now starts at `first_seq`, whose predecessor's MAC was
/// `prev_mac`.
///
/// ```text
/// first_seq     varint u64
/// prev_mac      32 bytes
/// pruned_at_ms  varint u64
/// mac           32 bytes
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) first_seq: u64,
    pub(crate) prev_mac: [u8; 32],
    pub(crate) pruned_at_ms: u64,
    pub(crate) mac: [u8; 32],
}

/// The anchor of a chain's end, rewritten with every event.
///
/// ```text
/// next_seq  varint u64
/// last_mac  32 bytes
/// mac       32 bytes
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct Anchor {
    pub(crate) next_seq: u64,
    pub(crate) last_mac: [u8; 32],
    pub(crate) mac: [u8; 32],
}

/// How many chains are registered.
///
/// ```text
/// chains  varint u64
/// mac     32 bytes
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct ChainCount {
    pub(crate) chains: u64,
    pub(crate) mac: [u8; 32],
}

fn v1_mac(system: &OwnerCipher, uid: &TenantUid, (seq, prev): Head, record: &RecordV1) -> [u8; 32] {
    let content = encode(&(
        uid.as_bytes(),
        seq,
        prev,
        record.time_ms,
        &record.operation,
        &record.key_id,
        &record.outcome,
    ));
    system.tag(b"audit", &content).0
}

/// The MAC of an event in the current format at `seq`, after an event whose MAC was `prev`.
pub(crate) fn v2_mac(
    system: &OwnerCipher,
    uid: &TenantUid,
    (seq, prev): Head,
    record: &RecordV2,
) -> [u8; 32] {
    // The MAC covers the record with its MAC field zero, which a record about to be signed already
    // is: only a stored record is copied to zero it.
    let content = if record.mac == [0; 32] {
        encode(&(uid.as_bytes(), seq, prev, record))
    } else {
        let mut unsigned = record.clone();
        unsigned.mac = [0; 32];
        encode(&(uid.as_bytes(), seq, prev, &unsigned))
    };
    system.tag(b"audit-v2", &content).0
}

/// The MAC a stored event should carry at `seq`, after an event whose MAC was `prev`.
pub(crate) fn stored_mac(system: &OwnerCipher, uid: &TenantUid, at: Head, stored: &Stored) -> [u8; 32] {
    match stored {
        Stored::V1(r) => v1_mac(system, uid, at, r),
        Stored::V2(r) => v2_mac(system, uid, at, r),
        // Nothing matches: `mac()` is zero and the computed MAC never is (but compare anyway).
        Stored::Unreadable => [0xff; 32],
    }
}

pub(crate) fn checkpoint_mac(system: &OwnerCipher, uid: &TenantUid, checkpoint: &Checkpoint) -> [u8; 32] {
    let content =
        encode(&(uid.as_bytes(), checkpoint.first_seq, checkpoint.prev_mac, checkpoint.pruned_at_ms));
    system.tag(b"audit-checkpoint", &content).0
}

pub(crate) fn anchor_mac(system: &OwnerCipher, uid: &TenantUid, (next_seq, last_mac): Head) -> [u8; 32] {
    system.tag(b"audit-anchor", &encode(&(uid.as_bytes(), next_seq, last_mac))).0
}

/// The stored anchor of a chain whose end is `head`.
pub(crate) fn anchor_value(system: &OwnerCipher, uid: &TenantUid, head: Head) -> Vec<u8> {
    encode(&Anchor { next_seq: head.0, last_mac: head.1, mac: anchor_mac(system, uid, head) })
}

/// The stored registration of a chain.
pub(crate) fn registration_mac(system: &OwnerCipher, uid: &TenantUid) -> [u8; 32] {
    system.tag(b"audit-chain", uid.as_bytes()).0
}

pub(crate) fn chain_count_mac(system: &OwnerCipher, chains: u64) -> [u8; 32] {
    system.tag(b"audit-chain-count", &chains.to_be_bytes()).0
}

/// The authenticated record saying `chains` chains are registered.
pub(crate) fn chain_count_value(system: &OwnerCipher, chains: u64) -> Vec<u8> {
    encode(&ChainCount { chains, mac: chain_count_mac(system, chains) })
}

/// The keyed hash that stands for `value` of the kind `domain` names in `uid`'s events.
pub(crate) fn subject_hash(system: &OwnerCipher, uid: &TenantUid, domain: &[u8], value: &[u8]) -> [u8; 16] {
    subject_hash_streamed(system, uid, domain, value.len(), |input| input.update(value))
}

/// [`subject_hash`] of a query vector (its little-endian bytes), fed to the MAC in pieces from a
/// small buffer instead of being copied whole: a search computes one on its path.
pub(crate) fn query_subject_hash(
    system: &OwnerCipher,
    uid: &TenantUid,
    domain: &[u8],
    query: &[f32],
) -> [u8; 16] {
    subject_hash_streamed(system, uid, domain, std::mem::size_of_val(query), |input| {
        let mut buffer = [0u8; 256];
        for chunk in query.chunks(buffer.len() / 4) {
            for (out, x) in buffer.chunks_exact_mut(4).zip(chunk) {
                out.copy_from_slice(&x.to_le_bytes());
            }
            input.update(&buffer[..chunk.len() * 4]);
        }
    })
}

/// The subject hash of a value of `len` bytes that `write` feeds: the tag (in the `audit-subject`
/// domain) of the postcard encoding of `(uid bytes, domain, value)`, which is the uid's 16 bytes,
/// then the domain and the value each after its length as a varint. Fed field by field, it is the
/// same hash as of the encoding built whole, which is how every stored hash was computed.
fn subject_hash_streamed(
    system: &OwnerCipher,
    uid: &TenantUid,
    domain: &[u8],
    len: usize,
    write: impl FnOnce(&mut bulkhead_crypto::TagInput<'_>),
) -> [u8; 16] {
    let (domain_len, value_len) = (varint(domain.len()), varint(len));
    let (domain_len, value_len) = (&domain_len.0[..domain_len.1], &value_len.0[..value_len.1]);
    let total = uid.as_bytes().len() + domain_len.len() + domain.len() + value_len.len() + len;
    let tag = system.tag_streamed(b"audit-subject", total, |input| {
        input.update(uid.as_bytes());
        input.update(domain_len);
        input.update(domain);
        input.update(value_len);
        write(input);
    });
    let mut out = [0u8; 16];
    out.copy_from_slice(&tag.0[..16]);
    out
}

/// A length as postcard encodes it (LEB128: seven bits a byte, least significant first), in the
/// first `.1` bytes of `.0`.
fn varint(mut n: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    for (i, byte) in out.iter_mut().enumerate() {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            *byte = low;
            return (out, i + 1);
        }
        *byte = low | 0x80;
    }
    unreachable!("a usize has at most 64 bits, ten groups of seven")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_hashes_fed_in_pieces_equal_the_hash_of_the_whole_encoding() {
        // How every stored subject hash was computed: the tag of the whole postcard encoding.
        let whole = |system: &OwnerCipher, uid: &TenantUid, domain: &[u8], value: &[u8]| {
            let tag = system.tag(b"audit-subject", &encode(&(uid.as_bytes(), domain, value)));
            <[u8; 16]>::try_from(&tag.0[..16]).expect("16 bytes")
        };
        let naming = bulkhead_crypto::DataKey::generate(0);
        let data = bulkhead_crypto::DataKey::generate(1);
        let system = OwnerCipher::new(b"system", &naming, &[data], 1, 0).expect("cipher");
        let uid = TenantUid::from_bytes([3; 16]);
        for len in [0, 1, 127, 128, 300, 1536, 20_000] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            for domain in [&b"query"[..], &[b'd'; 200][..]] {
                assert_eq!(subject_hash(&system, &uid, domain, &value), whole(&system, &uid, domain, &value));
            }
        }
        for dim in [1, 63, 64, 65, 384, 1000] {
            let query: Vec<f32> = (0..dim).map(|i| i as f32 * 0.25 - 3.0).collect();
            assert_eq!(
                query_subject_hash(&system, &uid, b"query", &query),
                whole(&system, &uid, b"query", &super::super::encode_vector(&query)),
                "dimension {dim}"
            );
        }
        assert_eq!(varint(0), ([0; 10], 1));
        assert_eq!(&varint(300).0[..varint(300).1], &[0xac, 0x02]);
        assert_eq!(varint(usize::MAX).1, 10);
    }
}
