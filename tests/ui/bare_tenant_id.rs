//! A tenant's name or uid is not a scope.
use bulkhead_query::{Database, TenantName};
use bulkhead_storage::Store;

fn reach(db: &Database, store: &Store, name: &TenantName) {
    let _ = db.tenant("acme");
    let _ = db.tenant(name);
    let _ = store.tenant(name);
}

fn main() {}
