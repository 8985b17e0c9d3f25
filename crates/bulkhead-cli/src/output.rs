//! What the commands print: lines of text for people and, with `--json`, one JSON value per line for
//! scripts. The text lines that the embedded and the remote form of a command share are made here,
//! so that both print the same thing, and so are the JSON forms of the server's answers. Nothing
//! here prints a secret other than the API key a `key issue` prints once, on purpose.

use anyhow::Result;
use bulkhead_query::{Metric, Role};
use bulkhead_server::client::{metric_from_proto, role_from_proto};
use bulkhead_server::proto as pb;
use serde_json::{Value, json};
use std::fmt::Display;
use std::io::Write;

/// Where a command prints, and in which form.
pub(crate) struct Output<'a> {
    out: &'a mut dyn Write,
    json: bool,
}

impl<'a> Output<'a> {
    /// Prints to `out`, as JSON if `json`.
    pub(crate) fn new(out: &'a mut dyn Write, json: bool) -> Output<'a> {
        Output { out, json }
    }

    /// Whether `--json` was given.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// One line, in either form.
    pub(crate) fn line(&mut self, line: impl Display) -> Result<()> {
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    /// One record: `value` as a JSON line with `--json`, else the line `text` makes.
    pub(crate) fn record(
        &mut self,
        value: impl FnOnce() -> Value,
        text: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json { self.line(value()) } else { self.line(text()) }
    }

    /// A line for people only (a message that has no JSON form).
    pub(crate) fn note(&mut self, text: impl FnOnce() -> String) -> Result<()> {
        if self.json { Ok(()) } else { self.line(text()) }
    }
}

/// The name of a role as the server sends it (`unknown` for one this client does not know).
pub(crate) fn role_name(role: i32) -> &'static str {
    role_from_proto(role).map_or("unknown", Role::as_str)
}

/// "created tenant NAME (uid UID)".
pub(crate) fn created_tenant(name: &str, uid: &str) -> String {
    format!("created tenant {name} (uid {uid})")
}

/// A tenant in a list.
pub(crate) fn tenant_line(name: &str, uid: &str) -> String {
    format!("{name}\tuid {uid}")
}

/// An API key as a list shows it, from the server's answer or the embedded registry: never the
/// secret.
pub(crate) struct KeyView<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) role: &'a str,
    pub(crate) label: &'a str,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) revoked: bool,
    pub(crate) locked: bool,
    /// A user-bound key's user and groups.
    pub(crate) user: Option<(&'a str, &'a [String])>,
    /// A service key that may name the user it acts for.
    pub(crate) on_behalf_of: bool,
}

impl KeyView<'_> {
    /// Whether it has expired at `now_ms` (this machine's clock).
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }

    /// revoked, locked, expired or active: the first that applies.
    fn state(&self, now_ms: u64) -> &'static str {
        match (self.revoked, self.locked, self.expired(now_ms)) {
            (true, _, _) => "revoked",
            (false, true, _) => "locked",
            (false, false, true) => "expired",
            (false, false, false) => "active",
        }
    }

    /// Whom the key acts for.
    fn binding(&self) -> String {
        match self.user {
            Some((user, [])) => format!("user {user}"),
            Some((user, groups)) => format!("user {user} (groups {})", groups.join(",")),
            None if self.on_behalf_of => "service, on behalf of users".to_owned(),
            None => "service".to_owned(),
        }
    }

    /// id, role, binding, expiry, state and label, tab-separated.
    pub(crate) fn line(&self, now_ms: u64) -> String {
        let expiry = match self.expires_ms {
            None => "no expiry".to_owned(),
            Some(at) if self.expired(now_ms) => format!("expired {}", utc(at)),
            Some(at) => format!("expires {}", utc(at)),
        };
        let (id, role, binding, state) = (self.key_id, self.role, self.binding(), self.state(now_ms));
        format!("{id}\t{role}\t{binding}\t{expiry}\t{state}\t{}", self.label)
    }

    pub(crate) fn json(&self, now_ms: u64) -> Value {
        let user = self.user.map(|(user, groups)| json!({ "user": user, "groups": groups }));
        json!({
            "key_id": self.key_id, "role": self.role, "label": self.label, "created_ms": self.created_ms,
            "expires_ms": self.expires_ms, "expired": self.expired(now_ms), "revoked": self.revoked,
            "locked": self.locked, "state": self.state(now_ms), "user": user,
            "on_behalf_of": self.on_behalf_of,
        })
    }
}

