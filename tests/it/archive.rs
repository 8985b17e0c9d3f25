//! Per-tenant backup and restore: an export → import round trip (under the tenant's own name into a
//! fresh data directory with the same master key, and under a new name, re-keyed, into the same
//! store) gives identical search results, counts, policy and index snapshots; a cut, altered,
//! foreign, garbage or oversized archive, or one over an existing name, is refused with nothing
//! left behind; an import that fails between its batches, or whose process is killed, leaves no
//! tenant. The same into the shared tier: a round trip answers identically, and a failed or killed
//! import leaves no record under its uid in the shared column family and no import marker.

use crate::util::{TestDir, crash_child, raw_db, tenant, tenant_records, vector};
use bulkhead_query::{
    Acl, ArchiveProgress, Database, DocId, Filter, FilterValue, ImportSummary, MasterKey, MetaValue, Metric,
    NewPoint, Placement, Principal, SearchRequest, StorageError, StoreOptions, Tenant, TenantName,
    TenantPolicy,
};
use bulkhead_tests::crash::{ARCHIVE_DIM, HALF_WAY, Workload, archive_copy_points};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

const DIM: usize = 16;
/// Points of the collection that gets an HNSW segment (over the graph threshold below).
const GRAPH_POINTS: u64 = 400;

fn name(n: &str) -> TenantName {
    TenantName::new(n).expect("name")
}

fn open(dir: &TestDir, master: MasterKey) -> Database {
    open_in(dir, master, Placement::OwnColumnFamily)
}

/// A store whose default tier is `tier`.
fn open_in(dir: &TestDir, master: MasterKey, tier: Placement) -> Database {
    let options = StoreOptions { default_placement: tier, ..StoreOptions::default() };
    Database::open(&dir.data(), master, options).expect("open").with_graph_threshold(300)
}

fn doc(i: u64, metric_seed: u64) -> NewPoint {
    let mut p =
        NewPoint::new(DocId::new(format!("d{i}")).expect("id"), vector(i * 7 + metric_seed, DIM), "t");
    p.text = format!("chunk {i}");
    p.metadata
        .insert("lang".into(), MetaValue::Keyword(if i.is_multiple_of(2) { "en" } else { "fr" }.into()));
    p.metadata.insert("rank".into(), MetaValue::Number(i as f64));
    p.source_uri = Some(format!("s3://docs/{i}"));
    if i.is_multiple_of(3) {
        p.acl = Acl::Restricted { users: vec!["alice".into()], groups: vec!["eng".into()] };
    }
    p
}

/// A tenant with three collections (a graph one with a saved snapshot, an L2 and a dot one), ACLs,
/// metadata and a policy.
fn fill(db: &Database, tenant_name: &str) {
    let scope = tenant(db, tenant_name);
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::Cosine).expect("docs");
    t.create_collection("notes", DIM, Metric::L2).expect("notes");
    t.create_collection("dots", DIM, Metric::Dot).expect("dots");
    // One write: it passes the graph threshold, so one segment holds every point (in chunks, a
    // flush would start at the threshold and leave the rest in the exact-scan delta).
    t.upsert("docs", &(0..GRAPH_POINTS).map(|i| doc(i, 1)).collect::<Vec<_>>()).expect("upsert");
    t.upsert("notes", &(0..50).map(|i| doc(i, 2)).collect::<Vec<_>>()).expect("notes");
    t.upsert("dots", &(0..20).map(|i| doc(i, 3)).collect::<Vec<_>>()).expect("dots");
    t.delete("notes", &[DocId::new("d7").expect("id")]).expect("delete");
    crate::util::wait_until("the snapshot's save", || {
        let status = t.graph_status("docs").expect("status");
        (status.snapshot_saved && status.delta_points == 0).then_some(())
    });
    let policy = TenantPolicy { max_k: Some(50), ..TenantPolicy::default() };
    db.operator().set_policy(&name(tenant_name), policy, 0, "tight k").expect("policy");
}

