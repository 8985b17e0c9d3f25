//! Unit tests: known-answer tests from Wycheproof and RFC 5869, the committed golden vector of our own
//! formats, and the binding and redaction properties of every key type.

use super::*;
use crate::kdf::hkdf_sha256;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn shared_testdata(name: &str) -> PathBuf {
    manifest_dir().join("../../../shared/testdata").join(name)
}

fn load_json(name: &str) -> Value {
    let path = shared_testdata(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// Every Wycheproof AES-256-GCM case with a 96-bit IV and a 128-bit tag: valid cases round-trip
/// exactly, invalid ones fail to open and yield no plaintext.
#[test]
fn wycheproof_aes_256_gcm() {
    let doc = load_json("wycheproof/aes_gcm_test.json");
    let mut valid = 0;
    let mut invalid = 0;
    for group in doc["testGroups"].as_array().expect("groups") {
        if group["keySize"] != 256 || group["ivSize"] != 96 || group["tagSize"] != 128 {
            continue;
        }
        for case in group["tests"].as_array().expect("tests") {
            let id = &case["tcId"];
            let cipher = Aes256Gcm::new_from_slice(&hx(&case["key"])).expect("32-byte key");
            let iv = hx(&case["iv"]);
            let aad = hx(&case["aad"]);
            let msg = hx(&case["msg"]);
            let mut sealed = hx(&case["ct"]);
            sealed.extend_from_slice(&hx(&case["tag"]));
            let opened = cipher.decrypt(Nonce::from_slice(&iv), Payload { msg: &sealed, aad: &aad });
            match case["result"].as_str() {
                Some("valid") => {
                    valid += 1;
                    let ct = cipher
                        .encrypt(Nonce::from_slice(&iv), Payload { msg: &msg, aad: &aad })
                        .expect("encrypt");
                    assert_eq!(ct, sealed, "case {id}: ciphertext differs");
                    assert_eq!(opened.expect("valid case opens"), msg, "case {id}: plaintext differs");
                }
                _ => {
                    invalid += 1;
                    assert!(opened.is_err(), "case {id}: an invalid case opened");
                }
            }
        }
    }
    assert_eq!(valid + invalid, 66, "the 256/96/128 group has 66 cases");
    assert!(invalid > 0 && valid > 0);
}

/// Every Wycheproof HKDF-SHA256 case, including the oversize ones, which must be errors.
#[test]
fn wycheproof_hkdf_sha256() {
    let doc = load_json("wycheproof/hkdf_sha256_test.json");
    let mut count = 0;
    let mut too_large = 0;
    for group in doc["testGroups"].as_array().expect("groups") {
        for case in group["tests"].as_array().expect("tests") {
            count += 1;
            let id = &case["tcId"];
            let size = case["size"].as_u64().expect("size") as usize;
            let got = hkdf_sha256(&hx(&case["salt"]), &hx(&case["ikm"]), &hx(&case["info"]), size);
            match case["result"].as_str() {
                Some("valid") => assert_eq!(*got.expect("valid case derives"), hx(&case["okm"]), "case {id}"),
                _ => {
                    too_large += 1;
                    assert!(
                        matches!(got, Err(CryptoError::KdfLength { requested, .. }) if requested == size),
                        "case {id}: oversize output must be an error"
                    );
                }
            }
        }
    }
    assert_eq!(count, 86);
    assert_eq!(too_large, 3);
}

/// Parses RFC 5869's appendix: fields spread over continuation lines of hex.
fn rfc5869_sha256_cases() -> Vec<std::collections::HashMap<String, Vec<u8>>> {
    let text = std::fs::read_to_string(shared_testdata("rfc5869.txt")).expect("rfc5869.txt");
    let mut cases = Vec::new();
    let mut current: Option<std::collections::HashMap<String, Vec<u8>>> = None;
    let mut field: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(hash) = line.strip_prefix("Hash = ") {
            if let Some(done) = current.take() {
                cases.push(done);
            }
            current = (hash == "SHA-256").then(std::collections::HashMap::new);
            field = None;
            continue;
        }
        let Some(case) = current.as_mut() else { continue };
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim().to_owned();
            let value = value.trim();
            let bytes = if name == "L" {
                value.parse::<u16>().expect("L").to_be_bytes().to_vec()
            } else if let Some(h) = value.strip_prefix("0x") {
                hex::decode(h.split_whitespace().next().unwrap_or("")).expect("hex")
            } else {
                Vec::new()
            };
            case.insert(name.clone(), bytes);
            field = Some(name);
        } else if let (Some(name), Some(chunk)) = (&field, line.split_whitespace().next()) {
            if let Ok(more) = hex::decode(chunk) {
                case.get_mut(name).expect("field").extend_from_slice(&more);
            }
        } else {
            field = None;
        }
    }
    cases.extend(current);
    cases
}

