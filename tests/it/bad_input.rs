//! Bad input gets a typed error and changes nothing: every case is tried against a database holding
//! known data, which is compared before and after.

use crate::util::{TestDir, tenant, vector};
use bulkhead_query::{Acl, DocId, MetaValue, Metric, NewPoint, QueryError, StorageError, Tenant, limits};

const DIM: usize = 8;

/// Everything observable about the collection: its count, a search's hits, and five points.
#[derive(Debug, PartialEq)]
struct Snapshot(u64, Vec<(String, f32, String)>, Vec<Option<(Vec<f32>, String, u64)>>);

fn snapshot(t: &Tenant<'_>) -> Snapshot {
    let count = t.count("docs").expect("count");
    let hits = t
        .search("docs", &vector(999, DIM), 10)
        .expect("search")
        .into_iter()
        .map(|h| (h.id.as_str().to_owned(), h.score, h.text))
        .collect();
    let points = (0..5)
        .map(|i| {
            t.get("docs", &DocId::new(format!("p{i}")).expect("id"))
                .expect("get")
                .map(|p| (p.vector, p.payload.text, p.payload.version))
        })
        .collect();
    Snapshot(count, hits, points)
}

fn point(id: &str, vector: Vec<f32>) -> NewPoint {
    NewPoint::new(DocId::new(id).expect("id"), vector, "text")
}

fn invalid(r: &Result<impl std::fmt::Debug, QueryError>) -> bool {
    matches!(r, Err(e) if e.is_invalid_argument())
}

#[test]
fn every_bad_input_is_refused_and_changes_nothing() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::Cosine).expect("collection");
    let good: Vec<NewPoint> = (0..5).map(|i| point(&format!("p{i}"), vector(i, DIM))).collect();
    t.upsert("docs", &good).expect("upsert");
    let before = snapshot(&t);

    let mut nan = vector(1, DIM);
    nan[3] = f32::NAN;
    let mut inf = vector(1, DIM);
    inf[0] = f32::INFINITY;
    let huge_text =
        NewPoint::new(DocId::new("big").expect("id"), vector(1, DIM), "x".repeat(limits::MAX_TEXT_BYTES + 1));
    let mut huge_meta = point("meta", vector(1, DIM));
    huge_meta.metadata.insert("k".into(), MetaValue::Keyword("v".repeat(limits::MAX_METADATA_BYTES + 1)));
    let mut nan_meta = point("meta", vector(1, DIM));
    nan_meta.metadata.insert("k".into(), MetaValue::Number(f64::NAN));
    let mut many_fields = point("meta", vector(1, DIM));
    for i in 0..=limits::MAX_METADATA_FIELDS {
        many_fields.metadata.insert(format!("f{i}"), MetaValue::Bool(true));
    }
    let mut huge_acl = point("acl", vector(1, DIM));
    huge_acl.acl = Acl::Restricted {
        users: (0..=limits::MAX_ACL_ENTRIES).map(|i| format!("u{i}")).collect(),
        groups: vec![],
    };
    let mut long_uri = point("uri", vector(1, DIM));
    long_uri.source_uri = Some("u".repeat(limits::MAX_SOURCE_URI_BYTES + 1));
    let too_many: Vec<NewPoint> =
        (0..=limits::MAX_BATCH_POINTS).map(|i| point(&format!("n{i}"), vector(i as u64, DIM))).collect();

    let upserts: Vec<(&str, Vec<NewPoint>)> = vec![
        ("wrong dimension (short)", vec![point("w", vector(1, DIM - 1))]),
        ("wrong dimension (long)", vec![point("w", vector(1, DIM + 1))]),
        ("NaN component", vec![point("w", nan.clone())]),
        ("infinite component", vec![point("w", inf.clone())]),
        ("zero vector with cosine", vec![point("w", vec![0.0; DIM])]),
        ("finite components whose norm overflows f32", vec![point("w", vec![1e20; DIM])]),
        ("oversized text", vec![huge_text]),
        ("oversized metadata", vec![huge_meta]),
        ("NaN metadata number", vec![nan_meta]),
        ("too many metadata fields", vec![many_fields]),
        ("oversized ACL", vec![huge_acl]),
        ("oversized source URI", vec![long_uri]),
        ("empty batch", vec![]),
        ("batch over the cap", too_many),
        // One bad point spoils the whole batch: the good one before it is not written either.
        ("good point then a bad one", vec![point("p0", vector(50, DIM)), point("w", nan.clone())]),
    ];
    for (case, points) in upserts {
        let result = t.upsert("docs", &points);
        assert!(invalid(&result), "{case}: {result:?}");
        assert_eq!(snapshot(&t), before, "{case} changed the database");
    }

    let searches: Vec<(&str, Vec<f32>, usize)> = vec![
        ("k = 0", vector(1, DIM), 0),
        ("k over the cap", vector(1, DIM), limits::MAX_K + 1),
        ("huge k", vector(1, DIM), usize::MAX),
        ("query of wrong dimension", vector(1, DIM + 3), 3),
        ("NaN query", nan, 3),
        ("infinite query", inf, 3),
        ("zero query with cosine", vec![0.0; DIM], 3),
        ("query whose norm overflows f32", vec![1e20; DIM], 3),
    ];
    for (case, query, k) in searches {
        let result = t.search("docs", &query, k);
        assert!(invalid(&result), "{case}: {result:?}");
    }
    for ef in [0, limits::MAX_EF + 1, usize::MAX] {
        let result = t.search_with_ef("docs", &vector(1, DIM), 3, Some(ef));
        assert!(invalid(&result), "ef {ef}: {result:?}");
    }
    assert_eq!(t.search_with_ef("docs", &vector(1, DIM), 3, Some(1)).expect("ef below k is raised").len(), 3);

    // Ids and names are checked when they are made.
    assert!(matches!(DocId::new(""), Err(StorageError::InvalidArgument { .. })));
    assert!(matches!(
        DocId::new("x".repeat(limits::MAX_DOC_ID_BYTES + 1)),
        Err(StorageError::InvalidArgument { .. })
    ));
    assert!(matches!(DocId::new("a\u{0}b"), Err(StorageError::InvalidArgument { .. })));
    assert!(DocId::new("x".repeat(limits::MAX_DOC_ID_BYTES)).is_ok(), "the limit itself is allowed");
    for bad in ["", "has space", &"c".repeat(65)] {
        assert!(invalid(&t.create_collection(bad, DIM, Metric::L2)), "collection name {bad:?}");
        assert!(invalid(&t.search(bad, &vector(1, DIM), 1)), "collection name {bad:?}");
    }
    for dimension in [0, limits::MAX_DIMENSION + 1] {
        assert!(invalid(&t.create_collection("dims", dimension, Metric::L2)), "dimension {dimension}");
    }

    // Unknown collections are not found, for every operation.
    let unknown = |r: Result<(), QueryError>| {
        matches!(r, Err(QueryError::Storage(StorageError::NotFound { what: "collection" })))
    };
    assert!(unknown(t.upsert("nope", &[point("x", vector(1, DIM))]).map(drop)));
    assert!(unknown(t.search("nope", &vector(1, DIM), 1).map(drop)));
    assert!(unknown(t.get("nope", &DocId::new("x").expect("id")).map(drop)));
    assert!(unknown(t.delete("nope", &[DocId::new("x").expect("id")]).map(drop)));
    assert!(unknown(t.drop_collection("nope")));

    // Creating what exists is refused and leaves it alone.
    assert!(matches!(
        t.create_collection("docs", DIM, Metric::L2),
        Err(QueryError::Storage(StorageError::AlreadyExists { what: "collection" }))
    ));
    assert_eq!(snapshot(&t), before);
    assert_eq!(t.collections().expect("list").len(), 1);
}

