//! Every conversion between the `bulkhead.v1` messages and the library's types, in one module.
//! Conversions from the wire validate what the proto cannot express (enums, filter shape and depth);
//! the library validates every documented limit after them.

use crate::proto as pb;
use crate::status::{self, invalid};
use bulkhead_query::{
    AccessGrantInfo, Acl, ApiKeyInfo, AuditEvent, CollectionInfo, DocId, Filter, FilterValue, GraphStatus,
    IndexSource, KeyBinding, MatchReason, MetaValue, Metric, NewPoint, Role, RotationProgress, SearchHit,
    StoredPoint, TenantInfo, TenantPolicy, TenantQuotas, VersionedPolicy, limits,
};
use std::collections::{BTreeMap, HashMap};
use tonic::Status;

pub(crate) fn metric_from(value: i32) -> Result<Metric, Status> {
    match pb::Metric::try_from(value) {
        Ok(pb::Metric::Cosine) => Ok(Metric::Cosine),
        Ok(pb::Metric::Dot) => Ok(Metric::Dot),
        Ok(pb::Metric::L2) => Ok(Metric::L2),
        _ => Err(invalid("metric", "must be METRIC_COSINE, METRIC_DOT or METRIC_L2")),
    }
}

pub(crate) fn metric_to(metric: Metric) -> pb::Metric {
    match metric {
        Metric::Cosine => pb::Metric::Cosine,
        Metric::Dot => pb::Metric::Dot,
        Metric::L2 => pb::Metric::L2,
    }
}

pub(crate) fn role_from(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Reader) => Ok(Role::Reader),
        Ok(pb::Role::Writer) => Ok(Role::Writer),
        Ok(pb::Role::TenantAdmin) => Ok(Role::TenantAdmin),
        _ => Err(invalid("role", "must be ROLE_READER, ROLE_WRITER or ROLE_TENANT_ADMIN")),
    }
}

pub(crate) fn role_to(role: Role) -> pb::Role {
    match role {
        Role::Reader => pb::Role::Reader,
        Role::Writer => pb::Role::Writer,
        Role::TenantAdmin => pb::Role::TenantAdmin,
    }
}

/// A dimension as the library takes it (a `u32` always fits a `usize` on the targets we build).
pub(crate) fn dimension_from(value: u32) -> usize {
    value as usize
}

pub(crate) fn collection_to(info: &CollectionInfo) -> pb::Collection {
    pb::Collection {
        name: info.name.as_str().to_owned(),
        dimension: u32::try_from(info.dimension).unwrap_or(u32::MAX),
        metric: metric_to(info.metric) as i32,
        created_ms: info.created_ms,
        index: None,
    }
}

pub(crate) fn index_status_to(status: &GraphStatus) -> pb::IndexStatus {
    pb::IndexStatus {
        loaded: status.loaded,
        graph_points: status.graph_points as u64,
        delta_points: status.delta_points as u64,
        building: status.building,
        segments: status.segments as u32,
    }
}

pub(crate) fn doc_id_from(id: String) -> Result<DocId, Status> {
    DocId::new(id).map_err(status::from_storage)
}

fn meta_from(value: pb::MetaValue) -> Result<MetaValue, Status> {
    match value.kind {
        Some(pb::meta_value::Kind::Keyword(k)) => Ok(MetaValue::Keyword(k)),
        Some(pb::meta_value::Kind::Keywords(list)) => Ok(MetaValue::Keywords(list.values)),
        Some(pb::meta_value::Kind::Number(n)) => Ok(MetaValue::Number(n)),
        Some(pb::meta_value::Kind::Flag(b)) => Ok(MetaValue::Bool(b)),
        None => Err(invalid("metadata", "a value has no kind set")),
    }
}

