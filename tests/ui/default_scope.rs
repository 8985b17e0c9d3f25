//! A scope has no Default and no From: there is no shortcut to one.
use bulkhead_query::TenantScope;

fn main() {
    let _scope = TenantScope::default();
    let _from: TenantScope = "acme".into();
}
