//! `docs/LIMITS.md` and the limit constants (the library's and the server's) agree, so the documented table cannot go stale.

use bulkhead_query::limits;

#[test]
fn the_limits_table_matches_the_code() {
    let doc = std::fs::read_to_string(crate::invariants::manifest_dir().join("../docs/LIMITS.md"))
        .expect("LIMITS.md");
    let constants = [
        ("MAX_TENANT_NAME_BYTES", limits::MAX_TENANT_NAME_BYTES),
        ("MAX_COLLECTION_NAME_BYTES", limits::MAX_COLLECTION_NAME_BYTES),
        ("MAX_DOC_ID_BYTES", limits::MAX_DOC_ID_BYTES),
        ("MAX_TEXT_BYTES", limits::MAX_TEXT_BYTES),
        ("MAX_METADATA_BYTES", limits::MAX_METADATA_BYTES),
        ("MAX_METADATA_FIELDS", limits::MAX_METADATA_FIELDS),
        ("MAX_METADATA_KEY_BYTES", limits::MAX_METADATA_KEY_BYTES),
        ("MAX_SOURCE_URI_BYTES", limits::MAX_SOURCE_URI_BYTES),
        ("MAX_ACL_ENTRIES", limits::MAX_ACL_ENTRIES),
        ("MAX_PRINCIPAL_BYTES", limits::MAX_PRINCIPAL_BYTES),
        ("MAX_DIMENSION", limits::MAX_DIMENSION),
        ("MAX_BATCH_POINTS", limits::MAX_BATCH_POINTS),
        ("MAX_BATCH_BYTES", limits::MAX_BATCH_BYTES),
        ("MAX_K", limits::MAX_K),
        ("MAX_EF", limits::MAX_EF),
        ("MAX_COLLECTIONS_PER_TENANT", limits::MAX_COLLECTIONS_PER_TENANT),
        ("MAX_FILTER_DEPTH", limits::MAX_FILTER_DEPTH),
        ("MAX_FILTER_CONDITIONS", limits::MAX_FILTER_CONDITIONS),
        ("MAX_FILTER_NODES", limits::MAX_FILTER_NODES),
        ("MAX_FILTER_LIST", limits::MAX_FILTER_LIST),
        ("MAX_FILTER_VALUE_BYTES", limits::MAX_FILTER_VALUE_BYTES),
        ("MAX_PRINCIPAL_GROUPS", limits::MAX_PRINCIPAL_GROUPS),
        ("MAX_API_KEYS_PER_TENANT", bulkhead_query::MAX_API_KEYS_PER_TENANT),
        ("DEFAULT_INDEX_MEMORY_BUDGET", bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET),
        ("INDEX_JOB_WORKERS", bulkhead_query::INDEX_JOB_WORKERS),
        // The storage quotas' defaults.
        ("DEFAULT_MAX_VECTORS", bulkhead_query::DEFAULT_MAX_VECTORS as usize),
        ("DEFAULT_MAX_STORED_BYTES", bulkhead_query::DEFAULT_MAX_STORED_BYTES as usize),
        ("DEFAULT_MAX_COLLECTIONS", bulkhead_query::DEFAULT_MAX_COLLECTIONS as usize),
        // The server's own limits.
        ("MAX_MESSAGE_BYTES", bulkhead_server::limits::MAX_MESSAGE_BYTES),
        ("MAX_SEARCH_BATCH_MESSAGE_BYTES", bulkhead_server::limits::MAX_SEARCH_BATCH_MESSAGE_BYTES),
        ("MAX_SEARCH_MESSAGE_BYTES", bulkhead_server::limits::MAX_SEARCH_MESSAGE_BYTES),
        ("MAX_DELETE_MESSAGE_BYTES", bulkhead_server::limits::MAX_DELETE_MESSAGE_BYTES),
        ("MAX_POLICY_MESSAGE_BYTES", bulkhead_server::limits::MAX_POLICY_MESSAGE_BYTES),
        ("MAX_PRINCIPAL_MESSAGE_BYTES", bulkhead_server::limits::MAX_PRINCIPAL_MESSAGE_BYTES),
        ("MAX_SMALL_MESSAGE_BYTES", bulkhead_server::limits::MAX_SMALL_MESSAGE_BYTES),
        ("MAX_REQUEST_ELEMENTS", bulkhead_server::limits::MAX_REQUEST_ELEMENTS),
        ("MAX_CONNECTIONS", bulkhead_server::limits::MAX_CONNECTIONS),
        ("REQUEST_MEMORY_BUDGET_BYTES", bulkhead_server::limits::REQUEST_MEMORY_BUDGET_BYTES),
        ("MAX_SEARCH_BATCH", bulkhead_server::limits::MAX_SEARCH_BATCH),
        ("MAX_RESPONSE_BYTES", bulkhead_server::limits::MAX_RESPONSE_BYTES),
        ("MAX_AUDIT_PAGE", bulkhead_server::limits::MAX_AUDIT_PAGE),
        ("MAX_CONCURRENT_STREAMS", bulkhead_server::limits::MAX_CONCURRENT_STREAMS as usize),
        ("HTTP2_STREAM_WINDOW_BYTES", bulkhead_server::limits::HTTP2_STREAM_WINDOW_BYTES as usize),
        ("REQUEST_TIMEOUT_MS", bulkhead_server::limits::REQUEST_TIMEOUT_MS as usize),
        ("ARCHIVE_TIMEOUT_MS", bulkhead_server::limits::ARCHIVE_TIMEOUT_MS as usize),
        ("MAX_ARCHIVE_CHUNK_BYTES", bulkhead_server::limits::MAX_ARCHIVE_CHUNK_BYTES),
        ("MAX_IMPORT_MESSAGE_BYTES", bulkhead_server::limits::MAX_IMPORT_MESSAGE_BYTES),
        ("MAX_CONCURRENT_WORK", bulkhead_server::limits::MAX_CONCURRENT_WORK),
        ("MAX_KEY_LABEL_BYTES", bulkhead_server::limits::MAX_KEY_LABEL_BYTES),
        ("MAX_METRICS_CONNECTIONS", bulkhead_server::limits::MAX_METRICS_CONNECTIONS),
        ("MAX_TENANT_SEARCHES", bulkhead_server::limits::MAX_TENANT_SEARCHES as usize),
        ("MAX_DENIALS", bulkhead_server::limits::MAX_DENIALS as usize),
        ("MAX_PUSHBACK_MS", bulkhead_server::limits::MAX_PUSHBACK_MS as usize),
        ("MAX_HELD_REFUSALS", bulkhead_server::limits::MAX_HELD_REFUSALS),
        ("MAX_HELD_REFUSALS_PER_CONNECTION", bulkhead_server::limits::MAX_HELD_REFUSALS_PER_CONNECTION),
    ];
    for (name, value) in constants {
        let row = doc
            .lines()
            .find(|l| l.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("LIMITS.md has no row for {name}"));
        let documented: usize = row
            .rsplit('|')
            .nth(1)
            .and_then(|cell| cell.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the value of {name} in {row:?}"));
        assert_eq!(documented, value, "LIMITS.md says {documented} for {name}, the code {value}");
    }
}
