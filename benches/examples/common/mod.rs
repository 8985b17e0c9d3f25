//! What the debian-minilm examples share: finding and reading the dataset, a database in a
//! temporary directory, loading a collection in sealed batches and waiting for its background HNSW
//! segment; and (`server`) the release `bulkhead serve` process for the examples that measure the
//! server as an operator runs it. Each example compiles its own copy of this module and uses only
//! part of it.
#![allow(dead_code, reason = "each example uses a different part of this module")]

pub mod server;

use anyhow::{Context, Result};
use bulkhead_index::fvecs::{Fvecs, Ivecs, read_fvecs, read_ivecs};
use bulkhead_query::{
    Database, GraphStatus, MasterKey, NewPoint, StoreOptions, Tenant, TenantName, TenantScope,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Points per `upsert` call (one sealed RocksDB batch each) when loading a collection.
pub const UPSERT_BATCH: usize = 1000;

/// debian-minilm (or another dataset in its layout): base vectors, queries and the exact top-100
/// of each query.
pub struct Dataset {
    /// The directory the files were read from (for the `.tsv` side files).
    pub dir: PathBuf,
    pub base: Fvecs,
    pub queries: Fvecs,
    pub gt: Ivecs,
}

impl Dataset {
    /// Reads the dataset named by the first command-line argument, or the shared debian-minilm.
    pub fn load() -> Result<Dataset> {
        let dir = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(default_dataset_dir);
        Ok(Dataset {
            base: read_fvecs(&dir.join("base.fvecs"), None).context("base.fvecs")?,
            queries: read_fvecs(&dir.join("query.fvecs"), None).context("query.fvecs")?,
            gt: read_ivecs(&dir.join("gt.ivecs"), None).context("gt.ivecs")?,
            dir,
        })
    }
}

/// Where the shared debian-minilm lives on the project's machines.
pub fn default_dataset_dir() -> PathBuf {
    manifest_dir().join("../../shared/datasets/debian-minilm")
}

/// A data directory and master key file in a temporary directory (removed on drop), which can be
/// opened, closed and reopened.
pub struct TempDatabase {
    dir: tempfile::TempDir,
    key_file: PathBuf,
}

impl TempDatabase {
    /// Creates the directory and a new master key.
    pub fn new() -> Result<TempDatabase> {
        let dir = tempfile::tempdir()?;
        let key_file = dir.path().join("master.key");
        MasterKey::generate().write_new_file(&key_file)?;
        Ok(TempDatabase { dir, key_file })
    }

    /// Opens the database; collections get an HNSW segment once `graph_threshold` points wait in
    /// their exact delta (`usize::MAX`: never, until [`build_graph`] lowers it).
    pub fn open(&self, graph_threshold: usize) -> Result<Database> {
        let db =
            Database::open(&self.path(), MasterKey::from_file(&self.key_file)?, StoreOptions::default())?;
        Ok(db.with_graph_threshold(graph_threshold))
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }
}

/// A scope for tenant `name` through the trusted-host door (a benchmark is its own host).
pub fn bench_scope(db: &Database, name: &TenantName) -> Result<TenantScope> {
    Ok(db.operator().trusted_host_scope(name, "benchmark")?)
}

/// Upserts one point per base row, [`UPSERT_BATCH`] at a time; `point(i, row)` makes row `i`'s
/// point. Returns the time taken.
pub fn upsert_rows(
    tenant: &Tenant<'_>,
    collection: &str,
    base: &Fvecs,
    point: impl Fn(usize, &[f32]) -> Result<NewPoint>,
) -> Result<Duration> {
    let start = Instant::now();
    let rows: Vec<&[f32]> = base.rows().collect();
    for (chunk_index, chunk) in rows.chunks(UPSERT_BATCH).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(j, row)| point(chunk_index * UPSERT_BATCH + j, row))
            .collect::<Result<Vec<_>>>()?;
        tenant.upsert(collection, &points)?;
    }
    Ok(start.elapsed())
}

/// Builds the collection's HNSW segment and waits until it serves searches: loads the collection's
/// search state (a search), lowers the database's graph threshold, and rewrites `trigger` (an
/// existing point, unchanged), whose write starts a background build of the whole collection.
/// Returns the time from the trigger to the installed segment, and the status then.
pub fn build_graph(
    db: &Database,
    tenant: &Tenant<'_>,
    collection: &str,
    trigger: NewPoint,
) -> Result<(Duration, GraphStatus)> {
    tenant.search(collection, &trigger.vector, 1)?;
    db.set_graph_threshold(UPSERT_BATCH);
    let start = Instant::now();
    tenant.upsert(collection, &[trigger])?;
    loop {
        let status = tenant.graph_status(collection)?;
        if status.graph_points > 0 && !status.building {
            return Ok((start.elapsed(), status));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The package's directory, as cargo gives it when it runs this binary. The compile-time value is
/// only a fallback: a target directory shared between checkouts can hold a binary built in another
/// one, and cargo reuses it when the sources match.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Reads column `column` (0-based, tab-separated, after a header line) of a `.tsv` side file.
pub fn tsv_column(path: &Path, column: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    text.lines()
        .skip(1)
        .enumerate()
        .map(|(i, line)| {
            line.split('\t')
                .nth(column)
                .map(str::to_owned)
                .with_context(|| format!("{} line {}: no column {column}", path.display(), i + 2))
        })
        .collect()
}
