//! Compatibility: the data directories committed under `tests/golden/`, each written by an earlier
//! build, still open, authenticate their API key, read every record back exactly, load their index
//! snapshots and search. A format change that breaks one must bump the format version and migrate,
//! not silently fail; and a build whose format versions no committed directory records fails
//! `the_current_formats_have_a_golden_directory` until one is written.
//!
//! - `format-1`: storage format 1; one collection of 60 points in one segment, a finished key
//!   rotation. Written by `write_format_1_golden` when storage format 1 was current (run today, it
//!   writes the current formats).
//! - `format-2`: storage format 2; a collection of two saved segments (a large one with two
//!   tombstones, a small one beside it) and an unflushed delta, ACL'd points with metadata and
//!   sources, a rewritten and a deleted point, a finished key rotation. Written by
//!   `write_format_2_golden`.
//!
//! A writer is an ignored test: run it with `BULKHEAD_WRITE_GOLDEN=<dir>` and `--ignored`. Each
//! directory holds `versions.toml`, the four format versions it was written with (storage, crypto,
//! index, collection snapshot; the writers record them), its master key (a test key, committed on
//! purpose) and its API key. The N of `format-N` counts the directories; it is no one format's
//! version. The guard also wants every directory to record its versions and to have a test here
//! that opens it.

use crate::invariants::manifest_dir;
use bulkhead_query::{
    Acl, CRYPTO_FORMAT_VERSION, Database, DocId, Filter, FilterValue, INDEX_FORMAT_VERSION, IndexSource,
    KeyBinding, MasterKey, MetaValue, Metric, NewPoint, Principal, Role, SNAPSHOT_VERSION, STORAGE_FORMAT,
    SearchHit, SearchRequest, StoreOptions, Tenant, TenantName, TenantScope,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Names the directory a writer writes.
const WRITE_ENV: &str = "BULKHEAD_WRITE_GOLDEN";

/// The one tenant of every golden directory.
const TENANT: &str = "golden";

/// The four format versions a data directory is written with, as its `versions.toml` records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versions {
    storage: u32,
    crypto: u32,
    index: u32,
    snapshot: u32,
}

impl Versions {
    /// What this build writes.
    const CURRENT: Versions = Versions {
        storage: STORAGE_FORMAT,
        crypto: CRYPTO_FORMAT_VERSION as u32,
        index: INDEX_FORMAT_VERSION,
        snapshot: SNAPSHOT_VERSION,
    };

    fn file(dir: &Path) -> PathBuf {
        dir.join("versions.toml")
    }

    fn write(self, dir: &Path) {
        let Versions { storage, crypto, index, snapshot } = self;
        let text = format!(
            "# The format versions this data directory was written with (see tests/it/golden.rs).\n\
             storage = {storage}\ncrypto = {crypto}\nindex = {index}\nsnapshot = {snapshot}\n"
        );
        std::fs::write(Versions::file(dir), text).expect("versions.toml");
    }

    fn read(dir: &Path) -> Versions {
        let path = Versions::file(dir);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let get = |key: &str| {
            let value = table.get(key).and_then(toml::Value::as_integer);
            let value = value.unwrap_or_else(|| panic!("{} has no integer {key}", path.display()));
            u32::try_from(value).expect("a version fits in u32")
        };
        assert_eq!(table.len(), 4, "{} records more than the four versions", path.display());
        Versions {
            storage: get("storage"),
            crypto: get("crypto"),
            index: get("index"),
            snapshot: get("snapshot"),
        }
    }
}

/// A golden directory being written: a fresh test master key, the database under `data/` (with the
/// given graph threshold), the tenant and a tenant-admin service key that may search on behalf of a
/// user (its token in `api-key`).
struct Writing {
    out: PathBuf,
    db: Database,
    scope: TenantScope,
}