/// A key list: a JSON array on one line, or a line per key.
pub(crate) fn key_list(out: &mut Output<'_>, keys: &[KeyView<'_>]) -> Result<()> {
    let now = now_ms();
    if out.is_json() {
        return out.line(Value::Array(keys.iter().map(|k| k.json(now)).collect()));
    }
    for key in keys {
        out.line(key.line(now))?;
    }
    Ok(())
}

/// This machine's time, milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (the proleptic Gregorian calendar; Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// "unlocked KEY_ID", or that it was not locked.
pub(crate) fn unlocked(key_id: &str, was_locked: bool) -> String {
    if was_locked { format!("unlocked {key_id}") } else { format!("{key_id} was not locked") }
}

/// "revoked KEY_ID".
pub(crate) fn revoked(key_id: &str) -> String {
    format!("revoked {key_id}")
}

/// "upserted (version V)", or `{"version": V}`.
pub(crate) fn upserted(out: &mut Output<'_>, version: u64) -> Result<()> {
    out.record(|| json!({ "version": version }), || format!("upserted (version {version})"))
}

/// A search hit: score, id and text.
pub(crate) fn hit_line(score: f32, id: &str, text: &str) -> String {
    format!("{score:.4}\t{id}\t{text}")
}

/// The name of a metric as the server sends it (`unknown` for one this client does not know).
pub(crate) fn metric_name(metric: i32) -> &'static str {
    metric_from_proto(metric).map_or("unknown", Metric::as_str)
}

/// A described collection: its line, and how it is indexed when the server says.
pub(crate) fn collection_lines(c: &pb::Collection) -> String {
    let mut text =
        format!("{}\t{} dims\t{}\tcreated {}", c.name, c.dimension, metric_name(c.metric), c.created_ms);
    if let Some(i) = &c.index {
        let loaded = if i.loaded { "loaded" } else { "not loaded yet" };
        let building = if i.building { "a background job running" } else { "no background job" };
        text.push_str(&format!(
            "\nindex: {loaded}, {} points in {} HNSW segments, {} in the exact-scan delta, {building}",
            i.graph_points, i.segments, i.delta_points
        ));
    }
    text
}

pub(crate) fn collection_json(c: &pb::Collection) -> Value {
    let index = c.index.as_ref().map(|i| {
        json!({
            "loaded": i.loaded, "graph_points": i.graph_points, "delta_points": i.delta_points,
            "building": i.building, "segments": i.segments,
        })
    });
    json!({
        "name": c.name, "dimension": c.dimension, "metric": metric_name(c.metric),
        "created_ms": c.created_ms, "index": index,
    })
}

/// A metadata value as JSON: a keyword a string, keywords a list, a number, a flag a boolean.
fn meta_json(value: &pb::MetaValue) -> Value {
    use pb::meta_value::Kind;
    match &value.kind {
        Some(Kind::Keyword(k)) => json!(k),
        Some(Kind::Keywords(list)) => json!(list.values),
        Some(Kind::Number(n)) => json!(n),
        Some(Kind::Flag(f)) => json!(f),
        None => Value::Null,
    }
}

/// A point's metadata as a JSON object, its fields sorted by name.
fn metadata_json(metadata: &std::collections::HashMap<String, pb::MetaValue>) -> Value {
    let sorted: std::collections::BTreeMap<_, _> = metadata.iter().map(|(k, v)| (k, meta_json(v))).collect();
    json!(sorted)
}

/// A point read by id, in the shape `upsert --file` reads (plus its version and key generation).
pub(crate) fn stored_point_json(p: &pb::StoredPoint) -> Value {
    let mut value = json!({
        "id": p.id, "text": p.text, "metadata": metadata_json(&p.metadata), "source_uri": p.source_uri,
        "version": p.version, "key_generation": p.key_generation,
    });
    if !p.vector.is_empty() {
        value["vector"] = json!(p.vector);
    }
    value
}

