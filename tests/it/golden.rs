//! Compatibility: a data directory written by storage format 1 (committed under `tests/golden/`) still
//! opens, authenticates its API key, reads every record, loads its index snapshot and searches. A
//! format change that breaks this must bump the format version and migrate, not silently fail.
//!
//! The golden directory was written by `write_format_1_golden` below (run it with
//! `BULKHEAD_WRITE_GOLDEN=<dir>` and `--ignored`). Its master key is a test key, committed on purpose.

use crate::invariants::manifest_dir;
use crate::util::vector;
use bulkhead_query::{
    Acl, Database, DocId, KeyBinding, MasterKey, MetaValue, Metric, NewPoint, Principal, Role, SearchRequest,
    StoreOptions, TenantName,
};
use std::path::Path;

const DIM: usize = 4;
const POINTS: u64 = 60;

fn golden_point(i: u64) -> NewPoint {
    let mut p = NewPoint::new(
        DocId::new(format!("g{i}")).expect("id"),
        vector(7_000 + i, DIM),
        format!("golden {i}"),
    );
    p.metadata.insert("n".into(), MetaValue::Number(i as f64));
    if i.is_multiple_of(2) {
        p.acl = Acl::Restricted { users: vec![], groups: vec!["even".into()] };
    }
    p
}

#[test]
#[ignore = "writes the golden directory; run by hand when the format version changes"]
fn write_format_1_golden() {
    let out = std::env::var_os("BULKHEAD_WRITE_GOLDEN")
        .expect("BULKHEAD_WRITE_GOLDEN names the directory to write");
    let out = Path::new(&out);
    std::fs::create_dir_all(out).expect("dir");
    MasterKey::generate().write_new_file(&out.join("master.key")).expect("key");
    let master = MasterKey::from_file(&out.join("master.key")).expect("key");
    let db = Database::open(&out.join("data"), master, StoreOptions::default())
        .expect("open")
        .with_graph_threshold(20);
    let name = TenantName::new("golden").expect("name");
    db.operator().create_tenant(&name).expect("tenant");
    let key = db
        .operator()
        .issue_bound_api_key(
            &name,
            Role::TenantAdmin,
            "golden",
            None,
            KeyBinding::Service { on_behalf_of: true },
        )
        .expect("key");
    std::fs::write(out.join("api-key"), &key.token).expect("token");
    let scope = db.operator().authenticate(&key.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    t.upsert("docs", &(0..POINTS).map(golden_point).collect::<Vec<_>>()).expect("upsert");
    t.search("docs", &vector(7_000, DIM), 1).expect("load");
    crate::util::wait_until("the snapshot's save", || {
        t.graph_status("docs").expect("status").snapshot_saved.then_some(())
    });
    // A finished key rotation, so that generation 2 seals everything and generation 1 is gone.
    let uid = db.operator().tenant_info(&name).expect("info").uid;
    db.operator().rotate_tenant_key(&name).expect("rotate");
    while !db.operator().rotation_step(uid, 1000).expect("step").expect("running").finished {}
    db.operator().flush().expect("flush");
}

#[test]
fn format_1_data_directory_still_opens() {
    let golden = manifest_dir().join("golden/format-1");
    let work = tempfile::tempdir().expect("tempdir");
    for entry in walk(&golden) {
        let relative = entry.strip_prefix(&golden).expect("inside");
        let target = work.path().join(relative);
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
    let db =
        Database::open(&work.path().join("data"), master, StoreOptions::default()).expect("format 1 opens");
    let token = std::fs::read_to_string(work.path().join("api-key")).expect("token");
    let scope = db.operator().authenticate(token.trim()).expect("its API key still authenticates");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.key_generation(), 2);
    assert_eq!(t.count("docs").expect("count"), POINTS);
    for i in 0..POINTS {
        let p = t.get("docs", &DocId::new(format!("g{i}")).expect("id")).expect("get").expect("present");
        assert_eq!(p.vector, golden_point(i).vector);
        assert_eq!(p.payload.text, format!("golden {i}"));
        assert_eq!(p.payload.key_generation, 2);
    }
    let hits = t.search("docs", &vector(7_003, DIM), 3).expect("search");
    assert_eq!(hits[0].id.as_str(), "g3");
    let status = t.graph_status("docs").expect("status");
    assert_eq!(status.graph_points, POINTS as usize, "the sealed index snapshot loads: {status:?}");
    let even = Principal::new("someone", ["even"]).expect("principal");
    let hits = t
        .search_request(
            "docs",
            &vector(7_003, DIM),
            &SearchRequest { k: 5, ef: None, principal: Some(&even), filter: None },
        )
        .expect("search");
    assert_eq!(hits.len(), 5);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
