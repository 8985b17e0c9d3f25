//! Bulkhead's key hierarchy and sealing: the only crate that ever holds key bytes.
//!
//! ```text
//! MasterKey (32 B, file or env, versioned)
//!   └─ HKDF-SHA256 ─▶ Kek per owner (a tenant, or the system registry)
//!                       └─ AES-256-GCM wrap ─▶ DataKey generations (random, stored only wrapped)
//!                                               └─ HKDF-SHA256 ─▶ purpose keys (vectors, payloads,
//!                                                                  index snapshots, registry)
//!                                                                  and the naming key (HMAC record tags)
//! ```
//!
//! Every type that holds key material has no `Clone`, no serialisation, a `Debug` that prints
//! `<redacted>`, and zeroises on drop. No public function returns key bytes and no public function takes
//! a nonce: [`OwnerCipher::seal`] draws a fresh random 96-bit nonce for every value.

mod archive;
mod error;
mod format;
mod kdf;
mod keys;
mod master;
mod seal;
mod secret_file;

pub use archive::{ARCHIVE_FRAME_OVERHEAD, ArchiveKey};
pub use error::CryptoError;
pub use format::{FORMAT_VERSION, SEALED_OVERHEAD};
pub use keys::{DataKey, Kek, WrappedKey};
pub use master::{MASTER_KEY_ENV, MAX_MASTER_KEY_FILE_BYTES, MasterKey};
pub use seal::{
    HARD_ENCRYPTION_LIMIT, OwnerCipher, Purpose, RecordTag, SealContext, TagInput, constant_time_eq,
    random_bytes,
};
pub use secret_file::{open_secret_file, read_secret_file, write_new_secret_file};

#[cfg(test)]
mod tests;