#[test]
fn error_messages_never_echo_tenant_data() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 2, Metric::L2).expect("collection");
    let secret = "zq-secret-marker";
    let errors = [
        t.search(secret, &[1.0, 0.0], 1).expect_err("missing"),
        t.create_collection(&format!("{secret} with spaces"), 2, Metric::L2).expect_err("bad name"),
        t.upsert("docs", &[NewPoint::new(DocId::new(secret).expect("id"), vec![f32::NAN, 0.0], secret)])
            .expect_err("nan"),
        QueryError::from(DocId::new(format!("{secret}\u{1}")).expect_err("control")),
    ];
    for e in errors {
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
}

#[test]
fn a_recreated_collection_starts_empty() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    t.upsert("docs", &[point("old", vector(1, DIM))]).expect("upsert");
    assert_eq!(t.search("docs", &vector(1, DIM), 5).expect("search").len(), 1, "loads the search state");
    t.drop_collection("docs").expect("drop");
    t.create_collection("docs", DIM, Metric::L2).expect("recreate");
    assert!(
        t.search("docs", &vector(1, DIM), 5).expect("search").is_empty(),
        "no point of the old collection"
    );
    assert!(t.get("docs", &DocId::new("old").expect("id")).expect("get").is_none());
    t.upsert("docs", &[point("new", vector(2, DIM))]).expect("upsert");
    let hits = t.search("docs", &vector(2, DIM), 5).expect("search");
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["new"]);
}

#[test]
fn collection_numbers_never_wrap() {
    let dir = TestDir::new();
    let uid = {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::Cosine).expect("create");
        t.upsert("docs", &[point("p0", vector(0, DIM))]).expect("upsert");
        scope.tenant_uid()
    };
    // An attacker, or four billion creations, brings the tenant's next collection number to the top
    // of its range: the store's own counter, in the tenant's column family (`uid 'K'`).
    let set_next = |next: u32| {
        let raw = crate::util::raw_db(&dir.data());
        let cf = raw.cf_handle(&format!("t-{}", hex::encode(uid.as_bytes()))).expect("tenant cf");
        raw.put_cf(&cf, [uid.as_bytes().as_slice(), b"K"].concat(), next.to_be_bytes()).expect("put");
    };
    let acme = |db: &bulkhead_query::Database| {
        db.operator().trusted_host_scope(&bulkhead_query::TenantName::new("acme").expect("name"), "test")
    };
    set_next(u32::MAX);
    {
        let db = dir.open();
        let t = db.tenant(&acme(&db).expect("scope")).expect("tenant");
        let refused = t.create_collection("more", DIM, Metric::Cosine);
        assert!(invalid(&refused), "{refused:?}");
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("every collection number"), "{message}");
        // Nothing changed: the old collection is whole, the refused one does not exist.
        assert_eq!(t.count("docs").expect("count"), 1);
        assert_eq!(t.collections().expect("list").len(), 1);
    }
    set_next(u32::MAX - 1);
    let db = dir.open();
    let t = db.tenant(&acme(&db).expect("scope")).expect("tenant");
    let last = t.create_collection("last", DIM, Metric::Cosine).expect("the last number is used");
    assert_eq!(last.number(), u32::MAX - 1);
    t.upsert("last", &[point("q", vector(1, DIM))]).expect("upsert into the last");
    assert_eq!(t.count("last").expect("count"), 1);
    assert_eq!(t.count("docs").expect("count"), 1);
    assert!(invalid(&t.create_collection("after", DIM, Metric::Cosine)));
}
