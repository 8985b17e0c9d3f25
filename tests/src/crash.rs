//! The workloads the crash tests run in a child process (`src/bin/crash-child.rs`) and kill with
//! SIGKILL at a random moment, and the records they write, so that the parent (`it/durability.rs`,
//! `it/rotation.rs`, `it/quotas.rs`) can check every acknowledged step after reopening.
//!
//! A workload runs until it is killed and prints `ack N` after each step returns: a step is
//! acknowledged only once the database has returned from it. The child's only arguments are the
//! workload, the test's directory (`data/` and `master.key` inside, as the tests' `TestDir` lays
//! them out) and the round; no secret travels on its command line or in its environment.

use bulkhead_query::{
    Database, DocId, MasterKey, MetaValue, Metric, NewPoint, Placement, StoreOptions, Tenant, TenantName,
    TenantScope,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The dimension of the writer workload's vectors.
pub const WRITER_DIM: usize = 32;
/// Points per batch of the writer workload.
pub const BATCH: usize = 4;
/// The dimension of the rotation and deletion workloads' vectors.
pub const ROTATION_DIM: usize = 8;
/// The dimension of the churn workload's vectors.
pub const CHURN_DIM: usize = 16;
/// The dimension of the import workload's vectors.
pub const ARCHIVE_DIM: usize = 256;
/// The churn workload's collections (the parent makes the tenant, the child the collections).
const CHURN_COLLECTIONS: [&str; 2] = ["docs", "scratch"];

/// What a child process does until it is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Upserts [`batch`]es of the tenant `crashy` (collection `docs`, made by the parent); `ack n`
    /// after batch `n`.
    Writer,
    /// Runs tenant-key rotations of `acme` back to back, writing one [`point`] per step; `ack id`
    /// after the point `id` is written.
    Rotation,
    /// Rotates the master key again and again, each new key written to its own file first
    /// ([`master_file`]); `ack n` after key `n` took over.
    MasterRotation,
    /// Creates, fills and deletes tenants; `ack round * 1_000_000 + n` after tenant `t{round}-{n}`
    /// is deleted.
    Deletion,
    /// Changes what the tenant `churny` stores in every way its usage counters follow: upserts of
    /// new points and replacements by larger and smaller ones, deletes, and drops and re-creations
    /// of a collection; `ack n` after step `n`.
    Churn,
    /// Imports the archive `archive.bin` of the test's directory again and again, under the names
    /// `c{round}-{n}`; `ack n` after copy `n` exists.
    Import,
    /// Moves the tenant `mover` (made by the parent) between the shared and the partitioned tier
    /// again and again; `ack n` after move `n` returned.
    TierMove,
    /// [`Workload::Import`] into the shared tier: every copy's records in the one shared column
    /// family, beside the others'; also `ack HALF_WAY + n` half-way through copy `n`'s import.
    ImportShared,
}

impl Workload {
    /// The name on the child's command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Writer => "writer",
            Workload::Rotation => "rotation",
            Workload::MasterRotation => "master-rotation",
            Workload::Deletion => "deletion",
            Workload::Churn => "churn",
            Workload::Import => "import",
            Workload::TierMove => "tier-move",
            Workload::ImportShared => "import-shared",
        }
    }

    /// The workload named `name`, if any.
    pub fn from_name(name: &str) -> Option<Workload> {
        [
            Workload::Writer,
            Workload::Rotation,
            Workload::MasterRotation,
            Workload::Deletion,
            Workload::Churn,
            Workload::Import,
            Workload::TierMove,
            Workload::ImportShared,
        ]
        .into_iter()
        .find(|w| w.name() == name)
    }

    /// Runs the workload over the test directory `dir` until the process is killed.
    ///
    /// # Panics
    ///
    /// On any error: the parent sees fewer acknowledgements than it waited for.
    pub fn run(self, dir: &Path, round: u64) {
        let data = dir.join("data");
        let mut acks = Acks(std::io::stdout().lock());
        if self == Workload::MasterRotation {
            return master_rotations(&data, dir, &mut acks);
        }
        let master = MasterKey::from_file(&dir.join("master.key")).expect("master key");
        let db = Database::open(&data, master, StoreOptions::default()).expect("open");
        match self {
            Workload::Writer => writes(&db, round, &mut acks),
            Workload::Rotation => rotations(&db, round, &mut acks),
            Workload::Deletion => deletions(&db, round, &mut acks),
            Workload::Churn => churn(&db, round, &mut acks),
            Workload::TierMove => tier_moves(&db, &mut acks),
            Workload::Import => imports(&db, dir, round, None, &mut acks),
            Workload::ImportShared => imports(&db, dir, round, Some(Placement::Shared), &mut acks),
            Workload::MasterRotation => unreachable!("handled above"),
        }
    }
}

