//! Every byte layout the crypto crate writes: the sealed value and the wrapped data key.
//!
//! Sealed value (what [`crate::OwnerCipher::seal`] returns):
//!
//! ```text
//! offset  size  field
//! 0       1     format version (0x01)
//! 1       1     purpose (1 vectors, 2 payloads, 3 index snapshots, 4 registry)
//! 2       4     key generation, u32 big-endian
//! 6       12    nonce (random, drawn inside the crate)
//! 18      n     AES-256-GCM ciphertext
//! 18+n    16    GCM tag
//! ```
//!
//! Its associated data is never stored; it is rebuilt from where the value lives:
//!
//! ```text
//! "bulkhead.seal" | version | purpose | generation u32 BE | lp(owner) | lp(column family) | lp(record key)
//! ```
//!
//! where `lp(x)` is a 4-byte big-endian length followed by `x`. Moving a value to another owner, column
//! family or record key, or relabelling its purpose or generation, makes it fail to open.
//!
//! Wrapped data key (what [`crate::Kek::wrap`] returns):
//!
//! ```text
//! offset  size  field
//! 0       1     format version (0x01)
//! 1       12    nonce
//! 13      32    AES-256-GCM ciphertext of the data key
//! 45      16    GCM tag
//! ```
//!
//! with associated data `"bulkhead.wrap" | version | lp(owner) | generation u32 BE | master version u32 BE`.
//!
//! Archive frame (what [`crate::ArchiveKey::seal_frame`] returns; the frames' order and associated
//! data are the storage crate's, `layout/archive.rs`):
//!
//! ```text
//! offset  size  field
//! 0       12    nonce (random)
//! 12      n     AES-256-GCM ciphertext of the frame
//! 12+n    16    GCM tag
//! ```

/// The format version written into every sealed value and wrapped key.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes a sealed value adds to its plaintext: header, nonce and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// Version, purpose, generation and nonce.
pub(crate) const HEADER_LEN: usize = 1 + 1 + 4 + NONCE_LEN;
pub(crate) const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;

pub(crate) const SEAL_LABEL: &[u8] = b"bulkhead.seal";
pub(crate) const WRAP_LABEL: &[u8] = b"bulkhead.wrap";

/// The parsed header of a sealed value.
pub(crate) struct SealedHeader {
    pub(crate) version: u8,
    pub(crate) purpose: u8,
    pub(crate) generation: u32,
}

impl SealedHeader {
    pub(crate) fn parse(sealed: &[u8]) -> Option<(SealedHeader, &[u8; NONCE_LEN], &[u8])> {
        if sealed.len() < SEALED_OVERHEAD {
            return None;
        }
        let generation = u32::from_be_bytes(sealed[2..6].try_into().ok()?);
        let nonce: &[u8; NONCE_LEN] = sealed[6..HEADER_LEN].try_into().ok()?;
        let header = SealedHeader { version: sealed[0], purpose: sealed[1], generation };
        Some((header, nonce, &sealed[HEADER_LEN..]))
    }

    pub(crate) fn write(&self, nonce: &[u8; NONCE_LEN], out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(self.purpose);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(nonce);
    }

    /// Associated data for a sealed value at `(owner, cf, record_key)`.
    pub(crate) fn aad(&self, owner: &[u8], cf: &[u8], record_key: &[u8]) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(SEAL_LABEL.len() + 6 + 12 + owner.len() + cf.len() + record_key.len());
        aad.extend_from_slice(SEAL_LABEL);
        aad.push(self.version);
        aad.push(self.purpose);
        aad.extend_from_slice(&self.generation.to_be_bytes());
        aad.extend_from_slice(&crate::kdf::info(&[owner, cf, record_key]));
        aad
    }
}

/// Associated data for a wrapped data key.
pub(crate) fn wrap_aad(owner: &[u8], generation: u32, master_version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_LABEL.len() + 1 + 4 + owner.len() + 8);
    aad.extend_from_slice(WRAP_LABEL);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&crate::kdf::info(&[owner]));
    aad.extend_from_slice(&generation.to_be_bytes());
    aad.extend_from_slice(&master_version.to_be_bytes());
    aad
}