fn meta_to(value: MetaValue) -> pb::MetaValue {
    let kind = match value {
        MetaValue::Keyword(k) => pb::meta_value::Kind::Keyword(k),
        MetaValue::Keywords(values) => pb::meta_value::Kind::Keywords(pb::KeywordList { values }),
        MetaValue::Number(n) => pb::meta_value::Kind::Number(n),
        MetaValue::Bool(b) => pb::meta_value::Kind::Flag(b),
    };
    pb::MetaValue { kind: Some(kind) }
}

fn metadata_from(map: HashMap<String, pb::MetaValue>) -> Result<BTreeMap<String, MetaValue>, Status> {
    map.into_iter().map(|(k, v)| Ok((k, meta_from(v)?))).collect()
}

fn metadata_to(map: BTreeMap<String, MetaValue>) -> HashMap<String, pb::MetaValue> {
    map.into_iter().map(|(k, v)| (k, meta_to(v))).collect()
}

pub(crate) fn point_from(point: pb::Point) -> Result<NewPoint, Status> {
    Ok(NewPoint {
        id: doc_id_from(point.id)?,
        vector: point.vector,
        text: point.text,
        metadata: metadata_from(point.metadata)?,
        source_uri: point.source_uri,
        acl: match point.acl {
            None => Acl::TenantWide,
            Some(acl) => Acl::Restricted { users: acl.users, groups: acl.groups },
        },
    })
}

pub(crate) fn stored_to(point: StoredPoint, with_vector: bool) -> pb::StoredPoint {
    let payload = point.payload;
    pb::StoredPoint {
        id: payload.id.as_str().to_owned(),
        vector: if with_vector { point.vector } else { Vec::new() },
        text: payload.text,
        metadata: metadata_to(payload.metadata),
        source_uri: payload.source_uri,
        version: payload.version,
        key_generation: payload.key_generation,
    }
}

/// A filter from the wire. The nesting and the number of nodes are checked here, before recursing
/// into each node, so a hostile message cannot recurse deeper than the documented limit (prost bounds
/// decoding to 100 levels) or make the conversion allocate more than `MAX_FILTER_NODES` nodes.
pub(crate) fn filter_from(filter: pb::Filter) -> Result<Filter, Status> {
    let mut nodes = 0;
    filter_at(filter, 1, &mut nodes)
}

fn filter_at(filter: pb::Filter, depth: usize, nodes: &mut usize) -> Result<Filter, Status> {
    use pb::filter::Kind;
    if depth > limits::MAX_FILTER_DEPTH {
        return Err(invalid("filter", format!("nested deeper than {}", limits::MAX_FILTER_DEPTH)));
    }
    *nodes += 1;
    if *nodes > limits::MAX_FILTER_NODES {
        return Err(invalid("filter", format!("at most {} nodes", limits::MAX_FILTER_NODES)));
    }
    let mut children = |list: pb::FilterList| -> Result<Vec<Filter>, Status> {
        if list.filters.len() > limits::MAX_FILTER_LIST {
            return Err(invalid(
                "filter",
                format!("an and/or holds at most {} children", limits::MAX_FILTER_LIST),
            ));
        }
        list.filters.into_iter().map(|f| filter_at(f, depth + 1, nodes)).collect()
    };
    match filter.kind {
        Some(Kind::Eq(eq)) => {
            let value = match eq.value {
                Some(pb::equals::Value::Keyword(k)) => FilterValue::Keyword(k),
                Some(pb::equals::Value::Number(n)) => FilterValue::Number(n),
                Some(pb::equals::Value::Flag(b)) => FilterValue::Bool(b),
                None => return Err(invalid("filter", "an eq condition has no value")),
            };
            Ok(Filter::Eq { field: eq.field, value })
        }
        Some(Kind::OneOf(one_of)) => Ok(Filter::In { field: one_of.field, values: one_of.values }),
        Some(Kind::Range(range)) => Ok(Filter::Range { field: range.field, min: range.min, max: range.max }),
        Some(Kind::And(list)) => Ok(Filter::And(children(list)?)),
        Some(Kind::Or(list)) => Ok(Filter::Or(children(list)?)),
        Some(Kind::Not(child)) => Ok(Filter::Not(Box::new(filter_at(*child, depth + 1, nodes)?))),
        None => Err(invalid("filter", "a filter node has no kind set")),
    }
}

