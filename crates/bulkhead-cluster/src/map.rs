//! The placement map: every tenant's placement, loaded once and kept current from an etcd watch,
//! so that routing a call reads memory, not etcd.
//!
//! - A placement is never trusted past its epoch: an update with a lower epoch than the one held
//!   (a stale event replayed after a reconnect) is ignored.
//! - While the watch is down the map says so ([`Lookup::Stale`]): a router then refuses rather
//!   than route on what may be old. It reloads everything and watches again from the reload's
//!   revision, so a compaction or a long outage loses nothing.

use crate::connection::Connection;
use crate::error::Result;
use crate::membership::Cluster;
use crate::records::{Placement, decode};
use etcd_client::{EventType, GetOptions, WatchOptions};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The pause before reloading after the watch failed.
const RELOAD_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// What the map knows of one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The map is current: the tenant's placement, or `None` if it has none.
    Current(Option<Placement>),
    /// The map's watch is down: what it holds may be old.
    Stale,
}

#[derive(Debug, Default)]
struct State {
    placements: HashMap<String, Placement>,
    /// The etcd revision the map reflects.
    revision: i64,
    current: bool,
}

/// Every tenant's placement, kept current in the background until dropped.
#[derive(Debug)]
pub struct PlacementMap {
    state: Arc<RwLock<State>>,
    task: JoinHandle<()>,
}

impl Cluster {
    /// Loads every placement and keeps them current from a watch, in a task of the current tokio
    /// runtime.
    pub async fn placement_map(&self) -> Result<PlacementMap> {
        let state = Arc::new(RwLock::new(State::default()));
        let prefix = self.keys.tenants();
        let revision = reload(&self.conn, &prefix, &state).await?;
        let task = tokio::spawn(follow(Arc::clone(&self.conn), prefix, Arc::clone(&state), revision));
        Ok(PlacementMap { state, task })
    }
}

impl PlacementMap {
    /// What the map knows of `tenant`.
    pub fn lookup(&self, tenant: &str) -> Lookup {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.current { Lookup::Current(state.placements.get(tenant).cloned()) } else { Lookup::Stale }
    }

    /// The etcd revision the map reflects.
    pub fn revision(&self) -> i64 {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).revision
    }

    /// How many tenants have a placement.
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).placements.len()
    }

    /// Whether no tenant has a placement.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PlacementMap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Replaces the map's content with every placement as of now; returns the revision read.
async fn reload(conn: &Connection, prefix: &str, state: &RwLock<State>) -> Result<i64> {
    let mut response = conn
        .call(|mut c| {
            let prefix = prefix.to_owned();
            async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut placements = HashMap::new();
    for kv in response.take_kvs() {
        let tenant = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
        placements.insert(tenant, decode::<Placement>(kv.key(), kv.value())?);
    }
    let mut state = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    *state = State { placements, revision, current: true };
    Ok(revision)
}

/// Follows the placements from `revision` on; on any failure marks the map stale, reloads and
/// follows again.
async fn follow(conn: Arc<Connection>, prefix: String, state: Arc<RwLock<State>>, mut revision: i64) {
    loop {
        let failure = watch(&conn, &prefix, &state, revision).await;
        state.write().unwrap_or_else(std::sync::PoisonError::into_inner).current = false;
        tracing::warn!(error = %failure, "the placement watch stopped; reloading");
        loop {
            tokio::time::sleep(RELOAD_AFTER_FAILURE).await;
            match reload(&conn, &prefix, &state).await {
                Ok(reloaded) => {
                    revision = reloaded;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "could not reload the placements"),
            }
        }
    }
}

/// Applies the watch's events after `revision` until it fails; returns why.
async fn watch(conn: &Connection, prefix: &str, state: &RwLock<State>, revision: i64) -> String {
    let (member, mut client) = conn.client();
    let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1).with_progress_notify();
    let mut stream = match client.watch(prefix, Some(options)).await {
        Ok(stream) => stream,
        Err(e) => {
            conn.move_on(member).await;
            return e.to_string();
        }
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return "the watch stream ended".to_owned(),
            Err(e) => {
                if crate::connection::unreachable(&e) {
                    conn.move_on(member).await;
                }
                return e.to_string();
            }
        };
        if response.canceled() {
            return format!("the watch was cancelled ({})", response.cancel_reason());
        }
        let mut state = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let tenant =
                String::from_utf8_lossy(kv.key().get(prefix.len()..).unwrap_or_default()).into_owned();
            match event.event_type() {
                EventType::Put => match decode::<Placement>(kv.key(), kv.value()) {
                    Ok(placement) => apply(&mut state.placements, tenant, placement),
                    Err(e) => tracing::warn!(error = %e, "an unreadable placement was ignored"),
                },
                EventType::Delete => {
                    state.placements.remove(&tenant);
                }
            }
        }
        if let Some(header) = response.header() {
            state.revision = state.revision.max(header.revision());
        }
    }
}

/// Takes `placement` for `tenant` unless the map holds a newer epoch.
fn apply(placements: &mut HashMap<String, Placement>, tenant: String, placement: Placement) {
    match placements.get(&tenant) {
        Some(held) if held.epoch > placement.epoch => {}
        _ => {
            placements.insert(tenant, placement);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_is_never_replaced_by_an_older_epoch() {
        let mut map = HashMap::new();
        apply(&mut map, "t".into(), Placement { node: "a".into(), epoch: 1 });
        apply(&mut map, "t".into(), Placement { node: "b".into(), epoch: 3 });
        apply(&mut map, "t".into(), Placement { node: "a".into(), epoch: 2 });
        assert_eq!(map["t"], Placement { node: "b".into(), epoch: 3 });
        apply(&mut map, "t".into(), Placement { node: "c".into(), epoch: 3 });
        assert_eq!(map["t"].node, "c", "the same epoch rewritten (as etcd holds it) is taken");
    }
}
