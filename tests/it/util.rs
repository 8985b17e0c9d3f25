//! Test fixtures: a temporary data directory with its own master key, removed on drop.

use bulkhead_query::{Database, MasterKey, StoreOptions, TenantName, TenantScope};
use std::path::{Path, PathBuf};

/// A data directory and a master key file in a temporary folder that is deleted on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        let dir = tempfile::tempdir().expect("tempdir");
        MasterKey::generate().write_new_file(&dir.path().join("master.key")).expect("key file");
        TestDir { dir }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    pub fn master(&self) -> MasterKey {
        MasterKey::from_file(&self.key_path()).expect("master key")
    }

    pub fn open(&self) -> Database {
        Database::open(&self.data(), self.master(), StoreOptions::default()).expect("open")
    }
}

/// Creates a tenant and mints a trusted-host scope for it.
pub fn tenant(db: &Database, name: &str) -> TenantScope {
    let name = TenantName::new(name).expect("name");
    db.operator().create_tenant(&name).expect("create tenant");
    db.operator().trusted_host_scope(&name, "test fixture").expect("scope")
}

/// A deterministic vector for `seed`.
pub fn vector(seed: u64, dimension: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..dimension).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Opens the data directory raw, as an attacker with disk access would (the store must be closed).
pub fn raw_db(path: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, path).expect("list column families");
    rocksdb::DB::open_cf(&opts, path, cfs).expect("raw open")
}

/// The raw (key, value) pairs of one record kind ('P' payload, 'V' vector) in a tenant's column family.
pub fn raw_records(db: &rocksdb::DB, cf: &str, kind: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
    let handle = db.cf_handle(cf).expect("cf");
    db.iterator_cf(&handle, rocksdb::IteratorMode::Start)
        .map(|r| r.expect("iter"))
        .filter(|(k, _)| k.get(16) == Some(&kind))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// The raw column family name of a tenant (its opaque uid in hex).
pub fn cf_name(db: &Database, tenant: &str) -> String {
    let info = db.operator().tenant_info(&TenantName::new(tenant).expect("name")).expect("info");
    format!("t-{}", hex::encode(info.uid.as_bytes()))
}

/// The number in a child process's `ack N` line. libtest prints `test name ... ` without a newline
/// before a test runs, so the first acknowledgement shares its line: look for the marker anywhere.
pub fn ack(line: &str) -> Option<u64> {
    let (_, n) = line.rsplit_once("ack ")?;
    n.trim().parse().ok()
}

/// Polls `done` every 10 ms until it returns `Some`, for at most two minutes (background work on a
/// loaded machine); panics naming `what` otherwise. The one poll loop of these tests.
pub fn wait_until<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
