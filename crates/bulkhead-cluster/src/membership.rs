//! A node's membership: its record under a lease of its own, renewed in the background, and the
//! fence that says whether the lease is surely alive.

use crate::connection::{Connection, lease_not_found, unreachable};
use crate::error::{ClusterError, Result};
use crate::fence::{self, Fence};
use crate::keys::{Keys, check_name};
use crate::records::{NodeInfo, decode, encode};
use etcd_client::{
    Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest address a node may register.
const MAX_ADDRESS_BYTES: usize = 256;
/// The pause before renewing again after a renewal failed (etcd unreachable, no leader).
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// A connection to the etcd cluster that holds one Bulkhead cluster's records. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) conn: Arc<Connection>,
    pub(crate) keys: Keys,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to etcd at `endpoints` (`http://host:port`, its members; calls move on from one
    /// that does not answer to the next) for the Bulkhead cluster named `cluster`.
    pub async fn connect(endpoints: &[String], cluster: &str) -> Result<Cluster> {
        let keys = Keys::new(cluster)?;
        Ok(Cluster { conn: Arc::new(Connection::open(endpoints).await?), keys })
    }

    /// Registers this node under a new lease of `ttl_secs`, at least [`crate::MIN_LEASE_TTL_SECS`]
    /// (etcd may grant more; see [`crate::DEFAULT_LEASE_TTL_SECS`]), and keeps renewing it until
    /// [`Membership::leave`] or drop.
    /// Refused with [`ClusterError::NodeTaken`] while another live lease holds the same node id.
    pub async fn join(&self, node: NodeInfo, ttl_secs: i64) -> Result<Membership> {
        check_name("node id", &node.id)?;
        if node.address.is_empty() || node.address.len() > MAX_ADDRESS_BYTES {
            return Err(ClusterError::InvalidName {
                field: "node address",
                reason: "must be 1 to 256 bytes",
            });
        }
        if node.capacity == 0 {
            return Err(ClusterError::InvalidName { field: "node capacity", reason: "must be at least 1" });
        }
        let key = self.keys.node(&node.id)?;
        let sent = fence::now();
        let ttl = ttl_secs.max(crate::MIN_LEASE_TTL_SECS);
        let lease = self.conn.call(|mut c| async move { c.lease_grant(ttl, None).await }).await?;
        let put = PutOptions::new().with_lease(lease.id());
        // Claims the id if no record holds it. A claim sent twice (the first answer lost) finds
        // its own record, under its own lease.
        let claim = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), encode(&node), Some(put))])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let claimed = match self.conn.txn(&claim).await {
            Ok(response) => {
                response.succeeded()
                    || response.op_responses().iter().any(|op| {
                        matches!(op, TxnOpResponse::Get(get)
                            if get.kvs().first().is_some_and(|kv| kv.lease() == lease.id()))
                    })
            }
            Err(e) => {
                self.revoke_quietly(lease.id()).await;
                return Err(e);
            }
        };
        if !claimed {
            self.revoke_quietly(lease.id()).await;
            return Err(ClusterError::NodeTaken(node.id));
        }
        let granted = Duration::from_secs(u64::try_from(lease.ttl()).unwrap_or(1));
        let fence = Fence::closed();
        fence.renewed(sent, granted, margin(granted));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(renew(Arc::clone(&self.conn), lease.id(), granted, fence.clone(), stopped));
        Ok(Membership {
            conn: Arc::clone(&self.conn),
            node,
            lease: lease.id(),
            ttl: granted,
            fence,
            stop: Some(stop),
            task: Some(task),
        })
    }

    async fn revoke_quietly(&self, lease: i64) {
        if let Err(e) = self.conn.call(|mut c| async move { c.lease_revoke(lease).await }).await {
            tracing::warn!(lease, error = %e, "could not revoke an unused lease; it expires on its own");
        }
    }

    /// The live nodes: those whose lease holds their record, ordered by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let records = self.conn.list(&self.keys.nodes()).await?;
        let mut nodes =
            records.iter().map(|kv| decode::<NodeInfo>(kv.key(), kv.value())).collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}

/// This node's place in the cluster while it lasts. Dropping it stops the renewals without revoking
/// the lease (as a crash would: the record goes when the lease expires); [`Membership::leave`]
/// revokes it at once.
pub struct Membership {
    conn: Arc<Connection>,
    node: NodeInfo,
    lease: i64,
    ttl: Duration,
    fence: Fence,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("node", &self.node.id).field("lease", &self.lease).finish()
    }
}

