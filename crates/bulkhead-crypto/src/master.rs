//! The master key: loaded from a file or an environment variable, never cloned, never printed.

use crate::CryptoError;
use crate::archive::ArchiveKey;
use crate::kdf::{derive_key, hmac_sha256};
use crate::keys::Kek;
use crate::secret_file::read_secret_file;
use rand::RngCore;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// The environment variable [`MasterKey::from_env`] reads by default.
pub const MASTER_KEY_ENV: &str = "BULKHEAD_MASTER_KEY";

const KEK_SALT: &[u8] = b"bulkhead.kek.v1";
const CHECK_SALT: &[u8] = b"bulkhead.check.v1";

/// The root of the key hierarchy: 32 bytes, written as 64 hex characters in its file or variable.
///
/// It has no `Clone`, no accessor for its bytes, a redacted `Debug`, and it is zeroised on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The largest master key file read: 64 hex characters with room for whitespace around them.
pub const MAX_MASTER_KEY_FILE_BYTES: usize = 256;

impl MasterKey {
    /// A fresh random master key (for development set-ups and tests).
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        MasterKey { bytes }
    }

    /// Reads a key file holding 64 hex characters (surrounding whitespace ignored). Refuses anything
    /// but a regular file of at most [`MAX_MASTER_KEY_FILE_BYTES`] that only its owner, the
    /// process's user, can read ([`crate::open_secret_file`]).
    pub fn from_file(path: &Path) -> Result<MasterKey, CryptoError> {
        // Room for the hex and some whitespace; a longer file is malformed anyway.
        let text = read_secret_file(path, "master key", MAX_MASTER_KEY_FILE_BYTES)?;
        Self::from_hex(&text, &path.display().to_string())
    }

    /// Reads the key from an environment variable holding 64 hex characters.
    pub fn from_env(var: &str) -> Result<MasterKey, CryptoError> {
        let value = std::env::var_os(var).ok_or_else(|| CryptoError::MasterKeyUnavailable {
            source_name: format!("environment variable {var}"),
            reason: "not set".into(),
        })?;
        let text = Zeroizing::new(value.into_encoded_bytes());
        Self::from_hex(&text, &format!("environment variable {var}"))
    }

    fn from_hex(text: &[u8], source_name: &str) -> Result<MasterKey, CryptoError> {
        let malformed = || CryptoError::MasterKeyMalformed { source_name: source_name.to_owned() };
        let trimmed = text.trim_ascii();
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(trimmed, bytes.as_mut()).map_err(|_| malformed())?;
        Ok(MasterKey { bytes })
    }

    /// Writes this key as hex to a new file with mode 0600; fails if the file exists.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        let text = Zeroizing::new(hex::encode(self.bytes.as_ref()));
        crate::write_new_secret_file(path, &text)
    }

    /// The key-encryption key of one owner (a tenant's opaque id, or the system registry's) under master
    /// key version `master_version`.
    pub fn kek(&self, owner: &[u8], master_version: u32) -> Kek {
        let key = derive_key(KEK_SALT, self.bytes.as_ref(), &[b"kek", owner, &master_version.to_be_bytes()]);
        Kek::new(key, owner, master_version)
    }

    /// A public check value that tells whether a stored keyring was written under this key, so that a
    /// wrong master key is reported as such instead of as a pile of integrity errors.
    pub fn check_value(&self, master_version: u32) -> [u8; 32] {
        let key = derive_key(CHECK_SALT, self.bytes.as_ref(), &[b"check", &master_version.to_be_bytes()]);
        hmac_sha256(&key, &[b"bulkhead master key check"])
    }

    /// The keys of the tenant archive `archive_id` (see [`ArchiveKey`]): an archive written under
    /// this master key opens only under it.
    pub fn archive_key(&self, archive_id: &[u8; 16]) -> ArchiveKey {
        ArchiveKey::derive(&self.bytes, archive_id)
    }
}