impl Writing {
    fn start(graph_threshold: usize) -> Writing {
        let out = std::env::var_os(WRITE_ENV).unwrap_or_else(|| {
            panic!("{WRITE_ENV} is not set: it names the directory to write (an empty or new one)")
        });
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).expect("dir");
        let empty = std::fs::read_dir(&out).expect("read_dir").next().is_none();
        assert!(empty, "{} is not empty: a writer writes a new directory", out.display());
        MasterKey::generate().write_new_file(&out.join("master.key")).expect("key");
        let master = MasterKey::from_file(&out.join("master.key")).expect("key");
        let db = Database::open(&out.join("data"), master, StoreOptions::default())
            .expect("open")
            .with_graph_threshold(graph_threshold);
        let name = TenantName::new(TENANT).expect("name");
        db.operator().create_tenant(&name).expect("tenant");
        let binding = KeyBinding::Service { on_behalf_of: true };
        let key = db
            .operator()
            .issue_bound_api_key(&name, Role::TenantAdmin, "golden", None, binding)
            .expect("key");
        std::fs::write(out.join("api-key"), &key.token).expect("token");
        let scope = db.operator().authenticate(&key.token).expect("auth");
        Writing { out, db, scope }
    }

    fn tenant(&self) -> Tenant<'_> {
        self.db.tenant(&self.scope).expect("tenant")
    }

    /// Creates a collection and loads its (empty) search state, so that writes plan index jobs.
    fn collection(&self, name: &str, dimension: usize, metric: Metric) {
        let t = self.tenant();
        t.create_collection(name, dimension, metric).expect("collection");
        assert!(t.search(name, &vec![0.5; dimension], 1).expect("load").is_empty());
    }

    /// Waits until no index job runs and every segment is saved; returns the segment count.
    fn settle(&self, collection: &str) -> usize {
        let t = self.tenant();
        crate::util::wait_until("the index jobs and snapshot saves", || {
            let status = t.graph_status(collection).expect("status");
            (!status.building && status.snapshot_saved).then_some(status.segments)
        })
    }

    /// A finished tenant-key rotation (generation 2 seals everything, generation 1 is destroyed),
    /// everything flushed, the database closed, and the versions recorded. RocksDB's info log and
    /// lock file are removed: they are not part of the data, and the log is large.
    fn finish(self) {
        let Writing { out, db, scope } = self;
        let name = TenantName::new(TENANT).expect("name");
        let uid = db.operator().tenant_info(&name).expect("info").uid;
        db.operator().rotate_tenant_key(&name).expect("rotate");
        while !db.operator().rotation_step(uid, 1000).expect("step").expect("running").finished {}
        db.operator().flush().expect("flush");
        drop((scope, db));
        for file in crate::util::files_below(&out.join("data")) {
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            if name == "LOCK" || name.starts_with("LOG") {
                std::fs::remove_file(&file).expect("remove");
            }
        }
        Versions::CURRENT.write(&out);
    }
}

/// A committed golden directory, copied into a temporary one (opening writes to it), opened with
/// its master key and authenticated with its API key.
struct Golden {
    db: Database,
    scope: TenantScope,
    _work: tempfile::TempDir,
}

impl Golden {
    fn open(name: &str) -> Golden {
        let golden = golden_root().join(name);
        let work = tempfile::tempdir().expect("tempdir");
        for entry in crate::util::files_below(&golden) {
            let target = work.path().join(entry.strip_prefix(&golden).expect("inside"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("dir");
            std::fs::copy(&entry, &target).expect("copy");
        }
        let key_file = work.path().join("master.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let master = MasterKey::from_file(&key_file).expect("key");
        let db = Database::open(&work.path().join("data"), master, StoreOptions::default())
            .unwrap_or_else(|e| panic!("{name} does not open: {e}"));
        let token = std::fs::read_to_string(work.path().join("api-key")).expect("token");
        let scope = db.operator().authenticate(token.trim()).expect("its API key still authenticates");
        // Written before keys were indexed by tenant: the open built the index, and the tenant's
        // key is listed through it.
        let key_id = token.trim().split('_').nth(1).expect("key id");
        let listed = db.operator().list_api_keys(&TenantName::new(TENANT).expect("name")).expect("list");
        assert_eq!(listed.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(), [key_id], "{name}");
        Golden { db, scope, _work: work }
    }

    /// The tenant, once every point of `expected` reads back exactly from `collection`, sealed
    /// under generation 2 (every golden directory finished a key rotation).
    fn read_back(&self, collection: &str, expected: &[NewPoint]) -> Tenant<'_> {
        let t = self.db.tenant(&self.scope).expect("tenant");
        assert_eq!(t.key_generation(), 2);
        assert_points(&t, collection, expected, 2);
        t
    }
}

fn golden_root() -> PathBuf {
    manifest_dir().join("golden")
}

/// Every point of `expected` reads back exactly (vector bit for bit, text, metadata, source, ACL),
/// sealed under `generation`, and the collection holds nothing else.
fn assert_points(t: &Tenant<'_>, collection: &str, expected: &[NewPoint], generation: u32) {
    assert_eq!(t.count(collection).expect("count"), expected.len() as u64);
    for p in expected {
        let id = p.id.as_str();
        let stored = t.get(collection, &p.id).expect("get").unwrap_or_else(|| panic!("{id} is missing"));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&stored.vector), bits(&p.vector), "{id}'s vector");
        let payload = &stored.payload;
        assert_eq!((&payload.text, &payload.source_uri), (&p.text, &p.source_uri), "{id}'s text and source");
        assert!(payload.metadata == p.metadata, "{id}'s metadata");
        assert!(payload.acl == p.acl, "{id}'s ACL");
        assert_eq!(payload.key_generation, generation, "{id}'s key generation");
    }
}

