//! No plaintext at rest: marker tenant names, collection names, ids, texts, metadata and vectors are
//! written, each collection gets an HNSW graph saved as a snapshot, the database is closed, and every
//! byte of every file in the data directory is searched.

use crate::util::{TIERS, TestDir, files_below, tenant};
use bulkhead_query::{Acl, DocId, MetaValue, Metric, NewPoint, Placement};

/// The bytes of a vector whose components are distinctive marker values.
fn marker_vector(i: usize) -> Vec<f32> {
    (0..16).map(|j| 1000.0 + (i * 16 + j) as f32 * 0.25).collect()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn no_plaintext_anywhere_in_the_data_directory() {
    for tier in TIERS {
        no_plaintext_anywhere_in_the_data_directory_in(tier);
    }
}

fn no_plaintext_anywhere_in_the_data_directory_in(tier: Placement) {
    let dir = TestDir::in_tier(tier);
    // The magic numbers of a serialised collection snapshot and segment: they would be on disk if a
    // graph were ever written unsealed.
    let mut markers: Vec<Vec<u8>> = vec![b"BHCOLSN\0".to_vec(), b"BHDXSEG\0".to_vec()];
    {
        let db = dir.open();
        db.set_graph_threshold(40);
        for t in 0..3 {
            let tenant_name = format!("zqtenantmarker{t}");
            markers.push(tenant_name.clone().into_bytes());
            let scope = tenant(&db, &tenant_name);
            let tenant = db.tenant(&scope).expect("tenant");
            let collection = format!("zqcollmarker{t}");
            markers.push(collection.clone().into_bytes());
            tenant.create_collection(&collection, 16, Metric::L2).expect("collection");
            let mut points = Vec::new();
            for i in 0..50 {
                let id = format!("zqidmarker-{t}-{i:03}");
                let text = format!("zqtextmarker {t} {i} the quick brown fox");
                let vector = marker_vector(t * 1000 + i);
                markers.push(id.clone().into_bytes());
                markers.push(text.clone().into_bytes());
                markers.push(le_bytes(&vector[..4]));
                let mut point = NewPoint::new(DocId::new(id).expect("id"), vector, text);
                point.metadata.insert("zqmetakey".into(), MetaValue::Keyword(format!("zqmetavalue{t}")));
                point.source_uri = Some(format!("https://zqsourcemarker{t}.example/doc"));
                point.acl =
                    Acl::Restricted { users: vec![format!("zquser{t}")], groups: vec!["zqgroup".into()] };
                points.push(point);
            }
            markers.extend([
                b"zqmetakey".to_vec(),
                format!("zqmetavalue{t}").into_bytes(),
                format!("zqsourcemarker{t}").into_bytes(),
                format!("zquser{t}").into_bytes(),
                b"zqgroup".to_vec(),
            ]);
            tenant.upsert(&collection, &points).expect("upsert");
            // A second batch stays in the write-ahead log and memtable, not flushed.
            let late = NewPoint::new(
                DocId::new(format!("zqlateid{t}")).expect("id"),
                marker_vector(t * 1000 + 999),
                format!("zqlatetext{t}"),
            );
            markers.push(format!("zqlateid{t}").into_bytes());
            markers.push(format!("zqlatetext{t}").into_bytes());
            tenant.upsert(&collection, &[late]).expect("upsert");
            assert_eq!(tenant.search(&collection, &marker_vector(t * 1000), 3).expect("search").len(), 3);
            crate::util::wait_until("the graph snapshot's save", || {
                tenant.graph_status(&collection).expect("status").snapshot_saved.then_some(())
            });
        }
        db.operator().flush().expect("flush");
        // Writes after the flush live only in the WAL.
        let scope = db
            .operator()
            .trusted_host_scope(&bulkhead_query::TenantName::new("zqtenantmarker0").expect("n"), "test")
            .expect("scope");
        let tenant = db.tenant(&scope).expect("tenant");
        let wal_only =
            NewPoint::new(DocId::new("zqwalonlyid").expect("id"), marker_vector(77_777), "zqwalonlytext");
        markers.push(b"zqwalonlyid".to_vec());
        markers.push(b"zqwalonlytext".to_vec());
        markers.push(le_bytes(&marker_vector(77_777)[..4]));
        tenant.upsert("zqcollmarker0", &[wal_only]).expect("upsert");
    }

    let files = files_below(&dir.data());
    let kinds = ["sst", "log", "MANIFEST", "OPTIONS", "LOG", "CURRENT"];
    for kind in kinds {
        assert!(
            files.iter().any(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(kind))),
            "expected at least one {kind} file in the data directory, found {files:?}"
        );
    }
    let mut scanned = 0usize;
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        scanned += bytes.len();
        for marker in &markers {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_slice()),
                "plaintext marker of {} bytes found in {}",
                marker.len(),
                file.display()
            );
        }
    }
    assert!(scanned > 10_000, "the scan read real files ({scanned} bytes)");
}
