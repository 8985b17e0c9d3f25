//! Bulkhead as a library: from an empty directory to a filtered search on behalf of a user.
#![expect(clippy::print_stdout, reason = "an example whose output is its point")]
use bulkhead_query::{Acl, Database, DocId, KeyBinding, MasterKey, Metric, NewPoint, Role, StoreOptions};
use bulkhead_query::{Filter, FilterValue, MetaValue, Principal, SearchRequest, TenantName};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A master key of your own (keep it out of the data directory), and a data directory.
    let dir = std::env::temp_dir().join(format!("bulkhead-library-{}", std::process::id()));
    let db = Database::open(&dir, MasterKey::generate(), StoreOptions::default())?;

    // The operator creates a tenant and issues its first key (shown once, stored as a keyed hash):
    // a backend's key, whose searches may name the user they act for.
    let acme = TenantName::new("acme")?;
    db.operator().create_tenant(&acme)?;
    let backend = KeyBinding::Service { on_behalf_of: true };
    let key = db.operator().issue_bound_api_key(&acme, Role::TenantAdmin, "app", None, backend)?;

    // Every data call goes through a scope, which only authentication mints.
    let scope = db.operator().authenticate(&key.token)?;
    let tenant = db.tenant(&scope)?;
    tenant.create_collection("docs", 3, Metric::Cosine)?;
    let mut public = NewPoint::new(DocId::new("faq")?, vec![1.0, 0.0, 0.0], "Opening hours: 9 to 5.");
    public.metadata.insert("lang".into(), MetaValue::Keyword("en".into()));
    let mut private = NewPoint::new(DocId::new("pay")?, vec![0.9, 0.1, 0.0], "Salary bands for 2027.");
    private.metadata.insert("lang".into(), MetaValue::Keyword("en".into()));
    private.acl = Acl::Restricted { users: vec![], groups: vec!["hr".into()] };
    tenant.upsert("docs", &[public, private])?;

    // A search on behalf of alice (not in "hr"), English documents only: the ACL and the filter
    // apply before ranking, so the salary document is never a candidate.
    let alice = Principal::new("alice", ["staff"])?;
    let english = Filter::Eq { field: "lang".into(), value: FilterValue::Keyword("en".into()) };
    let request = SearchRequest { principal: Some(&alice), filter: Some(&english), ..SearchRequest::top(5) };
    let hits = tenant.search_request("docs", &[1.0, 0.0, 0.0], &request)?;
    assert!(hits.iter().all(|hit| hit.id.as_str() != "pay"), "alice never sees the salary bands");
    for hit in &hits {
        println!("{:.3} {} {}", hit.score, hit.id.as_str(), hit.text);
    }
    drop(tenant);
    drop(db);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
