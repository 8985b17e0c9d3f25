//! `bulkhead client ...`: the data plane of a running server, with an API key. One function per
//! subcommand; the arguments of `create-collection` and `search` are the embedded commands'
//! (`args.rs`), with what only the server has (ACLs, source URIs, searching on behalf of a user)
//! added here. `upsert --file` streams a JSON-lines or fvecs file (`load.rs`) in batches within
//! the server's limits, checking the whole file first when it can be read twice.

use crate::args::{ApiKeyArg, NewCollectionArgs, QueryArgs};
use crate::load::{Format, Points};
use crate::output::{self, Output};
use crate::remote::{self, RemoteArgs, Session};
use anyhow::{Context, Result};
use bulkhead_query::Metric;
use bulkhead_server::client::{self as grpc, Code, DataPlane, Status, UpsertBatcher};
use bulkhead_server::proto as pb;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Shows a collection: dimension, metric, creation time and (for a service key) how it is
    /// indexed.
    Describe { collection: String },
    /// Drops a collection and every point in it (needs a tenant-admin key). Irreversible.
    DropCollection {
        collection: String,
        /// Confirms the drop (required).
        #[arg(long)]
        yes: bool,
    },
    /// Inserts or replaces one point (`--id`, `--vector`), or every point of a file (`--file`).
    Upsert(UpsertArgs),
    /// Reads points by id.
    Get(GetArgs),
    /// Deletes points by id (an id that does not exist is not an error; the count says how many did).
    Delete {
        collection: String,
        /// The ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
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
    /// The key's own tenant's API keys (needs a tenant-admin key): issue, list, revoke.
    #[command(subcommand)]
    Key(ClientKey),
}

#[derive(clap::Subcommand)]
enum ClientKey {
    /// Issues a key of the tenant (any role up to tenant-admin); the token is printed once and
    /// never stored.
    Issue(OwnIssueArgs),
    /// Lists the tenant's keys (ids, roles, state; never secrets).
    List,
    /// Revokes a key of the tenant by id (it is refused from its next call on).
    Revoke { key_id: String },
}

/// `client key issue`: the options of `admin key issue`, for the key's own tenant.
#[derive(clap::Args)]
struct OwnIssueArgs {
    /// The key's role.
    #[arg(long, value_enum, default_value = "writer")]
    role: crate::args::RoleArg,
    /// A label for the key list.
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    options: crate::args::KeyOptions,
}

/// `client upsert`: a point, with where it came from and who may read it; or a file of points.
#[derive(clap::Args)]
struct UpsertArgs {
    /// The collection.
    collection: String,
    /// The document id.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    id: Option<String>,
    /// The vector, as comma-separated numbers.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    vector: Vec<f32>,
    /// The chunk's text.
    #[arg(long, default_value = "", conflicts_with = "file")]
    text: String,
    /// Where the chunk came from (checked against the tenant's policy).
    #[arg(long, conflicts_with = "file")]
    source_uri: Option<String>,
    /// Restrict reading to these users (comma-separated); with --groups, an ACL.
    #[arg(long, value_delimiter = ',', conflicts_with = "file")]
    users: Vec<String>,
    /// Restrict reading to these groups (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "file")]
    groups: Vec<String>,
    /// Upsert every point of this file (`-` for stdin), in batches within the server's limits:
    /// JSON lines, one object a line (`{"id": "a", "vector": [1, 0, 0], "text": "...",
    /// "metadata": {"lang": "en", "year": 2024, "tags": ["x"], "draft": false}, "source_uri":
    /// "...", "acl": {"users": ["alice"], "groups": ["eng"]}}`; only id and vector are required),
    /// or fvecs (vectors only). A file is checked whole before anything is sent.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The file's format [default: fvecs for a *.fvecs file, else jsonl].
    #[arg(long, value_enum, requires = "file")]
    format: Option<Format>,
    /// With fvecs: each point's id is this prefix and the record's number from 0.
    #[arg(long, default_value = "", requires = "file")]
    id_prefix: String,
}

