//! The architecture invariants of `docs/ARCHITECTURE.md`, checked against the source tree so that a
//! change that breaks one fails CI instead of waiting for a reviewer to notice.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    manifest_dir().parent().expect("workspace root").to_owned()
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| (p.file_name().expect("name").to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("Cargo.toml");
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.contains("dependencies");
        } else if in_deps
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once(['=', '.'])
        {
            out.push(name.trim().to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    crate::util::files_below(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")).collect()
}

/// Only the named crate may depend on `dependency`.
fn only(crate_name: &str, dependency: &str) {
    for (name, path) in crates() {
        let deps = dependencies(&path.join("Cargo.toml"));
        if name != crate_name {
            assert!(
                !deps.iter().any(|d| d == dependency),
                "{name} depends on {dependency}; only {crate_name} may"
            );
        }
    }
}

#[test]
fn only_storage_names_rocksdb() {
    only("bulkhead-storage", "rocksdb");
}

#[test]
fn only_crypto_touches_ciphers_and_kdfs() {
    for dependency in ["aes-gcm", "hkdf", "hmac", "sha2", "zeroize"] {
        for (name, path) in crates() {
            let deps = dependencies(&path.join("Cargo.toml"));
            // zeroize also wipes storage's copies, and the server's copy of its TLS private key
            // (bytes rustls must be handed, read after the crypto crate's file check).
            let allowed = name == "bulkhead-crypto"
                || (dependency == "zeroize" && (name == "bulkhead-storage" || name == "bulkhead-server"));
            assert!(allowed || !deps.iter().any(|d| d == dependency), "{name} depends on {dependency}");
        }
    }
}

#[test]
fn only_index_uses_hnsw_rs() {
    only("bulkhead-index", "hnsw_rs");
}

/// The `bulkhead` binary, built as `scripts/serve` builds it (`-p bulkhead-cli`, default features),
/// carries no hnsw_rs: its C code and `process::exit` paths stay in benchmark builds.
#[test]
fn the_server_binary_does_not_carry_hnsw_rs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let tree = |extra: &[&str]| {
        let output = std::process::Command::new(&cargo)
            .current_dir(workspace())
            .args(["tree", "--offline", "--locked", "-p", "bulkhead-cli", "-e", "normal", "--prefix", "none"])
            .args(extra)
            .output()
            .expect("run cargo tree");
        assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let carries = |text: &str| text.lines().any(|line| line.starts_with("hnsw_rs "));
    assert!(!carries(&tree(&[])), "the default build of the binary depends on hnsw_rs");
    // The check can see it: with the benchmark feature, the same tree does name it.
    assert!(carries(&tree(&["--features", "hnsw-rs"])), "cargo tree did not show hnsw_rs with its feature");
}

#[test]
fn only_server_knows_tonic() {
    only("bulkhead-server", "tonic");
}

/// The server is a library that only serves: the `bulkhead` binary, its command-line parsing and
/// `anyhow` are `bulkhead-cli`'s; every library crate reports errors through its own enum.
#[test]
fn only_the_binary_parses_command_lines_and_uses_anyhow() {
    only("bulkhead-cli", "clap");
    only("bulkhead-cli", "anyhow");
    let server = workspace().join("crates/bulkhead-server");
    let manifest = std::fs::read_to_string(server.join("Cargo.toml")).expect("Cargo.toml");
    assert!(!manifest.contains("[[bin]]"), "bulkhead-server declares a binary");
    assert!(
        !server.join("src/main.rs").exists() && !server.join("src/bin").exists(),
        "bulkhead-server has a binary"
    );
}

#[test]
fn only_distance_has_unsafe_code() {
    for (name, path) in crates() {
        if name == "bulkhead-distance" {
            continue;
        }
        for file in rust_files(&path.join("src")) {
            let text = std::fs::read_to_string(&file).expect("source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let has_unsafe = ["unsafe {", "unsafe fn", "unsafe impl", "unsafe extern"]
                    .iter()
                    .any(|p| code.contains(p));
                assert!(
                    !has_unsafe,
                    "{}:{} has unsafe code; only bulkhead-distance may",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn distance_knows_nothing_of_tenants() {
    let path = workspace().join("crates/bulkhead-distance");
    let deps = dependencies(&path.join("Cargo.toml"));
    assert!(!deps.iter().any(|d| d.starts_with("bulkhead-")), "distance depends on {deps:?}");
    for file in rust_files(&path.join("src")) {
        let text = std::fs::read_to_string(&file).expect("source").to_lowercase();
        assert!(!text.contains("tenant"), "{} mentions tenants", file.display());
    }
}

#[test]
fn every_source_file_says_what_it_is_for() {
    for dir in ["crates", "tests", "benches"] {
        for file in rust_files(&workspace().join(dir)) {
            if file.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("source");
            assert!(text.starts_with("//!"), "{} does not start with a //! line", file.display());
        }
    }
}

/// The package's directory, as cargo gives it when it runs this binary. The compile-time value is
/// only a fallback: a target directory shared between checkouts can hold a binary built in another
/// one, and cargo reuses it when the sources match.
pub(crate) fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
}