#[test]
fn rfc5869_sha256_cases_match() {
    let cases = rfc5869_sha256_cases();
    assert_eq!(cases.len(), 3, "A.1 to A.3 use SHA-256");
    for case in cases {
        let len = u16::from_be_bytes(case["L"][..].try_into().expect("L")) as usize;
        let okm = hkdf_sha256(&case["salt"], &case["IKM"], &case["info"], len).expect("derive");
        assert_eq!(*okm, case["OKM"]);
        let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&case["salt"]), &case["IKM"]);
        assert_eq!(prk.as_slice(), &case["PRK"][..]);
    }
}

#[test]
fn hkdf_accepts_the_maximum_and_rejects_one_more() {
    assert_eq!(hkdf_sha256(b"s", b"k", b"i", 8160).expect("max").len(), 8160);
    assert!(matches!(hkdf_sha256(b"s", b"k", b"i", 8161), Err(CryptoError::KdfLength { .. })));
}

fn cipher_for(owner: &[u8], master: &MasterKey) -> (OwnerCipher, Vec<u8>, Vec<u8>) {
    let kek = master.kek(owner, 1);
    let naming = DataKey::generate(0);
    let data = DataKey::generate(1);
    let wrapped_naming = kek.wrap(&naming).as_bytes().to_vec();
    let wrapped_data = kek.wrap(&data).as_bytes().to_vec();
    (OwnerCipher::new(owner, &naming, &[data], 1, 0).expect("cipher"), wrapped_naming, wrapped_data)
}

const CTX: SealContext<'static> = SealContext { column_family: b"t-0001", record_key: b"record-1" };

#[test]
fn seal_round_trips_and_counts() {
    let master = MasterKey::generate();
    let (cipher, _, _) = cipher_for(b"tenant-a", &master);
    let sealed = cipher.seal(Purpose::Payloads, CTX, b"hello").expect("seal");
    assert_eq!(sealed.len(), 5 + SEALED_OVERHEAD);
    assert_eq!(&**cipher.open(Purpose::Payloads, CTX, &sealed).expect("opens"), b"hello");
    assert_eq!(cipher.encryptions(), 1);
    let again = cipher.seal(Purpose::Payloads, CTX, b"hello").expect("seal");
    assert_ne!(sealed, again, "a fresh nonce each time");
    assert_eq!(cipher.encryptions(), 2);
}

#[test]
fn sealing_stops_at_the_hard_encryption_limit() {
    let naming = DataKey::generate(0);
    let data = DataKey::generate(1);
    // A generation two values short of the limit (as a persisted count would bring it back).
    let cipher =
        OwnerCipher::new(b"tenant-a", &naming, &[data], 1, HARD_ENCRYPTION_LIMIT - 2).expect("cipher");
    let first = cipher.seal(Purpose::Payloads, CTX, b"one").expect("below the limit");
    cipher.seal(Purpose::Vectors, CTX, b"two").expect("the last value of the generation");
    assert_eq!(cipher.encryptions(), HARD_ENCRYPTION_LIMIT);
    for purpose in [Purpose::Payloads, Purpose::Vectors, Purpose::IndexSnapshots, Purpose::Registry] {
        assert!(matches!(
            cipher.seal(purpose, CTX, b"three"),
            Err(CryptoError::EncryptionLimit { generation: 1 })
        ));
    }
    // The refusal counts nothing and encrypts nothing; what was sealed still opens.
    assert_eq!(cipher.encryptions(), HARD_ENCRYPTION_LIMIT);
    assert_eq!(&**cipher.open(Purpose::Payloads, CTX, &first).expect("opens"), b"one");
}

