//! The key of one tenant archive: derived from the master key and the archive's random id, it seals
//! the archive's frames (AES-256-GCM, so that the archive is authenticated as a whole and reveals
//! nothing but sizes) and wraps the tenant's data keys inside it (a KEK of its own, so that the
//! archive does not depend on the source's master-key version or tenant uid).
//!
//! ```text
//! MasterKey ─ HKDF-SHA256 (salt "bulkhead.archive.v1", info lp("archive-…") lp(archive id)) ─▶
//!     frame key   ("archive-frames")   seals each frame
//!     archive KEK ("archive-kek")      wraps the tenant's naming and data keys (owner "archive" id)
//!     check key   ("archive-check")    HMAC of a fixed label: the check value in the archive's header
//! ```
//!
//! A server with another master key derives another check value and refuses the archive before
//! reading a frame. Issue 24 (moves between nodes with different master keys) can derive the same
//! three keys from a transfer secret both nodes hold instead of the master key: nothing else changes.

use crate::CryptoError;
use crate::format::{NONCE_LEN, TAG_LEN};
use crate::kdf::{derive_key, hmac_sha256};
use crate::keys::{DataKey, Kek, WrappedKey};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use std::fmt;
use zeroize::Zeroizing;

const ARCHIVE_SALT: &[u8] = b"bulkhead.archive.v1";

/// Bytes a sealed frame adds to its plaintext: the nonce and the GCM tag.
pub const ARCHIVE_FRAME_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The keys of one archive. No `Clone`, a redacted `Debug`, key bytes zeroised on drop.
pub struct ArchiveKey {
    frames: Aes256Gcm,
    kek: Kek,
    check: [u8; 32],
}

impl fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArchiveKey(<redacted>)")
    }
}

impl ArchiveKey {
    /// The keys of archive `archive_id` under the root secret `root` (the master key's bytes).
    pub(crate) fn derive(root: &[u8; 32], archive_id: &[u8; 16]) -> ArchiveKey {
        let frames = derive_key(ARCHIVE_SALT, root, &[b"archive-frames", archive_id]);
        let kek = derive_key(ARCHIVE_SALT, root, &[b"archive-kek", archive_id]);
        let check: Zeroizing<[u8; 32]> = derive_key(ARCHIVE_SALT, root, &[b"archive-check", archive_id]);
        let owner = [b"archive".as_slice(), archive_id].concat();
        ArchiveKey {
            frames: Aes256Gcm::new_from_slice(frames.as_ref()).expect("AES-256 takes a 32-byte key"),
            kek: Kek::new(kek, &owner, 0),
            check: hmac_sha256(&check, &[b"bulkhead archive check"]),
        }
    }

    /// The public value that tells whether an archive was written under this root secret (stored in
    /// the archive's header; it reveals nothing about the key and differs for every archive).
    pub fn check_value(&self) -> [u8; 32] {
        self.check
    }

    /// Seals one frame: a fresh random nonce, then the AES-256-GCM ciphertext and tag of
    /// `plaintext` bound to `aad` (the archive's header and the frame's position).
    pub fn seal_frame(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .frames
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption of an in-memory frame cannot fail");
        [nonce.as_slice(), &ct].concat()
    }

    /// Opens a frame sealed by [`ArchiveKey::seal_frame`] for the same `aad`; fails with
    /// [`CryptoError::Integrity`] if it was altered, cut, moved or written under another key.
    pub fn open_frame(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < ARCHIVE_FRAME_OVERHEAD {
            return Err(CryptoError::Integrity);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.frames
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Integrity)
    }

    /// Wraps one of the tenant's keys for the archive (bound to the archive and the generation).
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        self.kek.wrap(key)
    }

    /// Unwraps a key of `generation` that [`ArchiveKey::wrap`] wrapped for this archive.
    pub fn unwrap_key(&self, wrapped: &[u8], generation: u32) -> Result<DataKey, CryptoError> {
        self.kek.unwrap_key(wrapped, generation)
    }
}