// Format 1.

const DIM_1: usize = 4;
const POINTS_1: u64 = 60;

fn format_1_point(i: u64) -> NewPoint {
    let mut p = NewPoint::new(
        DocId::new(format!("g{i}")).expect("id"),
        crate::util::vector(7_000 + i, DIM_1),
        format!("golden {i}"),
    );
    p.metadata.insert("n".into(), MetaValue::Number(i as f64));
    if i.is_multiple_of(2) {
        p.acl = Acl::Restricted { users: vec![], groups: vec!["even".into()] };
    }
    p
}

#[test]
#[ignore = "writes a golden directory; run by hand when a format version changes"]
fn write_format_1_golden() {
    let w = Writing::start(20);
    w.collection("docs", DIM_1, Metric::L2);
    w.tenant().upsert("docs", &(0..POINTS_1).map(format_1_point).collect::<Vec<_>>()).expect("upsert");
    assert_eq!(w.settle("docs"), 1);
    w.finish();
}

#[test]
fn format_1_data_directory_still_opens() {
    let golden = Golden::open("format-1");
    let t = golden.read_back("docs", &(0..POINTS_1).map(format_1_point).collect::<Vec<_>>());
    let hits = t.search("docs", &format_1_point(3).vector, 3).expect("search");
    assert_eq!(hits[0].id.as_str(), "g3");
    let status = t.graph_status("docs").expect("status");
    assert_eq!(status.graph_points, POINTS_1 as usize, "the sealed index snapshot loads: {status:?}");
    let even = Principal::new("someone", ["even"]).expect("principal");
    let request = SearchRequest { k: 5, ef: None, principal: Some(&even), filter: None };
    let hits = t.search_request("docs", &format_1_point(3).vector, &request).expect("search");
    assert_eq!(hits.len(), 5);
    // Without the group, only the tenant-wide (odd) documents are visible.
    let other = Principal::new("someone", ["odd"]).expect("principal");
    let request = SearchRequest { k: 5, ef: None, principal: Some(&other), filter: None };
    let hits = t.search_request("docs", &format_1_point(3).vector, &request).expect("search");
    let odd = |hit: &SearchHit| hit.id.as_str()[1..].parse::<u64>().is_ok_and(|i| !i.is_multiple_of(2));
    assert!(hits.len() == 5 && hits.iter().all(odd), "only the tenant-wide documents are found");
}

// Format 2.

const DIM_2: usize = 8;
const COLLECTION_2: &str = "chunks";
/// The graph threshold the writer runs with.
const THRESHOLD_2: usize = 4;
/// The large segment's points: one flush of 40, over `EXTEND_MAX_FACTOR` (4) thresholds, so that
/// no later flush extends it.
const LARGE: std::ops::Range<u64> = 0..40;
/// The small segment's: one threshold, a segment of its own beside the large one, too small to be
/// merged into it (4 × `MERGE_RATIO` (8) is below the large one's 38 live points).
const SMALL: std::ops::Range<u64> = 40..44;
/// New points left in the delta (with the rewritten one: three, below the threshold and the idle
/// flush's minimum, so no job takes them).
const NEW: std::ops::Range<u64> = 44..46;
/// A point of the large segment written again (its entry there becomes a tombstone, its new version
/// is in the delta), and one deleted (a tombstone too).
const REWRITTEN: u64 = 7;
const DELETED: u64 = 5;
/// What the collection's search state holds: (segments, graph points, delta points, tombstones).
const FORMAT_2_STATE: (usize, usize, usize, usize) = (2, 42, 3, 2);

