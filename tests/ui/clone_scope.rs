//! A scope cannot be cloned: it is held, not copied around.
use bulkhead_query::TenantScope;

fn copy(scope: &TenantScope) -> TenantScope {
    scope.clone()
}

fn main() {}
