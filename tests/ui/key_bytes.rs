//! Key bytes cannot be read outside the crypto crate.
use bulkhead_crypto::{DataKey, MasterKey};

fn main() {
    let master = MasterKey::generate();
    let _bytes = &master.bytes;
    let key = DataKey::generate(1);
    let _raw = key.bytes();
}
