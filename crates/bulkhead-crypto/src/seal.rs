//! Sealing values for storage: AES-256-GCM under per-purpose keys, bound to where each value lives.

use crate::CryptoError;
use crate::format::{FORMAT_VERSION, HEADER_LEN, NONCE_LEN, SealedHeader, TAG_LEN};
use crate::kdf::{derive_key, hmac_sha256};
use crate::keys::DataKey;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const PURPOSE_SALT: &[u8] = b"bulkhead.purpose.v1";
const NAMING_SALT: &[u8] = b"bulkhead.naming.v1";

/// The most values one owner's data-key generation ever seals: 2^32, the bound NIST SP 800-38D
/// sets for AES-GCM with random 96-bit nonces under one key (counted over all four purpose keys of
/// the generation together, which is stricter). Automatic rotation starts far below it; this is the
/// hard stop if a rotation cannot run.
pub const HARD_ENCRYPTION_LIMIT: u64 = 1 << 32;

/// What a sealed value is; each purpose has its own key derived from the data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Embedding vectors.
    Vectors = 1,
    /// Record payloads: id, text, metadata, ACL, source.
    Payloads = 2,
    /// Persisted index snapshots.
    IndexSnapshots = 3,
    /// Registry entries: tenant records, collections, API keys.
    Registry = 4,
}

impl Purpose {
    const ALL: [Purpose; 4] =
        [Purpose::Vectors, Purpose::Payloads, Purpose::IndexSnapshots, Purpose::Registry];

    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Vectors => b"vectors",
            Purpose::Payloads => b"payloads",
            Purpose::IndexSnapshots => b"index-snapshots",
            Purpose::Registry => b"registry",
        }
    }
}

/// Where a sealed value lives: it is bound to these bytes and fails to open anywhere else.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// The column family's name.
    pub column_family: &'a [u8],
    /// The value's full record key in that column family.
    pub record_key: &'a [u8],
}

/// A keyed HMAC-SHA256 tag: how record keys name documents without revealing their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordTag(pub [u8; 32]);

/// Where [`OwnerCipher::tag_streamed`]'s caller feeds the value's pieces. It holds the keyed MAC, so
/// it is not cloneable, and its `Debug` shows only how much was fed.
pub struct TagInput<'a> {
    mac: &'a mut hmac::Hmac<sha2::Sha256>,
    fed: &'a mut usize,
}

impl fmt::Debug for TagInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagInput").field("fed", &self.fed).finish_non_exhaustive()
    }
}

impl TagInput<'_> {
    /// Feeds the next piece of the value.
    pub fn update(&mut self, bytes: &[u8]) {
        hmac::Mac::update(self.mac, bytes);
        *self.fed += bytes.len();
    }
}

/// The four purpose ciphers of one data-key generation.
struct GenerationCiphers {
    ciphers: [Aes256Gcm; 4],
}

impl GenerationCiphers {
    fn derive(owner: &[u8], key: &DataKey) -> GenerationCiphers {
        let generation = key.generation().to_be_bytes();
        let ciphers = Purpose::ALL.map(|purpose| {
            let k = derive_key(PURPOSE_SALT, key.bytes(), &[purpose.label(), owner, &generation]);
            Aes256Gcm::new_from_slice(k.as_ref()).expect("AES-256 takes a 32-byte key")
        });
        GenerationCiphers { ciphers }
    }

    fn get(&self, purpose: Purpose) -> &Aes256Gcm {
        &self.ciphers[purpose as usize - 1]
    }
}

/// All the keys of one owner (a tenant, or the system registry): seals with the write generation,
/// opens any generation it holds, and tags record ids with the naming key.
pub struct OwnerCipher {
    owner: Vec<u8>,
    naming: Zeroizing<[u8; 32]>,
    generations: BTreeMap<u32, GenerationCiphers>,
    write_generation: u32,
    encryptions: AtomicU64,
}