/// `client get`: points by id, optionally as an end user would see them.
#[derive(clap::Args)]
struct GetArgs {
    /// The collection.
    collection: String,
    /// The ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Also print each point's vector.
    #[arg(long)]
    with_vector: bool,
    /// Read on behalf of this user (a point it may not read is not found).
    #[arg(long = "as-user")]
    as_user: Option<String>,
    /// The user's groups (comma-separated).
    #[arg(long = "as-groups", value_delimiter = ',', requires = "as_user")]
    as_groups: Vec<String>,
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
pub(crate) fn run(args: ClientArgs, out: &mut Output<'_>) -> Result<()> {
    let command = args.command;
    args.remote.run(grpc::data_plane, args.key.token()?, async |s| match command {
        ClientCommand::CreateCollection(collection) => create_collection(s, out, collection).await,
        ClientCommand::Collections => collections(s, out).await,
        ClientCommand::Describe { collection } => describe(s, out, collection).await,
        ClientCommand::DropCollection { collection, yes } => drop_collection(s, out, collection, yes).await,
        ClientCommand::Upsert(upsert) if upsert.file.is_some() => upsert_file(s, out, upsert).await,
        ClientCommand::Upsert(upsert) => self::upsert(s, out, upsert).await,
        ClientCommand::Get(get) => self::get(s, out, get).await,
        ClientCommand::Delete { collection, ids } => delete(s, out, collection, ids).await,
        ClientCommand::Search(search) => self::search(s, out, search).await,
        ClientCommand::Count { collection } => count(s, out, collection).await,
        ClientCommand::AuditExport { since_ms } => audit_export(s, out, since_ms).await,
        ClientCommand::Key(ClientKey::Issue(issue)) => key_issue(s, out, issue).await,
        ClientCommand::Key(ClientKey::List) => {
            let request = s.request(pb::ListOwnApiKeysRequest {})?;
            let list = s.rpc.list_own_api_keys(request).await.map_err(s.failed())?.into_inner();
            output::key_list(out, &list.keys.iter().map(output::key_view).collect::<Vec<_>>())
        }
        ClientCommand::Key(ClientKey::Revoke { key_id }) => {
            let request = s.request(pb::RevokeOwnApiKeyRequest { key_id: key_id.clone() })?;
            s.rpc.revoke_own_api_key(request).await.map_err(s.failed())?;
            out.record(|| serde_json::json!({ "revoked": key_id }), || output::revoked(&key_id))
        }
    })
}

/// `client key issue`: a key of the credential's own tenant, on the data plane.
async fn key_issue(s: &mut DataSession<'_>, out: &mut Output<'_>, args: OwnIssueArgs) -> Result<()> {
    let OwnIssueArgs { role, label, options } = args;
    let expires_ms = options.expires_ms();
    let binding = match options.user {
        Some(user) => Some(pb::issue_own_api_key_request::Binding::User(pb::UserBinding {
            user,
            groups: options.groups,
        })),
        None => options.on_behalf_of.then_some(pb::issue_own_api_key_request::Binding::OnBehalfOf(true)),
    };
    let role = grpc::role_to_proto(bulkhead_query::Role::from(role)) as i32;
    let request = s.request(pb::IssueOwnApiKeyRequest { role, label, expires_ms, binding })?;
    let issued = s.rpc.issue_own_api_key(request).await.map_err(s.failed())?.into_inner();
    // Only the token on stdout, so that `$(bulkhead client key issue ...)` captures it.
    out.record(
        || serde_json::json!({ "token": issued.token, "key_id": issued.key_id }),
        || issued.token.clone(),
    )
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
    out.record(
        || output::collection_json(&c),
        || {
            format!(
                "created collection {} ({} dimensions, {})",
                c.name,
                c.dimension,
                output::metric_name(c.metric)
            )
        },
    )
}

async fn collections(s: &mut DataSession<'_>, out: &mut Output<'_>) -> Result<()> {
    let request = s.request(pb::ListCollectionsRequest {})?;
    let list = s.rpc.list_collections(request).await.map_err(s.failed())?.into_inner();
    if out.is_json() {
        let list = list.collections.iter().map(output::collection_json).collect();
        return out.line(serde_json::Value::Array(list));
    }
    for c in list.collections {
        out.line(format!("{}\t{} dims\t{}", c.name, c.dimension, output::metric_name(c.metric)))?;
    }
    Ok(())
}

async fn describe(s: &mut DataSession<'_>, out: &mut Output<'_>, name: String) -> Result<()> {
    let request = s.request(pb::DescribeCollectionRequest { name })?;
    let c = s.rpc.describe_collection(request).await.map_err(s.failed())?.into_inner();
    out.record(|| output::collection_json(&c), || output::collection_lines(&c))
}

async fn drop_collection(
    s: &mut DataSession<'_>,
    out: &mut Output<'_>,
    name: String,
    yes: bool,
) -> Result<()> {
    anyhow::ensure!(yes, "dropping a collection deletes every point in it for good: add --yes");
    let request = s.request(pb::DropCollectionRequest { name: name.clone() })?;
    s.rpc.drop_collection(request).await.map_err(s.failed())?;
    out.record(|| serde_json::json!({ "dropped": name }), || format!("dropped collection {name}"))
}

async fn get(s: &mut DataSession<'_>, out: &mut Output<'_>, args: GetArgs) -> Result<()> {
    let GetArgs { collection, ids, with_vector, as_user, as_groups } = args;
    let principal = as_user.map(|user| pb::Principal { user, groups: as_groups });
    let mut missing = 0usize;
    for id in ids {
        let (collection, principal) = (collection.clone(), principal.clone());
        let request = s.request(pb::GetRequest { collection, id, principal, with_vector })?;
        match s.rpc.get(request).await {
            Ok(found) => {
                let point = found.into_inner().point.unwrap_or_default();
                out.record(|| output::stored_point_json(&point), || output::stored_point_lines(&point))?;
            }
            // The others are still read; the command fails at the end.
            Err(status) if status.code() == Code::NotFound => {
                missing += 1;
                eprintln!("{}", (s.failed())(status));
            }
            Err(status) => return Err((s.failed())(status)),
        }
    }
    anyhow::ensure!(missing == 0, "{missing} of the ids not found (or not readable by this key or user)");
    Ok(())
}

async fn delete(
    s: &mut DataSession<'_>,
    out: &mut Output<'_>,
    collection: String,
    ids: Vec<String>,
) -> Result<()> {
    let requested = ids.len();
    let mut deleted = 0;
    for batch in ids.chunks(bulkhead_query::limits::MAX_BATCH_POINTS) {
        let request = s.request(pb::DeleteRequest { collection: collection.clone(), ids: batch.to_vec() })?;
        let answer = s.rpc.delete(request).await.map_err(s.failed());
        let answer = answer.with_context(|| format!("{deleted} points were deleted before this batch"))?;
        deleted += answer.into_inner().deleted;
    }
    out.record(
        || serde_json::json!({ "deleted": deleted, "requested": requested }),
        || format!("deleted {deleted} of {requested} points"),
    )
}

/// How many times an upsert batch is sent again after `UNAVAILABLE` or `RESOURCE_EXHAUSTED`
/// (upserting the same points twice is harmless: they replace themselves).
const UPSERT_RETRIES: u32 = 4;

/// `client upsert --file`: the file checked whole first (unless it is stdin), then streamed in
/// batches, each atomic; a refusal names the lines of its batch and what was written before it.
async fn upsert_file(s: &mut DataSession<'_>, out: &mut Output<'_>, args: UpsertArgs) -> Result<()> {
    let UpsertArgs { collection, file, format, id_prefix, .. } = args;
    let file = file.context("--file")?;
    let format = Format::of(&file, format);
    let request = s.request(pb::DescribeCollectionRequest { name: collection.clone() })?;
    let described = s.rpc.describe_collection(request).await.map_err(s.failed())?.into_inner();
    let dimension = described.dimension as usize;
    let stdin = file.as_os_str() == "-";
    let length = if stdin { None } else { std::fs::metadata(&file).ok().map(|m| m.len()) };
    if !stdin {
        // A bad record anywhere stops the command before anything is written.
        let mut points = Points::new(open(&file)?, format, dimension, &id_prefix);
        let mut progress = Progress::new("checking", length);
        while points.next_point().with_context(|| in_file(&file))?.is_some() {
            progress.update(points.bytes_read());
        }
        progress.finish();
    }
    let input: Box<dyn BufRead> = match stdin {
        true => Box::new(std::io::stdin().lock()),
        false => Box::new(open(&file)?),
    };
    let mut points = Points::new(input, format, dimension, &id_prefix);
    let mut progress = Progress::new("upserting", length);
    let mut batcher = UpsertBatcher::new(&collection);
    let (mut sent, mut batches, mut first) = (0u64, 0u64, None);
    loop {
        let next = points.next_point().with_context(|| {
            format!("{}; {sent} points before it were upserted, none from it on", in_file(&file))
        })?;
        let done = next.is_none();
        let batch = match next {
            Some((number, point)) => {
                let at = points.place(number);
                match batcher.push(point) {
                    Some(batch) => Some((batch, first.replace(at).unwrap_or_default())),
                    None => {
                        first.get_or_insert(at);
                        None
                    }
                }
            }
            None => batcher.take().map(|batch| (batch, first.take().unwrap_or_default())),
        };
        if let Some((batch, from)) = batch {
            let n = batch.points.len() as u64;
            send_batch(s, batch).await.with_context(|| {
                format!(
                    "{}: the batch of {n} points from {from} was refused, nothing of it written; the {sent} \
                     points before it were upserted. Fix the input and run again (upserting a point again \
                     replaces it)",
                    file.display()
                )
            })?;
            sent += n;
            batches += 1;
            progress.update(points.bytes_read());
        }
        if done {
            break;
        }
    }
    progress.finish();
    out.record(
        || serde_json::json!({ "upserted": sent, "batches": batches, "file": file.display().to_string() }),
        || format!("upserted {sent} points from {} in {batches} batches", file.display()),
    )
}

/// Sends one batch, again after a pause while the server is unavailable or over a quota.
async fn send_batch(s: &mut DataSession<'_>, batch: pb::UpsertRequest) -> Result<()> {
    let (mut pause, mut retries) = (Duration::from_millis(250), 0);
    loop {
        let request = s.request(batch.clone())?;
        match s.rpc.upsert(request).await {
            Ok(_) => return Ok(()),
            Err(status) if retries < UPSERT_RETRIES && retryable(&status) => {
                tokio::time::sleep(pause).await;
                (pause, retries) = (pause * 2, retries + 1);
            }
            Err(status) => return Err((s.failed())(status)),
        }
    }
}

fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
}