/// Acknowledgement lines, each flushed before the next step starts.
struct Acks<W: Write>(W);

impl<W: Write> Acks<W> {
    fn ack(&mut self, n: u64) {
        writeln!(self.0, "ack {n}").expect("stdout");
        self.0.flush().expect("flush");
    }
}

/// A deterministic vector for `seed`.
pub fn vector(seed: u64, dimension: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..dimension).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Batch `n` of the writer workload in `round` (each round writes its own ids).
pub fn batch(round: u64, n: u64) -> Vec<NewPoint> {
    (0..BATCH as u64)
        .map(|j| {
            let id = format!("r{round}-b{n}-p{j}");
            NewPoint::new(
                DocId::new(id.clone()).expect("id"),
                vector(round * 1_000_000 + n * 10 + j, WRITER_DIM),
                format!("text of {id}"),
            )
        })
        .collect()
}

/// Point `p{i}` of the rotation and deletion workloads, its vector seeded by `seed`.
pub fn point(i: u64, seed: u64) -> NewPoint {
    NewPoint::new(DocId::new(format!("p{i}")).expect("id"), vector(seed, ROTATION_DIM), format!("text {i}"))
}

/// Master key file `n` of the master-rotation workload: `mk-<n>` in the test's directory.
pub fn master_file(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("mk-{n}"))
}

/// The numbers of the newest master key file in `dir`, and of the one before it.
///
/// # Panics
///
/// If `dir` holds no master key file.
pub fn newest_master_files(dir: &Path) -> (u64, Option<u64>) {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("mk-")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    let newest = *numbers.last().expect("a key file");
    (newest, numbers.len().checked_sub(2).map(|i| numbers[i]))
}

fn trusted(db: &Database, name: &str) -> TenantScope {
    db.operator().trusted_host_scope(&TenantName::new(name).expect("name"), "crash child").expect("scope")
}

fn writes(db: &Database, round: u64, acks: &mut Acks<impl Write>) {
    let t = db.tenant(&trusted(db, "crashy")).expect("tenant");
    for n in 0.. {
        t.upsert("docs", &batch(round, n)).expect("upsert");
        acks.ack(n);
    }
}

fn rotations(db: &Database, round: u64, acks: &mut Acks<impl Write>) {
    let name = TenantName::new("acme").expect("name");
    let t = db.tenant(&trusted(db, "acme")).expect("tenant");
    let op = db.operator();
    let uid = op.tenant_info(&name).expect("info").uid;
    for n in 0u64.. {
        if op.rotation_status(uid).expect("status").is_none() {
            op.rotate_tenant_key(&name).expect("rotate");
        }
        op.rotation_step(uid, 16).expect("step");
        let id = 10_000 + round * 1000 + n;
        t.upsert("docs", &[point(id, id)]).expect("upsert");
        acks.ack(id);
    }
}

fn master_rotations(data: &Path, dir: &Path, acks: &mut Acks<impl Write>) {
    let (newest, previous) = newest_master_files(dir);
    let key = |n: u64| MasterKey::from_file(&master_file(dir, n)).expect("key");
    let db = Database::open_with_previous(data, key(newest), previous.map(key), StoreOptions::default())
        .expect("open");
    for n in newest + 1.. {
        // The new key is on disk (whole: written aside, then renamed) before the keyring is
        // re-wrapped under it.
        // An aside file a killed predecessor left behind was never used: a key is used only
        // after its rename.
        let aside = dir.join(format!("tmp-mk-{n}"));
        if let Err(e) = std::fs::remove_file(&aside) {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "remove a stale key file: {e}");
        }
        MasterKey::generate().write_new_file(&aside).expect("write key");
        std::fs::rename(&aside, master_file(dir, n)).expect("rename key");
        db.operator().rotate_master_key(key(n)).expect("rotate");
        acks.ack(n);
    }
}

