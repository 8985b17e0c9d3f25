//! The master key cannot be cloned.
use bulkhead_query::MasterKey;

fn main() {
    let key = MasterKey::generate();
    let _copy = key.clone();
}
