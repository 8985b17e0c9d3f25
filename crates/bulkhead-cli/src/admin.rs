//! `bulkhead admin ...`: the admin plane of a running server, with the admin token. One function per
//! subcommand; each makes its call, then prints the answer as text or (with `--json`) as JSON.

use crate::args::{IssueKeyArgs, KeyOptions, KeyRefArgs};
use crate::output::{self, Output};
use crate::remote::{self, RemoteArgs, Session};
use crate::secrets;
use anyhow::{Context, Result};
use bulkhead_query::Role;
use bulkhead_server::client::{self, Admin};
use bulkhead_server::proto as pb;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `bulkhead admin ...`.
#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// A file holding the admin token. Without it: BULKHEAD_ADMIN_TOKEN, else the development token in
    /// the data directory.
    #[arg(long, env = "BULKHEAD_ADMIN_TOKEN_FILE", global = true)]
    admin_token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Tenants.
    #[command(subcommand)]
    Tenant(AdminTenant),
    /// API keys.
    #[command(subcommand)]
    Key(AdminKey),
    /// Starts a tenant-key rotation and, unless `--no-wait`, shows its progress until it finishes
    /// (the server keeps going if this command is interrupted, and after a restart).
    RotateTenantKey {
        tenant: String,
        /// Return at once instead of following the progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Shows a tenant's key generation and any rotation in progress.
    RotationStatus { tenant: String },
    /// Re-wraps every data key under the master key in FILE (a path on the server's host, mode
    /// 0600). Restart the server with `--master-key-file FILE` (the old key as
    /// `--previous-master-key-file` until it has started once).
    RotateMasterKey { new_key_file: String },
    /// The audit trail: verify chains, export a tenant's events.
    #[command(subcommand)]
    Audit(AdminAudit),
    /// A tenant's versioned policy.
    #[command(subcommand)]
    Policy(AdminPolicy),
    /// Unlocks an API key the server locked after a burst of requests or a run of refusals.
    Unlock(KeyRefArgs),
    /// Break-glass access grants: the approved way to read a tenant's data as an operator (a reason, an
    /// expiry, a second credential's approval, every step in the tenant's own audit trail).
    #[command(subcommand)]
    Grant(AdminGrant),
    /// Writes TENANT as a still-encrypted archive to FILE (a path on this machine; refused if it
    /// exists; written as FILE.partial, mode 0600, and renamed once complete). Only a server with
    /// the same master key can import it. API keys are not carried.
    ExportTenant { tenant: String, file: PathBuf },
    /// Restores a tenant from an archive FILE that `export-tenant` wrote: under its own name, or
    /// re-keyed (a new uid, fresh keys) under `--as NAME`. Issue new API keys afterwards.
    ImportTenant {
        file: PathBuf,
        /// Import under this name, re-keyed, instead of the archive's own.
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Its isolation tier: `partitioned`, `shared` or `dedicated` [default: the server's
        /// --default-tier].
        #[arg(long)]
        tier: Option<String>,
    },
}

#[derive(clap::Subcommand)]
enum AdminTenant {
    /// Creates a tenant.
    Create {
        name: String,
        /// Its isolation tier: `partitioned` (its own column family), `shared` (one column family
        /// for many small tenants) or `dedicated` (a RocksDB instance of its own) [default: the
        /// server's --default-tier].
        #[arg(long)]
        tier: Option<String>,
    },
    /// Lists tenants.
    List,
    /// Describes a tenant.
    Describe { name: String },
    /// Moves a tenant to another isolation tier, online (its records are copied while it serves;
    /// its writes wait only for the switch). Returns when the switch is done.
    Move {
        name: String,
        /// The tier to move it to: `partitioned`, `shared` or `dedicated`.
        #[arg(long)]
        tier: String,
    },
    /// Deletes a tenant by crypto-shredding: its keys are destroyed first, then its data. Irreversible.
    Delete {
        name: String,
        /// Confirms the deletion (required).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Subcommand)]
enum AdminKey {
    /// Issues an API key; the token is printed once and never stored.
    Issue(IssueArgs),
    /// Lists a tenant's keys (ids, roles, state; never secrets).
    List { tenant: String },
    /// Revokes a key by id.
    Revoke(KeyRefArgs),
    /// Revokes every key of a tenant at once (then rotate its data key).
    RevokeAll { tenant: String },
}

/// `admin key issue`: the embedded command's arguments, and what only the server's keys have.
#[derive(clap::Args)]
struct IssueArgs {
    #[command(flatten)]
    key: IssueKeyArgs,
    #[command(flatten)]
    options: KeyOptions,
}

#[derive(clap::Subcommand)]
enum AdminGrant {
    /// Requests a grant for a key of TENANT (a reader's, to read its data; a tenant-admin's, for a
    /// tenant that lost its admin keys or was imported); prints its id. It gives nothing until the
    /// approver token approves it and `activate` turns it into a key.
    Request {
        tenant: String,
        /// Why (a ticket, an incident; 1 to 512 bytes). Kept in the tenant's audit trail, which the
        /// tenant exports; never logged. Visible to other users in `ps` while the command runs:
        /// prefer --reason-file.
        #[arg(long, required_unless_present = "reason_file", conflicts_with = "reason_file")]
        reason: Option<String>,
        /// A file holding the reason (a trailing newline is dropped).
        #[arg(long)]
        reason_file: Option<PathBuf>,
        /// The role of the key the grant gives.
        #[arg(long, value_enum, default_value = "reader")]
        role: crate::args::RoleArg,
        /// How long the grant and its key last, in seconds (60 to 86400) [default: 3600].
        #[arg(long)]
        ttl_secs: Option<u32>,
    },
    /// Approves a pending grant with the approver token (never the admin token, never from the
    /// command line).
    Approve {
        tenant: String,
        grant_id: String,
        /// The role of the grant being approved, as `grant list --approver` shows it: a grant of
        /// another role is refused.
        #[arg(long, value_enum)]
        role: crate::args::RoleArg,
        /// A file holding the approver token (mode 0600). Without it: BULKHEAD_APPROVER_TOKEN.
        #[arg(long, env = "BULKHEAD_APPROVER_TOKEN_FILE")]
        approver_token_file: Option<PathBuf>,
    },
    /// Activates an approved grant, once: prints an API key of the grant's role for the tenant that
    /// expires with the grant (shown once, never stored).
    Activate { tenant: String, grant_id: String },
    /// Lists a tenant's grants (role, state, expiry, reason). With --approver, with the approver
    /// token, so that the approver sees what it approves.
    List {
        tenant: String,
        /// Use the approver token instead of the admin token.
        #[arg(long)]
        approver: bool,
        /// A file holding the approver token (with --approver). Without it: BULKHEAD_APPROVER_TOKEN.
        #[arg(long, env = "BULKHEAD_APPROVER_TOKEN_FILE", requires = "approver")]
        approver_token_file: Option<PathBuf>,
    },
    /// Revokes a grant and its key at once.
    Revoke { tenant: String, grant_id: String },
}

#[derive(clap::Subcommand)]
enum AdminAudit {
    /// Recomputes the audit chain of TENANT (a name, or the full uid of a deleted tenant), or of
    /// every chain, and reports the first broken event of each. Fails if any chain is broken.
    Verify { tenant: Option<String> },
    /// Writes TENANT's audit events as JSON lines, oldest first.
    Export {
        tenant: String,
        /// Only events at or after this time (milliseconds since the Unix epoch).
        #[arg(long, default_value_t = 0)]
        since_ms: u64,
    },
}

#[derive(clap::Subcommand)]
enum AdminPolicy {
    /// Prints the tenant's policy in force, with its version, as JSON.
    Show { tenant: String },
    /// Replaces the tenant's policy with the JSON in FILE (the shape `show` prints:
    /// `{"denied":[{"role":"reader","operation":"count"}],"max_k":100,"max_ef":null,
    /// "max_filter_conditions":null,"source_uri_prefixes":["https://wiki/"]}`), if it is still at
    /// --expected-version.
    Set(PolicySetArgs),
}

/// `admin policy set`.
#[derive(clap::Args)]
struct PolicySetArgs {
    tenant: String,
    /// The policy, as JSON.
    #[arg(long)]
    file: PathBuf,
    /// The version being replaced (what `show` printed).
    #[arg(long)]
    expected_version: u64,
    /// Why (kept in the tenant's audit trail; no tenant data).
    #[arg(long)]
    note: String,
}

type AdminSession<'a> = Session<'a, Admin>;

/// Runs `bulkhead admin ...` against the server.
pub(crate) fn run(data_dir: &Path, args: AdminArgs, out: &mut Output<'_>) -> Result<()> {
    // Approving a grant takes the second credential, the approver token, and only it.
    let token = match &args.command {
        AdminCommand::Grant(
            AdminGrant::Approve { approver_token_file, .. }
            | AdminGrant::List { approver: true, approver_token_file, .. },
        ) => secrets::approver_token(approver_token_file.as_deref())?.with_context(|| {
            format!(
                "approving a grant needs the approver token: pass --approver-token-file or set {}",
                bulkhead_server::APPROVER_TOKEN_ENV
            )
        })?,
        _ => secrets::client_admin_token(data_dir, args.admin_token_file.as_deref())?,
    };
    let command = args.command;
    args.remote.run(client::admin, token.expose(), async |s| match command {
        AdminCommand::Tenant(AdminTenant::Create { name, tier }) => tenant_create(s, out, name, tier).await,
        AdminCommand::Tenant(AdminTenant::List) => tenant_list(s, out).await,
        AdminCommand::Tenant(AdminTenant::Describe { name }) => tenant_describe(s, out, name).await,
        AdminCommand::Tenant(AdminTenant::Delete { name, yes }) => tenant_delete(s, out, name, yes).await,
        AdminCommand::Tenant(AdminTenant::Move { name, tier }) => tenant_move(s, out, name, tier).await,
        AdminCommand::Key(AdminKey::Issue(issue)) => key_issue(s, out, issue).await,
        AdminCommand::Key(AdminKey::List { tenant }) => key_list(s, out, tenant).await,
        AdminCommand::Key(AdminKey::Revoke(key)) => key_revoke(s, out, key).await,
        AdminCommand::Key(AdminKey::RevokeAll { tenant }) => key_revoke_all(s, out, tenant).await,
        AdminCommand::RotateTenantKey { tenant, no_wait } => rotate_tenant_key(s, out, tenant, no_wait).await,
        AdminCommand::RotationStatus { tenant } => rotation_status(s, out, tenant).await,
        AdminCommand::RotateMasterKey { new_key_file } => rotate_master_key(s, out, new_key_file).await,
        AdminCommand::Audit(AdminAudit::Verify { tenant }) => audit_verify(s, out, tenant).await,
        AdminCommand::Audit(AdminAudit::Export { tenant, since_ms }) => {
            audit_export(s, out, tenant, since_ms).await
        }
        AdminCommand::Policy(AdminPolicy::Show { tenant }) => policy_show(s, out, tenant).await,
        AdminCommand::Policy(AdminPolicy::Set(set)) => policy_set(s, out, set).await,
        AdminCommand::Unlock(key) => unlock(s, out, key).await,
        AdminCommand::Grant(grant) => grant_command(s, out, grant).await,
        AdminCommand::ExportTenant { tenant, file } => export_tenant(s, out, tenant, file).await,
        AdminCommand::ImportTenant { file, as_name, tier } => {
            import_tenant(s, out, file, as_name, tier).await
        }
    })
}

/// `FILE.partial`, where an export writes until it is complete.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

async fn export_tenant(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    tenant: String,
    file: PathBuf,
) -> Result<()> {
    if file.symlink_metadata().is_ok() {
        anyhow::bail!("{} exists: an export never overwrites a file; choose another name", file.display());
    }
    let partial = partial_path(&file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut writer = std::io::BufWriter::new(options.open(&partial).with_context(|| {
        format!("creating {} (if an earlier export left it, remove it first)", partial.display())
    })?);
    let bar = output::byte_progress(!out.is_json(), "exporting", None);
    let mut written = 0u64;
    let token = s.token().to_owned();
    let exported = client::export_tenant(&mut s.rpc, &token, &tenant, |chunk| {
        writer.write_all(chunk)?;
        written += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(written);
        }
        Ok(())
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let finished = exported.map_err(s.failed()).and_then(|summary| {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(summary)
    });
    let summary = match finished {
        Ok(summary) => summary,
        Err(e) => {
            // An incomplete archive is no archive: nothing of it stays.
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("exporting {tenant}")));
        }
    };
    if file.symlink_metadata().is_ok() {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("{} appeared during the export: not overwritten", file.display());
    }
    std::fs::rename(&partial, &file).with_context(|| format!("renaming {} into place", partial.display()))?;
    out.record(
        || {
            json!({
                "tenant": tenant,
                "file": file.display().to_string(),
                "archive_id": summary.archive_id,
                "points": summary.points,
                "records": summary.records,
                "bytes": summary.bytes,
            })
        },
        || {
            format!(
                "exported {tenant} to {}: {} points, {} other records, {} bytes (archive {})",
                file.display(),
                summary.points,
                summary.records,
                summary.bytes,
                summary.archive_id
            )
        },
    )
}

async fn import_tenant(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    file: PathBuf,
    as_name: Option<String>,
    tier: Option<String>,
) -> Result<()> {
    let input = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let len = input.metadata().map(|m| m.len()).ok();
    let bar = output::byte_progress(!out.is_json(), "importing", len);
    let start =
        pb::ImportTenantStart { new_name: as_name.unwrap_or_default(), tier: tier.unwrap_or_default() };
    let progress = bar.clone();
    let token = s.token().to_owned();
    let imported =
        client::import_tenant(&mut s.rpc, &token, start, std::io::BufReader::new(input), move |n| {
            if let Some(bar) = &progress {
                bar.set_position(n);
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let imported = imported.map_err(s.failed()).with_context(|| format!("importing {}", file.display()))?;
    let tenant = imported.tenant.clone().unwrap_or_default();
    out.record(
        || {
            json!({
                "tenant": output::tenant_json(&tenant),
                "archive_id": imported.archive_id,
                "rekeyed": imported.rekeyed,
                "points": imported.points,
                "records": imported.records,
                "index_records": imported.index_records,
                "bytes": imported.bytes,
            })
        },
        || {
            let how = match imported.rekeyed {
                true => "re-keyed under a new uid; its graphs are rebuilt on first use",
                false => "under its own uid, index snapshots included",
            };
            format!(
                "imported {} ({} tier, uid {}): {} points, {} other records; {how}. Issue new API keys.",
                tenant.name, tenant.placement, tenant.uid, imported.points, imported.records
            )
        },
    )
}

async fn tenant_create(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    name: String,
    tier: Option<String>,
) -> Result<()> {
    let request = s.request(pb::CreateTenantRequest { name, tier: tier.unwrap_or_default() })?;
    let t = s.rpc.create_tenant(request).await.map_err(s.failed())?.into_inner();
    out.record(|| output::tenant_json(&t), || output::created_tenant(&t.name, &t.uid))
}

async fn tenant_list(s: &mut AdminSession<'_>, out: &mut Output<'_>) -> Result<()> {
    let request = s.request(pb::ListTenantsRequest {})?;
    let list = s.rpc.list_tenants(request).await.map_err(s.failed())?.into_inner();
    if out.is_json() {
        return out.line(Value::Array(list.tenants.iter().map(output::tenant_json).collect()));
    }
    for t in list.tenants {
        out.line(output::tenant_line(&t.name, &t.uid))?;
    }
    Ok(())
}

async fn tenant_describe(s: &mut AdminSession<'_>, out: &mut Output<'_>, name: String) -> Result<()> {
    let request = s.request(pb::DescribeTenantRequest { name })?;
    let t = s.rpc.describe_tenant(request).await.map_err(s.failed())?.into_inner();
    out.record(
        || output::tenant_json(&t),
        || format!("{}\tuid {}\tcreated {}\t{}", t.name, t.uid, t.created_ms, t.placement),
    )
}

async fn tenant_delete(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    name: String,
    yes: bool,
) -> Result<()> {
    anyhow::ensure!(yes, "deleting a tenant destroys its keys and data for good: add --yes");
    let request = s.request(pb::DeleteTenantRequest { name: name.clone() })?;
    let deleted = s.rpc.delete_tenant(request).await.map_err(s.failed())?.into_inner();
    out.record(
        || json!({ "deleted": name, "revoked_keys": deleted.revoked_keys }),
        || format!("deleted tenant {name}: keys destroyed, {} API keys revoked", deleted.revoked_keys),
    )
}

async fn tenant_move(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    name: String,
    tier: String,
) -> Result<()> {
    let request = s.request(pb::MoveTenantRequest { tenant: name.clone(), tier })?;
    let mut mover = s.rpc.clone();
    let moving = mover.move_tenant(request);
    tokio::pin!(moving);
    // While the move runs, its progress (GetMoveStatus, once a second) on a spinner line; the
    // spinner draws only on a terminal.
    let spinner = (!out.is_json()).then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_style(
            indicatif::ProgressStyle::with_template("{spinner} moving {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.set_message(format!("{name}: starting"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    });
    let moved = loop {
        tokio::select! {
            done = &mut moving => break done.map_err(s.failed())?.into_inner(),
            () = tokio::time::sleep(Duration::from_secs(1)), if spinner.is_some() => {
                let request = s.request(pb::GetMoveStatusRequest { tenant: name.clone() })?;
                // Best effort: a status the server cannot give leaves the last one shown.
                if let (Ok(now), Some(spinner)) = (s.rpc.get_move_status(request).await, &spinner) {
                    let now = now.into_inner();
                    if now.running {
                        spinner.set_message(format!(
                            "{name} from {} to {}: {} records copied in {} rounds{}",
                            now.from_tier,
                            now.to_tier,
                            now.copied,
                            now.rounds,
                            if now.switched { ", switched; removing the old copy" } else { "" }
                        ));
                    }
                }
            }
        }
    };
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    out.record(
        || {
            json!({
                "tenant": name, "tier": moved.tier, "moved": moved.moved,
                "copied": moved.copied, "rounds": moved.rounds,
            })
        },
        || match moved.moved {
            true => format!(
                "moved tenant {name} to the {} tier: {} records copied in {} rounds",
                moved.tier, moved.copied, moved.rounds
            ),
            false => format!("tenant {name} is in the {} tier already", moved.tier),
        },
    )
}

async fn key_issue(s: &mut AdminSession<'_>, out: &mut Output<'_>, args: IssueArgs) -> Result<()> {
    let IssueArgs { key: IssueKeyArgs { tenant, role, label }, options } = args;
    let expires_ms = options.expires_ms();
    let binding = match options.user {
        Some(user) => {
            Some(pb::issue_api_key_request::Binding::User(pb::UserBinding { user, groups: options.groups }))
        }
        None => options.on_behalf_of.then_some(pb::issue_api_key_request::Binding::OnBehalfOf(true)),
    };
    let role = client::role_to_proto(Role::from(role)) as i32;
    let request = s.request(pb::IssueApiKeyRequest { tenant, role, label, expires_ms, binding })?;
    let issued = s.rpc.issue_api_key(request).await.map_err(s.failed())?.into_inner();
    // Only the token on stdout, so that `$(bulkhead admin key issue ...)` captures it.
    out.record(|| json!({ "token": issued.token, "key_id": issued.key_id }), || issued.token.clone())
}

async fn key_list(s: &mut AdminSession<'_>, out: &mut Output<'_>, tenant: String) -> Result<()> {
    let request = s.request(pb::ListApiKeysRequest { tenant })?;
    let list = s.rpc.list_api_keys(request).await.map_err(s.failed())?.into_inner();
    output::key_list(out, &list.keys.iter().map(output::key_view).collect::<Vec<_>>())
}

async fn key_revoke(s: &mut AdminSession<'_>, out: &mut Output<'_>, key: KeyRefArgs) -> Result<()> {
    let KeyRefArgs { tenant, key_id } = key;
    let request = s.request(pb::RevokeApiKeyRequest { tenant, key_id: key_id.clone() })?;
    s.rpc.revoke_api_key(request).await.map_err(s.failed())?;
    out.record(|| json!({ "revoked": key_id }), || output::revoked(&key_id))
}

/// A grant as JSON.
fn grant_json(g: &pb::AccessGrant) -> Value {
    json!({
        "grant_id": g.grant_id,
        "tenant": g.tenant,
        "state": g.state,
        "reason": g.reason,
        "requested_ms": g.requested_ms,
        "expires_ms": g.expires_ms,
        "approved_ms": g.approved_ms,
        "role": grant_role(g),
        "key_id": g.key_id,
        "revoked_ms": g.revoked_ms,
        "tenant_imported_ms": g.tenant_imported_ms,
        "operator_revoked_keys_ms": g.operator_revoked_keys_ms,
    })
}

/// A grant's role as the approver reads it: a role this CLI does not know shows as `unknown`, never
/// as the least one (the server always names the role; an older grant's reads as reader there).
fn grant_role(g: &pb::AccessGrant) -> &'static str {
    client::role_from_proto(g.role).map_or("unknown", |r| r.as_str())
}

/// A grant as one line of text: id, state, role, expiry, key, what the approver should know of the
/// tenant (imported from an archive; keys the operator revoked), reason.
fn grant_line(g: &pb::AccessGrant) -> String {
    let key = g.key_id.as_deref().unwrap_or("-");
    let role = grant_role(g);
    let mut context = String::new();
    if let Some(t) = g.tenant_imported_ms {
        context.push_str(&format!("IMPORTED from an archive at {t}\t"));
    }
    if let Some(t) = g.operator_revoked_keys_ms {
        context.push_str(&format!("OPERATOR REVOKED its keys at {t}\t"));
    }
    format!("{}\t{}\t{role}\texpires {}\tkey {key}\t{context}{}", g.grant_id, g.state, g.expires_ms, g.reason)
}

/// `bulkhead admin grant ...`.
async fn grant_command(s: &mut AdminSession<'_>, out: &mut Output<'_>, command: AdminGrant) -> Result<()> {
    match command {
        AdminGrant::Request { tenant, reason, reason_file, role, ttl_secs } => {
            let reason = match (reason, reason_file) {
                (Some(reason), _) => reason,
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading the reason from {}", file.display()))?;
                    text.strip_suffix('\n')
                        .map(|t| t.strip_suffix('\r').unwrap_or(t))
                        .unwrap_or(&text)
                        .to_owned()
                }
                (None, None) => anyhow::bail!("a grant needs a reason: --reason-file FILE or --reason TEXT"),
            };
            let role = client::role_to_proto(Role::from(role)) as i32;
            let request =
                s.request(pb::RequestAccessGrantRequest { tenant, reason, ttl_seconds: ttl_secs, role })?;
            let grant = s.rpc.request_access_grant(request).await.map_err(s.failed())?.into_inner();
            // Only the id on stdout, so that `$(bulkhead admin grant request ...)` captures it.
            out.record(|| grant_json(&grant), || grant.grant_id.clone())
        }
        AdminGrant::Approve { tenant, grant_id, role, .. } => {
            let role = client::role_to_proto(Role::from(role)) as i32;
            let request = s.request(pb::ApproveAccessGrantRequest { tenant, grant_id, role })?;
            let grant = s.rpc.approve_access_grant(request).await.map_err(s.failed())?.into_inner();
            out.record(
                || grant_json(&grant),
                || format!("approved grant {} (expires {})", grant.grant_id, grant.expires_ms),
            )
        }
        AdminGrant::Activate { tenant, grant_id } => {
            let request = s.request(pb::ActivateAccessGrantRequest { tenant, grant_id })?;
            let active = s.rpc.activate_access_grant(request).await.map_err(s.failed())?.into_inner();
            let grant = active.grant.unwrap_or_default();
            // Only the token on stdout, as `key issue` prints it.
            out.record(
                || json!({ "token": active.token, "key_id": active.key_id, "grant": grant_json(&grant) }),
                || active.token.clone(),
            )
        }
        AdminGrant::List { tenant, .. } => {
            let request = s.request(pb::ListAccessGrantsRequest { tenant })?;
            let list = s.rpc.list_access_grants(request).await.map_err(s.failed())?.into_inner();
            if out.is_json() {
                return out.line(Value::Array(list.grants.iter().map(grant_json).collect()));
            }
            for grant in &list.grants {
                out.line(grant_line(grant))?;
            }
            Ok(())
        }
        AdminGrant::Revoke { tenant, grant_id } => {
            let request = s.request(pb::RevokeAccessGrantRequest { tenant, grant_id })?;
            let grant = s.rpc.revoke_access_grant(request).await.map_err(s.failed())?.into_inner();
            out.record(|| grant_json(&grant), || format!("revoked grant {} and its key", grant.grant_id))
        }
    }
}

async fn unlock(s: &mut AdminSession<'_>, out: &mut Output<'_>, key: KeyRefArgs) -> Result<()> {
    let KeyRefArgs { tenant, key_id } = key;
    let request = s.request(pb::UnlockApiKeyRequest { tenant, key_id: key_id.clone() })?;
    let was_locked = s.rpc.unlock_api_key(request).await.map_err(s.failed())?.into_inner().was_locked;
    out.record(
        || json!({ "key_id": key_id, "was_locked": was_locked }),
        || output::unlocked(&key_id, was_locked),
    )
}

async fn key_revoke_all(s: &mut AdminSession<'_>, out: &mut Output<'_>, tenant: String) -> Result<()> {
    let request = s.request(pb::RevokeAllApiKeysRequest { tenant: tenant.clone() })?;
    let revoked = s.rpc.revoke_all_api_keys(request).await.map_err(s.failed())?.into_inner();
    out.record(
        || json!({ "tenant": tenant, "revoked": revoked.revoked }),
        || format!("revoked {} keys of {tenant}", revoked.revoked),
    )
}

async fn rotate_tenant_key(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    tenant: String,
    no_wait: bool,
) -> Result<()> {
    let request = s.request(pb::RotateTenantKeyRequest { tenant: tenant.clone() })?;
    let started = s.rpc.rotate_tenant_key(request).await.map_err(s.failed())?.into_inner();
    out.note(|| {
        format!("rotation started: new writes are sealed under key generation {}", started.key_generation)
    })?;
    let status = if no_wait { started } else { follow_rotation(s, &tenant, started, !out.is_json()).await? };
    if out.is_json() {
        out.line(output::rotation_json(&tenant, &status))
    } else if no_wait {
        Ok(())
    } else {
        out.line(format!(
            "rotation finished: every record is under generation {}; the old key is destroyed",
            status.key_generation
        ))
    }
}

/// Polls a rotation until the server says it is done, with a progress bar if `bar`; returns the last
/// status.
async fn follow_rotation(
    s: &mut AdminSession<'_>,
    tenant: &str,
    mut status: pb::RotationStatus,
    bar: bool,
) -> Result<pb::RotationStatus> {
    let bar = bar.then(|| {
        let bar = indicatif::ProgressBar::new(status.total.max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("re-sealing {bar:40} {pos}/{len} records ({eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    while status.running {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let request = s.request(pb::GetRotationStatusRequest { tenant: tenant.to_owned() })?;
        status = s.rpc.get_rotation_status(request).await.map_err(s.failed())?.into_inner();
        if let Some(bar) = &bar {
            bar.set_length(status.total.max(status.done).max(1));
            bar.set_position(status.done);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(status)
}

async fn rotation_status(s: &mut AdminSession<'_>, out: &mut Output<'_>, tenant: String) -> Result<()> {
    let request = s.request(pb::GetRotationStatusRequest { tenant: tenant.clone() })?;
    let status = s.rpc.get_rotation_status(request).await.map_err(s.failed())?.into_inner();
    out.record(
        || output::rotation_json(&tenant, &status),
        || {
            if status.running {
                format!(
                    "{tenant}: rotating to generation {}, {} of {} records scanned",
                    status.key_generation, status.done, status.total
                )
            } else {
                format!("{tenant}: key generation {}, no rotation running", status.key_generation)
            }
        },
    )
}

async fn rotate_master_key(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    new_key_file: String,
) -> Result<()> {
    let request = s.request(pb::RotateMasterKeyRequest { new_key_file })?;
    let rotated = s.rpc.rotate_master_key(request).await.map_err(s.failed())?.into_inner();
    out.record(
        || json!({ "master_version": rotated.master_version }),
        || {
            format!(
                "every data key is re-wrapped under master key version {}; restart the server with the new \
                 key file",
                rotated.master_version
            )
        },
    )
}

async fn audit_verify(s: &mut AdminSession<'_>, out: &mut Output<'_>, tenant: Option<String>) -> Result<()> {
    let request = s.request(pb::VerifyAuditRequest { tenant: tenant.unwrap_or_default() })?;
    let checked = s.rpc.verify_audit(request).await.map_err(s.failed())?.into_inner();
    let mut broken = checked.chains.iter().filter(|c| c.first_broken.is_some()).count();
    for c in &checked.chains {
        out.record(
            || output::chain_json(c),
            || match c.first_broken {
                Some(seq) => format!(
                    "{}: BROKEN ({}) at event {seq} ({} events from {})",
                    c.tenant_uid,
                    c.broken_reason.as_deref().unwrap_or("broken"),
                    c.events,
                    c.first_seq
                ),
                None => format!("{}: intact, {} events from {}", c.tenant_uid, c.events, c.first_seq),
            },
        )?;
    }
    if let Some(registered) = checked.chains_registered
        && checked.chains_expected != Some(registered)
    {
        broken += 1;
        let expected = checked.chains_expected;
        out.record(
            || json!({ "chains_registered": registered, "chains_expected": expected }),
            || {
                let expected = expected.map_or("an unreadable count".to_owned(), |n| n.to_string());
                format!(
                    "chain directory: BROKEN, {registered} chains registered, expected {expected} (a whole \
                     chain was removed)"
                )
            },
        )?;
    }
    anyhow::ensure!(broken == 0, "{broken} audit chain(s) broken");
    Ok(())
}

async fn audit_export(
    s: &mut AdminSession<'_>,
    out: &mut Output<'_>,
    tenant: String,
    since_ms: u64,
) -> Result<()> {
    remote::export_audit(out, async |from_seq| {
        let request = pb::ExportAuditRequest { tenant: tenant.clone(), since_ms, from_seq, limit: 0 };
        let request = s.request(request)?;
        Ok(s.rpc.export_audit(request).await.map_err(s.failed())?.into_inner())
    })
    .await
}

async fn policy_show(s: &mut AdminSession<'_>, out: &mut Output<'_>, tenant: String) -> Result<()> {
    let request = s.request(pb::GetPolicyRequest { tenant })?;
    let policy = s.rpc.get_policy(request).await.map_err(s.failed())?.into_inner();
    // Always JSON, pretty: the shape `policy set` reads.
    out.line(serde_json::to_string_pretty(&output::policy_json(&policy))?)
}

async fn policy_set(s: &mut AdminSession<'_>, out: &mut Output<'_>, args: PolicySetArgs) -> Result<()> {
    let PolicySetArgs { tenant, file, expected_version, note } = args;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let policy = Some(policy_from_json(&text)?);
    let request = s.request(pb::SetPolicyRequest { tenant, policy, expected_version, note })?;
    let policy = s.rpc.set_policy(request).await.map_err(s.failed())?.into_inner();
    out.record(|| output::policy_json(&policy), || format!("policy version {} in force", policy.version))
}

/// A policy from the JSON `admin policy show` prints (with or without its version around it).
fn policy_from_json(text: &str) -> Result<pb::TenantPolicy> {
    let value: Value = serde_json::from_str(text).context("the policy file is not JSON")?;
    // `show` prints the policy inside {"version", "policy"}; accept either shape.
    let p = value.get("policy").unwrap_or(&value);
    let mut denied = Vec::new();
    for d in p.get("denied").and_then(|d| d.as_array()).map(Vec::as_slice).unwrap_or_default() {
        let role = d
            .get("role")
            .and_then(|r| r.as_str())
            .and_then(Role::parse)
            .context("denied: role must be reader, writer or tenant-admin")?;
        let operation = d.get("operation").and_then(|o| o.as_str()).context("denied: an operation name")?;
        let role = client::role_to_proto(role) as i32;
        denied.push(pb::DeniedOperation { role, operation: operation.to_owned() });
    }
    let source_uri_prefixes = p
        .get("source_uri_prefixes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().map(str::to_owned).context("source_uri_prefixes: strings"))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(pb::TenantPolicy {
        denied,
        max_k: number(p, "max_k")?,
        max_ef: number(p, "max_ef")?,
        max_filter_conditions: number(p, "max_filter_conditions")?,
        source_uri_prefixes,
        quotas: p.get("quotas").map(quotas_from_json).transpose()?,
    })
}

/// The `quotas` object of a policy file (a missing or null field: the server's default).
fn quotas_from_json(q: &Value) -> Result<pb::TenantQuotas> {
    Ok(pb::TenantQuotas {
        max_vectors: number(q, "max_vectors")?,
        max_stored_bytes: number(q, "max_stored_bytes")?,
        max_collections: number(q, "max_collections")?,
        requests_per_second: number(q, "requests_per_second")?,
        write_bytes_per_second: number(q, "write_bytes_per_second")?,
        max_concurrent_searches: number(q, "max_concurrent_searches")?,
        burst_multiple: number(q, "burst_multiple")?,
        max_denials: number(q, "max_denials")?,
    })
}

/// The unsigned number `name` of `object`, if it is there and not null.
fn number<T: TryFrom<u64>>(object: &Value, name: &str) -> Result<Option<T>> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(
            v.as_u64()
                .and_then(|n| T::try_from(n).ok())
                .with_context(|| format!("{name}: a number in range"))?,
        )),
    }
}
