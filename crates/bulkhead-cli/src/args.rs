//! The argument types that several commands share, so that a flag means the same thing in the
//! embedded and the remote form of a command: the API key, the domain's `Role` and `Metric` as clap
//! value enums (spelled as `Role::as_str` and `Metric::as_str` spell them), a new collection, a
//! point, a query, and an API key to issue or revoke.

use bulkhead_query::{Metric, Role};

/// An API key, accepted before or after the subcommand (`global`; clap allows no required global
/// argument, so its absence is refused by [`ApiKeyArg::token`]).
#[derive(clap::Args)]
pub(crate) struct ApiKeyArg {
    /// The API key (prefer the environment variable, which stays out of shell history).
    #[arg(long = "api-key", env = "BULKHEAD_API_KEY", hide_env_values = true, global = true)]
    token: Option<String>,
}

impl ApiKeyArg {
    /// The API key, or an error that says where to give it.
    pub(crate) fn token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "no API key: set BULKHEAD_API_KEY (it stays out of shell history) or pass --api-key KEY \
                 (the operator issues one with `bulkhead admin key issue TENANT`)"
            )
        })
    }
}

/// [`Role`] as the command line names it: `reader`, `writer` or `tenant-admin`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    Reader,
    Writer,
    TenantAdmin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Reader => Role::Reader,
            RoleArg::Writer => Role::Writer,
            RoleArg::TenantAdmin => Role::TenantAdmin,
        }
    }
}

/// [`Metric`] as the command line names it: `cosine`, `dot` or `l2`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum MetricArg {
    Cosine,
    Dot,
    L2,
}

impl From<MetricArg> for Metric {
    fn from(metric: MetricArg) -> Self {
        match metric {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::Dot => Metric::Dot,
            MetricArg::L2 => Metric::L2,
        }
    }
}

/// A collection to create.
#[derive(clap::Args)]
pub(crate) struct NewCollectionArgs {
    /// The collection's name.
    pub(crate) name: String,
    /// The dimension of its vectors.
    #[arg(long)]
    pub(crate) dim: u32,
    /// How its vectors are compared.
    #[arg(long, value_enum, default_value = "cosine")]
    pub(crate) metric: MetricArg,
}

/// A point to insert or replace.
#[derive(clap::Args)]
pub(crate) struct PointArgs {
    /// The collection.
    pub(crate) collection: String,
    /// The document id.
    #[arg(long)]
    pub(crate) id: String,
    /// The vector, as comma-separated numbers.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub(crate) vector: Vec<f32>,
    /// The chunk's text.
    #[arg(long, default_value = "")]
    pub(crate) text: String,
}

/// A search.
#[derive(clap::Args)]
pub(crate) struct QueryArgs {
    /// The collection.
    pub(crate) collection: String,
    /// The query vector, as comma-separated numbers.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub(crate) vector: Vec<f32>,
    /// How many results.
    #[arg(long, default_value_t = 5)]
    pub(crate) k: u32,
}

/// An API key to issue.
#[derive(clap::Args)]
pub(crate) struct IssueKeyArgs {
    /// The tenant.
    pub(crate) tenant: String,
    /// The key's role.
    #[arg(long, value_enum, default_value = "writer")]
    pub(crate) role: RoleArg,
    /// A label for the operator's list.
    #[arg(long, default_value = "")]
    pub(crate) label: String,
}

/// A server key's expiry and binding (`admin key issue`, `client key issue`).
#[derive(clap::Args)]
pub(crate) struct KeyOptions {
    /// Make the key expire after this many seconds.
    #[arg(long)]
    pub(crate) expires_in_secs: Option<u64>,
    /// A service key whose requests may name the end user they act for (and then see only what
    /// that user may read).
    #[arg(long, conflicts_with = "user")]
    pub(crate) on_behalf_of: bool,
    /// A user's own key: every search, get and count runs as this user.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// The user's groups (with `--user`), comma-separated.
    #[arg(long, value_delimiter = ',', requires = "user")]
    pub(crate) groups: Vec<String>,
}

impl KeyOptions {
    /// The expiry in milliseconds since the Unix epoch, counted from now.
    pub(crate) fn expires_ms(&self) -> Option<u64> {
        self.expires_in_secs.map(|s| crate::output::now_ms().saturating_add(s.saturating_mul(1000)))
    }
}

/// An API key to revoke.
#[derive(clap::Args)]
pub(crate) struct KeyRefArgs {
    /// The tenant.
    pub(crate) tenant: String,
    /// The key's id (as `key list` shows it).
    pub(crate) key_id: String,
}
