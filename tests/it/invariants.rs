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

/// `cargo tree` of `package`'s normal dependencies (no dev or build edges, so no dev-dependency's
/// features either), one line per package with its enabled features: `name vX (path) [a,b]`.
fn normal_tree(package: &str, extra: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(&cargo)
        .current_dir(workspace())
        .args(["tree", "--offline", "--locked", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p} [{f}]"])
        .args(extra)
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The `bulkhead` binary, built as `scripts/serve` builds it (`-p bulkhead-cli`, default features),
/// carries no hnsw_rs: its C code and `process::exit` paths stay in benchmark builds.
#[test]
fn the_server_binary_does_not_carry_hnsw_rs() {
    let carries = |text: &str| text.lines().any(|line| line.starts_with("hnsw_rs "));
    assert!(
        !carries(&normal_tree("bulkhead-cli", &[])),
        "the default build of the binary depends on hnsw_rs"
    );
    // The check can see it: with the benchmark feature, the same tree does name it.
    assert!(
        carries(&normal_tree("bulkhead-cli", &["--features", "hnsw-rs"])),
        "cargo tree did not show hnsw_rs with its feature"
    );
}

/// The query crate's `test-support` hooks (`Tenant::point_ref`, `Tenant::search_observed`) are not
/// in the server or the `bulkhead` binary: their normal dependency graphs build `bulkhead-query`
/// without the feature, and no product crate's manifest turns it on outside its dev-dependencies
/// (a `cargo test` of the whole workspace unifies features and may build it in; that is the tests').
#[test]
fn test_support_is_not_in_the_product_builds() {
    let enabled = |text: &str| {
        text.lines().any(|line| {
            line.starts_with("bulkhead-query ")
                && line.rsplit_once('[').is_some_and(|(_, features)| features.contains("test-support"))
        })
    };
    for package in ["bulkhead-server", "bulkhead-cli"] {
        let tree = normal_tree(package, &[]);
        assert!(tree.lines().any(|l| l.starts_with("bulkhead-query ")), "{package} without bulkhead-query?");
        assert!(!enabled(&tree), "{package}'s normal build enables bulkhead-query/test-support");
    }
    // The check can see it: asked for, the feature shows in the same tree.
    let asked = normal_tree("bulkhead-cli", &["--features", "bulkhead-query/test-support"]);
    assert!(enabled(&asked), "cargo tree did not show bulkhead-query's test-support when asked for");

    // The manifests: the feature is named only where it is defined (the query crate's `[features]`)
    // and in dev-dependencies; never in a product crate's normal, build or target dependencies, in
    // a feature list (a default one included), or in the workspace's shared dependencies.
    let mut manifests: Vec<(String, PathBuf)> =
        crates().into_iter().map(|(name, path)| (name, path.join("Cargo.toml"))).collect();
    manifests.push(("the workspace".to_owned(), workspace().join("Cargo.toml")));
    let mut defined = false;
    for (name, manifest) in manifests {
        let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
        let mut section = String::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.starts_with('[') {
                section = line.to_owned();
            } else if line.contains("test-support") {
                let definition =
                    name == "bulkhead-query" && section == "[features]" && line == "test-support = []";
                defined |= definition;
                assert!(
                    definition || section.ends_with("dev-dependencies]"),
                    "{}:{} enables test-support in {section}; only dev-dependencies may",
                    manifest.display(),
                    n + 1
                );
            }
        }
    }
    assert!(defined, "bulkhead-query no longer defines `test-support = []`: is the check still reading it?");
}

#[test]
fn only_server_knows_tonic() {
    only("bulkhead-server", "tonic");
}

/// etcd is reached only through the cluster crate, with etcd-client's own gRPC client: the crate
/// names no tonic (checked above) and no other crate depends on etcd-client.
#[test]
fn only_the_cluster_crate_talks_to_etcd() {
    only("bulkhead-cluster", "etcd-client");
    let cluster = dependencies(&workspace().join("crates/bulkhead-cluster/Cargo.toml"));
    assert!(cluster.iter().any(|d| d == "etcd-client"), "is the check still reading the manifest?");
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

// The checks below read the code itself. A small lexer splits a source file into code, comments
// and literals, so that a word in a comment or a string never counts as code.

/// A string literal of a Rust source file: its line, whether it is a byte string, and its content
/// as written (escapes not resolved).
struct Literal {
    line: usize,
    bytes: bool,
    text: String,
}

/// A Rust source file split into its code (comments removed, every string, byte-string and char
/// literal replaced by `""` or `' '`; lines kept) and its string literals.
struct Source {
    code: String,
    literals: Vec<Literal>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits `text` into code and literals. Handles nested block comments, escapes, raw strings with
/// any number of `#`, byte strings, char literals and lifetimes (which stay in the code).
fn lex(text: &str) -> Source {
    let chars: Vec<char> = text.chars().collect();
    let (mut code, mut literals, mut line, mut i) = (String::new(), Vec::new(), 1, 0);
    let newline = |code: &mut String, line: &mut usize, c: char| {
        if c == '\n' {
            code.push('\n');
            *line += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let at_token_start = i == 0 || !is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    newline(&mut code, &mut line, chars[i]);
                    i += 1;
                }
            }
        } else if at_token_start && (c == '"' || c == 'b' || c == 'r' || c == 'c') && {
            // A string literal starts here: `"`, `b"`, `r"`, `r#"`, `br"`, `br#"`, `c"`.
            let mut j = i;
            if matches!(chars[j], 'b' | 'c') {
                j += 1;
            }
            if chars.get(j) == Some(&'r') {
                j += 1;
                while chars.get(j) == Some(&'#') {
                    j += 1;
                }
            }
            chars.get(j) == Some(&'"')
        } {
            let bytes = c == 'b';
            let start_line = line;
            while chars[i] != '"' && chars[i] != 'r' {
                i += 1;
            }
            let mut hashes = 0;
            let raw = chars[i] == 'r';
            if raw {
                i += 1;
                while chars[i] == '#' {
                    hashes += 1;
                    i += 1;
                }
            }
            i += 1;
            let mut text = String::new();
            while i < chars.len() {
                let closes = chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#'));
                if closes {
                    i += 1 + hashes;
                    break;
                }
                if !raw && chars[i] == '\\' {
                    text.push(chars[i]);
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    text.push(ch);
                    newline(&mut code, &mut line, ch);
                }
                i += 1;
            }
            code.push_str("\"\"");
            literals.push(Literal { line: start_line, bytes, text });
            continue;
        } else if c == '\'' {
            // A char literal (`'x'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`, kept as code).
            let escaped = next == Some('\\');
            let end = if escaped {
                (i + 3..chars.len()).find(|&j| chars[j] == '\'')
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            if let Some(end) = end {
                code.push_str("' '");
                i = end + 1;
                continue;
            }
            code.push(c);
            i += 1;
        } else {
            code.push(c);
            if c == '\n' {
                line += 1;
            }
            i += 1;
        }
    }
    Source { code, literals }
}

fn read_source(path: &Path) -> Source {
    lex(&std::fs::read_to_string(path).expect("source"))
}

/// The storage crate's source files, with their paths relative to its `src`.
fn storage_sources() -> Vec<(String, PathBuf)> {
    let src = workspace().join("crates/bulkhead-storage/src");
    let mut out: Vec<(String, PathBuf)> = rust_files(&src)
        .into_iter()
        .map(|p| (p.strip_prefix(&src).expect("below src").to_string_lossy().replace('\\', "/"), p))
        .collect();
    out.sort();
    out
}

/// Whether a storage source file (relative to `src`) is one of the layout modules.
fn is_layout(relative: &str) -> bool {
    relative == "layout.rs" || relative.starts_with("layout/")
}

/// The positions where `word` stands in `code` as a whole identifier.
fn word_positions<'c>(code: &'c str, word: &'c str) -> impl Iterator<Item = usize> + 'c {
    code.match_indices(word).map(|(at, _)| at).filter(move |&at| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// Inside `bulkhead-storage`, RocksDB is named by the engine module alone (`engine.rs` and
/// `engine/dedicated.rs`, a dedicated tenant's instance): every other file goes through its
/// wrappers (and so no other file can reach around the crate's keys or layouts).
#[test]
fn only_the_engine_module_names_rocksdb() {
    let mut seen_in_engine = false;
    for (relative, path) in storage_sources() {
        let source = read_source(&path);
        let uses: Vec<usize> =
            word_positions(&source.code, "rocksdb").map(|at| line_of(&source.code, at)).collect();
        if relative == "engine.rs" {
            seen_in_engine = !uses.is_empty();
        } else if relative != "engine/dedicated.rs" {
            assert!(uses.is_empty(), "{relative} names rocksdb at lines {uses:?}; only the engine may");
        }
    }
    // The check can see it: the engine itself names it.
    assert!(seen_in_engine, "engine.rs does not name rocksdb: is the check still looking at code?");
}

/// Inside `bulkhead-storage`, the system's clocks are read by `clock.rs` alone: every timestamp,
/// expiry check and window goes through the store's `Clock`, which a test may replace.
#[test]
fn only_the_clock_module_reads_the_system_clocks() {
    let mut seen_in_clock = false;
    for (relative, path) in storage_sources() {
        let code = read_source(&path).code;
        let reads: Vec<usize> = ["SystemTime", "UNIX_EPOCH"]
            .into_iter()
            .flat_map(|word| word_positions(&code, word))
            .chain(code.match_indices("Instant::now").map(|(at, _)| at))
            .map(|at| line_of(&code, at))
            .collect();
        if relative == "clock.rs" {
            seen_in_clock = !reads.is_empty();
        } else {
            assert!(
                reads.is_empty(),
                "{relative} reads a system clock at lines {reads:?}; only clock.rs may"
            );
        }
    }
    assert!(seen_in_clock, "clock.rs reads no system clock: is the check still looking at code?");
}

/// Every key prefix of the storage crate is spelled in its layout modules alone: no byte-string
/// literal ending in `/` outside them, and no literal (byte or text) outside them that is, or
/// starts with, a key prefix or key the layout modules spell.
#[test]
fn storage_key_prefixes_are_spelled_only_in_the_layout_modules() {
    let sources: Vec<(String, Source)> =
        storage_sources().into_iter().map(|(relative, path)| (relative, read_source(&path))).collect();
    // What the layout modules spell as keys: byte strings with a name before a `/` (`"keyring/"`,
    // `"meta/format"`), and those given to a constant named `..._KEY` or `..._PREFIX`.
    let mut layout_keys: Vec<String> = Vec::new();
    for (_, source) in sources.iter().filter(|(relative, _)| is_layout(relative)) {
        let lines: Vec<&str> = source.code.lines().collect();
        for literal in source.literals.iter().filter(|l| l.bytes) {
            let line = lines.get(literal.line - 1).copied().unwrap_or_default();
            let named = line.contains("const ") && (line.contains("_KEY:") || line.contains("_PREFIX:"));
            let path_like = literal.text.split('/').count() > 1 && !literal.text.starts_with('/');
            if named || path_like {
                layout_keys.push(literal.text.clone());
            }
        }
    }
    for expected in ["keyring/", "enc/", "rotate/", "tenant/", "apikey/", "policy/", "audit/", "auditchains"]
    {
        assert!(layout_keys.iter().any(|k| k == expected), "the layout modules do not spell {expected:?}");
    }
    for (relative, source) in sources.iter().filter(|(relative, _)| !is_layout(relative)) {
        for literal in &source.literals {
            let prefix_like = literal.bytes && literal.text.ends_with('/');
            let spelled = layout_keys.iter().any(|k| literal.text.starts_with(k.as_str()));
            assert!(
                !prefix_like && !spelled,
                "{relative}:{} spells the key prefix {:?}; key layouts belong in layout.rs and layout/",
                literal.line,
                literal.text
            );
        }
    }
}

fn max_width() -> usize {
    let text = std::fs::read_to_string(workspace().join("rustfmt.toml")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "max_width")
        .map_or(100, |(_, value)| value.trim().parse().expect("max_width is a number"))
}

#[test]
fn no_line_is_wider_than_rustfmts_max_width() {
    let width = max_width();
    for (name, path) in crates() {
        let mut long = Vec::new();
        for file in rust_files(&path.join("src")) {
            let text = std::fs::read_to_string(&file).expect("source");
            for (n, line) in text.lines().enumerate() {
                if line.chars().count() > width {
                    long.push(format!("{}:{}", file.display(), n + 1));
                }
            }
        }
        assert!(long.is_empty(), "{name} has {} lines over {width} characters: {long:#?}", long.len());
    }
}

/// Scopes are minted by the two doors alone (`Store::authenticate`, `Store::trusted_host_scope`, both
/// in `bulkhead-storage/src/auth.rs`): no other file of any crate writes a `TenantScope { .. }`
/// struct literal, and `scope.rs` writes no `Self { .. }` either.
#[test]
fn scopes_are_minted_only_by_the_two_doors() {
    // A name followed by `{` starts a body, not a literal, after these tokens.
    let opens_a_body = |code: &str, at: usize| {
        let before = code[..at].trim_end();
        let start =
            before.char_indices().rev().find(|(_, c)| !is_ident(*c)).map_or(0, |(i, c)| i + c.len_utf8());
        let token = if before.ends_with("->") { "->" } else { &before[start..] };
        ["struct", "impl", "for", "enum", "trait", "->"].contains(&token)
    };
    let literals = |code: &str, word: &str| -> Vec<usize> {
        word_positions(code, word)
            .filter(|&at| code[at + word.len()..].trim_start().starts_with('{') && !opens_a_body(code, at))
            .map(|at| line_of(code, at))
            .collect()
    };
    let doors = workspace().join("crates/bulkhead-storage/src/auth.rs");
    let mut minted_at_doors = 0;
    for (_, path) in crates() {
        for file in rust_files(&path.join("src")) {
            let source = read_source(&file);
            let minted = literals(&source.code, "TenantScope");
            if file == doors {
                minted_at_doors = minted.len();
            } else {
                assert!(minted.is_empty(), "{} mints a TenantScope at lines {minted:?}", file.display());
            }
            if file.ends_with("bulkhead-storage/src/scope.rs") {
                let selves = literals(&source.code, "Self");
                assert!(selves.is_empty(), "scope.rs builds a scope with Self {{ .. }} at lines {selves:?}");
            }
        }
    }
    // The check can see them: the two doors each mint one.
    assert_eq!(minted_at_doors, 2, "auth.rs should mint exactly two scopes (the two doors)");
}

/// A `rust-version` as numbers (`"1.89"` is `[1, 89]`).
fn version_numbers(text: &str) -> Vec<u64> {
    text.trim().trim_matches('"').split('.').map(|n| n.parse().expect("a version number")).collect()
}

/// The `rust-version` a manifest declares (its own, or the workspace's through
/// `rust-version.workspace = true`).
fn rust_version(manifest: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(manifest).expect("Cargo.toml");
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("rust-version"))
        .unwrap_or_else(|| panic!("{} declares no rust-version", manifest.display()));
    if line.contains("workspace") {
        return rust_version(&workspace().join("Cargo.toml"));
    }
    version_numbers(line.split_once('=').expect("rust-version = \"...\"").1)
}

/// Every package of the workspace needs at least the Rust version of each workspace crate it
/// depends on; otherwise its declared minimum is one it cannot be built with.
#[test]
fn every_package_needs_at_least_the_rust_version_of_its_workspace_dependencies() {
    let mut packages = crates();
    packages.push(("benches".to_owned(), workspace().join("benches")));
    packages.push(("bulkhead-tests".to_owned(), workspace().join("tests")));
    let members: std::collections::HashMap<String, PathBuf> = crates().into_iter().collect();
    let mut compared = 0;
    for (name, path) in &packages {
        let own = rust_version(&path.join("Cargo.toml"));
        for dependency in dependencies(&path.join("Cargo.toml")) {
            let Some(dependency_path) = members.get(&dependency) else { continue };
            let needed = rust_version(&dependency_path.join("Cargo.toml"));
            assert!(own >= needed, "{name} declares rust-version {own:?}, below {dependency}'s {needed:?}");
            compared += 1;
        }
    }
    assert!(compared > 0, "no workspace dependency was found: is the check still reading the manifests?");
}