pub(crate) fn hit_to(hit: SearchHit) -> pb::Hit {
    let matched_by = match hit.matched_by {
        None => pb::MatchReason::Unspecified,
        Some(MatchReason::User) => pb::MatchReason::User,
        Some(MatchReason::Group) => pb::MatchReason::Group,
        Some(MatchReason::TenantWide) => pb::MatchReason::TenantWide,
    };
    let index = match hit.index {
        IndexSource::Delta => pb::hit::Index::Delta(true),
        IndexSource::Segment { generation } => pb::hit::Index::SegmentGeneration(generation),
    };
    pb::Hit {
        id: hit.id.as_str().to_owned(),
        score: hit.score,
        text: hit.text,
        metadata: metadata_to(hit.metadata),
        source_uri: hit.source_uri,
        version: hit.version,
        key_generation: hit.key_generation,
        matched_by: matched_by as i32,
        acl_fingerprint: hit.acl_fingerprint.to_vec(),
        index: Some(index),
        policy_version: hit.policy_version,
    }
}

/// A tenant policy from the wire.
pub(crate) fn policy_from(policy: pb::TenantPolicy) -> Result<TenantPolicy, Status> {
    let denied = policy
        .denied
        .into_iter()
        .map(|d| Ok((role_from(d.role)?, d.operation)))
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(TenantPolicy {
        denied,
        max_k: policy.max_k,
        max_ef: policy.max_ef,
        max_filter_conditions: policy.max_filter_conditions,
        source_uri_prefixes: policy.source_uri_prefixes,
        quotas: quotas_from(policy.quotas.unwrap_or_default()),
    })
}

fn quotas_from(q: pb::TenantQuotas) -> TenantQuotas {
    TenantQuotas {
        max_vectors: q.max_vectors,
        max_stored_bytes: q.max_stored_bytes,
        max_collections: q.max_collections,
        requests_per_second: q.requests_per_second,
        write_bytes_per_second: q.write_bytes_per_second,
        max_concurrent_searches: q.max_concurrent_searches,
        burst_multiple: q.burst_multiple,
        max_denials: q.max_denials,
    }
}

fn quotas_to(q: &TenantQuotas) -> pb::TenantQuotas {
    pb::TenantQuotas {
        max_vectors: q.max_vectors,
        max_stored_bytes: q.max_stored_bytes,
        max_collections: q.max_collections,
        requests_per_second: q.requests_per_second,
        write_bytes_per_second: q.write_bytes_per_second,
        max_concurrent_searches: q.max_concurrent_searches,
        burst_multiple: q.burst_multiple,
        max_denials: q.max_denials,
    }
}

/// A tenant policy with its version, for the wire.
pub(crate) fn policy_to(versioned: &VersionedPolicy) -> pb::PolicyResponse {
    let policy = &versioned.policy;
    pb::PolicyResponse {
        version: versioned.version,
        changed_ms: versioned.changed_ms,
        policy: Some(pb::TenantPolicy {
            denied: policy
                .denied
                .iter()
                .map(|(role, operation)| pb::DeniedOperation {
                    role: role_to(*role) as i32,
                    operation: operation.clone(),
                })
                .collect(),
            max_k: policy.max_k,
            max_ef: policy.max_ef,
            max_filter_conditions: policy.max_filter_conditions,
            source_uri_prefixes: policy.source_uri_prefixes.clone(),
            quotas: Some(quotas_to(&policy.quotas)),
        }),
    }
}

pub(crate) fn tenant_to(info: &TenantInfo) -> pb::Tenant {
    pb::Tenant {
        name: info.name.as_str().to_owned(),
        uid: info.uid.short(),
        created_ms: info.created_ms,
        placement: info.placement.name().to_owned(),
    }
}