#[test]
fn sealed_values_are_bound_to_their_place() {
    let master = MasterKey::generate();
    let (a, _, _) = cipher_for(b"tenant-a", &master);
    let (b, _, _) = cipher_for(b"tenant-b", &master);
    let sealed = a.seal(Purpose::Payloads, CTX, b"secret").expect("seal");
    let other_cf = SealContext { column_family: b"t-0002", ..CTX };
    let other_key = SealContext { record_key: b"record-2", ..CTX };
    assert!(matches!(a.open(Purpose::Payloads, other_cf, &sealed), Err(CryptoError::Integrity)));
    assert!(matches!(a.open(Purpose::Payloads, other_key, &sealed), Err(CryptoError::Integrity)));
    assert!(matches!(a.open(Purpose::Vectors, CTX, &sealed), Err(CryptoError::Integrity)));
    assert!(matches!(b.open(Purpose::Payloads, CTX, &sealed), Err(CryptoError::Integrity)));
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(a.open(Purpose::Payloads, CTX, &flipped), Err(CryptoError::Integrity)));
    assert!(matches!(a.open(Purpose::Payloads, CTX, &sealed[..10]), Err(CryptoError::Integrity)));
    // Relabelling the generation in the header points at a key that does not exist.
    let mut relabelled = sealed.clone();
    relabelled[5] = 9;
    assert!(matches!(
        a.open(Purpose::Payloads, CTX, &relabelled),
        Err(CryptoError::GenerationUnavailable { generation: 9 })
    ));
}

#[test]
fn wrapped_keys_need_the_right_master_owner_and_generation() {
    let master = MasterKey::generate();
    let key = DataKey::generate(3);
    let wrapped = master.kek(b"tenant-a", 1).wrap(&key);
    assert_eq!(
        master.kek(b"tenant-a", 1).unwrap_key(wrapped.as_bytes(), 3).expect("unwraps").generation(),
        3
    );
    let wrong_master = MasterKey::generate();
    for (kek, generation) in [
        (wrong_master.kek(b"tenant-a", 1), 3),
        (master.kek(b"tenant-b", 1), 3),
        (master.kek(b"tenant-a", 2), 3),
        (master.kek(b"tenant-a", 1), 4),
    ] {
        assert!(matches!(kek.unwrap_key(wrapped.as_bytes(), generation), Err(CryptoError::UnwrapFailed)));
    }
    assert_ne!(master.check_value(1), wrong_master.check_value(1));
    assert_ne!(master.check_value(1), master.check_value(2));
}

#[test]
fn tags_differ_per_owner_and_domain() {
    let master = MasterKey::generate();
    let (a, _, _) = cipher_for(b"tenant-a", &master);
    let (b, _, _) = cipher_for(b"tenant-b", &master);
    assert_eq!(a.tag(b"docs", b"id-1"), a.tag(b"docs", b"id-1"));
    assert_ne!(a.tag(b"docs", b"id-1"), b.tag(b"docs", b"id-1"));
    assert_ne!(a.tag(b"docs", b"id-1"), a.tag(b"other", b"id-1"));
}

#[test]
fn tags_fed_in_pieces_equal_tags_of_the_whole_value() {
    // The MAC is fed field by field; it must equal the MAC of the length-prefixed info string that
    // every tag stored so far was computed over.
    use hmac::Mac;
    let key = [7u8; 32];
    let parts: [&[u8]; 3] = [b"audit-subject", &[1, 2, 3], &[9; 300]];
    let mut whole = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("key");
    whole.update(&crate::kdf::info(&parts));
    assert_eq!(crate::kdf::hmac_sha256(&key, &parts), <[u8; 32]>::from(whole.finalize().into_bytes()));

    let master = MasterKey::generate();
    let (cipher, _, _) = cipher_for(b"tenant-a", &master);
    let value: Vec<u8> = (0..1536u32).map(|i| (i % 251) as u8).collect();
    for split in [0, 1, 700, 1536] {
        let streamed = cipher.tag_streamed(b"docs", value.len(), |input| {
            input.update(&value[..split]);
            input.update(&value[split..]);
        });
        assert_eq!(streamed, cipher.tag(b"docs", &value), "split at {split}");
    }
    assert_eq!(cipher.tag_streamed(b"docs", 0, |_| {}), cipher.tag(b"docs", b""));
}

#[test]
#[should_panic(expected = "other than its announced length")]
fn a_streamed_tag_fed_the_wrong_length_is_refused() {
    let master = MasterKey::generate();
    let (cipher, _, _) = cipher_for(b"tenant-a", &master);
    cipher.tag_streamed(b"docs", 4, |input| input.update(b"abc"));
}

