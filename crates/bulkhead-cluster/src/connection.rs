//! Which etcd member this process talks to, and moving on to the next when it does not answer.
//!
//! etcd-client balances its calls over all the endpoints it is given, and keeps sending some to a
//! member that is down. So a connection here talks to one member at a time and moves on to the next
//! (in the order given, round) when a call finds it unreachable; any live member forwards to the
//! leader itself. A call may thus be sent twice; each one this crate makes is safe so: a read, a
//! transaction whose compare makes a second send harmless, a lease grant (a second lease, unused,
//! expires on its own) or a revoke (a second finds the lease gone, which counts as done).

use crate::error::{ClusterError, Result};
use etcd_client::{Client, ConnectOptions, GetOptions, KeyValue, Txn, TxnResponse};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// How long connecting to an etcd endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call to etcd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on an etcd connection, and how long one may go unanswered.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// gRPC's codes for a member that could not answer (`UNAVAILABLE`: down, or without a leader) or
/// did not in time (`DEADLINE_EXCEEDED`).
const UNAVAILABLE: i32 = 14;
const DEADLINE_EXCEEDED: i32 = 4;
/// gRPC's code for a lease etcd does not know (expired, or revoked).
const NOT_FOUND: i32 = 5;

pub(crate) struct Connection {
    endpoints: Vec<String>,
    /// The member in use (its index in `endpoints`) and its client.
    current: Mutex<(usize, Client)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) async fn open(endpoints: &[String]) -> Result<Connection> {
        let Some(first) = endpoints.first() else {
            return Err(ClusterError::InvalidName {
                field: "etcd endpoints",
                reason: "at least one is needed",
            });
        };
        // Connecting is lazy: a member that is down is found at the first call, not here.
        let client = connect(first).await?;
        Ok(Connection { endpoints: endpoints.to_vec(), current: Mutex::new((0, client)) })
    }

    /// The member in use and its client (a cheap clone).
    pub(crate) fn client(&self) -> (usize, Client) {
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (current.0, current.1.clone())
    }

    /// Moves on from member `failed` to the next, unless another call already has.
    pub(crate) async fn move_on(&self, failed: usize) {
        let next = (failed + 1) % self.endpoints.len();
        if self.client().0 != failed {
            return;
        }
        match connect(&self.endpoints[next]).await {
            Ok(client) => {
                let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if current.0 == failed {
                    *current = (next, client);
                    tracing::warn!(endpoint = %self.endpoints[next], "etcd: moved on to the next member");
                }
            }
            Err(e) => tracing::warn!(endpoint = %self.endpoints[next], error = %e, "etcd: cannot connect"),
        }
    }

    /// Runs `call` against the member in use, moving on to the next member each time it finds one
    /// unreachable, until every member has been tried once.
    pub(crate) async fn call<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let (member, client) = self.client();
            match call(client).await {
                Ok(value) => return Ok(value),
                Err(e) if unreachable(&e) => {
                    last = Some(e);
                    self.move_on(member).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(|| ClusterError::Etcd("no etcd member answered".into()), Into::into))
    }
}

impl Connection {
    /// The record at `key`, if any.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.get_range(key, None).await?.into_iter().next())
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        self.get_range(prefix, Some(GetOptions::new().with_prefix())).await
    }

    /// Runs a transaction (sent again on another member if this one was unreachable: every
    /// transaction of this crate compares what it read, so a second send is harmless).
    pub(crate) async fn txn(&self, txn: &Txn) -> Result<TxnResponse> {
        self.call(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    async fn get_range(&self, key: &str, options: Option<GetOptions>) -> Result<Vec<KeyValue>> {
        let mut response = self
            .call(|mut c| {
                let (key, options) = (key.to_owned(), options.clone());
                async move { c.get(key, options).await }
            })
            .await?;
        Ok(response.take_kvs())
    }
}

async fn connect(endpoint: &str) -> Result<Client> {
    // A member without a leader refuses calls and ends watches instead of holding them; HTTP/2
    // pings find a connection whose packets are dropped (a partitioned member).
    let options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(CALL_TIMEOUT)
        .with_require_leader(true)
        .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
        .with_keep_alive_while_idle(true);
    Ok(Client::connect([endpoint], Some(options)).await?)
}

/// Whether an error says the member could not answer (so another might), not that the call was
/// wrong. A status the member sent has no source; one made on this side from a broken connection
/// (a reset, a broken pipe) carries the transport error as its source, whatever its code.
pub(crate) fn unreachable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(i32::from(status.code()), UNAVAILABLE | DEADLINE_EXCEEDED)
                || std::error::Error::source(status).is_some()
        }
        _ => false,
    }
}

/// Whether an error says etcd does not know the lease (it expired or was revoked).
pub(crate) fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::LeaseKeepAliveError(message) => message == "lease not found",
        etcd_client::Error::GRpcStatus(status) => {
            i32::from(status.code()) == NOT_FOUND && std::error::Error::source(status).is_none()
        }
        _ => false,
    }
}
