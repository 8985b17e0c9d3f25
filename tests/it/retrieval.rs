//! Permission-aware retrieval: ACLs and metadata filters select the allowed set before ranking, a
//! principal gets `min(k, visible)` hits with the reason it may see each, no candidate outside the
//! allowed set reaches ranking (exact path or graph), and bad filters are refused before any work.

use crate::util::{TestDir, tenant, vector};
use bulkhead_query::{
    Acl, Database, DocId, Filter, FilterValue, MatchReason, MetaValue, Metric, NewPoint, Principal,
    QueryError, SearchRequest, Tenant, limits,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

const DIM: usize = 8;

/// One document as the model sees it.
#[derive(Clone, Debug)]
struct Doc {
    vector: Vec<f32>,
    acl: Acl,
    section: String,
    year: f64,
    draft: bool,
}

fn new_point(id: &str, doc: &Doc) -> NewPoint {
    let mut p = NewPoint::new(DocId::new(id).expect("id"), doc.vector.clone(), format!("text of {id}"));
    p.acl = doc.acl.clone();
    p.metadata.insert("section".into(), MetaValue::Keyword(doc.section.clone()));
    p.metadata.insert("year".into(), MetaValue::Number(doc.year));
    p.metadata.insert("draft".into(), MetaValue::Bool(doc.draft));
    p
}

fn model_visible(doc: &Doc, p: &Principal) -> bool {
    match &doc.acl {
        Acl::TenantWide => true,
        Acl::Restricted { users, groups } => {
            users.iter().any(|u| u == p.user()) || groups.iter().any(|g| p.groups().contains(g))
        }
    }
}

fn model_matches(doc: &Doc, f: &Filter) -> bool {
    match f {
        Filter::Eq { field, value } => match (field.as_str(), value) {
            ("section", FilterValue::Keyword(k)) => &doc.section == k,
            ("year", FilterValue::Number(n)) => doc.year == *n,
            ("draft", FilterValue::Bool(b)) => doc.draft == *b,
            _ => false,
        },
        Filter::In { field, values } => field == "section" && values.contains(&doc.section),
        Filter::Range { field, min, max } => {
            field == "year" && min.is_none_or(|m| doc.year >= m) && max.is_none_or(|m| doc.year <= m)
        }
        Filter::And(c) => c.iter().all(|c| model_matches(doc, c)),
        Filter::Or(c) => c.iter().any(|c| model_matches(doc, c)),
        Filter::Not(c) => !model_matches(doc, c),
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The model's top-k ids over the allowed set.
fn model_top(
    docs: &BTreeMap<String, Doc>,
    q: &[f32],
    k: usize,
    principal: Option<&Principal>,
    filter: Option<&Filter>,
) -> Vec<String> {
    let mut all: Vec<(f32, &String)> = docs
        .iter()
        .filter(|(_, d)| principal.is_none_or(|p| model_visible(d, p)))
        .filter(|(_, d)| filter.is_none_or(|f| model_matches(d, f)))
        .map(|(id, d)| (l2(q, &d.vector), id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

fn restricted(users: &[&str], groups: &[&str]) -> Acl {
    Acl::Restricted {
        users: users.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_principal_sees_only_what_its_acls_allow_with_the_reason() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    let acls = [
        ("public", Acl::TenantWide),
        ("alice-own", restricted(&["alice"], &[])),
        ("sales-doc", restricted(&[], &["sales"])),
        ("eng-doc", restricted(&["bob"], &["eng"])),
    ];
    for (i, (id, acl)) in acls.iter().enumerate() {
        let doc = Doc {
            vector: vector(i as u64, DIM),
            acl: acl.clone(),
            section: "s".into(),
            year: 1.0,
            draft: false,
        };
        t.upsert("docs", &[new_point(id, &doc)]).expect("upsert");
    }
    let alice = Principal::new("alice", ["sales"]).expect("principal");
    // The query is the eng document's own vector: relevance points at it, scope must win.
    let request = SearchRequest { k: 10, ef: None, principal: Some(&alice), filter: None };
    let hits = t.search_request("docs", &vector(3, DIM), &request).expect("search");
    let mut seen: Vec<(String, Option<MatchReason>)> =
        hits.iter().map(|h| (h.id.as_str().to_owned(), h.matched_by)).collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("alice-own".into(), Some(MatchReason::User)),
            ("public".into(), Some(MatchReason::TenantWide)),
            ("sales-doc".into(), Some(MatchReason::Group)),
        ],
        "min(k, visible) hits, each with its reason, and never the eng document"
    );
    // ACL fingerprints: equal for equal ACLs (as sets), different otherwise.
    let fingerprint = |id: &str| hits.iter().find(|h| h.id.as_str() == id).expect("hit").acl_fingerprint;
    assert_ne!(fingerprint("public"), fingerprint("alice-own"));
    assert_ne!(fingerprint("alice-own"), fingerprint("sales-doc"));
    let twin = Doc {
        vector: vector(9, DIM),
        acl: restricted(&["alice", "alice"], &[]),
        section: "s".into(),
        year: 1.0,
        draft: false,
    };
    t.upsert("docs", &[new_point("alice-twin", &twin)]).expect("upsert");
    let again = t.search_request("docs", &vector(9, DIM), &request).expect("search");
    let twin_hit = again.iter().find(|h| h.id.as_str() == "alice-twin").expect("twin");
    assert_eq!(twin_hit.acl_fingerprint, fingerprint("alice-own"));
    t.delete("docs", &[DocId::new("alice-twin").expect("id")]).expect("delete");
    // A principal with no rights of its own sees the tenant-wide document only.
    let nobody = Principal::new("mallory", Vec::<String>::new()).expect("principal");
    let request = SearchRequest { k: 10, ef: None, principal: Some(&nobody), filter: None };
    let hits = t.search_request("docs", &vector(3, DIM), &request).expect("search");
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["public"]);
    // Taking a group out of an ACL takes effect at the next search.
    let doc = Doc {
        vector: vector(2, DIM),
        acl: restricted(&[], &["hr"]),
        section: "s".into(),
        year: 1.0,
        draft: false,
    };
    t.upsert("docs", &[new_point("sales-doc", &doc)]).expect("update");
    let request = SearchRequest { k: 10, ef: None, principal: Some(&alice), filter: None };
    let hits = t.search_request("docs", &vector(2, DIM), &request).expect("search");
    assert!(hits.iter().all(|h| h.id.as_str() != "sales-doc"));
}

fn section_filter(sections: &[&str]) -> Filter {
    Filter::In { field: "section".into(), values: sections.iter().map(|s| s.to_string()).collect() }
}

#[test]
fn bad_filters_and_principals_are_refused_before_any_work() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    let doc =
        Doc { vector: vector(1, DIM), acl: Acl::TenantWide, section: "a".into(), year: 2.0, draft: true };
    t.upsert("docs", &[new_point("d", &doc)]).expect("upsert");

    let mut deep = Filter::Eq { field: "section".into(), value: FilterValue::Keyword("a".into()) };
    for _ in 0..limits::MAX_FILTER_DEPTH - 1 {
        deep = Filter::Not(Box::new(deep));
    }
    let too_deep = Filter::Not(Box::new(deep.clone()));
    let leaf = || Filter::Eq { field: "draft".into(), value: FilterValue::Bool(true) };
    let many = |n: usize| Filter::Or((0..n).map(|_| leaf()).collect());
    let long_list = Filter::In {
        field: "section".into(),
        values: (0..=limits::MAX_FILTER_LIST).map(|i| i.to_string()).collect(),
    };
    let nan = Filter::Range { field: "year".into(), min: Some(f64::NAN), max: None };
    let inverted = Filter::Range { field: "year".into(), min: Some(3.0), max: Some(1.0) };
    let long_value = Filter::Eq {
        field: "section".into(),
        value: FilterValue::Keyword("x".repeat(limits::MAX_FILTER_VALUE_BYTES + 1)),
    };
    let empty_field = Filter::Eq { field: String::new(), value: FilterValue::Bool(true) };
    let run = |f: &Filter| {
        let request = SearchRequest { k: 1, ef: None, principal: None, filter: Some(f) };
        t.search_request("docs", &vector(1, DIM), &request)
    };
    // At the limits: accepted.
    // (An odd number of negations around a matching condition matches nothing.)
    let negations = limits::MAX_FILTER_DEPTH - 1;
    assert_eq!(run(&deep).expect("depth at the limit").len(), usize::from(negations.is_multiple_of(2)));
    assert_eq!(run(&many(limits::MAX_FILTER_CONDITIONS)).expect("conditions at the limit").len(), 1);
    for (what, bad) in [
        ("depth", too_deep),
        ("conditions", many(limits::MAX_FILTER_CONDITIONS + 1)),
        ("list", long_list),
        ("nan", nan),
        ("inverted", inverted),
        ("long value", long_value),
        ("empty field", empty_field),
    ] {
        match run(&bad) {
            Err(QueryError::InvalidArgument { field, reason }) => {
                assert!(field.starts_with("filter"), "{what}: {field}");
                assert!(!reason.is_empty());
            }
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
    }
    let groups: Vec<String> = (0..=limits::MAX_PRINCIPAL_GROUPS).map(|i| format!("g{i}")).collect();
    assert!(matches!(Principal::new("u", groups), Err(QueryError::InvalidArgument { .. })));
    assert!(matches!(Principal::new("", ["g"]), Err(QueryError::InvalidArgument { .. })));
    assert!(matches!(
        Principal::new("u", ["x".repeat(limits::MAX_PRINCIPAL_BYTES + 1)]),
        Err(QueryError::InvalidArgument { .. })
    ));
    // Nothing changed.
    assert_eq!(t.count("docs").expect("count"), 1);
    assert_eq!(t.search("docs", &vector(1, DIM), 5).expect("search").len(), 1);
    // Debug output never shows filter values or principal names.
    let p = Principal::new("zqsecretuser", ["zqsecretgroup"]).expect("p");
    let f = section_filter(&["zqsecretsection"]);
    assert!(!format!("{p:?}{f:?}").contains("zqsecret"));
}

/// No point outside the allowed set is ever scored (no distance computed for it: not in the delta's
/// scan, not in the graph walk, not even to route the descent), on the exact path and through the
/// graph, at about 1%, 10% and 50% of the documents.
#[test]
fn no_candidate_outside_the_allowed_set_is_ranked() {
    let dir = TestDir::new();
    let db = Database::open(&dir.data(), dir.master(), Default::default())
        .expect("open")
        .with_graph_threshold(1000);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    let n = 3000u64;
    let mut docs = BTreeMap::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut batch = Vec::new();
        for &i in chunk {
            // Group g1 holds 1%, g10 10%, g50 50% of the documents.
            let mut groups = vec![];
            if i % 100 == 0 {
                groups.push("g1");
            }
            if i % 10 == 1 {
                groups.push("g10");
            }
            if i % 2 == 0 {
                groups.push("g50");
            }
            let doc = Doc {
                vector: vector(i, DIM),
                acl: restricted(&[], &groups),
                section: format!("s{}", i % 7),
                year: (i % 30) as f64,
                draft: i % 3 == 0,
            };
            batch.push(new_point(&format!("p{i}"), &doc));
            docs.insert(format!("p{i}"), doc);
        }
        t.upsert("docs", &batch).expect("upsert");
    }
    let refs: HashMap<_, String> = docs
        .keys()
        .map(|id| (t.point_ref("docs", &DocId::new(id.as_str()).expect("id")).expect("ref"), id.clone()))
        .collect();
    // Wait for the graph so that both the exact path and the filtered walk are exercised.
    t.search("docs", &vector(0, DIM), 1).expect("load");
    crate::util::wait_until("the graph's build", || {
        (t.graph_status("docs").expect("status").graph_points > 0).then_some(())
    });
    for group in ["g1", "g10", "g50"] {
        let principal = Principal::new("nobody", [group]).expect("principal");
        let filter =
            Filter::Not(Box::new(Filter::Eq { field: "draft".into(), value: FilterValue::Bool(true) }));
        for f in [None, Some(&filter)] {
            let mut recall = 0usize;
            for s in 0..20u64 {
                let q = vector(900_000 + s, DIM);
                let mut observed = Vec::new();
                let request = SearchRequest { k: 10, ef: None, principal: Some(&principal), filter: f };
                let hits =
                    t.search_observed("docs", &q, &request, &mut |r| observed.push(r)).expect("search");
                assert!(!observed.is_empty());
                for r in &observed {
                    let id = &refs[r];
                    let doc = &docs[id];
                    assert!(model_visible(doc, &principal), "{group}: a point outside the ACL was scored");
                    assert!(
                        f.is_none_or(|f| model_matches(doc, f)),
                        "{group}: a filtered-out point was scored"
                    );
                }
                let exact = model_top(&docs, &q, 10, Some(&principal), f);
                assert_eq!(hits.len(), exact.len(), "min(k, visible)");
                recall += hits.iter().filter(|h| exact.iter().any(|e| e == h.id.as_str())).count();
                assert!(hits.iter().all(|h| h.matched_by == Some(MatchReason::Group)));
            }
            assert!(recall as f64 / 200.0 >= 0.9, "{group}: recall {}", recall as f64 / 200.0);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, Doc),
    Delete(u8),
}

fn acl_strategy() -> impl Strategy<Value = Acl> {
    let names = || proptest::collection::vec(prop_oneof!["u0", "u1", "u2", "g0", "g1", "g2"], 0..3);
    prop_oneof![
        Just(Acl::TenantWide),
        (names(), names()).prop_map(|(users, groups)| Acl::Restricted { users, groups })
    ]
}

fn doc_strategy() -> impl Strategy<Value = Doc> {
    (
        proptest::collection::vec(-1.0f32..1.0, DIM),
        acl_strategy(),
        prop_oneof!["a", "b", "c"],
        0u8..5,
        any::<bool>(),
    )
        .prop_map(|(vector, acl, section, year, draft)| Doc {
            vector,
            acl,
            section,
            year: f64::from(year),
            draft,
        })
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        prop_oneof!["a", "b", "c", "d"]
            .prop_map(|s| Filter::Eq { field: "section".into(), value: FilterValue::Keyword(s) }),
        proptest::collection::vec(prop_oneof!["a", "b", "c"], 0..3)
            .prop_map(|values| Filter::In { field: "section".into(), values }),
        (proptest::option::of(0u8..5), proptest::option::of(0u8..5)).prop_map(|(a, b)| {
            let (min, max) = match (a, b) {
                (Some(a), Some(b)) => (Some(f64::from(a.min(b))), Some(f64::from(a.max(b)))),
                (a, b) => (a.map(f64::from), b.map(f64::from)),
            };
            Filter::Range { field: "year".into(), min, max }
        }),
        any::<bool>().prop_map(|b| Filter::Eq { field: "draft".into(), value: FilterValue::Bool(b) }),
        (0u8..5).prop_map(|y| Filter::Eq { field: "year".into(), value: FilterValue::Number(f64::from(y)) }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn principal_strategy() -> impl Strategy<Value = Principal> {
    (prop_oneof!["u0", "u1", "u2"], proptest::collection::vec(prop_oneof!["g0", "g1", "g2"], 0..3))
        .prop_map(|(u, g)| Principal::new(u, g).expect("principal"))
}

/// A query vector, who asks, what filter, and k.
type Query = (Vec<f32>, Option<Principal>, Option<Filter>, usize);

fn check_against_model(
    t: &Tenant<'_>,
    docs: &BTreeMap<String, Doc>,
    queries: &[Query],
) -> Result<(), TestCaseError> {
    for (q, principal, filter, k) in queries {
        let request =
            SearchRequest { k: *k, ef: None, principal: principal.as_ref(), filter: filter.as_ref() };
        let hits = t.search_request("docs", q, &request).expect("search");
        let got: Vec<String> = hits.iter().map(|h| h.id.as_str().to_owned()).collect();
        prop_assert_eq!(got, model_top(docs, q, *k, principal.as_ref(), filter.as_ref()));
        for hit in &hits {
            let doc = &docs[hit.id.as_str()];
            if let Some(p) = principal {
                prop_assert!(model_visible(doc, p));
                prop_assert!(hit.matched_by.is_some());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random documents, ACLs, principals, filters and operations: the exact path returns exactly
    /// the model's top-k over the visible, matching set, before and after a restart.
    #[test]
    fn search_equals_the_model_over_the_visible_set(
        ops in proptest::collection::vec(
            prop_oneof![
                3 => (0u8..40, doc_strategy()).prop_map(|(i, d)| Op::Upsert(i, d)),
                1 => (0u8..40).prop_map(Op::Delete),
            ],
            1..80,
        ),
        queries in proptest::collection::vec(
            (
                proptest::collection::vec(-1.0f32..1.0, DIM),
                proptest::option::of(principal_strategy()),
                proptest::option::of(filter_strategy()),
                1usize..12,
            ),
            1..8,
        ),
    ) {
        let dir = TestDir::new();
        let mut docs: BTreeMap<String, Doc> = BTreeMap::new();
        {
            let db = dir.open();
            let scope = tenant(&db, "acme");
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", DIM, Metric::L2).expect("collection");
            // Load the state first so the writes go through it as well as to disk.
            t.search("docs", &[0.5; DIM], 1).expect("load");
            for op in &ops {
                match op {
                    Op::Upsert(i, doc) => {
                        t.upsert("docs", &[new_point(&format!("d{i}"), doc)]).expect("upsert");
                        docs.insert(format!("d{i}"), doc.clone());
                    }
                    Op::Delete(i) => {
                        t.delete("docs", &[DocId::new(format!("d{i}")).expect("id")]).expect("delete");
                        docs.remove(&format!("d{i}"));
                    }
                }
            }
            check_against_model(&t, &docs, &queries)?;
        }
        // After a restart the attribute index is rebuilt from the sealed payloads.
        let db = dir.open();
        let name = bulkhead_query::TenantName::new("acme").expect("name");
        let scope = db.operator().trusted_host_scope(&name, "test").expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        check_against_model(&t, &docs, &queries)?;
    }
}

/// A tenant "acme" with collection "docs": "public" (tenant-wide), "alice-own" (user alice), "eng"
/// (group eng), at distinct vectors.
fn three_docs(db: &Database) {
    let scope = tenant(db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    for (i, (id, acl)) in [
        ("public", Acl::TenantWide),
        ("alice-own", restricted(&["alice"], &[])),
        ("eng", restricted(&[], &["eng"])),
    ]
    .into_iter()
    .enumerate()
    {
        let doc = Doc { vector: vector(i as u64, DIM), acl, section: "s".into(), year: 1.0, draft: false };
        t.upsert("docs", &[new_point(id, &doc)]).expect("upsert");
    }
}

fn ids(hits: &[bulkhead_query::SearchHit]) -> Vec<String> {
    let mut ids: Vec<String> = hits.iter().map(|h| h.id.as_str().to_owned()).collect();
    ids.sort();
    ids
}

#[test]
fn user_bound_keys_search_get_and_count_as_their_user_only() {
    use bulkhead_query::{KeyBinding, Role, StorageError, TenantName};
    let dir = TestDir::new();
    let db = dir.open();
    three_docs(&db);
    let acme = TenantName::new("acme").expect("name");
    let op = db.operator();
    let alice_key = op
        .issue_bound_api_key(
            &acme,
            Role::Reader,
            "alice",
            None,
            KeyBinding::User { user: "alice".into(), groups: vec![] },
        )
        .expect("key");
    let service = op.issue_api_key(&acme, Role::Reader, "svc", None).expect("key");
    let obo = op
        .issue_bound_api_key(&acme, Role::Reader, "obo", None, KeyBinding::Service { on_behalf_of: true })
        .expect("key");
    assert!(matches!(
        op.issue_bound_api_key(
            &acme,
            Role::Reader,
            "bad",
            None,
            KeyBinding::User { user: String::new(), groups: vec![] }
        ),
        Err(StorageError::InvalidArgument { .. })
    ));
    // A user-bound key may not write: it could otherwise overwrite or delete documents its user
    // cannot read, and learn that they exist. Refused at issue, for every role above reader.
    for role in [Role::Writer, Role::TenantAdmin] {
        let refused = op.issue_bound_api_key(
            &acme,
            role,
            "bad",
            None,
            KeyBinding::User { user: "alice".into(), groups: vec![] },
        );
        assert!(
            matches!(&refused, Err(StorageError::InvalidArgument { field: "role", reason }) if reason.contains("reader")),
            "{refused:?}"
        );
    }
    let listed = op.list_api_keys(&acme).expect("list");
    assert!(
        listed.iter().any(|k| k.key_id == alice_key.key_id && matches!(k.binding, KeyBinding::User { .. }))
    );

    let q = vector(2, DIM); // the eng document's vector
    let everything = SearchRequest::top(10);
    let scope = op.authenticate(&alice_key.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    let hits = t.search_request("docs", &q, &everything).expect("search");
    assert_eq!(ids(&hits), ["alice-own", "public"], "a user key searches as its user");
    assert!(hits.iter().all(|h| h.matched_by.is_some()));
    let bob = Principal::new("bob", ["eng"]).expect("p");
    let as_bob = SearchRequest { k: 10, ef: None, principal: Some(&bob), filter: None };
    assert!(matches!(
        t.search_request("docs", &q, &as_bob),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));
    // Not readable and not there look the same, to get and to count.
    assert!(t.get("docs", &DocId::new("eng").expect("id")).expect("get").is_none());
    assert!(t.get("docs", &DocId::new("nowhere").expect("id")).expect("get").is_none());
    assert!(t.get("docs", &DocId::new("alice-own").expect("id")).expect("get").is_some());
    assert_eq!(t.count("docs").expect("count"), 2);

    // A service key without the on-behalf-of right sees everything but may not name a user.
    let scope = op.authenticate(&service.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.search_request("docs", &q, &everything).expect("search").len(), 3);
    assert_eq!(t.count("docs").expect("count"), 3);
    assert!(matches!(
        t.search_request("docs", &q, &as_bob),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));
    // With the right, it acts as the user it names.
    let scope = op.authenticate(&obo.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(ids(&t.search_request("docs", &q, &as_bob).expect("search")), ["eng", "public"]);
    assert_eq!(t.count_as("docs", Some(&bob)).expect("count"), 2);
    assert!(t.get_as("docs", &DocId::new("alice-own").expect("id"), Some(&bob)).expect("get").is_none());
}

#[test]
fn the_result_cache_never_crosses_principals_and_forgets_on_every_change() {
    let dir = TestDir::new();
    let db =
        Database::open(&dir.data(), dir.master(), Default::default()).expect("open").with_result_cache(100);
    three_docs(&db);
    let name = bulkhead_query::TenantName::new("acme").expect("name");
    let scope = db.operator().trusted_host_scope(&name, "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    let q = vector(1, DIM);
    let alice = Principal::new("alice", Vec::<String>::new()).expect("p");
    let carol = Principal::new("carol", Vec::<String>::new()).expect("p");
    let as_ = |p| SearchRequest { k: 10, ef: None, principal: Some(p), filter: None };

    assert_eq!(ids(&t.search_request("docs", &q, &as_(&alice)).expect("search")), ["alice-own", "public"]);
    assert_eq!(ids(&t.search_request("docs", &q, &as_(&alice)).expect("search")), ["alice-own", "public"]);
    assert_eq!(db.cache_stats().hits, 1, "the same principal and query hit the cache");
    // Same query, another principal with other rights: computed afresh, never alice's entry.
    assert_eq!(ids(&t.search_request("docs", &q, &as_(&carol)).expect("search")), ["public"]);
    assert_eq!(db.cache_stats().hits, 1);
    // A filter is part of the key too.
    let filter = Filter::Eq { field: "section".into(), value: FilterValue::Keyword("other".into()) };
    let filtered = SearchRequest { k: 10, ef: None, principal: Some(&alice), filter: Some(&filter) };
    assert!(t.search_request("docs", &q, &filtered).expect("search").is_empty());

    // Revoking alice's access to her document removes it from her (cached) results at once.
    let doc = Doc {
        vector: vector(1, DIM),
        acl: restricted(&["dave"], &[]),
        section: "s".into(),
        year: 1.0,
        draft: false,
    };
    t.upsert("docs", &[new_point("alice-own", &doc)]).expect("revoke");
    let before = db.cache_stats().hits;
    assert_eq!(ids(&t.search_request("docs", &q, &as_(&alice)).expect("search")), ["public"]);
    assert_eq!(db.cache_stats().hits, before, "the write moved the epoch: no stale hit");
    // A delete too.
    t.delete("docs", &[DocId::new("public").expect("id")]).expect("delete");
    assert!(t.search_request("docs", &q, &as_(&alice)).expect("search").is_empty());
    assert!(db.cache_stats().entries <= 100);
}
