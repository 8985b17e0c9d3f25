//! There is no search, read or write on the database or its operator view: only on a tenant reached
//! with a scope.
use bulkhead_query::Database;

fn search(db: &Database) {
    let _ = db.search("docs", &[1.0, 0.0], 5);
    let _ = db.operator().get("docs");
    let _ = db.operator().tenant();
}

fn main() {}
