//! The supply chain, checked offline over `Cargo.lock` (CI reaches crates.io but not GitHub, so
//! `cargo deny` could not fetch its advisory database there): every package comes from crates.io or
//! this workspace; no banned package is in the graph; every cryptographic package is one we allow,
//! named below with its reason; and no locked version is affected by a RustSec advisory in
//! `supply-chain/advisories.toml` (made by `scripts/advisories.py` from a clone of
//! rustsec/advisory-db; it says which commit), unless the advisory is listed in `ACCEPTED` with why.

use std::collections::BTreeMap;

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// Packages that must never be in the graph, and why.
const BANNED: &[(&str, &str)] = &[
    ("openssl", "TLS and crypto go through rustls and RustCrypto; no system OpenSSL"),
    ("openssl-sys", "as openssl"),
    ("native-tls", "as openssl"),
    ("aws-lc-rs", "rustls runs on ring here (a C compiler alone builds it); no second provider"),
    ("aws-lc-sys", "as aws-lc-rs"),
    (
        "hnsw_rs",
        "allowed only through the index crate's hnsw-rs feature (checked by invariants.rs); banned by name for anything else below",
    ),
];

/// Every package that implements or wraps cryptography, and why it is here. A new one fails the
/// test until it is reviewed and added.
const CRYPTO_ALLOWED: &[(&str, &str)] = &[
    ("aes-gcm", "sealing values (bulkhead-crypto)"),
    ("aes", "the block cipher of aes-gcm"),
    ("ghash", "aes-gcm's authenticator"),
    ("polyval", "ghash's field arithmetic"),
    ("universal-hash", "ghash's trait"),
    ("aead", "aes-gcm's trait"),
    ("cipher", "aes's trait"),
    ("ctr", "aes-gcm's counter mode"),
    ("crypto-common", "the RustCrypto traits"),
    ("digest", "the RustCrypto hash traits"),
    ("hkdf", "key derivation (bulkhead-crypto)"),
    ("hmac", "record tags, audit MACs (bulkhead-crypto)"),
    ("sha2", "HKDF's and HMAC's hash"),
    ("subtle", "constant-time comparison"),
    ("zeroize", "wiping key material"),
    ("zeroize_derive", "zeroize's derive"),
    ("ring", "rustls's crypto provider (tonic's tls-ring)"),
    ("rustls", "TLS for the server and clients"),
    ("rustls-webpki", "rustls's certificate verification"),
    ("rustls-pki-types", "rustls's key and certificate types"),
    ("tokio-rustls", "rustls on tokio"),
    ("rustls-pemfile", "reading PEM certificates and keys"),
    ("rcgen", "self-signed certificates in the TLS tests (dev only)"),
    ("chacha20", "rand 0.10's CSPRNG (a dependency's; nonces use rand 0.8's ChaCha)"),
    ("rand_chacha", "the thread-local CSPRNG that draws nonces"),
];

/// Name fragments that mark a package as cryptographic.
const CRYPTO_MARKERS: &[&str] = &[
    "aes",
    "gcm",
    "chacha",
    "poly1305",
    "sha1",
    "sha2",
    "sha3",
    "md5",
    "md-5",
    "blake",
    "hmac",
    "hkdf",
    "pbkdf",
    "argon",
    "scrypt",
    "bcrypt",
    "rsa",
    "ecdsa",
    "ed25519",
    "x25519",
    "curve25519",
    "p256",
    "p384",
    "k256",
    "ring",
    "rustls",
    "openssl",
    "aws-lc",
    "cipher",
    "aead",
    "digest",
    "subtle",
    "zeroize",
    "ghash",
    "polyval",
    "webpki",
    "rcgen",
];

/// Advisories affecting a locked version that are accepted, and why. Empty: none is.
const ACCEPTED: &[(&str, &str)] = &[];

struct Locked {
    name: String,
    version: semver::Version,
    source: Option<String>,
}

fn locked() -> Vec<Locked> {
    let root = crate::invariants::manifest_dir().join("..");
    let lock: toml::Table =
        std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock").parse().expect("lock file");
    lock["package"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Locked {
            name: p["name"].as_str().expect("name").to_owned(),
            version: semver::Version::parse(p["version"].as_str().expect("version")).expect("semver"),
            source: p.get("source").and_then(|s| s.as_str()).map(str::to_owned),
        })
        .collect()
}

