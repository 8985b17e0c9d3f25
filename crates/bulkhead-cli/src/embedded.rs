//! The embedded commands, on a data directory that no server holds open: operator commands
//! (tenants, API keys), data commands that authenticate with an API key exactly as a remote client
//! does (collections, upsert, search), and `demo`, the walkthrough in one command. One function per
//! subcommand; the arguments the remote forms share are in `args.rs`.

use crate::args::{ApiKeyArg, IssueKeyArgs, KeyRefArgs, NewCollectionArgs, PointArgs, QueryArgs};
use crate::output::{self, Output};
use crate::secrets;
use anyhow::{Context, Result, bail};
use bulkhead_query::{Database, DocId, Metric, NewPoint, Role, StoreOptions, TenantName, limits};
use std::io::Write;
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
    out: &mut dyn Write,
) -> Result<()> {
    let master = secrets::master_key(data_dir, master_key_file)?;
    let db = Database::open(&data_dir.join("db"), master, StoreOptions::default())
        .with_context(|| format!("opening {}", data_dir.display()))?;
    let out = &mut Output::new(out, false);
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
    out.line(output::created_tenant(info.name.as_str(), &info.uid.short()))
}

fn tenant_list(db: &Database, out: &mut Output<'_>) -> Result<()> {
    for t in db.operator().list_tenants()? {
        out.line(output::tenant_line(t.name.as_str(), &t.uid.short()))?;
    }
    Ok(())
}

fn key_issue(db: &Database, out: &mut Output<'_>, key: IssueKeyArgs) -> Result<()> {
    let IssueKeyArgs { tenant, role, label } = key;
    let key = db.operator().issue_api_key(&TenantName::new(tenant)?, Role::from(role), &label, None)?;
    out.line(&key.token)
}

fn key_list(db: &Database, out: &mut Output<'_>, tenant: String) -> Result<()> {
    for k in db.operator().list_api_keys(&TenantName::new(tenant)?)? {
        let state = output::key_state(k.revoked, k.locked);
        out.line(output::key_line(&k.key_id, k.role.as_str(), state, &k.label))?;
    }
    Ok(())
}

fn key_revoke(db: &Database, out: &mut Output<'_>, key: KeyRefArgs) -> Result<()> {
    db.operator().revoke_api_key(&TenantName::new(key.tenant)?, &key.key_id)?;
    out.line(output::revoked(&key.key_id))
}

fn collection_create(
    db: &Database,
    out: &mut Output<'_>,
    collection: NewCollectionArgs,
    key: &ApiKeyArg,
) -> Result<()> {
    let scope = db.operator().authenticate(&key.token)?;
    let NewCollectionArgs { name, dim, metric } = collection;
    let info = db.tenant(&scope)?.create_collection(&name, dim as usize, Metric::from(metric))?;
    out.line(format!(
        "created collection {} ({} dimensions, {})",
        info.name.as_str(),
        info.dimension,
        info.metric.as_str()
    ))
}

fn collection_list(db: &Database, out: &mut Output<'_>, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(&key.token)?;
    let tenant = db.tenant(&scope)?;
    for c in tenant.collections()? {
        let count = tenant.count(c.name.as_str())?;
        out.line(format!(
            "{}\t{} dims\t{}\t{count} points",
            c.name.as_str(),
            c.dimension,
            c.metric.as_str()
        ))?;
    }
    Ok(())
}

fn upsert(db: &Database, out: &mut Output<'_>, point: PointArgs, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(&key.token)?;
    let PointArgs { collection, id, vector, text } = point;
    let versions = db.tenant(&scope)?.upsert(&collection, &[NewPoint::new(DocId::new(id)?, vector, text)])?;
    out.line(output::upserted(versions[0]))
}

fn search(db: &Database, out: &mut Output<'_>, query: QueryArgs, key: &ApiKeyArg) -> Result<()> {
    let scope = db.operator().authenticate(&key.token)?;
    let QueryArgs { collection, vector, k } = query;
    for hit in db.tenant(&scope)?.search(&collection, &vector, k as usize)? {
        out.line(output::hit_line(hit.score, hit.id.as_str(), &hit.text))?;
    }
    Ok(())
}

/// The walkthrough in one command, on its own tenant so that it can run again and again.
fn demo(db: &Database, out: &mut Output<'_>) -> Result<()> {
    let store = db.operator();
    let name = TenantName::new(format!("demo-{}", store.list_tenants()?.len() + 1))?;
    store.create_tenant(&name)?;
    out.line(format_args!("1. created tenant {}", name.as_str()))?;
    let admin = store.issue_api_key(&name, Role::TenantAdmin, "demo admin", None)?;
    let reader = store.issue_api_key(&name, Role::Reader, "demo reader", None)?;
    out.line("2. issued a tenant-admin key and a reader key (shown once; not stored)")?;

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
    out.line(format_args!(
        "3. created collection docs (4 dimensions, cosine) and upserted {} points",
        points.len()
    ))?;

    let scope = store.authenticate(&reader.token)?;
    let hits = db.tenant(&scope)?.search("docs", &[0.8, 0.3, 0.0, 0.0], 3)?;
    out.line(format_args!("4. searched as the reader (k = 3, at most {}):", limits::MAX_K))?;
    for hit in &hits {
        out.line(format_args!(
            "   {:.4}  {:<8} {}  (version {}, key generation {})",
            hit.score,
            hit.id.as_str(),
            hit.text,
            hit.version,
            hit.key_generation
        ))?;
    }
    store.revoke_api_key(&name, &reader.key_id)?;
    if store.authenticate(&reader.token).is_ok() {
        bail!("a revoked key still authenticated");
    }
    out.line("5. revoked the reader key; it no longer authenticates")?;
    out.line(format_args!("data directory: {}", store.path().display()))
}