/// A vector from a hash of `seed` (splitmix64), in [-1, 1) with 24-bit steps: unlike a seeded
/// random-number generator, it stays the same whatever the tests' `rand` becomes.
fn format_2_vector(seed: u64) -> Vec<f32> {
    (0..DIM_2 as u64)
        .map(|j| {
            let mut z = (seed * DIM_2 as u64 + j + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Point `d{i}` as written the `version`th time (0 first): metadata of every kind, a source for two
/// points in three, and an ACL that is tenant-wide, a user's, a group's, or both.
fn format_2_point(i: u64, version: u64) -> NewPoint {
    let text = if version == 0 { format!("chunk {i}") } else { format!("chunk {i}, version {version}") };
    let id = DocId::new(format!("d{i}")).expect("id");
    let mut p = NewPoint::new(id, format_2_vector(i + 1_000 * version), text);
    let team = ["red", "green", "blue"][(i % 3) as usize];
    p.metadata = BTreeMap::from([
        ("n".to_owned(), MetaValue::Number(i as f64)),
        ("team".to_owned(), MetaValue::Keyword(team.to_owned())),
        ("tags".to_owned(), MetaValue::Keywords(vec!["golden".to_owned(), format!("batch-{}", i / 40)])),
        ("draft".to_owned(), MetaValue::Bool(i.is_multiple_of(5))),
    ]);
    p.source_uri = (!i.is_multiple_of(3)).then(|| format!("https://docs.example/golden/{}#{i}", i / 10));
    let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    p.acl = match i % 4 {
        0 => Acl::TenantWide,
        1 => Acl::Restricted { users: names(&["alice"]), groups: vec![] },
        2 => Acl::Restricted { users: vec![], groups: names(&["eng"]) },
        _ => Acl::Restricted { users: names(&["bob"]), groups: names(&["ops", "eng-leads"]) },
    };
    p
}

/// The live points of format 2: every point written, the rewritten one at its second version, the
/// deleted one gone.
fn format_2_points() -> Vec<NewPoint> {
    (0..NEW.end).filter(|&i| i != DELETED).map(|i| format_2_point(i, u64::from(i == REWRITTEN))).collect()
}

fn format_2_state(t: &Tenant<'_>) -> (usize, usize, usize, usize) {
    let status = t.graph_status(COLLECTION_2).expect("status");
    assert!(status.loaded && !status.building && status.snapshot_saved, "{status:?}");
    (status.segments, status.graph_points, status.delta_points, status.tombstones)
}

#[test]
#[ignore = "writes a golden directory; run by hand when a format version changes"]
fn write_format_2_golden() {
    let w = Writing::start(THRESHOLD_2);
    w.collection(COLLECTION_2, DIM_2, Metric::Cosine);
    let t = w.tenant();
    let upsert = |points: Vec<NewPoint>| t.upsert(COLLECTION_2, &points).expect("upsert");
    upsert(LARGE.map(|i| format_2_point(i, 0)).collect());
    assert_eq!(w.settle(COLLECTION_2), 1, "one flush, one segment");
    upsert(SMALL.map(|i| format_2_point(i, 0)).collect());
    assert_eq!(w.settle(COLLECTION_2), 2, "a second segment, not merged into the first");
    upsert(vec![format_2_point(REWRITTEN, 1)]);
    upsert(NEW.map(|i| format_2_point(i, 0)).collect());
    let deleted = DocId::new(format!("d{DELETED}")).expect("id");
    assert_eq!(t.delete(COLLECTION_2, &[deleted]).expect("delete"), 1);
    assert_eq!(format_2_state(&t), FORMAT_2_STATE);
    assert_points(&t, COLLECTION_2, &format_2_points(), 1);
    drop(t);
    w.finish();
}

#[test]
fn format_2_data_directory_still_opens() {
    let expected = format_2_points();
    let golden = Golden::open("format-2");
    let t = golden.read_back(COLLECTION_2, &expected);
    let deleted = DocId::new(format!("d{DELETED}")).expect("id");
    assert!(t.get(COLLECTION_2, &deleted).expect("get").is_none(), "the deleted point stays deleted");

    // Every point is its own nearest neighbour, found where it was left: the delta, or one of the
    // two segments, which load from their snapshots.
    let mut sources: BTreeMap<&str, BTreeSet<Option<u64>>> = BTreeMap::new();
    for (p, i) in expected.iter().zip((0..NEW.end).filter(|&i| i != DELETED)) {
        let hits = t.search(COLLECTION_2, &p.vector, 1).expect("search");
        assert_eq!(hits[0].id.as_str(), p.id.as_str());
        let place = match i {
            REWRITTEN => "delta",
            i if NEW.contains(&i) => "delta",
            i if SMALL.contains(&i) => "small",
            _ => "large",
        };
        let generation = match hits[0].index {
            IndexSource::Segment { generation } => Some(generation),
            IndexSource::Delta => None,
        };
        sources.entry(place).or_default().insert(generation);
    }
    let one = |place: &str| {
        let found = &sources[place];
        assert_eq!(found.len(), 1, "the {place} points are served from {found:?}");
        *found.first().expect("one")
    };
    assert_eq!(one("delta"), None);
    assert!(one("large").is_some() && one("small").is_some() && one("large") != one("small"), "{sources:?}");
    assert_eq!(format_2_state(&t), FORMAT_2_STATE, "(segments, graph points, delta points, tombstones)");

    format_2_searches(&t, &expected);
}

/// Both directories were written before the usage counters existed: their tenant's usage is counted
/// from its records (without a write, nothing is stored), agrees with the records' own sizes, and is
/// stored with the tenant's first write.
#[test]
fn golden_tenants_get_their_usage_counters_at_their_first_write() {
    let format_2 = format_2_points().len() as u64;
    for (name, collection, dimension, points) in
        [("format-1", "docs", DIM_1, POINTS_1), ("format-2", COLLECTION_2, DIM_2, format_2)]
    {
        let Golden { db, scope, _work: work } = Golden::open(name);
        let cf = crate::util::cf_name(&db, TENANT);
        let t = db.tenant(&scope).expect("tenant");
        let before = t.usage().expect("usage");
        assert_eq!((before.points, before.collections), (points, 1), "{name}");
        let extra = NewPoint::new(DocId::new("counted").expect("id"), vec![0.5; dimension], "a new point");
        t.upsert(collection, &[extra]).expect("the first write");
        let after = t.usage().expect("usage");
        assert_eq!(after.points, points + 1, "{name}");
        assert!(after.stored_bytes > before.stored_bytes + 4 * dimension as u64, "{name}");
        drop(t);
        drop(db);
        // The records' own sizes, read raw: each sealed value less its sealing overhead.
        let raw = crate::util::raw_db(&work.path().join("data"));
        let records = |kind: u8| crate::util::raw_records(&raw, &cf, kind);
        let bytes: u64 = [b'P', b'V']
            .into_iter()
            .flat_map(records)
            .map(|(_, value)| (value.len() - bulkhead_crypto::SEALED_OVERHEAD) as u64)
            .sum();
        assert_eq!(bytes, after.stored_bytes, "{name}: what the records hold");
        let usage = records(b'U');
        assert_eq!(usage.len(), 1, "{name}: the first write stored the counters");
        let expected = [after.points.to_be_bytes(), after.stored_bytes.to_be_bytes()].concat();
        assert_eq!(usage[0].1, expected, "{name}: the stored counters");
    }
}

/// Searches on behalf of users, with and without a filter, against an exact model: the same ids
/// in the same order, with their payloads.
fn format_2_searches(t: &Tenant<'_>, expected: &[NewPoint]) {
    let alice = Principal::new("alice", ["eng"]).expect("principal");
    let bob = Principal::new("bob", ["ops"]).expect("principal");
    let visible = |p: &NewPoint, user: &str, groups: &[&str]| match &p.acl {
        Acl::TenantWide => true,
        Acl::Restricted { users, groups: allowed } => {
            users.iter().any(|u| u == user) || allowed.iter().any(|g| groups.contains(&g.as_str()))
        }
    };
    let filter = Filter::And(vec![
        Filter::Not(Box::new(Filter::Eq { field: "draft".into(), value: FilterValue::Bool(true) })),
        Filter::In { field: "team".into(), values: vec!["red".into(), "blue".into()] },
    ]);
    let matches = |p: &NewPoint| {
        p.metadata["draft"] == MetaValue::Bool(false)
            && [MetaValue::Keyword("red".into()), MetaValue::Keyword("blue".into())]
                .contains(&p.metadata["team"])
    };
    type Case<'a> = (Option<&'a Principal>, Option<&'a Filter>, Box<dyn Fn(&NewPoint) -> bool + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (None, None, Box::new(|_| true)),
        (Some(&alice), None, Box::new(|p| visible(p, "alice", &["eng"]))),
        (Some(&alice), Some(&filter), Box::new(|p| visible(p, "alice", &["eng"]) && matches(p))),
        (Some(&bob), Some(&filter), Box::new(|p| visible(p, "bob", &["ops"]) && matches(p))),
    ];
    let by_id: BTreeMap<&str, &NewPoint> = expected.iter().map(|p| (p.id.as_str(), p)).collect();
    for (principal, filter, allowed) in &cases {
        for seed in 0..5 {
            let query = format_2_vector(50_000 + seed);
            let request = SearchRequest { k: 10, ef: None, principal: *principal, filter: *filter };
            let hits = t.search_request(COLLECTION_2, &query, &request).expect("search");
            let found: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            assert_eq!(found, exact_top(expected, &query, 10, allowed), "query {seed}");
            for hit in &hits {
                let p = by_id[hit.id.as_str()];
                assert_eq!((&hit.text, &hit.source_uri, hit.key_generation), (&p.text, &p.source_uri, 2));
                assert!(hit.metadata == p.metadata && (principal.is_none() || hit.matched_by.is_some()));
            }
        }
    }
}

/// The ids of the `k` points of `points` that `allowed` keeps, most similar (cosine) to `query` first.
fn exact_top<'p>(
    points: &'p [NewPoint],
    query: &[f32],
    k: usize,
    allowed: &dyn Fn(&NewPoint) -> bool,
) -> Vec<&'p str> {
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let cosine = |v: &[f32]| {
        v.iter().zip(query).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() / (norm(v) * norm(query))
    };
    let mut ranked: Vec<(f64, &str)> =
        points.iter().filter(|p| allowed(p)).map(|p| (cosine(&p.vector), p.id.as_str())).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.into_iter().take(k).map(|(_, id)| id).collect()
}

// The guard.

/// The committed golden directories, `tests/golden/format-N`, by N.
fn golden_directories() -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(golden_root())
        .expect("tests/golden")
        .map(|entry| entry.expect("entry").path())
        .map(|path| {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            let n = name.strip_prefix("format-").and_then(|n| n.parse().ok());
            (n.unwrap_or_else(|| panic!("tests/golden/{name} is not named format-N")), path)
        })
        .collect();
    out.sort();
    out
}

/// Some committed directory was written with exactly the format versions this build writes, so a
/// later build that changes a format is tested against data this one wrote; and every committed
/// directory records its versions and has a test that opens it.
#[test]
fn the_current_formats_have_a_golden_directory() {
    let source = std::fs::read_to_string(manifest_dir().join("it/golden.rs")).expect("golden.rs");
    let directories = golden_directories();
    let mut current = false;
    for (n, dir) in &directories {
        current |= Versions::read(dir) == Versions::CURRENT;
        let opened = source.contains(&format!("Golden::open(\"format-{n}\")"));
        assert!(opened, "tests/golden/format-{n} has no test that opens it in tests/it/golden.rs");
    }
    let next = directories.last().map_or(1, |(n, _)| n + 1);
    let Versions { storage, crypto, index, snapshot } = Versions::CURRENT;
    assert!(
        current,
        "this build writes storage format {storage}, crypto format {crypto}, index format {index} and \
         collection snapshot version {snapshot}, which no directory under tests/golden records: write \
         tests/golden/format-{next} with this build (a writer like write_format_2_golden, run with \
         {WRITE_ENV}=tests/golden/format-{next} and --ignored, also records its versions.toml) and a \
         test that opens it, like format_2_data_directory_still_opens"
    );
}