/// The file, buffered, or an error that says what to check.
fn open(file: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let opened = std::fs::File::open(file).with_context(|| {
        format!(
            "opening {} (check the path; --file takes a JSON-lines or fvecs file, or - for stdin)",
            file.display()
        )
    })?;
    Ok(std::io::BufReader::with_capacity(1 << 20, opened))
}

fn in_file(file: &Path) -> String {
    format!("in {}", file.display())
}

/// The progress of reading a file on stderr: a bar on a terminal, else a line at each tenth of the
/// file (nothing for stdin, whose length is unknown).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verb: &'static str,
    total: Option<u64>,
    next_line: u64,
}

impl Progress {
    fn new(verb: &'static str, total: Option<u64>) -> Progress {
        let bar = output::byte_progress(std::io::stderr().is_terminal(), verb, total);
        let step = total.map_or(u64::MAX, |t| t.div_ceil(10).max(1));
        Progress { bar, verb, total, next_line: step }
    }

    fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let Some(total) = self.total else { return };
        if done >= self.next_line && done < total {
            eprintln!("{}: {}% of the file", self.verb, done * 100 / total.max(1));
            while self.next_line <= done {
                self.next_line += total.div_ceil(10).max(1);
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn upsert(s: &mut DataSession<'_>, out: &mut Output<'_>, args: UpsertArgs) -> Result<()> {
    let UpsertArgs { collection, id, vector, text, source_uri, users, groups, .. } = args;
    let id = id.context("--id")?;
    let acl = (!users.is_empty() || !groups.is_empty()).then_some(pb::Acl { users, groups });
    let point = pb::Point { id, vector, text, metadata: Default::default(), source_uri, acl };
    let request = s.request(pb::UpsertRequest { collection, points: vec![point] })?;
    let upserted = s.rpc.upsert(request).await.map_err(s.failed())?.into_inner();
    output::upserted(out, upserted.versions.first().copied().unwrap_or_default())
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
    out.record(|| serde_json::json!({ "count": counted.count }), || counted.count.to_string())
}

async fn audit_export(s: &mut DataSession<'_>, out: &mut Output<'_>, since_ms: u64) -> Result<()> {
    remote::export_audit(out, async |from_seq| {
        let request = s.request(pb::ExportOwnAuditRequest { since_ms, from_seq, limit: 0 })?;
        Ok(s.rpc.export_audit(request).await.map_err(s.failed())?.into_inner())
    })
    .await
}