/// What a tenant answers: counts, and the hits (ids, scores) of searches with and without a
/// principal and a filter, in each collection.
fn answers(t: &Tenant<'_>) -> Vec<(String, Vec<(String, u32)>)> {
    let alice = Principal::new("alice", ["eng"]).expect("principal");
    let bob = Principal::new("bob", Vec::<String>::new()).expect("principal");
    let en = Filter::Eq { field: "lang".into(), value: FilterValue::Keyword("en".into()) };
    let mut out = Vec::new();
    for collection in ["docs", "notes", "dots"] {
        out.push((format!("{collection} count"), vec![(t.count(collection).expect("count").to_string(), 0)]));
        for seed in 0..5 {
            let query = vector(1000 + seed, DIM);
            let requests = [
                SearchRequest::top(10),
                SearchRequest { principal: Some(&alice), ..SearchRequest::top(10) },
                SearchRequest { principal: Some(&bob), filter: Some(&en), ..SearchRequest::top(10) },
            ];
            for (i, request) in requests.iter().enumerate() {
                let hits = t.search_request(collection, &query, request).expect("search");
                let hits = hits.iter().map(|h| (h.id.as_str().to_owned(), h.score.to_bits())).collect();
                out.push((format!("{collection} query {seed} request {i}"), hits));
            }
        }
    }
    out
}

fn export(db: &Database, tenant_name: &str) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut reports = 0;
    db.operator()
        .export_tenant(&name(tenant_name), &mut archive, &mut |_: ArchiveProgress| reports += 1)
        .expect("export");
    assert!(reports >= 1);
    archive
}

fn import(db: &Database, archive: &[u8], new_name: Option<&str>) -> Result<ImportSummary, StorageError> {
    import_in(db, archive, new_name, None)
}

fn import_in(
    db: &Database,
    archive: &[u8],
    new_name: Option<&str>,
    tier: Option<Placement>,
) -> Result<ImportSummary, StorageError> {
    let new_name = new_name.map(name);
    db.operator().import_tenant(&mut &archive[..], new_name.as_ref(), tier, &mut |_| {})
}

/// The uids of every tenant of an open store.
fn uids(db: &Database) -> Vec<[u8; 16]> {
    db.operator().list_tenants().expect("list").iter().map(|t| *t.uid.as_bytes()).collect()
}

/// Checked raw in a closed data directory: every record of the shared column family is under the
/// uid of one of `tenants`, none under `gone` (a failed import's uid, when it is known), and no
/// import marker is left in `sys`.
fn assert_shared_family_holds_only(data: &Path, tenants: &[[u8; 16]], gone: Option<[u8; 16]>) {
    let raw = raw_db(data);
    if let Some(uid) = gone {
        for kind in [b'P', b'V', b'C'] {
            let place = crate::util::Place { dir: data.to_owned(), cf: "shared".to_owned(), uid };
            assert!(tenant_records(&raw, &place, kind).is_empty(), "records under the failed import's uid");
        }
    }
    if let Some(shared) = raw.cf_handle("shared") {
        for item in raw.iterator_cf(&shared, rocksdb::IteratorMode::Start) {
            let (key, _) = item.expect("iterate");
            assert!(tenants.iter().any(|uid| key.starts_with(uid)), "a record under no tenant's uid");
        }
    }
    let sys = raw.cf_handle("sys").expect("sys");
    let markers = raw
        .iterator_cf(&sys, rocksdb::IteratorMode::Start)
        .map(|item| item.expect("iterate"))
        .filter(|(key, _)| key.starts_with(b"importing/"))
        .count();
    assert_eq!(markers, 0, "an import marker is left");
}

/// The column families of a closed data directory.
fn families(data: &Path) -> BTreeSet<String> {
    rocksdb::DB::list_cf(&rocksdb::Options::default(), data).expect("list").into_iter().collect()
}

