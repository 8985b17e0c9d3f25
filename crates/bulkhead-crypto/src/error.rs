//! The crypto crate's error type. Messages never carry key material or plaintext.

/// Everything that can go wrong while loading keys, deriving, wrapping, sealing or opening.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key's environment variable is not set. An operator problem, reported with the
    /// variable's name but never its content.
    #[error("master key source {source_name} could not be read: {reason}")]
    MasterKeyUnavailable { source_name: String, reason: String },

    /// The master key source held something other than 64 hex characters (32 bytes). Classified apart
    /// from `SecretFileUnavailable` because the fix is to the content, not to the path.
    #[error("master key in {source_name} is malformed: expected 64 hex characters (32 bytes)")]
    MasterKeyMalformed { source_name: String },

    /// A file holding a secret (`what`: the master key, the admin token, a TLS private key) can be
    /// read by group or others. Refused because a secret that anyone on the host can read protects
    /// nothing.
    #[error("{what} file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    SecretFilePermissions { what: &'static str, path: String, mode: u32 },

    /// A file holding a secret could not be opened or read (missing, unreadable). An operator problem,
    /// reported with the path and the reason but never the content.
    #[error("{what} file {path} could not be read: {reason}")]
    SecretFileUnavailable { what: &'static str, path: String, reason: String },

    /// A wrapped data key failed to authenticate under the key-encryption key: the master key is not
    /// the one the keyring was written with, or the wrapped key was altered or moved.
    #[error(
        "a wrapped data key did not open under this master key (wrong master key, or a tampered keyring)"
    )]
    UnwrapFailed,

    /// A sealed value failed authentication: it was altered, truncated, or moved to another tenant,
    /// column family or record key than the one it was sealed for.
    #[error("sealed value failed authentication (tampered, truncated or moved)")]
    Integrity,

    /// A sealed value names a key generation this cipher does not hold: the generation was destroyed
    /// (crypto-shredded or rotated away) or never existed.
    #[error("sealed value needs key generation {generation}, which is not available")]
    GenerationUnavailable { generation: u32 },

    /// A sealed value's header names a format version this build does not understand.
    #[error("sealed value has unsupported format version {version}")]
    UnsupportedFormat { version: u8 },

    /// The write generation has sealed [`crate::HARD_ENCRYPTION_LIMIT`] values: sealing more under
    /// it would make nonce collisions likely, so it is refused until a rotation makes a new
    /// generation the write key. Classified apart because it is an operational state with a known
    /// remedy (rotate the tenant's key), not a fault.
    #[error("key generation {generation} has sealed its limit of values; rotate the key to write more")]
    EncryptionLimit { generation: u32 },

    /// HKDF was asked for more output than RFC 5869 allows (255 × 32 bytes for SHA-256).
    #[error("HKDF output length {requested} exceeds the maximum of {max}")]
    KdfLength { requested: usize, max: usize },
}