fn is_crypto(name: &str) -> bool {
    // Whole words only: "ring" in "string" or "roaring" is not the crypto crate.
    let words: Vec<&str> = name.split(['-', '_']).collect();
    CRYPTO_MARKERS.iter().any(|marker| {
        if marker.contains('-') {
            name.contains(marker)
        } else {
            words.iter().any(|w| w == marker || (w.starts_with(marker) && marker.len() > 3))
        }
    })
}

#[test]
fn every_package_comes_from_crates_io_or_the_workspace() {
    for p in locked() {
        match &p.source {
            None => assert!(
                p.name.starts_with("bulkhead-"),
                "{} is a path dependency outside the workspace",
                p.name
            ),
            Some(source) => assert_eq!(source, CRATES_IO, "{} {} comes from {source}", p.name, p.version),
        }
    }
}

#[test]
fn no_banned_package_and_only_allowed_cryptography() {
    let all = locked();
    for (banned, why) in BANNED {
        if *banned == "hnsw_rs" {
            continue; // its feature gate is checked by invariants.rs
        }
        assert!(!all.iter().any(|p| p.name == *banned), "{banned} is in Cargo.lock: {why}");
    }
    let allowed: BTreeMap<&str, &str> = CRYPTO_ALLOWED.iter().copied().collect();
    let mut versions: BTreeMap<&str, Vec<&semver::Version>> = BTreeMap::new();
    for p in &all {
        if p.source.is_some() && is_crypto(&p.name) {
            assert!(
                allowed.contains_key(p.name.as_str()),
                "{} {} is cryptographic and not reviewed: add it to CRYPTO_ALLOWED with its reason, or remove it",
                p.name,
                p.version
            );
            versions.entry(p.name.as_str()).or_default().push(&p.version);
        }
    }
    // The marker list finds what it should (a check on the check).
    assert!(versions.contains_key("aes-gcm") && versions.contains_key("ring"));
    for name in ["roaring", "string-interner", "sharded-slab", "once_cell_polyfill"] {
        assert!(!is_crypto(name), "{name} is not cryptographic");
    }
    for name in ["sha1_smol", "md-5", "openssl-sys", "chacha20poly1305", "p256"] {
        assert!(is_crypto(name), "{name} is cryptographic");
    }
    for crate_name in ["aes-gcm", "aes", "hkdf", "hmac", "sha2", "ring", "rustls"] {
        let found = versions.get(crate_name).map_or(0, Vec::len);
        assert!(
            found <= 1,
            "{crate_name} is locked at {found} versions: one implementation of each primitive"
        );
    }
}

#[test]
fn no_locked_version_has_an_open_advisory() {
    let root = crate::invariants::manifest_dir().join("..");
    let file: toml::Table = std::fs::read_to_string(root.join("supply-chain/advisories.toml"))
        .expect("supply-chain/advisories.toml")
        .parse()
        .expect("advisories");
    let advisories = file["advisory"].as_array().expect("advisories");
    assert!(!advisories.is_empty());
    let all = locked();
    let mut open = Vec::new();
    for advisory in advisories {
        let field = |name: &str| advisory[name].as_str().expect("a string").to_owned();
        let (id, package) = (field("id"), field("package"));
        if advisory["withdrawn"].as_bool().expect("withdrawn") {
            continue;
        }
        let ranges = |name: &str| -> Vec<semver::VersionReq> {
            advisory[name]
                .as_array()
                .expect("a list")
                .iter()
                .map(|r| semver::VersionReq::parse(r.as_str().expect("a range")).expect("a version range"))
                .collect()
        };
        let (patched, unaffected) = (ranges("patched"), ranges("unaffected"));
        for p in all.iter().filter(|p| p.name == package && p.source.is_some()) {
            let safe = patched.iter().chain(&unaffected).any(|req| req.matches(&p.version));
            // An informational advisory without a patched range (unmaintained, say) affects every version.
            if !safe && !ACCEPTED.iter().any(|(accepted, _)| *accepted == id) {
                open.push(format!(
                    "{id}: {package} {} ({}) {}",
                    p.version,
                    field("informational"),
                    field("title")
                ));
            }
        }
    }
    assert!(
        open.is_empty(),
        "locked versions with advisories (update them, or accept with a reason):\n{}",
        open.join("\n")
    );
}