#[test]
fn a_round_trip_under_the_same_name_into_a_fresh_directory_answers_identically() {
    let source = TestDir::new();
    let (archive, expected, policy) = {
        let db = open(&source, source.master());
        fill(&db, "acme");
        let scope = db.operator().trusted_host_scope(&name("acme"), "test").expect("scope");
        let expected = answers(&db.tenant(&scope).expect("tenant"));
        (export(&db, "acme"), expected, db.operator().policy(&name("acme")).expect("policy"))
    };
    // Nothing a tenant wrote is in the archive in plain text.
    for marker in [b"chunk 1".as_slice(), b"s3://docs", b"alice", b"acme", b"tight k"] {
        assert!(!archive.windows(marker.len()).any(|w| w == marker), "plain text in the archive");
    }
    let target = TestDir::new();
    let db = open(&target, source.master());
    let summary = import(&db, &archive, None).expect("import");
    assert!(!summary.rekeyed);
    assert!(summary.index_records > 0, "the index snapshot came along");
    assert_eq!(summary.progress.points, GRAPH_POINTS + 50 - 1 + 20);
    let scope = db.operator().trusted_host_scope(&name("acme"), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    // The graph loads from the carried snapshot: no rebuild, no point left in the delta.
    t.search("docs", &vector(1, DIM), 1).expect("load");
    let status = t.graph_status("docs").expect("status");
    assert_eq!(
        (status.graph_points, status.delta_points, status.building),
        (GRAPH_POINTS as usize, 0, false)
    );
    assert_eq!(answers(&t), expected);
    assert_eq!(*db.operator().policy(&name("acme")).expect("policy"), *policy);
    // The source's writes were sealed under generation 1; the copy writes under a fresh one.
    assert_eq!(t.key_generation(), 2);
    t.upsert("notes", &[doc(7, 2)]).expect("a write after the import");
    assert_eq!(t.count("notes").expect("count"), 50);
    let events = db.operator().audit_events(summary.tenant.uid).expect("audit");
    let imported = events.iter().find(|e| e.operation == "tenant-imported").expect("imported event");
    assert!(imported.note.as_deref().is_some_and(|n| n.contains(&summary.archive_id)));
    // A restore under its own name is no copy: nothing is added to another trail.
    assert!(events.iter().all(|e| e.operation != "tenant-copied"));
    // But it is an imported tenant, which the approver of a grant for it is shown.
    let restored = db.operator().tenant_info(&name("acme")).expect("info");
    assert!(restored.imported_ms.is_some() && restored.operator_revoked_keys_ms.is_none());
    // A second import of the same archive: the name is taken.
    assert!(matches!(import(&db, &archive, None), Err(StorageError::AlreadyExists { .. })));
    drop(t);
    drop(db);
    // Reopened, the imported tenant is whole.
    let db = open(&target, source.master());
    let scope = db.operator().trusted_host_scope(&name("acme"), "test").expect("scope");
    assert_eq!(db.tenant(&scope).expect("tenant").count("docs").expect("count"), GRAPH_POINTS);
}

#[test]
fn a_round_trip_under_a_new_name_rekeys_and_answers_identically() {
    let dir = TestDir::new();
    let db = open(&dir, dir.master());
    fill(&db, "acme");
    let archive = export(&db, "acme");
    let summary = import(&db, &archive, Some("acme-copy")).expect("import");
    assert!(summary.rekeyed);
    assert_eq!(summary.index_records, 0, "snapshot references are tags under the old naming key");
    let op = db.operator();
    let (original, copy) = (op.tenant_info(&name("acme")).expect("a"), op.tenant_info(&name("acme-copy")));
    let copy = copy.expect("copy");
    assert_ne!(original.uid, copy.uid);
    // The copy is marked as imported; its source is not.
    assert!(copy.imported_ms.is_some() && original.imported_ms.is_none());
    // The copy is an event in the source's own trail, naming the copy's uid and the archive, and
    // the source's chain still verifies.
    let events = op.audit_events(original.uid).expect("audit");
    let copied = events.iter().find(|e| e.operation == "tenant-copied").expect("a tenant-copied event");
    let note = copied.note.as_deref().expect("note");
    assert!(note.contains(&copy.uid.to_hex()) && note.contains(&summary.archive_id), "{note}");
    assert_eq!(op.audit_verify(original.uid).expect("verify").first_broken, None);
    let source = db.tenant(&op.trusted_host_scope(&name("acme"), "t").expect("s")).expect("t");
    let target = db.tenant(&op.trusted_host_scope(&name("acme-copy"), "t").expect("s")).expect("t");
    assert_eq!(answers(&target), answers(&source));
    assert_eq!(op.policy(&name("acme-copy")).expect("p").policy, op.policy(&name("acme")).expect("p").policy);
    // Two tenants now: a write to the copy does not reach the original.
    target.upsert("dots", &[doc(999, 3)]).expect("write");
    assert_eq!((target.count("dots").expect("c"), source.count("dots").expect("c")), (21, 20));
    // The copy's graph is rebuilt from its records.
    crate::util::wait_until("the copy's graph", || {
        let status = target.graph_status("docs").expect("status");
        (status.graph_points == GRAPH_POINTS as usize && !status.building).then_some(())
    });
    assert_eq!(answers(&target)[..16], answers(&source)[..16]);
}

#[test]
fn damaged_foreign_and_garbage_archives_are_refused_and_leave_nothing() {
    let dir = TestDir::new();
    let archive = {
        let db = open(&dir, dir.master());
        fill(&db, "acme");
        export(&db, "acme")
    };
    let target = TestDir::new();
    let before = {
        let db = open(&target, dir.master());
        tenant(&db, "other");
        drop(db);
        families(&target.data())
    };
    let db = open(&target, dir.master());
    let bad = |bytes: &[u8], expected: &str| {
        let err = import(&db, bytes, None).expect_err(expected);
        assert!(matches!(err, StorageError::BadArchive { .. }), "{expected}: {err}");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    };
    let mut cuts = vec![0, 10, 60, 61, 64, 200, archive.len() / 2, archive.len() - 40, archive.len() - 1];
    cuts.dedup();
    for cut in cuts {
        bad(&archive[..cut], if cut == 0 { "empty" } else { "cut short" });
    }
    // Inside the frames (a flip in a frame's length field may read as a cut or an oversized frame).
    for at in [70, archive.len() / 3, archive.len() - 5] {
        let mut altered = archive.clone();
        altered[at] ^= 0x20;
        let err = import(&db, &altered, None).expect_err("altered");
        assert!(matches!(err, StorageError::BadArchive { .. }), "{err}");
    }
    let mut noise = archive[..60].to_vec();
    noise.extend_from_slice(&1000u32.to_be_bytes());
    noise.extend_from_slice(&[7u8; 1000]);
    bad(&noise, "altered");
    let mut header = archive.clone();
    header[40] ^= 1;
    bad(&header, "another master key");
    let mut trailing = archive.clone();
    trailing.extend_from_slice(b"more");
    bad(&trailing, "bytes follow");
    let mut oversized = archive[..60].to_vec();
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    bad(&oversized, "over its size limit");
    let garbage: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    bad(&garbage, "not a Bulkhead tenant archive");
    let mut version = archive.clone();
    version[11] = 9;
    bad(&version, "unsupported archive format version");
    // The other store's master key.
    let foreign = TestDir::new();
    let foreign_db = open(&foreign, foreign.master());
    let err = import(&foreign_db, &archive, None).expect_err("foreign");
    assert!(err.to_string().contains("another master key"), "{err}");
    assert!(foreign_db.operator().list_tenants().expect("list").is_empty());
    drop(foreign_db);
    // Over an existing name.
    assert!(matches!(import(&db, &archive, Some("other")), Err(StorageError::AlreadyExists { .. })));
    let tenants: Vec<String> =
        db.operator().list_tenants().expect("list").iter().map(|t| t.name.as_str().to_owned()).collect();
    assert_eq!(tenants, ["other"]);
    drop(db);
    assert_eq!(families(&target.data()), before, "no column family was left behind");
}

/// A reader that fails after `limit` bytes, as a dropped connection or a full disk would.
struct FailAfter<'a> {
    bytes: &'a [u8],
    limit: usize,
}

