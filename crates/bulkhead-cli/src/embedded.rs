//! The embedded commands, on a data directory that no server holds open: operator commands
//! (tenants, API keys), data commands that authenticate with an API key exactly as a remote client
//! does (collections, upsert, search), and `demo`, the walkthrough in one command. One function per
//! subcommand; the arguments the remote forms share are in `args.rs`.

use crate::args::{ApiKeyArg, IssueKeyArgs, KeyRefArgs, NewCollectionArgs, PointArgs, QueryArgs};
use crate::datadir;
use crate::output::{self, Output};
use crate::secrets;
use anyhow::{Result, bail};
use bulkhead_query::{
    CollectionInfo, Database, DocId, KeyBinding, Metric, NewPoint, Role, StoreOptions, TenantName, limits,
};
use serde_json::json;
use std::path::Path;

/// The commands that open the data directory themselves.
#[derive(clap::Subcommand)]
pub(crate) enum EmbeddedCommand {
    /// Runs the whole path once on the data directory: a tenant, an API key, a collection, an upsert,
    /// a search, a revocation.
    Demo,
    /// Operator commands for tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Operator commands for API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Collections of the API key's tenant.
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Inserts or replaces one point.
    Upsert {
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        key: ApiKeyArg,
    },
    /// Searches a collection.
    Search {
        #[command(flatten)]
        query: QueryArgs,
        #[command(flatten)]
        key: ApiKeyArg,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum TenantCommand {
    /// Creates a tenant with its own keys and column family.
    Create { name: String },
    /// Lists tenants.
    List,
}

#[derive(clap::Subcommand)]
pub(crate) enum KeyCommand {
    /// Issues an API key; it is printed once and never stored.
    Issue(IssueKeyArgs),
    /// Lists a tenant's keys (ids, roles, state; never secrets).
    List { tenant: String },
    /// Revokes a key by id.
    Revoke(KeyRefArgs),
}

#[derive(clap::Subcommand)]
pub(crate) enum CollectionCommand {
    /// Creates a collection (needs a tenant-admin key).
    Create {
        #[command(flatten)]
        collection: NewCollectionArgs,
        #[command(flatten)]
        key: ApiKeyArg,
    },
    /// Lists the tenant's collections.
    List {
        #[command(flatten)]
        key: ApiKeyArg,
    },
}

/// Opens the database in `data_dir`, runs `command` on it, and flushes it.
pub(crate) fn run(
    data_dir: &Path,
    master_key_file: Option<&Path>,
    command: EmbeddedCommand,
    out: &mut Output<'_>,
) -> Result<()> {
    // Held until the command ends: a running server (or another command) on the directory is
    // named instead of RocksDB's lock error.
    let _lock = datadir::lock(data_dir, "an embedded bulkhead command")?;
    let master = secrets::master_key(data_dir, master_key_file)?;
    let db = Database::open(&data_dir.join("db"), master, StoreOptions::default())
        .map_err(|e| datadir::explain_open_error(data_dir, e))?;
    match command {
        EmbeddedCommand::Demo => demo(&db, out)?,
        EmbeddedCommand::Tenant(TenantCommand::Create { name }) => tenant_create(&db, out, name)?,
        EmbeddedCommand::Tenant(TenantCommand::List) => tenant_list(&db, out)?,
        EmbeddedCommand::Key(KeyCommand::Issue(key)) => key_issue(&db, out, key)?,
        EmbeddedCommand::Key(KeyCommand::List { tenant }) => key_list(&db, out, tenant)?,
        EmbeddedCommand::Key(KeyCommand::Revoke(key)) => key_revoke(&db, out, key)?,
        EmbeddedCommand::Collection(CollectionCommand::Create { collection, key }) => {
            collection_create(&db, out, collection, &key)?
        }
        EmbeddedCommand::Collection(CollectionCommand::List { key }) => collection_list(&db, out, &key)?,
        EmbeddedCommand::Upsert { point, key } => upsert(&db, out, point, &key)?,
        EmbeddedCommand::Search { query, key } => search(&db, out, query, &key)?,
    }
    db.operator().flush()?;
    Ok(())
}

fn tenant_create(db: &Database, out: &mut Output<'_>, name: String) -> Result<()> {
    let info = db.operator().create_tenant(&TenantName::new(name)?)?;
    let (name, uid) = (info.name.as_str(), info.uid.short());
    out.record(|| json!({ "name": name, "uid": uid }), || output::created_tenant(name, &uid))
}

fn tenant_list(db: &Database, out: &mut Output<'_>) -> Result<()> {
    let tenants = db.operator().list_tenants()?;
    if out.is_json() {
        let list = tenants.iter().map(|t| json!({ "name": t.name.as_str(), "uid": t.uid.short() }));
        return out.line(serde_json::Value::Array(list.collect()));
    }
    for t in tenants {
        out.line(output::tenant_line(t.name.as_str(), &t.uid.short()))?;
    }
    Ok(())
}

fn key_issue(db: &Database, out: &mut Output<'_>, key: IssueKeyArgs) -> Result<()> {
    let IssueKeyArgs { tenant, role, label } = key;
    let key = db.operator().issue_api_key(&TenantName::new(tenant)?, Role::from(role), &label, None)?;
    // Only the token on stdout, so that `$(bulkhead key issue ...)` captures it.
    out.record(|| json!({ "token": key.token, "key_id": key.key_id }), || key.token.clone())
}

fn key_list(db: &Database, out: &mut Output<'_>, tenant: String) -> Result<()> {
    let keys = db.operator().list_api_keys(&TenantName::new(tenant)?)?;
    let views: Vec<_> = keys
        .iter()
        .map(|k| {
            let (user, on_behalf_of) = match &k.binding {
                KeyBinding::User { user, groups } => (Some((user.as_str(), groups.as_slice())), false),
                KeyBinding::Service { on_behalf_of } => (None, *on_behalf_of),
            };
            output::KeyView {
                key_id: &k.key_id,
                role: k.role.as_str(),
                label: &k.label,
                created_ms: k.created_ms,
                expires_ms: k.expires_ms,
                revoked: k.revoked,
                locked: k.locked,
                user,
                on_behalf_of,
            }
        })
        .collect();
    output::key_list(out, &views)
}

fn key_revoke(db: &Database, out: &mut Output<'_>, key: KeyRefArgs) -> Result<()> {
    db.operator().revoke_api_key(&TenantName::new(key.tenant)?, &key.key_id)?;
    out.record(|| json!({ "revoked": key.key_id }), || output::revoked(&key.key_id))
}

/// A collection as the embedded commands print it in JSON.
fn collection_json(c: &CollectionInfo, points: Option<u64>) -> serde_json::Value {
    let mut value = json!({ "name": c.name.as_str(), "dimension": c.dimension, "metric": c.metric.as_str() });
    if let Some(points) = points {
        value["points"] = json!(points);
    }
    value
}

fn collection_create(
    db: &Database,
    out: &mut Output<'_>,
    collection: NewCollectionArgs,
    key: &ApiKeyArg,
) -> Result<()> {
    let scope = db.operator().authenticate(key.token()?)?;
    let NewCollectionArgs { name, dim, metric } = collection;
    let info = db.tenant(&scope)?.create_collection(&name, dim as usize, Metric::from(metric))?;
    out.record(
        || collection_json(&info, None),
        || {
            let (name, dim, metric) = (info.name.as_str(), info.dimension, info.metric.as_str());
            format!("created collection {name} ({dim} dimensions, {metric})")
        },
    )
}

fn collection_list(db: &Database, out: &mut Output<'_>, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(key.token()?)?;
    let tenant = db.tenant(&scope)?;
    let mut list = Vec::new();
    for c in tenant.collections()? {
        let count = tenant.count(c.name.as_str())?;
        if out.is_json() {
            list.push(collection_json(&c, Some(count)));
        } else {
            let (name, dim, metric) = (c.name.as_str(), c.dimension, c.metric.as_str());
            out.line(format!("{name}\t{dim} dims\t{metric}\t{count} points"))?;
        }
    }
    if out.is_json() { out.line(serde_json::Value::Array(list)) } else { Ok(()) }
}

fn upsert(db: &Database, out: &mut Output<'_>, point: PointArgs, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(key.token()?)?;
    let PointArgs { collection, id, vector, text } = point;
    let versions = db.tenant(&scope)?.upsert(&collection, &[NewPoint::new(DocId::new(id)?, vector, text)])?;
    output::upserted(out, versions[0])
}

fn search(db: &Database, out: &mut Output<'_>, query: QueryArgs, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(key.token()?)?;
    let QueryArgs { collection, vector, k } = query;
    for hit in db.tenant(&scope)?.search(&collection, &vector, k as usize)? {
        out.record(
            || json!({ "id": hit.id.as_str(), "score": hit.score, "text": hit.text, "version": hit.version }),
            || output::hit_line(hit.score, hit.id.as_str(), &hit.text),
        )?;
    }
    Ok(())
}

/// The walkthrough in one command, on its own tenant so that it can run again and again.
fn demo(db: &Database, out: &mut Output<'_>) -> Result<()> {
    let store = db.operator();
    let name = TenantName::new(format!("demo-{}", store.list_tenants()?.len() + 1))?;
    store.create_tenant(&name)?;
    out.note(|| format!("1. created tenant {}", name.as_str()))?;
    let admin = store.issue_api_key(&name, Role::TenantAdmin, "demo admin", None)?;
    let reader = store.issue_api_key(&name, Role::Reader, "demo reader", None)?;
    out.note(|| "2. issued a tenant-admin key and a reader key (shown once; not stored)".to_owned())?;

    let scope = store.authenticate(&admin.token)?;
    let tenant = db.tenant(&scope)?;
    tenant.create_collection("docs", 4, Metric::Cosine)?;
    let docs = [
        ("rust", [0.9, 0.1, 0.0, 0.0], "Rust is a systems programming language."),
        ("rocksdb", [0.7, 0.6, 0.1, 0.0], "RocksDB is an embedded key-value store."),
        ("aes", [0.0, 0.2, 0.9, 0.1], "AES-GCM is an authenticated cipher."),
        ("hnsw", [0.3, 0.8, 0.0, 0.4], "HNSW is a graph index for nearest neighbours."),
    ];
    let points: Vec<NewPoint> = docs
        .iter()
        .map(|(id, v, text)| Ok(NewPoint::new(DocId::new(*id)?, v.to_vec(), *text)))
        .collect::<Result<_>>()?;
    tenant.upsert("docs", &points)?;
    out.note(|| {
        format!("3. created collection docs (4 dimensions, cosine) and upserted {} points", points.len())
    })?;

    let scope = store.authenticate(&reader.token)?;
    let hits = db.tenant(&scope)?.search("docs", &[0.8, 0.3, 0.0, 0.0], 3)?;
    out.note(|| format!("4. searched as the reader (k = 3, at most {}):", limits::MAX_K))?;
    for hit in &hits {
        let (id, score) = (hit.id.as_str(), hit.score);
        out.record(
            || json!({ "id": id, "score": score, "text": hit.text }),
            || {
                format!(
                    "   {:.4}  {:<8} {}  (version {}, key generation {})",
                    hit.score,
                    hit.id.as_str(),
                    hit.text,
                    hit.version,
                    hit.key_generation
                )
            },
        )?;
    }
    store.revoke_api_key(&name, &reader.key_id)?;
    if store.authenticate(&reader.token).is_ok() {
        bail!("a revoked key still authenticated");
    }
    out.note(|| "5. revoked the reader key; it no longer authenticates".to_owned())?;
    let path = store.path().display().to_string();
    out.record(|| json!({ "tenant": name.as_str(), "data_dir": path }), || format!("data directory: {path}"))
}