#[test]
fn debug_output_is_redacted() {
    let master = MasterKey::generate();
    let (cipher, _, _) = cipher_for(b"tenant-a", &master);
    let key = DataKey::generate(1);
    let kek = master.kek(b"tenant-a", 1);
    for text in [format!("{master:?}"), format!("{cipher:?}"), format!("{key:?}"), format!("{kek:?}")] {
        assert!(!text.contains("tenant-a"), "{text}");
        assert!(text.contains("redacted") || text.contains(".."), "{text}");
        // No long run of hex digits (a key) appears.
        let longest_hex_run = text.split(|c: char| !c.is_ascii_hexdigit()).map(str::len).max().unwrap_or(0);
        assert!(longest_hex_run < 16, "{text}");
    }
}

#[test]
fn master_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    key.write_new_file(&path).expect("write");
    let loaded = MasterKey::from_file(&path).expect("load");
    assert_eq!(loaded.check_value(1), key.check_value(1));
    assert!(key.write_new_file(&path).is_err(), "never overwrites a key file");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            MasterKey::from_file(&path),
            Err(CryptoError::SecretFilePermissions { what: "master key", .. })
        ));
    }
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not hex").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let err = MasterKey::from_file(&bad).expect_err("malformed");
    assert!(matches!(err, CryptoError::MasterKeyMalformed { .. }));
    assert!(!err.to_string().contains("not hex"), "the error never echoes the file's content");
    assert!(matches!(
        MasterKey::from_file(&dir.path().join("missing")),
        Err(CryptoError::SecretFileUnavailable { what: "master key", .. })
    ));
    // Not a regular file: a directory, and a device that would never end; neither is read.
    let unavailable = |path: &Path, reason: &str| match MasterKey::from_file(path) {
        Err(CryptoError::SecretFileUnavailable { what: "master key", reason: got, .. }) => {
            assert!(got.contains(reason), "{got}")
        }
        other => panic!("{}: {other:?}", path.display()),
    };
    unavailable(dir.path(), "not a regular file");
    #[cfg(unix)]
    unavailable(Path::new("/dev/zero"), "not a regular file");
    // A regular file that is far too large is refused after reading one byte past the bound.
    let large = dir.path().join("large.key");
    std::fs::write(&large, "0".repeat(10 * MAX_MASTER_KEY_FILE_BYTES)).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&large, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    unavailable(&large, &format!("larger than {MAX_MASTER_KEY_FILE_BYTES} bytes"));
}

/// A FIFO is refused before it is opened (opening one would wait for a writer forever).
#[cfg(unix)]
#[test]
fn a_fifo_is_not_a_secret_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.key");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let refused = crate::read_secret_file(&fifo, "master key", 256);
    assert!(
        matches!(
            &refused,
            Err(CryptoError::SecretFileUnavailable { reason, .. }) if reason == "not a regular file"
        ),
        "{refused:?}"
    );
}

/// The committed golden vector: a master key, wrapped keys and sealed values written by format
/// version 1. Every later build must derive the same check value and tags and open the same bytes.
#[test]
fn golden_vector_v1_still_opens() {
    let golden: Value = serde_json::from_str(include_str!("../testdata/golden-v1.json")).expect("golden");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.key");
    std::fs::write(&path, golden["master_key_hex"].as_str().expect("key")).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let master = MasterKey::from_file(&path).expect("load");
    assert_eq!(hex::encode(master.check_value(1)), golden["check_value_v1"].as_str().expect("check"));
    let owner = hx(&golden["owner_hex"]);
    let kek = master.kek(&owner, 1);
    let naming = kek.unwrap_key(&hx(&golden["wrapped_naming_key"]), 0).expect("naming key unwraps");
    let data = kek.unwrap_key(&hx(&golden["wrapped_data_key"]), 1).expect("data key unwraps");
    let cipher = OwnerCipher::new(&owner, &naming, &[data], 1, 0).expect("cipher");
    assert_eq!(hex::encode(cipher.tag(b"docs", b"doc-1").0), golden["tag_docs_doc1"].as_str().expect("tag"));
    let cf = hx(&golden["column_family_hex"]);
    let record_key = hx(&golden["record_key_hex"]);
    let ctx = SealContext { column_family: &cf, record_key: &record_key };
    let opened = cipher.open(Purpose::Payloads, ctx, &hx(&golden["sealed_payload"])).expect("golden opens");
    assert_eq!(&**opened, golden["plaintext"].as_str().expect("plaintext").as_bytes());
}