impl Read for FailAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.limit == 0 {
            return Err(std::io::Error::other("the connection dropped"));
        }
        let n = buf.len().min(self.limit).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.limit -= n;
        Ok(n)
    }
}

#[test]
fn an_import_that_fails_between_its_batches_leaves_no_tenant_and_can_be_retried() {
    let dir = TestDir::new();
    // The default graph threshold: no graph is built for these points.
    let db = Database::open(&dir.data(), dir.master(), StoreOptions::default()).expect("open");
    let scope = tenant(&db, "big");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 512, Metric::L2).expect("collection");
    // About 10 MB of archive: the import commits a few batches before it fails.
    for chunk in (0..4000u64).collect::<Vec<_>>().chunks(500) {
        let points: Vec<NewPoint> = chunk
            .iter()
            .map(|&i| {
                NewPoint::new(DocId::new(format!("p{i}")).expect("id"), vector(i, 512), "x".repeat(400))
            })
            .collect();
        t.upsert("docs", &points).expect("upsert");
    }
    drop(t);
    let archive = export(&db, "big");
    assert!(archive.len() > 9_000_000, "{}", archive.len());
    drop(db);
    let before = families(&dir.data());
    let db = open(&dir, dir.master());
    for new_name in [None, Some("big-copy")] {
        let op = db.operator();
        if new_name.is_none() {
            // Under its own name the archive needs its name free.
            assert!(db.delete_tenant(&name("big")).is_ok());
        }
        let mut failing = FailAfter { bytes: &archive, limit: archive.len() - 1000 };
        let err = op
            .import_tenant(&mut failing, new_name.map(name).as_ref(), None, &mut |_| {})
            .expect_err("fails");
        assert!(matches!(err, StorageError::Io(_)), "{err}");
        let listed: Vec<String> =
            op.list_tenants().expect("list").iter().map(|t| t.name.as_str().to_owned()).collect();
        assert_eq!(listed, if new_name.is_none() { vec![] } else { vec!["big".to_owned()] });
        // A panic in the middle (a bug in a reader) leaves nothing either.
        let mut panicking = FailAfter { bytes: &archive, limit: usize::MAX };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            op.import_tenant(&mut panicking, new_name.map(name).as_ref(), None, &mut |p| {
                assert!(p.bytes < 5_000_000, "the progress callback panics half-way");
            })
        }));
        assert!(result.is_err());
        let summary = import(&db, &archive, new_name).expect("the retry succeeds");
        assert_eq!(summary.progress.points, 4000);
    }
    drop(db);
    let mut after = families(&dir.data());
    assert_eq!(after.len(), before.len() + 1, "the two imports' column families, nothing else");
    after.retain(|f| !before.contains(f));
    assert_eq!(after.len(), 1);
}

