//! The placement map: every tenant's placement, loaded once and kept current from an etcd watch,
//! so that routing a call reads memory, not etcd.
//!
//! - A placement is never trusted past its epoch: an update with a lower epoch than the one held
//!   (a stale event replayed after a reconnect) is ignored.
//! - While the watch is down the map says so ([`Lookup::Stale`]): a router then refuses rather
//!   than route on what may be old. It reloads everything and watches again from the reload's
//!   revision, so a compaction or a long outage loses nothing.
//! - A watch that merely goes quiet counts as down: the map asks etcd for a progress report every
//!   [`PROGRESS_EVERY`] and treats [`SILENCE_LIMIT`] without any answer as a failure (a member cut
//!   off from its peers, or one whose packets are dropped). A member without a leader ends the
//!   watch at once (the connection requires a leader).
//! - A record it cannot read makes that tenant's lookup `Stale`, whether met at a reload or in
//!   the watch, until a readable one replaces it.

use crate::connection::Connection;
use crate::error::Result;
use crate::membership::Cluster;
use crate::records::{Placement, decode};
use etcd_client::{EventType, GetOptions, WatchOptions};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The pause before reloading after the watch failed.
const RELOAD_AFTER_FAILURE: Duration = Duration::from_millis(500);
/// How often the map asks etcd to report the watch's progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long the watch may stay silent (no event, no progress report) before the map counts it as
/// down: the longest a `Current` answer can lag etcd, beyond the events' own delay.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(6);

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
    /// Tenants whose record could not be read.
    unreadable: HashSet<String>,
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
        // A task that ended (its runtime shut down) follows nothing any more.
        if !state.current || state.unreadable.contains(tenant) || self.task.is_finished() {
            return Lookup::Stale;
        }
        Lookup::Current(state.placements.get(tenant).cloned())
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
    let mut fresh = State { revision, current: true, ..State::default() };
    for kv in response.take_kvs() {
        fresh.record(prefix, kv.key(), kv.value());
    }
    *state.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
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

impl State {
    /// Takes a record read from etcd (at a reload or in the watch).
    fn record(&mut self, prefix: &str, key: &[u8], value: &[u8]) {
        let tenant = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default()).into_owned();
        match decode::<Placement>(key, value) {
            Ok(placement) => {
                self.unreadable.remove(&tenant);
                apply(&mut self.placements, tenant, placement);
            }
            Err(e) => {
                tracing::warn!(error = %e, "unreadable placement: its tenant is Stale until rewritten");
                self.placements.remove(&tenant);
                self.unreadable.insert(tenant);
            }
        }
    }

    fn remove(&mut self, prefix: &str, key: &[u8]) {
        let tenant = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default()).into_owned();
        self.placements.remove(&tenant);
        self.unreadable.remove(&tenant);
    }
}

/// Applies the watch's events after `revision` until it fails or falls silent; returns why.
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
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut heard = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = progress.tick() => {
                if heard.elapsed() > SILENCE_LIMIT {
                    conn.move_on(member).await;
                    return format!("no word from etcd for {} s", SILENCE_LIMIT.as_secs());
                }
                if let Err(e) = stream.request_progress().await {
                    return e.to_string();
                }
                continue;
            }
        };
        heard = tokio::time::Instant::now();
        let response = match message {
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
            return format!(
                "the watch was cancelled ({}; compacted up to revision {})",
                response.cancel_reason(),
                response.compact_revision()
            );
        }
        let mut state = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => state.record(prefix, kv.key(), kv.value()),
                EventType::Delete => state.remove(prefix, kv.key()),
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