fn deletions(db: &Database, round: u64, acks: &mut Acks<impl Write>) {
    for n in 0u64.. {
        let name = TenantName::new(format!("t{round}-{n}")).expect("name");
        db.operator().create_tenant(&name).expect("create");
        let t = db.tenant(&trusted(db, name.as_str())).expect("tenant");
        t.create_collection("docs", ROTATION_DIM, Metric::L2).expect("collection");
        t.upsert("docs", &(0..30).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
        drop(t);
        db.delete_tenant(&name).expect("delete");
        acks.ack(round * 1_000_000 + n);
    }
}

/// Creates the churn workload's collections that do not exist (a kill may land between a drop and
/// the creation after it).
fn churn_collections(t: &Tenant<'_>) {
    for name in CHURN_COLLECTIONS {
        if t.collection(name).is_err() {
            t.create_collection(name, CHURN_DIM, Metric::L2).expect("collection");
        }
    }
}

fn churn(db: &Database, round: u64, acks: &mut Acks<impl Write>) {
    use rand::{Rng, SeedableRng};
    let t = db.tenant(&trusted(db, "churny")).expect("tenant");
    churn_collections(&t);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(round);
    // Ids from a small pool, so that most upserts replace a point (by a larger or a smaller one).
    let id = |rng: &mut rand::rngs::SmallRng| DocId::new(format!("c{}", rng.gen_range(0..48))).expect("id");
    for n in 0u64.. {
        let collection = CHURN_COLLECTIONS[rng.gen_range(0..2)];
        match n % 8 {
            7 => {
                t.drop_collection("scratch").expect("drop");
                churn_collections(&t);
            }
            5 | 6 => {
                let ids: Vec<DocId> = (0..rng.gen_range(1..6)).map(|_| id(&mut rng)).collect();
                t.delete(collection, &ids).expect("delete");
            }
            _ => {
                let points: Vec<NewPoint> = (0..rng.gen_range(1..9))
                    .map(|j| {
                        let mut p = NewPoint::new(
                            id(&mut rng),
                            vector(round * 1_000_000 + n * 10 + j, CHURN_DIM),
                            "x".repeat(rng.gen_range(0..3000)),
                        );
                        if rng.gen_bool(0.5) {
                            p.metadata.insert("n".into(), MetaValue::Number(n as f64));
                            p.source_uri = Some(format!("https://example.com/{n}"));
                        }
                        p
                    })
                    .collect();
                t.upsert(collection, &points).expect("upsert");
            }
        }
        acks.ack(n);
    }
}

/// The points of the tenant the import workload's archive holds: about 5 MB, so that an import
/// commits more than one batch.
pub fn archive_copy_points() -> Vec<NewPoint> {
    (0..1000u64)
        .map(|i| {
            let mut p = NewPoint::new(DocId::new(format!("a{i}")).expect("id"), vector(i, ARCHIVE_DIM), "");
            p.text = "y".repeat(4000);
            p
        })
        .collect()
}

fn imports(db: &Database, dir: &Path, round: u64, tier: Option<Placement>, acks: &mut Acks<impl Write>) {
    let archive = std::fs::read(dir.join("archive.bin")).expect("archive");
    for n in 0.. {
        let name = TenantName::new(format!("c{round}-{n}")).expect("name");
        if tier == Some(Placement::Shared) {
            // Half-way (after the import's first batches committed), `ack HALF_WAY + n`, then a
            // pause: a kill right after that acknowledgement lands inside the import.
            let mut reader = Pausing { bytes: &archive, at: archive.len() * 7 / 10, n, acks: &mut *acks };
            db.operator().import_tenant(&mut reader, Some(&name), tier, &mut |_| {}).expect("import");
        } else {
            db.operator().import_tenant(&mut &archive[..], Some(&name), tier, &mut |_| {}).expect("import");
        }
        acks.ack(n);
    }
}

fn tier_moves(db: &Database, acks: &mut Acks<impl Write>) {
    let name = TenantName::new("mover").expect("name");
    for n in 0.. {
        let now = db.operator().tenant_info(&name).expect("info").placement;
        // Round the three tiers: partitioned, shared, dedicated.
        let other = match now {
            Placement::OwnColumnFamily => Placement::Shared,
            Placement::Shared => Placement::Dedicated,
            Placement::Dedicated => Placement::OwnColumnFamily,
        };
        db.operator().move_tenant(&name, other, |_| {}).expect("move");
        acks.ack(n);
    }
}

/// What the shared-import workload adds to copy `n`'s number in the acknowledgement it prints
/// half-way through that copy's import.
pub const HALF_WAY: u64 = 1_000_000;

/// An archive reader that acknowledges `HALF_WAY + n` and pauses once `at` bytes were read.
struct Pausing<'a, W: Write> {
    bytes: &'a [u8],
    at: usize,
    n: u64,
    acks: &'a mut Acks<W>,
}

impl<W: Write> std::io::Read for Pausing<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == 0 {
            self.acks.ack(HALF_WAY + self.n);
            std::thread::sleep(std::time::Duration::from_millis(500));
            self.at = usize::MAX;
        }
        let n = buf.len().min(self.at).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.at = self.at.saturating_sub(n);
        Ok(n)
    }
}