#[test]
fn an_import_killed_at_any_moment_leaves_whole_tenants_or_none() {
    let dir = TestDir::new();
    {
        let db = open(&dir, dir.master());
        let scope = tenant(&db, "src");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", ARCHIVE_DIM, Metric::L2).expect("collection");
        t.upsert("docs", &archive_copy_points()).expect("upsert");
        drop(t);
        std::fs::write(dir.root().join("archive.bin"), export(&db, "src")).expect("archive file");
    }
    for (round, kill_after) in [(1, 1), (2, 3)] {
        let acked = crash_child(&dir, Workload::Import, round, kill_after);
        let db = open(&dir, dir.master());
        let tenants = db.operator().list_tenants().expect("list");
        for n in &acked {
            assert!(tenants.iter().any(|t| t.name.as_str() == format!("c{round}-{n}")), "copy {n} lost");
        }
        for info in &tenants {
            let scope = db.operator().trusted_host_scope(&info.name, "test").expect("scope");
            let count = db.tenant(&scope).expect("tenant").count("docs").expect("count");
            assert_eq!(count, archive_copy_points().len() as u64, "a half tenant is visible");
        }
        drop(db);
        // The reopen above dropped whatever the killed import had written.
        assert_eq!(families(&dir.data()).len(), 2 + tenants.len(), "sys, default, one per tenant");
    }
}