pub(crate) fn api_key_to(key: ApiKeyInfo) -> pb::ApiKey {
    pb::ApiKey {
        key_id: key.key_id,
        role: role_to(key.role) as i32,
        label: key.label,
        created_ms: key.created_ms,
        expires_ms: key.expires_ms,
        revoked: key.revoked,
        locked: key.locked,
        user: match &key.binding {
            KeyBinding::User { user, groups } => {
                Some(pb::UserBinding { user: user.clone(), groups: groups.clone() })
            }
            KeyBinding::Service { .. } => None,
        },
        on_behalf_of: matches!(key.binding, KeyBinding::Service { on_behalf_of: true }),
        grant_id: key.grant_id,
    }
}

/// A break-glass grant of the tenant named `tenant`, as the admin plane shows it.
pub(crate) fn grant_to(tenant: &str, grant: AccessGrantInfo) -> pb::AccessGrant {
    pb::AccessGrant {
        grant_id: grant.grant_id,
        tenant: tenant.to_owned(),
        reason: grant.reason,
        requested_ms: grant.requested_ms,
        expires_ms: grant.expires_ms,
        approved_ms: grant.approved_ms,
        key_id: grant.key_id,
        revoked_ms: grant.revoked_ms,
        state: grant.state.as_str().to_owned(),
        role: role_to(grant.role) as i32,
        tenant_imported_ms: grant.tenant_imported_ms,
        operator_revoked_keys_ms: grant.operator_revoked_keys_ms,
    }
}

/// The binding a tenant-admin's own issue request asks for (the same choices as the operator's).
pub(crate) fn own_binding_from(binding: Option<pb::issue_own_api_key_request::Binding>) -> KeyBinding {
    use pb::issue_api_key_request::Binding;
    binding_from(binding.map(|binding| match binding {
        pb::issue_own_api_key_request::Binding::OnBehalfOf(on_behalf_of) => Binding::OnBehalfOf(on_behalf_of),
        pb::issue_own_api_key_request::Binding::User(user) => Binding::User(user),
    }))
}

/// The binding an issue request asks for.
pub(crate) fn binding_from(binding: Option<pb::issue_api_key_request::Binding>) -> KeyBinding {
    match binding {
        None => KeyBinding::Service { on_behalf_of: false },
        Some(pb::issue_api_key_request::Binding::OnBehalfOf(on_behalf_of)) => {
            KeyBinding::Service { on_behalf_of }
        }
        Some(pb::issue_api_key_request::Binding::User(u)) => {
            KeyBinding::User { user: u.user, groups: u.groups }
        }
    }
}

/// A page of audit events for the wire (hashes in hex).
pub(crate) fn audit_page_to(events: Vec<AuditEvent>, next_seq: Option<u64>) -> pb::ExportAuditResponse {
    let hex = |h: bulkhead_query::SubjectHash| h.to_hex();
    pb::ExportAuditResponse {
        events: events
            .into_iter()
            .map(|e| pb::AuditEvent {
                seq: e.seq,
                time_ms: e.time_ms,
                operation: e.operation,
                key_id: e.key_id,
                outcome: e.outcome,
                key_generation: e.key_generation,
                principal_hash: e.principal.map(hex),
                collection_hash: e.collection.map(hex),
                query_hash: e.query.map(hex),
                document_hashes: e.documents.into_iter().map(hex).collect(),
                policy_version: e.policy_version,
                note: e.note,
            })
            .collect(),
        next_seq,
    }
}

/// A rotation's progress (or its absence) for the wire.
pub(crate) fn rotation_to(progress: Option<RotationProgress>, key_generation: u32) -> pb::RotationStatus {
    match progress {
        Some(p) if !p.finished => pb::RotationStatus {
            running: true,
            key_generation: p.target_generation,
            done: p.done,
            total: p.total,
        },
        Some(p) => pb::RotationStatus {
            running: false,
            key_generation: p.target_generation,
            done: p.done,
            total: p.total,
        },
        None => pb::RotationStatus { running: false, key_generation, done: 0, total: 0 },
    }
}
