//! Test fixtures: a temporary data directory with its own master key, removed on drop.

use bulkhead_query::{Database, ManualClock, MasterKey, Placement, StoreOptions, TenantName, TenantScope};
use bulkhead_tests::crash::Workload;
pub use bulkhead_tests::crash::vector;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every isolation tier a tenant can be created in: the foundation's isolation tests run in each.
pub const TIERS: [Placement; 3] = Placement::ALL;

/// A data directory and a master key file in a temporary folder that is deleted on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
    /// The tier tenants are created in (the store's default).
    tier: Placement,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir::in_tier(Placement::OwnColumnFamily)
    }

    /// A directory whose store creates tenants in `tier` by default.
    pub fn in_tier(tier: Placement) -> TestDir {
        let dir = tempfile::tempdir().expect("tempdir");
        MasterKey::generate().write_new_file(&dir.path().join("master.key")).expect("key file");
        TestDir { dir, tier }
    }

    fn options(&self) -> StoreOptions {
        StoreOptions { default_placement: self.tier, ..StoreOptions::default() }
    }

    /// The folder holding `data/` and `master.key`.
    pub fn root(&self) -> &Path {
        self.dir.path()
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
        Database::open(&self.data(), self.master(), self.options()).expect("open")
    }

    /// Opens the database on `clock`, so that the test moves its time (timestamps, key expiry, the
    /// refusal window, the idle flush) instead of sleeping.
    pub fn open_on(&self, clock: &ManualClock) -> Database {
        let options = StoreOptions { clock: clock.clone().into(), ..self.options() };
        Database::open(&self.data(), self.master(), options).expect("open")
    }
}

/// Creates a tenant and mints a trusted-host scope for it.
pub fn tenant(db: &Database, name: &str) -> TenantScope {
    let name = TenantName::new(name).expect("name");
    db.operator().create_tenant(&name).expect("create tenant");
    db.operator().trusted_host_scope(&name, "test fixture").expect("scope")
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

/// The raw name of the column family of the main instance holding a tenant's records: its own (its
/// opaque uid in hex), or the shared one. (A dedicated tenant's records are in an instance of their
/// own: see [`place`].)
pub fn cf_name(db: &Database, tenant: &str) -> String {
    let info = db.operator().tenant_info(&TenantName::new(tenant).expect("name")).expect("info");
    match info.placement {
        Placement::OwnColumnFamily => format!("t-{}", hex::encode(info.uid.as_bytes())),
        Placement::Shared => "shared".to_owned(),
        Placement::Dedicated => panic!("a dedicated tenant has no column family in the main instance"),
    }
}

/// Where a tenant's records are on disk: the RocksDB directory, the column family in it, and the
/// tenant's uid (the prefix of each of its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub dir: PathBuf,
    pub cf: String,
    pub uid: [u8; 16],
}

/// Where the tenant `tenant` of the store over `data` has its records (the default dedicated root).
pub fn place(db: &Database, data: &Path, tenant: &str) -> Place {
    let info = db.operator().tenant_info(&TenantName::new(tenant).expect("name")).expect("info");
    let uid = *info.uid.as_bytes();
    match info.placement {
        Placement::Dedicated => {
            Place { dir: dedicated_instance(&data.join("dedicated"), &uid), cf: "default".to_owned(), uid }
        }
        Placement::OwnColumnFamily | Placement::Shared => {
            Place { dir: data.to_owned(), cf: cf_name(db, tenant), uid }
        }
    }
}

/// The directory of the dedicated instance of the tenant `uid` under the dedicated root `root` (in the
/// folder of the one data directory that uses the root), whether it exists or not.
pub fn dedicated_instance(root: &Path, uid: &[u8; 16]) -> PathBuf {
    let name = format!("t-{}", hex::encode(uid));
    let folders: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|dir| dir.map(|entry| entry.expect("entry").path()).collect())
        .unwrap_or_default();
    assert!(folders.len() <= 1, "one data directory's folder under the root: {folders:?}");
    folders.first().map_or_else(|| root.join("no-folder").join(&name), |folder| folder.join(&name))
}

/// The raw (key, value) pairs of one record kind of one tenant, wherever it is placed (`db` is the
/// raw instance in `place.dir`).
pub fn tenant_records(db: &rocksdb::DB, place: &Place, kind: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut records = raw_records(db, &place.cf, kind);
    records.retain(|(k, _)| k.starts_with(&place.uid));
    records
}

/// Runs `workload` in a `crash-child` process over `dir` for `round`, and SIGKILLs it right after its
/// `kill_after`-th acknowledgement. Returns every acknowledgement it printed, those already in the
/// pipe when the kill landed included.
///
/// # Panics
///
/// If the child stopped before acknowledging `kill_after` steps (its error is on stderr).
pub fn crash_child(dir: &TestDir, workload: Workload, round: u64, kill_after: u64) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
        .arg(workload.name())
        .arg(dir.root())
        .arg(round.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crash-child");
    let ack = |line: String| line.strip_prefix("ack ")?.trim().parse::<u64>().ok();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok);
    let mut acked: Vec<u64> = Vec::new();
    for line in lines.by_ref() {
        let Some(n) = ack(line) else { continue };
        acked.push(n);
        if acked.len() as u64 == kill_after {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    acked.extend(lines.filter_map(ack));
    child.wait().expect("reap");
    assert!(
        acked.len() as u64 >= kill_after,
        "{} round {round}: the child stopped after {} of {kill_after} steps",
        workload.name(),
        acked.len()
    );
    acked
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
