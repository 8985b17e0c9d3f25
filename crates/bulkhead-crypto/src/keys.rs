//! Key-encryption keys and data keys: random data keys exist outside this crate only in wrapped form.

use crate::CryptoError;
use crate::format::{FORMAT_VERSION, NONCE_LEN, WRAPPED_LEN, wrap_aad};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use std::fmt;
use zeroize::Zeroizing;

/// A key-encryption key: derived from the master key for one owner, used only to wrap data keys.
pub struct Kek {
    cipher: Aes256Gcm,
    owner: Vec<u8>,
    master_version: u32,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").field("master_version", &self.master_version).finish_non_exhaustive()
    }
}

impl Kek {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>, owner: &[u8], master_version: u32) -> Kek {
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256 takes a 32-byte key");
        Kek { cipher, owner: owner.to_vec(), master_version }
    }

    /// The master key version this KEK was derived under.
    pub fn master_version(&self) -> u32 {
        self.master_version
    }

    /// Wraps a data key for storage; the result is bound to this owner, the key's generation and the
    /// master key version.
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = wrap_aad(&self.owner, key.generation, self.master_version);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: key.bytes.as_ref(), aad: &aad })
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        WrappedKey(out)
    }

    /// Unwraps a stored data key of `generation`. Fails with [`CryptoError::UnwrapFailed`] under a
    /// different master key, owner, generation or master version, or if the bytes were altered.
    pub fn unwrap_key(&self, wrapped: &[u8], generation: u32) -> Result<DataKey, CryptoError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(CryptoError::UnwrapFailed);
        }
        if wrapped[0] != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedFormat { version: wrapped[0] });
        }
        let aad = wrap_aad(&self.owner, generation, self.master_version);
        let nonce = Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]);
        let pt = Zeroizing::new(
            self.cipher
                .decrypt(nonce, Payload { msg: &wrapped[1 + NONCE_LEN..], aad: &aad })
                .map_err(|_| CryptoError::UnwrapFailed)?,
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&pt);
        Ok(DataKey { bytes, generation })
    }
}

/// A wrapped data key: opaque bytes, safe to store.
#[derive(Debug, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A random 256-bit data key of one generation. Generation 0 is a tenant's naming key (it keys the
/// HMAC record tags and never rotates with the data); generations from 1 up seal data.
pub struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
    generation: u32,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl DataKey {
    /// A fresh random key of `generation`.
    pub fn generate(generation: u32) -> DataKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        DataKey { bytes, generation }
    }

    /// The key's generation number.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}