impl Membership {
    /// The record this node registered.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// The lease the record lives under.
    pub fn lease_id(&self) -> i64 {
        self.lease
    }

    /// The lease's time-to-live as etcd granted it.
    pub fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    /// The part of the lease's time-to-live the fence gives up (see [`Fence`]).
    pub fn fence_margin(&self) -> Duration {
        margin(self.ttl)
    }

    /// Whether this node may serve: a clone to check on every call.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Leaves the cluster: stops renewing, closes the fence, then revokes the lease (the record
    /// goes at once).
    pub async fn leave(mut self) -> Result<()> {
        self.stop_renewing();
        self.fence.close();
        let lease = self.lease;
        self.conn
            .call(|mut c| async move {
                match c.lease_revoke(lease).await {
                    // A revoke sent twice (the first answer lost) finds the lease already gone.
                    Err(e) if lease_not_found(&e) => Ok(()),
                    done => done.map(|_| ()),
                }
            })
            .await?;
        Ok(())
    }

    fn stop_renewing(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_renewing();
        self.fence.close();
    }
}

/// The part of a lease's time-to-live the fence gives up: a quarter, so that a node renewing three
/// times a period can miss one renewal without closing its fence.
fn margin(ttl: Duration) -> Duration {
    ttl / 4
}

/// What one renewal found.
enum Renewal {
    /// etcd renewed the lease for this long, counted from when the renewal was sent.
    Alive { sent: fence::Moment, ttl: Duration },
    /// etcd no longer knows the lease: it expired, or was revoked.
    Expired,
}

/// Renews the lease three times a TTL until told to stop or the lease is gone. A renewal that fails,
/// or gets no answer within a third of the renewal period (a member down, or without a leader), is
/// tried again half a second later, on the next member if this one was unreachable, so that a lost
/// member or an election costs a second or two of the fence's quarter-TTL margin, not a whole
/// period. A lease etcd no longer knows (it expired while this node was cut off) closes the fence
/// for good.
async fn renew(
    conn: Arc<Connection>,
    lease: i64,
    ttl: Duration,
    fence: Fence,
    mut stop: oneshot::Receiver<()>,
) {
    let period = ttl / 3;
    let mut stream: Option<KeepAlive> = None;
    let mut pause = period;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(pause) => {}
        }
        let member = stream.as_ref().map_or_else(|| conn.client().0, |s| s.member);
        let outcome = tokio::time::timeout(period / 3, renew_once(&conn, &mut stream, lease)).await;
        let failure = match &outcome {
            Ok(Ok(Renewal::Alive { sent, ttl })) => {
                fence.renewed(*sent, *ttl, margin(*ttl));
                pause = period;
                continue;
            }
            Ok(Ok(Renewal::Expired)) => None,
            Ok(Err(e)) if lease_not_found(e) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer in time".to_owned()),
        };
        let Some(failure) = failure else {
            fence.close();
            tracing::error!(
                lease,
                "the node's lease expired: its fence is closed for good; restart it to rejoin"
            );
            return;
        };
        // A member that did not answer is left for the next; one that answered with an error
        // (no leader yet, say) is asked again.
        let unanswered = match &outcome {
            Ok(Err(e)) => unreachable(e),
            _ => true,
        };
        if unanswered {
            conn.move_on(member).await;
        }
        stream = None;
        pause = RETRY_AFTER_FAILURE.min(period);
        tracing::warn!(lease, error = %failure, "could not renew the node's lease");
    }
}

/// A keep-alive stream to one member.
struct KeepAlive {
    member: usize,
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

/// One renewal, opening a stream first if there is none (opening one renews too, and fails with
/// "lease not found" for a lease etcd no longer knows).
async fn renew_once(
    conn: &Connection,
    stream: &mut Option<KeepAlive>,
    lease: i64,
) -> std::result::Result<Renewal, etcd_client::Error> {
    if stream.is_none() {
        let (member, mut client) = conn.client();
        let (keeper, responses) = client.lease_keep_alive(lease).await?;
        *stream = Some(KeepAlive { member, keeper, responses });
    }
    let Some(open) = stream.as_mut() else {
        return Err(etcd_client::Error::LeaseKeepAliveError("no keep-alive stream".into()));
    };
    let sent = fence::now();
    open.keeper.keep_alive().await?;
    match open.responses.message().await? {
        Some(response) if response.ttl() > 0 => {
            Ok(Renewal::Alive { sent, ttl: Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0)) })
        }
        Some(_) => Ok(Renewal::Expired),
        None => Err(etcd_client::Error::LeaseKeepAliveError("the keep-alive stream ended".into())),
    }
}
