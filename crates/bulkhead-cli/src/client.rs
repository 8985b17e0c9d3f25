//! `bulkhead client ...`: the data plane of a running server, with an API key. One function per
//! subcommand; the arguments of `create-collection`, `upsert` and `search` are the embedded
//! commands' (`args.rs`), with what only the server has (ACLs, source URIs, searching on behalf of
//! a user) added here.

use crate::args::{ApiKeyArg, NewCollectionArgs, PointArgs, QueryArgs};
use crate::output::{self, Output};
use crate::remote::{self, RemoteArgs, Session};
use anyhow::Result;
use bulkhead_query::Metric;
use bulkhead_server::client::{self as grpc, DataPlane};
use bulkhead_server::proto as pb;
use std::io::Write;

/// `bulkhead client ...`: the data plane of a running server, with an API key.
#[derive(clap::Args)]
pub(crate) struct ClientArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    key: ApiKeyArg,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(clap::Subcommand)]
enum ClientCommand {
    /// Creates a collection (needs a tenant-admin key).
    CreateCollection(NewCollectionArgs),
    /// Lists the tenant's collections.
    Collections,
    /// Inserts or replaces one point.
    Upsert(UpsertArgs),
    /// Searches a collection.
    Search(SearchArgs),
    /// Counts a collection's points.
    Count { collection: String },
    /// Writes the key's own tenant's audit events as JSON lines (needs a tenant-admin key).
    AuditExport {
        /// Only events at or after this time (milliseconds since the Unix epoch).
        #[arg(long, default_value_t = 0)]
        since_ms: u64,
    },
}

/// `client upsert`: a point, with where it came from and who may read it.
#[derive(clap::Args)]
struct UpsertArgs {
    #[command(flatten)]
    point: PointArgs,
    /// Where the chunk came from (checked against the tenant's policy).
    #[arg(long)]
    source_uri: Option<String>,
    /// Restrict reading to these users (comma-separated); with --groups, an ACL.
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Restrict reading to these groups (comma-separated).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
}

/// `client search`: a query, optionally on behalf of an end user.
#[derive(clap::Args)]
struct SearchArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Search on behalf of this user (only documents it may read).
    #[arg(long = "as-user")]
    as_user: Option<String>,
    /// The user's groups (comma-separated).
    #[arg(long = "as-groups", value_delimiter = ',')]
    as_groups: Vec<String>,
}

type DataSession<'a> = Session<'a, DataPlane>;

/// Runs `bulkhead client ...` against the server.
pub(crate) fn run(args: ClientArgs, out: &mut dyn Write) -> Result<()> {
    let out = &mut Output::new(out, args.remote.json());
    let command = args.command;
    args.remote.run(grpc::data_plane, &args.key.token, async |s| match command {
        ClientCommand::CreateCollection(collection) => create_collection(s, out, collection).await,
        ClientCommand::Collections => collections(s, out).await,
        ClientCommand::Upsert(upsert) => self::upsert(s, out, upsert).await,
        ClientCommand::Search(search) => self::search(s, out, search).await,
        ClientCommand::Count { collection } => count(s, out, collection).await,
        ClientCommand::AuditExport { since_ms } => audit_export(s, out, since_ms).await,
    })
}

async fn create_collection(
    s: &mut DataSession<'_>,
    out: &mut Output<'_>,
    args: NewCollectionArgs,
) -> Result<()> {
    let NewCollectionArgs { name, dim, metric } = args;
    let metric = grpc::metric_to_proto(Metric::from(metric)) as i32;
    let request = s.request(pb::CreateCollectionRequest { name, dimension: dim, metric })?;
    let c = s.rpc.create_collection(request).await.map_err(s.failed())?.into_inner();
    out.line(format!("created collection {} ({} dimensions)", c.name, c.dimension))
}

async fn collections(s: &mut DataSession<'_>, out: &mut Output<'_>) -> Result<()> {
    let request = s.request(pb::ListCollectionsRequest {})?;
    let list = s.rpc.list_collections(request).await.map_err(s.failed())?.into_inner();
    for c in list.collections {
        out.line(format!("{}\t{} dims", c.name, c.dimension))?;
    }
    Ok(())
}

async fn upsert(s: &mut DataSession<'_>, out: &mut Output<'_>, args: UpsertArgs) -> Result<()> {
    let UpsertArgs { point: PointArgs { collection, id, vector, text }, source_uri, users, groups } = args;
    let acl = (!users.is_empty() || !groups.is_empty()).then_some(pb::Acl { users, groups });
    let point = pb::Point { id, vector, text, metadata: Default::default(), source_uri, acl };
    let request = s.request(pb::UpsertRequest { collection, points: vec![point] })?;
    let upserted = s.rpc.upsert(request).await.map_err(s.failed())?.into_inner();
    out.line(output::upserted(upserted.versions.first().copied().unwrap_or_default()))
}

async fn search(s: &mut DataSession<'_>, out: &mut Output<'_>, args: SearchArgs) -> Result<()> {
    let SearchArgs { query: QueryArgs { collection, vector, k }, as_user, as_groups } = args;
    let principal = as_user.map(|user| pb::Principal { user, groups: as_groups });
    let request =
        s.request(pb::SearchRequest { collection, vector, k, ef: None, filter: None, principal })?;
    let found = s.rpc.search(request).await.map_err(s.failed())?.into_inner();
    for hit in found.hits {
        out.record(|| output::hit_json(&hit), || output::hit_line(hit.score, &hit.id, &hit.text))?;
    }
    Ok(())
}

async fn count(s: &mut DataSession<'_>, out: &mut Output<'_>, collection: String) -> Result<()> {
    let request = s.request(pb::CountRequest { collection })?;
    let counted = s.rpc.count(request).await.map_err(s.failed())?.into_inner();
    out.line(counted.count)
}

async fn audit_export(s: &mut DataSession<'_>, out: &mut Output<'_>, since_ms: u64) -> Result<()> {
    remote::export_audit(out, async |from_seq| {
        let request = s.request(pb::ExportOwnAuditRequest { since_ms, from_seq, limit: 0 })?;
        Ok(s.rpc.export_audit(request).await.map_err(s.failed())?.into_inner())
    })
    .await
}