#[test]
fn a_round_trip_into_the_shared_and_dedicated_tiers_answers_identically() {
    let source = TestDir::new();
    let db = open(&source, source.master());
    fill(&db, "acme");
    let op = db.operator();
    let expected = answers(&db.tenant(&op.trusted_host_scope(&name("acme"), "t").expect("s")).expect("t"));
    let archive = export(&db, "acme");
    // Re-keyed into the shared tier of its own (partitioned by default) store.
    let summary = import_in(&db, &archive, Some("acme-shared"), Some(Placement::Shared)).expect("import");
    assert_eq!(summary.tenant.placement, Placement::Shared);
    assert_eq!(op.tenant_info(&name("acme-shared")).expect("info").placement, Placement::Shared);
    let copy = db.tenant(&op.trusted_host_scope(&name("acme-shared"), "t").expect("s")).expect("t");
    assert_eq!(answers(&copy), expected);
    drop(copy);
    // And into an instance of its own.
    let summary = import_in(&db, &archive, Some("acme-own"), Some(Placement::Dedicated)).expect("import");
    assert_eq!(summary.tenant.placement, Placement::Dedicated);
    let copy = db.tenant(&op.trusted_host_scope(&name("acme-own"), "t").expect("s")).expect("t");
    assert_eq!(answers(&copy), expected);
    drop(copy);
    drop(db);

    // Under its own name into a store whose default tier is shared, beside a shared neighbour.
    let target = TestDir::in_tier(Placement::Shared);
    let db = open_in(&target, source.master(), Placement::Shared);
    let neighbour = tenant(&db, "neighbour");
    let n = db.tenant(&neighbour).expect("tenant");
    n.create_collection("docs", DIM, Metric::Cosine).expect("collection");
    n.upsert("docs", &(0..30).map(|i| doc(i, 9)).collect::<Vec<_>>()).expect("upsert");
    drop(n);
    let summary = import(&db, &archive, None).expect("import");
    assert_eq!(summary.tenant.placement, Placement::Shared);
    assert!(summary.index_records > 0, "the index snapshot came along");
    let scope = db.operator().trusted_host_scope(&name("acme"), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    t.search("docs", &vector(1, DIM), 1).expect("load");
    let status = t.graph_status("docs").expect("status");
    assert_eq!((status.graph_points, status.delta_points), (GRAPH_POINTS as usize, 0));
    assert_eq!(answers(&t), expected);
    drop(t);
    let tenants = uids(&db);
    let acme = *summary.tenant.uid.as_bytes();
    drop(db);
    // Reopened: whole, and its records are in the shared column family, not in one of its own.
    let db = open_in(&target, source.master(), Placement::Shared);
    let t = db.tenant(&db.operator().trusted_host_scope(&name("acme"), "t").expect("s")).expect("t");
    assert_eq!(answers(&t), expected);
    drop(t);
    drop(db);
    assert!(!families(&target.data()).contains(&format!("t-{}", hex::encode(acme))));
    let raw = raw_db(&target.data());
    assert_eq!(
        tenant_records(
            &raw,
            &crate::util::Place { dir: target.data(), cf: "shared".to_owned(), uid: acme },
            b'P'
        )
        .len() as u64,
        summary.progress.points
    );
    drop(raw);
    assert_shared_family_holds_only(&target.data(), &tenants, None);
}

#[test]
fn a_failed_import_into_the_shared_tier_leaves_no_records_and_no_marker() {
    let dir = TestDir::in_tier(Placement::Shared);
    let db = Database::open(
        &dir.data(),
        dir.master(),
        StoreOptions { default_placement: Placement::Shared, ..StoreOptions::default() },
    )
    .expect("open");
    let scope = tenant(&db, "big");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 512, Metric::L2).expect("collection");
    // About 6 MB of archive: the import commits a batch before it fails.
    for chunk in (0..2400u64).collect::<Vec<_>>().chunks(400) {
        let points: Vec<NewPoint> = chunk
            .iter()
            .map(|&i| {
                NewPoint::new(DocId::new(format!("p{i}")).expect("id"), vector(i, 512), "x".repeat(400))
            })
            .collect();
        t.upsert("docs", &points).expect("upsert");
    }
    drop(t);
    let archive = export(&db, "big");
    assert!(archive.len() > 5_000_000, "{}", archive.len());
    let source_uid = *db.operator().tenant_info(&name("big")).expect("info").uid.as_bytes();
    let neighbour = tenant(&db, "neighbour");
    let n = db.tenant(&neighbour).expect("tenant");
    n.create_collection("docs", 8, Metric::L2).expect("collection");
    n.upsert("docs", &[NewPoint::new(DocId::new("n").expect("id"), vector(1, 8), "t")]).expect("upsert");
    drop(n);
    // Under its own name (its uid is the archive's: checked raw below) and under a new one.
    assert!(db.delete_tenant(&name("big")).is_ok());
    for new_name in [None, Some("big-copy")] {
        let op = db.operator();
        let mut failing = FailAfter { bytes: &archive, limit: archive.len() - 1000 };
        let err = op
            .import_tenant(&mut failing, new_name.map(name).as_ref(), None, &mut |_| {})
            .expect_err("fails");
        assert!(matches!(err, StorageError::Io(_)), "{err}");
        let mut panicking = FailAfter { bytes: &archive, limit: usize::MAX };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            op.import_tenant(&mut panicking, new_name.map(name).as_ref(), None, &mut |p| {
                assert!(p.bytes < 4_500_000, "the progress callback panics after the first batch");
            })
        }));
        assert!(result.is_err());
        let listed: Vec<String> =
            op.list_tenants().expect("list").iter().map(|t| t.name.as_str().to_owned()).collect();
        assert_eq!(listed, ["neighbour"]);
    }
    let tenants = uids(&db);
    let n = db.tenant(&neighbour).expect("tenant");
    assert_eq!(n.count("docs").expect("count"), 1, "the neighbour keeps its records");
    drop(n);
    drop(neighbour);
    drop(db);
    assert_shared_family_holds_only(&dir.data(), &tenants, Some(source_uid));
    // And the retry succeeds.
    let db = open_in(&dir, dir.master(), Placement::Shared);
    let summary = import(&db, &archive, Some("big-copy")).expect("the retry succeeds");
    assert_eq!((summary.progress.points, summary.tenant.placement), (2400, Placement::Shared));
}