impl fmt::Debug for OwnerCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerCipher")
            .field("write_generation", &self.write_generation)
            .field("generations", &self.generations.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OwnerCipher {
    /// Builds the cipher of `owner` from its naming key (generation 0) and its data keys. The data key
    /// of `write_generation` must be among them. `encryptions` is the persisted count of values already
    /// sealed under the write generation.
    pub fn new(
        owner: &[u8],
        naming: &DataKey,
        data_keys: &[DataKey],
        write_generation: u32,
        encryptions: u64,
    ) -> Result<OwnerCipher, CryptoError> {
        let generations: BTreeMap<u32, GenerationCiphers> =
            data_keys.iter().map(|k| (k.generation(), GenerationCiphers::derive(owner, k))).collect();
        if !generations.contains_key(&write_generation) || write_generation == 0 {
            return Err(CryptoError::GenerationUnavailable { generation: write_generation });
        }
        let naming = derive_key(NAMING_SALT, naming.bytes(), &[b"record-tags", owner]);
        Ok(OwnerCipher {
            owner: owner.to_vec(),
            naming,
            generations,
            write_generation,
            encryptions: AtomicU64::new(encryptions),
        })
    }

    /// The generation new values are sealed with.
    pub fn write_generation(&self) -> u32 {
        self.write_generation
    }

    /// How many values have been sealed under the write generation, counting the persisted start value.
    pub fn encryptions(&self) -> u64 {
        self.encryptions.load(Ordering::Relaxed)
    }

    /// A keyed tag of `value` in `domain` (for example a document id in a collection). Stable across
    /// data-key generations, different for every owner.
    pub fn tag(&self, domain: &[u8], value: &[u8]) -> RecordTag {
        RecordTag(hmac_sha256(&self.naming, &[domain, value]))
    }

    /// [`OwnerCipher::tag`] of a value of `len` bytes that `write` feeds in pieces, without the
    /// value ever being whole in memory: the same tag as `tag(domain, the pieces joined)`.
    ///
    /// # Panics
    ///
    /// If `write` feeds other than `len` bytes (a caller's bug: the length is framed first).
    pub fn tag_streamed(
        &self,
        domain: &[u8],
        len: usize,
        write: impl FnOnce(&mut TagInput<'_>),
    ) -> RecordTag {
        let mut mac = crate::kdf::keyed(&self.naming);
        crate::kdf::update_field(&mut mac, domain.len(), |mac| hmac::Mac::update(mac, domain));
        let mut fed = 0;
        crate::kdf::update_field(&mut mac, len, |mac| write(&mut TagInput { mac, fed: &mut fed }));
        assert_eq!(fed, len, "a streamed tag was fed other than its announced length");
        RecordTag(hmac::Mac::finalize(mac).into_bytes().into())
    }

    /// Seals `plaintext` for `ctx` under the write generation's `purpose` key with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`CryptoError::EncryptionLimit`] once the write generation has sealed
    /// [`HARD_ENCRYPTION_LIMIT`] values: past it, random 96-bit nonces are no longer safe to use
    /// (NIST SP 800-38D), so nothing more is sealed under this generation whether or not a rotation
    /// to a new one was started in time.
    pub fn seal(
        &self,
        purpose: Purpose,
        ctx: SealContext<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        // Counted before the nonce is drawn: a value over the limit is never encrypted.
        self.encryptions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < HARD_ENCRYPTION_LIMIT).then_some(n + 1)
            })
            .map_err(|_| CryptoError::EncryptionLimit { generation: self.write_generation })?;
        let header = SealedHeader {
            version: FORMAT_VERSION,
            purpose: purpose as u8,
            generation: self.write_generation,
        };
        let cipher = self.generations[&self.write_generation].get(purpose);
        // Nonces come from the thread-local CSPRNG (ChaCha, reseeded from the OS), which saves a system
        // call per value; keys and credentials still come straight from the OS.
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = header.aad(&self.owner, ctx.column_family, ctx.record_key);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        header.write(&nonce, &mut out);
        out.extend_from_slice(&ct);
        debug_assert_eq!(out.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
        Ok(out)
    }

    /// Opens a value sealed for `ctx` and `purpose` under any generation this cipher holds.
    pub fn open(
        &self,
        purpose: Purpose,
        ctx: SealContext<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (header, nonce, ct) = SealedHeader::parse(sealed).ok_or(CryptoError::Integrity)?;
        if header.version != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedFormat { version: header.version });
        }
        if header.purpose != purpose as u8 {
            return Err(CryptoError::Integrity);
        }
        let generation = self
            .generations
            .get(&header.generation)
            .ok_or(CryptoError::GenerationUnavailable { generation: header.generation })?;
        let aad = header.aad(&self.owner, ctx.column_family, ctx.record_key);
        generation
            .get(purpose)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Integrity)
    }

    /// The generation a sealed value was written with, read from its header without opening it.
    pub fn sealed_generation(sealed: &[u8]) -> Option<u32> {
        SealedHeader::parse(sealed).map(|(h, _, _)| h.generation)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `N` random bytes from the operating system (for credentials and opaque ids, never for keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}
