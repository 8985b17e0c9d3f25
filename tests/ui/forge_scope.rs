//! A scope cannot be built outside the storage crate: its fields are private.
use bulkhead_query::{Role, TenantScope, TenantUid};

fn main() {
    let uid: TenantUid = std::env::args().map(|_| unimplemented_uid()).next().expect("uid");
    let _scope = TenantScope { tenant: uid, store_instance: 0, role: Role::TenantAdmin };
}

fn unimplemented_uid() -> TenantUid {
    panic!("there is no public way to make one either")
}