#[test]
fn an_import_into_the_shared_tier_killed_at_any_moment_leaves_no_records_and_no_marker() {
    let dir = TestDir::new();
    // About 10 MB of archive, so that the killed import has committed batches half-way.
    let mut points = archive_copy_points();
    let more: Vec<NewPoint> = archive_copy_points()
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.id = DocId::new(format!("b{i}")).expect("id");
            p
        })
        .collect();
    points.extend(more);
    {
        let db = open(&dir, dir.master());
        let scope = tenant(&db, "src");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", ARCHIVE_DIM, Metric::L2).expect("collection");
        for chunk in points.chunks(500) {
            t.upsert("docs", chunk).expect("upsert");
        }
        drop(t);
        std::fs::write(dir.root().join("archive.bin"), export(&db, "src")).expect("archive file");
    }
    // Killed half-way through copy 0, then half-way through copy 1 (after copy 0 completed).
    for (round, kill_after) in [(1, 1), (2, 3)] {
        let acked = crash_child(&dir, Workload::ImportShared, round, kill_after);
        assert!(acked.iter().any(|n| *n >= HALF_WAY), "the kill landed inside an import");
        let db = open(&dir, dir.master());
        let tenants = db.operator().list_tenants().expect("list");
        for n in acked.iter().filter(|n| **n < HALF_WAY) {
            assert!(tenants.iter().any(|t| t.name.as_str() == format!("c{round}-{n}")), "copy {n} lost");
        }
        for info in tenants.iter().filter(|t| t.name.as_str() != "src") {
            assert_eq!(info.placement, Placement::Shared);
            let scope = db.operator().trusted_host_scope(&info.name, "test").expect("scope");
            let count = db.tenant(&scope).expect("tenant").count("docs").expect("count");
            assert_eq!(count, points.len() as u64, "a half tenant is visible");
        }
        let uids = uids(&db);
        drop(db);
        // The reopen above cleared whatever the killed import had written.
        assert_shared_family_holds_only(&dir.data(), &uids, None);
        assert_eq!(families(&dir.data()).len(), 4, "sys, default, the source's, shared");
    }
}