/// Prints a fresh golden vector; run by hand with `--ignored --nocapture` only when a new format
/// version is introduced (and then commit it as a new file beside the old one).
#[test]
#[ignore = "generator for testdata/golden-v1.json, not a test"]
#[expect(clippy::print_stdout, reason = "the generator prints the vector for a person to commit")]
fn print_golden_vector() {
    let master = MasterKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k");
    master.write_new_file(&path).expect("write");
    let owner = b"\x01\x02\x03\x04golden-owner";
    let kek = master.kek(owner, 1);
    let naming = DataKey::generate(0);
    let data = DataKey::generate(1);
    let wrapped_naming = kek.wrap(&naming);
    let wrapped_data = kek.wrap(&data);
    let cipher = OwnerCipher::new(owner, &naming, &[data], 1, 0).expect("cipher");
    let cf = b"t-golden";
    let record_key = b"\x00record";
    let sealed = cipher
        .seal(
            Purpose::Payloads,
            SealContext { column_family: cf, record_key },
            b"bulkhead golden plaintext v1",
        )
        .expect("seal");
    let out = serde_json::json!({
        "master_key_hex": std::fs::read_to_string(&path).expect("read").trim(),
        "check_value_v1": hex::encode(master.check_value(1)),
        "owner_hex": hex::encode(owner),
        "wrapped_naming_key": hex::encode(wrapped_naming.as_bytes()),
        "wrapped_data_key": hex::encode(wrapped_data.as_bytes()),
        "tag_docs_doc1": hex::encode(cipher.tag(b"docs", b"doc-1").0),
        "column_family_hex": hex::encode(cf),
        "record_key_hex": hex::encode(record_key),
        "sealed_payload": hex::encode(&sealed),
        "plaintext": "bulkhead golden plaintext v1",
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}

/// The package's directory, as cargo gives it when it runs this binary. The compile-time value is
/// only a fallback: a target directory shared between checkouts can hold a binary built in another
/// one, and cargo reuses it when the sources match.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
}

#[test]
fn archive_frames_and_keys_open_only_under_their_archive_and_master_key() {
    let master = MasterKey::generate();
    let id = [3u8; 16];
    let key = master.archive_key(&id);
    let frame = key.seal_frame(b"header|0", b"entries");
    assert_eq!(frame.len(), b"entries".len() + crate::ARCHIVE_FRAME_OVERHEAD);
    assert_eq!(key.open_frame(b"header|0", &frame).expect("open").as_slice(), b"entries");
    assert!(matches!(key.open_frame(b"header|1", &frame), Err(CryptoError::Integrity)), "moved");
    let mut altered = frame.clone();
    altered[20] ^= 1;
    assert!(matches!(key.open_frame(b"header|0", &altered), Err(CryptoError::Integrity)));
    assert!(matches!(key.open_frame(b"header|0", &frame[..10]), Err(CryptoError::Integrity)), "cut");
    let other_archive = master.archive_key(&[4u8; 16]);
    assert!(other_archive.open_frame(b"header|0", &frame).is_err());
    assert_ne!(other_archive.check_value(), key.check_value());
    let foreign = MasterKey::generate().archive_key(&id);
    assert_ne!(foreign.check_value(), key.check_value());
    assert!(foreign.open_frame(b"header|0", &frame).is_err());

    let data = DataKey::generate(2);
    let wrapped = key.wrap(&data);
    assert!(key.unwrap_key(wrapped.as_bytes(), 2).is_ok());
    assert!(key.unwrap_key(wrapped.as_bytes(), 1).is_err(), "bound to its generation");
    assert!(foreign.unwrap_key(wrapped.as_bytes(), 2).is_err());
    assert!(other_archive.unwrap_key(wrapped.as_bytes(), 2).is_err());
    assert_eq!(format!("{key:?}"), "ArchiveKey(<redacted>)");
}

/// The archive check value of a fixed master key (bytes 0..32) and archive id (0x11 × 16),
/// computed independently (Python's hmac and hashlib, HKDF written out) and pinned here: an
/// archive written by an earlier build must keep opening.
#[test]
fn archive_check_value_known_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.key");
    let hex_key: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    crate::write_new_secret_file(&path, &hex_key).expect("write");
    let master = MasterKey::from_file(&path).expect("load");
    assert_eq!(
        hex::encode(master.archive_key(&[0x11; 16]).check_value()),
        "be25688c276ca644b923d587341f03e045b629d1fa3eec7d5b4953e2429a9ce8"
    );
}
