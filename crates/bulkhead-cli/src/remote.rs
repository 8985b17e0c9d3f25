//! What `bulkhead admin` and `bulkhead client` share: the options that say where the server is and
//! how to reach it (`RemoteArgs`: the address, TLS, and the rule that a credential travels in
//! plaintext only to loopback), a [`Session`] (a connected client and the credential its calls
//! carry), the runtime their calls run on, and the paging of an audit export.

use crate::output::{self, Output};
use anyhow::Result;
use bulkhead_server::ClientTls;
use bulkhead_server::client::{self, Channel, DEFAULT_ADDRESS, Request, Status};
use bulkhead_server::proto as pb;
use std::path::PathBuf;

/// Options every remote command shares.
#[derive(clap::Args)]
pub(crate) struct RemoteArgs {
    /// The server's address: host:port, http://host:port, or https://host:port (with --tls-ca).
    #[arg(long, env = "BULKHEAD_SERVER", default_value = DEFAULT_ADDRESS, global = true)]
    server: String,
    /// The CA or self-signed certificate (PEM) to trust: connect over TLS.
    #[arg(long, env = "BULKHEAD_TLS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the host of --server (for
    /// instance when connecting by IP address to a certificate issued for a DNS name).
    #[arg(long, env = "BULKHEAD_TLS_DOMAIN", global = true)]
    tls_domain: Option<String>,
    /// Send the credential in plaintext to a server that is not on loopback (refused without this
    /// flag: anyone on the path would read the admin token or API key).
    #[arg(long, env = "BULKHEAD_INSECURE_PLAINTEXT", global = true)]
    insecure_plaintext: bool,
}

impl RemoteArgs {
    /// A channel to the server, over TLS when --tls-ca is given.
    async fn connect(&self) -> Result<Channel> {
        let tls = match &self.tls_ca {
            Some(ca) => Some(ClientTls::from_pem_file(ca, self.tls_domain.clone())?),
            None if self.tls_domain.is_some() => anyhow::bail!("--tls-domain needs --tls-ca"),
            None => None,
        };
        if tls.is_none() && !self.insecure_plaintext && !client::is_loopback_address(&self.server) {
            anyhow::bail!(
                "{} is not a loopback address and the connection would be plaintext: the credential would \
                 travel in the clear. Connect over TLS (https:// and --tls-ca FILE), or pass \
                 --insecure-plaintext",
                self.server
            );
        }
        Ok(client::connect_with(&self.server, tls.as_ref()).await?)
    }

    /// Connects, makes a client of the channel with `make`, and runs `command` on a runtime of its
    /// own with a session of that client and `token`.
    pub(crate) fn run<C>(
        &self,
        make: impl FnOnce(Channel) -> C,
        token: &str,
        command: impl AsyncFnOnce(&mut Session<'_, C>) -> Result<()>,
    ) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let rpc = make(self.connect().await?);
            let mut session = Session { rpc, token, tls: self.tls_ca.is_some() };
            command(&mut session).await
        })
    }
}

/// A client connected to a running server, and the credential its calls carry.
pub(crate) struct Session<'a, C> {
    /// The generated client: `client::Admin` or `client::DataPlane`.
    pub(crate) rpc: C,
    token: &'a str,
    tls: bool,
}

impl<C> Session<'_, C> {
    /// `message` as a request that carries the credential.
    pub(crate) fn request<T>(&self, message: T) -> Result<Request<T>> {
        Ok(client::authorized(message, self.token)?)
    }

    /// The credential the session's calls carry (for the client's streaming helpers, which build
    /// their own requests).
    pub(crate) fn token(&self) -> &str {
        self.token
    }

    /// The error of a failed call, as one line (with a hint when a plaintext client meets a TLS
    /// server).
    pub(crate) fn failed(&self) -> impl Fn(Status) -> anyhow::Error + use<C> {
        let tls = self.tls;
        move |status| anyhow::anyhow!(client::describe_status(&status, tls))
    }
}

/// Writes an audit trail as JSON lines, asking `page` for each page from the sequence number where
/// the last one stopped until the server says there is no more.
pub(crate) async fn export_audit(
    out: &mut Output<'_>,
    mut page: impl AsyncFnMut(u64) -> Result<pb::ExportAuditResponse>,
) -> Result<()> {
    let mut from_seq = 0;
    loop {
        let events = page(from_seq).await?;
        for event in &events.events {
            out.line(output::audit_event_json(event))?;
        }
        match events.next_seq {
            Some(next) => from_seq = next,
            None => return Ok(()),
        }
    }
}
