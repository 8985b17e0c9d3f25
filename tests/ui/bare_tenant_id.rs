//! A tenant's name or uid is not a scope.
use bulkhead_query::{Database, TenantName};

fn reach(db: &Database, name: &TenantName) {
    let _ = db.tenant("acme");
    let _ = db.tenant(name);
    let _ = db.store().tenant(name);
}

fn main() {}
