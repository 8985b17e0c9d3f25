//! There is no search, read or write on the database itself: only on a tenant reached with a scope.
use bulkhead_query::Database;

fn search(db: &Database) {
    let _ = db.search("docs", &[1.0, 0.0], 5);
    let _ = db.store().get("docs");
}

fn main() {}