/// A point read by id, for people: id, version and text, then the rest that it has.
pub(crate) fn stored_point_lines(p: &pb::StoredPoint) -> String {
    let mut text = format!("{}\tversion {}\t{}", p.id, p.version, p.text);
    if !p.metadata.is_empty() {
        text.push_str(&format!("\n  metadata: {}", metadata_json(&p.metadata)));
    }
    if let Some(uri) = &p.source_uri {
        text.push_str(&format!("\n  source: {uri}"));
    }
    if !p.vector.is_empty() {
        let values: Vec<String> = p.vector.iter().map(f32::to_string).collect();
        text.push_str(&format!("\n  vector: {}", values.join(",")));
    }
    text
}

pub(crate) fn tenant_json(t: &pb::Tenant) -> Value {
    json!({ "name": t.name, "uid": t.uid, "created_ms": t.created_ms, "placement": t.placement })
}

/// A key of the server's list as [`KeyView`] shows it.
pub(crate) fn key_view(k: &pb::ApiKey) -> KeyView<'_> {
    KeyView {
        key_id: &k.key_id,
        role: role_name(k.role),
        label: &k.label,
        created_ms: k.created_ms,
        expires_ms: k.expires_ms,
        revoked: k.revoked,
        locked: k.locked,
        user: k.user.as_ref().map(|u| (u.user.as_str(), u.groups.as_slice())),
        on_behalf_of: k.on_behalf_of,
    }
}

pub(crate) fn rotation_json(tenant: &str, s: &pb::RotationStatus) -> Value {
    json!({
        "tenant": tenant, "running": s.running, "key_generation": s.key_generation, "done": s.done,
        "total": s.total,
    })
}

pub(crate) fn hit_json(hit: &pb::Hit) -> Value {
    json!({
        "id": hit.id, "score": hit.score, "text": hit.text, "source_uri": hit.source_uri,
        "version": hit.version, "key_generation": hit.key_generation,
    })
}

pub(crate) fn chain_json(c: &pb::AuditChainCheck) -> Value {
    json!({
        "tenant_uid": c.tenant_uid, "events": c.events, "first_seq": c.first_seq,
        "first_broken": c.first_broken, "broken_reason": c.broken_reason,
    })
}

/// An audit event as one JSON line of an export (ids only as the keyed hashes the server sends).
pub(crate) fn audit_event_json(e: &pb::AuditEvent) -> Value {
    json!({
        "seq": e.seq,
        "time_ms": e.time_ms,
        "operation": e.operation,
        "key_id": e.key_id,
        "outcome": e.outcome,
        "key_generation": e.key_generation,
        "principal_hash": e.principal_hash,
        "collection_hash": e.collection_hash,
        "query_hash": e.query_hash,
        "document_hashes": e.document_hashes,
    })
}

/// A policy with its version, in the shape `admin policy set` reads back.
pub(crate) fn policy_json(policy: &pb::PolicyResponse) -> Value {
    let p = policy.policy.clone().unwrap_or_default();
    let denied: Vec<Value> =
        p.denied.iter().map(|d| json!({ "role": role_name(d.role), "operation": d.operation })).collect();
    json!({
        "version": policy.version,
        "changed_ms": policy.changed_ms,
        "policy": {
            "denied": denied,
            "max_k": p.max_k,
            "max_ef": p.max_ef,
            "max_filter_conditions": p.max_filter_conditions,
            "source_uri_prefixes": p.source_uri_prefixes,
            "quotas": quotas_json(&p.quotas.unwrap_or_default()),
        }
    })
}

/// The quotas inside `policy_json` (unset ones as null: the server's default applies).
fn quotas_json(q: &pb::TenantQuotas) -> Value {
    json!({
        "max_vectors": q.max_vectors,
        "max_stored_bytes": q.max_stored_bytes,
        "max_collections": q.max_collections,
        "requests_per_second": q.requests_per_second,
        "write_bytes_per_second": q.write_bytes_per_second,
        "max_concurrent_searches": q.max_concurrent_searches,
        "burst_multiple": q.burst_multiple,
        "max_denials": q.max_denials,
    })
}

/// A progress line of bytes (on a terminal, as `rotate-tenant-key` shows its records), `len` if
/// known.
pub(crate) fn byte_progress(show: bool, verb: &str, len: Option<u64>) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        let template = match len {
            Some(_) => format!("{verb} {{bar:40}} {{bytes}}/{{total_bytes}} ({{eta}} left)"),
            None => format!("{verb} {{spinner}} {{bytes}} ({{bytes_per_sec}})"),
        };
        let bar = len.map_or_else(indicatif::ProgressBar::new_spinner, indicatif::ProgressBar::new);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    })
}
