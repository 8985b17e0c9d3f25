//! HKDF-SHA256 with length-prefixed info strings, and HMAC-SHA256.
//!
//! Every derivation's info is a sequence of fields, each written as a 4-byte big-endian length followed
//! by the bytes, so that no two different field lists can produce the same info string.

use crate::CryptoError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The largest HKDF-SHA256 output, 255 blocks of 32 bytes (RFC 5869 §2.3).
pub(crate) const HKDF_SHA256_MAX: usize = 255 * 32;

/// Builds a length-prefixed info string from its fields.
pub(crate) fn info(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
    for field in fields {
        let len = u32::try_from(field.len()).expect("info fields are short labels and ids");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// RFC 5869 HKDF-SHA256: extract with `salt`, expand to `len` bytes with `info`.
pub(crate) fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if len > HKDF_SHA256_MAX {
        return Err(CryptoError::KdfLength { requested: len, max: HKDF_SHA256_MAX });
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = Zeroizing::new(vec![0u8; len]);
    hk.expand(info, &mut okm).map_err(|_| CryptoError::KdfLength { requested: len, max: HKDF_SHA256_MAX })?;
    Ok(okm)
}

/// Derives a 32-byte key; cannot fail because 32 is far below the HKDF limit.
pub(crate) fn derive_key(salt: &[u8], ikm: &[u8], fields: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let okm = hkdf_sha256(salt, ikm, &info(fields), 32).expect("32 bytes is within HKDF-SHA256's limit");
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm);
    key
}

/// HMAC-SHA256 of `parts`, each length-prefixed like an info string (fed to the MAC as they are,
/// without building the info string).
pub(crate) fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed(key);
    for part in parts {
        update_field(&mut mac, part.len(), |mac| mac.update(part));
    }
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA256 keyed with `key`.
pub(crate) fn keyed(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Feeds one info field of `len` bytes to `mac`: its length prefix, then what `write` feeds.
pub(crate) fn update_field(mac: &mut Hmac<Sha256>, len: usize, write: impl FnOnce(&mut Hmac<Sha256>)) {
    let len = u32::try_from(len).expect("info fields are short labels, ids and records");
    mac.update(&len.to_be_bytes());
    write(mac);
}
