//! Self-signed certificates for the TLS tests, made in the test with rcgen and written as PEM
//! files. Shared with the `bulkhead` binary's tests (`crates/bulkhead-cli/tests/it/main.rs` includes
//! this file).

use std::path::{Path, PathBuf};

/// A self-signed certificate and its key, written as PEM files (the key with `key_mode`).
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn self_signed(dir: &Path, name: &str, names: &[&str], key_mode: u32) -> SelfSigned {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
    let (cert_pem, key_pem) = (made.cert.pem(), made.signing_key.serialize_pem());
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, &key_pem).expect("write key");
    set_mode(&key, key_mode);
    SelfSigned { cert, key, cert_pem, key_pem }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The key's base64 body: what must never appear in an error or a log.
pub fn key_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}
