//! A tenant's handle in the embedded API: every data method stays inside the scope's tenant, and
//! each one is an audited operation (`Tenant::audited`: the role the operation needs, the tenant's
//! policy, then the access event). Collections and points live here; searching, in `search.rs`.

use crate::Result;
use crate::attrs;
use crate::collection::{CollectionState, GraphStatus};
use crate::database::Database;
use crate::entry::Entry;
use crate::filter::Principal;
use bulkhead_storage::{
    AccessEvent, ApiKeyInfo, AuditEvent, CollectionInfo, CollectionName, DocId, IssuedApiKey, KeyBinding,
    Metric, NewPoint, Operation, Role, StorageError, StorageQuotas, StoredPoint, TenantHandle, TenantUsage,
};
use std::fmt;
use std::sync::atomic::Ordering;

/// A tenant's collections and points. Every method stays inside the scope's tenant.
pub struct Tenant<'d> {
    pub(crate) db: &'d Database,
    pub(crate) handle: TenantHandle<'d>,
    /// Access events recorded through this handle (see [`Tenant::audited_events`]).
    pub(crate) events: std::cell::Cell<u64>,
}

impl fmt::Debug for Tenant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant").field("handle", &self.handle).finish()
    }
}

/// What an access event says about an operation, before its outcome is known.
pub(crate) struct Audit<'a> {
    pub(crate) operation: Operation,
    pub(crate) collection: Option<&'a str>,
    pub(crate) principal: Option<&'a Principal>,
    pub(crate) query: Option<&'a [f32]>,
    pub(crate) documents: Vec<&'a str>,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(operation: Operation) -> Audit<'a> {
        Audit { operation, collection: None, principal: None, query: None, documents: Vec::new() }
    }

    pub(crate) fn on(operation: Operation, collection: &'a str) -> Audit<'a> {
        Audit { collection: Some(collection), ..Audit::new(operation) }
    }
}

impl<'d> Tenant<'d> {
    /// Runs `work` and records its access event (operation, outcome, hashed subject, key id, key
    /// generation) in the tenant's audit trail. An event that cannot be written fails the operation:
    /// no evidence, no access.
    pub(crate) fn audited<T>(&self, audit: Audit<'_>, work: impl FnOnce() -> Result<T>) -> Result<T> {
        // A break-glass key (`bulkhead_storage` `grant.rs`) is audited whatever the setting.
        let audited = self.db.access_audit.load(Ordering::Relaxed) || self.handle.is_break_glass();
        if audited {
            // Staged before the work: a write commits it in its own batch (see
            // `TenantHandle::stage_audit`); anything else is written below with its outcome.
            let user = audit.principal.map(Principal::user).or(match self.handle.binding() {
                KeyBinding::User { user, .. } => Some(user.as_str()),
                KeyBinding::Service { .. } => None,
            });
            self.handle.stage_audit(AccessEvent {
                operation: audit.operation.name(),
                principal: user,
                collection: audit.collection,
                query: audit.query,
                documents: &audit.documents,
                ..AccessEvent::default()
            });
        }
        // The role the operation needs (the one table, `Operation::required_role`), then the
        // tenant's policy, which may deny an operation the role would allow.
        let result = if self.handle.role() < audit.operation.required_role() {
            Err(StorageError::PermissionDenied { operation: audit.operation.verb() }.into())
        } else if !self.handle.policy().policy.allows(self.handle.role(), audit.operation) {
            Err(StorageError::PermissionDenied { operation: "this operation under the tenant's policy" }
                .into())
        } else {
            work()
        };
        if !audited {
            return result;
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason_code(),
        };
        self.events.set(self.events.get() + 1);
        self.handle.finish_audit(outcome)?;
        result
    }

    /// How many access events this handle has recorded. A caller that refuses a request after
    /// opening the handle but before any operation (a malformed field) records the refusal itself
    /// when this is still 0 ([`Database::audit_refusal`]).
    pub fn audited_events(&self) -> u64 {
        self.events.get()
    }

    pub(crate) fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        Ok(self.handle.collection(&CollectionName::new(name)?)?)
    }

    /// Creates a collection of `dimension`-sized vectors compared by `metric`.
    pub fn create_collection(&self, name: &str, dimension: usize, metric: Metric) -> Result<CollectionInfo> {
        self.audited(Audit::on(Operation::CreateCollection, name), || {
            Ok(self.handle.create_collection(&CollectionName::new(name)?, dimension, metric)?)
        })
    }

    /// Describes a collection.
    pub fn collection(&self, name: &str) -> Result<CollectionInfo> {
        self.audited(Audit::on(Operation::DescribeCollection, name), || self.collection_info(name))
    }

    /// Lists the tenant's collections.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let audit = Audit::new(Operation::ListCollections);
        self.audited(audit, || Ok(self.handle.list_collections()?))
    }

    /// Drops a collection with all its points.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.audited(Audit::on(Operation::DropCollection, name), || self.drop_collection_inner(name))
    }

    fn drop_collection_inner(&self, name: &str) -> Result<()> {
        let info = self.collection_info(name)?;
        let entry = self.db.entry_of(self.handle.tenant_uid(), &info);
        let mut index = entry.state.write();
        self.handle.drop_collection(&info)?;
        entry.epoch.fetch_add(1, Ordering::Relaxed);
        *index = None;
        entry.measure(&index);
        drop(index);
        self.db.forget_index(self.handle.tenant_uid(), &info);
        Ok(())
    }

    /// Inserts or replaces a batch of points, atomically. Returns each point's version.
    pub fn upsert(&self, collection: &str, points: &[NewPoint]) -> Result<Vec<u64>> {
        let audit = Audit {
            documents: points.iter().map(|p| p.id.as_str()).collect(),
            ..Audit::on(Operation::Upsert, collection)
        };
        self.audited(audit, || self.upsert_inner(collection, points))
    }

    fn upsert_inner(&self, collection: &str, points: &[NewPoint]) -> Result<Vec<u64>> {
        let policy = self.handle.policy();
        if !points.iter().all(|p| policy.policy.allows_source(p.source_uri.as_deref().unwrap_or(""))) {
            return Err(StorageError::PermissionDenied {
                operation: "writing a source URI outside the tenant policy's prefixes",
            }
            .into());
        }
        let info = self.collection_info(collection)?;
        let entry = self.db.entry_of(self.handle.tenant_uid(), &info);
        // Holding the collection's index lock across the write keeps the in-memory state in the same
        // order as the durable one.
        let mut index = entry.state.write();
        // Indexing starts from the writes: a collection whose search state is not in memory (new,
        // or not used since the store opened or since it was evicted) has it loaded here, as its
        // first search would, so that this write and the next go to its delta and the graph builds
        // start while an upload is still arriving. Only while the memory budget has room: writes
        // that came round to collections evicted for lack of it would otherwise reload one (a scan
        // of all its vectors) per write; those load at their next search, as before.
        let loaded_now = index.is_none() && self.db.index_memory_has_room();
        if loaded_now {
            *index = Some(CollectionState::load(&self.handle, &info, self.db.clock().clone())?);
            // Counted at once: the write below may still be refused (a quota) and return early.
            entry.measure(&index);
        }
        let written = self.handle.upsert(&info, points)?;
        entry.epoch.fetch_add(1, Ordering::Relaxed);
        if let Some(loaded) = index.as_mut() {
            let applied = written
                .iter()
                .zip(points)
                .try_for_each(|((point_ref, _), point)| {
                    loaded.upsert(*point_ref, &point.vector, &point.acl, &point.metadata)
                })
                .and_then(|()| self.db.maybe_build(&self.handle, &info, &entry, loaded));
            if let Err(e) = applied {
                // The write is durable; drop the in-memory state so the next search reloads it
                // from storage rather than serving a copy that missed this write.
                *index = None;
                entry.measure(&index);
                return Err(e);
            }
        }
        entry.measure(&index);
        drop(index);
        if loaded_now {
            self.db.enforce_budget(&entry);
        }
        self.db.maybe_auto_rotate(&self.handle);
        Ok(written.into_iter().map(|(_, version)| version).collect())
    }

    /// Deletes points by id. Returns how many existed.
    pub fn delete(&self, collection: &str, ids: &[DocId]) -> Result<usize> {
        let audit = Audit {
            documents: ids.iter().map(DocId::as_str).collect(),
            ..Audit::on(Operation::Delete, collection)
        };
        self.audited(audit, || self.delete_inner(collection, ids))
    }

    fn delete_inner(&self, collection: &str, ids: &[DocId]) -> Result<usize> {
        let info = self.collection_info(collection)?;
        let entry = self.db.entry_of(self.handle.tenant_uid(), &info);
        let mut index = entry.state.write();
        let removed = self.handle.delete(&info, ids)?;
        entry.epoch.fetch_add(1, Ordering::Relaxed);
        if let Some(loaded) = index.as_mut() {
            // Enough deletes call for a purge of a segment's tombstones.
            let applied = removed
                .iter()
                .try_for_each(|point_ref| loaded.remove(point_ref))
                .and_then(|()| self.db.maybe_build(&self.handle, &info, &entry, loaded));
            if let Err(e) = applied {
                *index = None;
                entry.measure(&index);
                return Err(e);
            }
        }
        entry.measure(&index);
        Ok(removed.len())
    }

    /// Reads one point. A point that does not exist is `None`, and so is one the scope's user (a
    /// user-bound key) may not read: the two are indistinguishable.
    pub fn get(&self, collection: &str, id: &DocId) -> Result<Option<StoredPoint>> {
        self.get_as(collection, id, None)
    }

    /// As [`Tenant::get`], on behalf of `principal` (needs a service key with the on-behalf-of
    /// right; a user-bound key always reads as its user).
    pub fn get_as(
        &self,
        collection: &str,
        id: &DocId,
        principal: Option<&Principal>,
    ) -> Result<Option<StoredPoint>> {
        let audit =
            Audit { principal, documents: vec![id.as_str()], ..Audit::on(Operation::Get, collection) };
        self.audited(audit, || {
            let principal = self.effective_principal(principal)?;
            let info = self.collection_info(collection)?;
            let point = self.handle.get(&info, id)?;
            Ok(point.filter(|p| {
                principal.as_ref().is_none_or(|principal| attrs::acl_allows(&p.payload.acl, principal))
            }))
        })
    }

    /// The principal a request runs as: a user-bound key's own user (a request may not name
    /// another), or for a service key the user the request names, if the key may act on behalf of
    /// users.
    pub(crate) fn effective_principal(&self, requested: Option<&Principal>) -> Result<Option<Principal>> {
        match self.handle.binding() {
            KeyBinding::User { user, groups } => {
                if requested.is_some() {
                    return Err(StorageError::PermissionDenied {
                        operation: "naming a principal with a user-bound key",
                    }
                    .into());
                }
                Ok(Some(Principal::new(user.clone(), groups.iter().cloned())?))
            }
            KeyBinding::Service { on_behalf_of } => {
                if requested.is_some() && !on_behalf_of {
                    return Err(StorageError::PermissionDenied {
                        operation: "acting on behalf of a user without the right",
                    }
                    .into());
                }
                Ok(requested.cloned())
            }
        }
    }

    /// How a collection is searched right now: points in the HNSW segment, points in the exact
    /// delta, and whether a build runs. A collection neither searched nor written since the
    /// database opened reports everything as delta (its state loads on its first search or write).
    pub fn graph_status(&self, collection: &str) -> Result<GraphStatus> {
        self.audited(Audit::on(Operation::DescribeCollection, collection), || {
            self.graph_status_inner(collection)
        })
    }

    /// A collection's description and how it is searched right now, as one operation (one audit
    /// event).
    pub fn describe(&self, collection: &str) -> Result<(CollectionInfo, GraphStatus)> {
        self.audited(Audit::on(Operation::DescribeCollection, collection), || {
            Ok((self.collection_info(collection)?, self.graph_status_inner(collection)?))
        })
    }

    fn graph_status_inner(&self, collection: &str) -> Result<GraphStatus> {
        let info = self.collection_info(collection)?;
        // Looking does not count as use: the entry is not created or moved up the eviction order.
        let entry = self.db.indexes.read().get(&(self.handle.tenant_uid(), info.number())).cloned();
        if let Some(entry) = &entry {
            self.flush_if_idle(&info, entry);
        }
        let guard = entry.as_ref().map(|entry| entry.state.read());
        Ok(match guard.as_ref().and_then(|g| g.as_ref()) {
            Some(state) => state.status(),
            None => GraphStatus {
                loaded: false,
                graph_points: 0,
                segments: 0,
                tombstones: 0,
                delta_points: self.handle.count(&info)? as usize,
                building: false,
                snapshot_saved: false,
                memory_bytes: 0,
            },
        })
    }

    /// The data-key generation new writes are sealed with.
    pub fn key_generation(&self) -> u32 {
        self.handle.write_generation()
    }

    /// A page of this tenant's own audit trail (tenant-admin scopes only): events from `from_seq`
    /// on at or after `since_ms`, at most `limit`, and where the next page starts. The export is
    /// itself an event.
    pub fn audit_page(
        &self,
        from_seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<u64>)> {
        let audit = Audit::new(Operation::ExportAudit);
        self.audited(audit, || {
            Ok(self.db.store.audit_page(self.handle.tenant_uid(), from_seq, since_ms, limit)?)
        })
    }

    /// Issues an API key of this tenant (tenant-admin scopes only): any role up to tenant-admin,
    /// never a break-glass key. The token is the only copy of the secret. The issue is an
    /// `api-key-issued` event in the tenant's trail that names the issuing key.
    pub fn issue_api_key(
        &self,
        role: Role,
        label: &str,
        expires_ms: Option<u64>,
        binding: KeyBinding,
    ) -> Result<IssuedApiKey> {
        self.audited(Audit::new(Operation::IssueApiKey), || {
            Ok(self.handle.issue_api_key(role, label, expires_ms, binding)?)
        })
    }

    /// This tenant's API keys, never their secrets (tenant-admin scopes only).
    pub fn api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.audited(Audit::new(Operation::ListApiKeys), || Ok(self.handle.api_keys()?))
    }

    /// Revokes an API key of this tenant (tenant-admin scopes only); another tenant's key id is
    /// "not found". Its scopes stop working at once.
    pub fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        self.audited(Audit::new(Operation::RevokeApiKey), || Ok(self.handle.revoke_api_key(key_id)?))
    }

    /// Values sealed so far under the write generation (a persisted upper bound after a restart).
    pub fn encryptions(&self) -> u64 {
        self.handle.encryptions()
    }

    /// What the tenant stores (points, stored bytes, collections), as its storage quotas count it.
    pub fn usage(&self) -> Result<TenantUsage> {
        Ok(self.handle.usage()?)
    }

    /// The tenant's storage quotas in force: its policy's, else the database's defaults
    /// ([`StoreOptions::default_quotas`](crate::StoreOptions)).
    pub fn quotas(&self) -> StorageQuotas {
        self.handle.quotas()
    }

    /// The number of points in a collection; for a user-bound key, the number its user may read
    /// (nothing about the others).
    pub fn count(&self, collection: &str) -> Result<u64> {
        self.count_as(collection, None)
    }

    /// As [`Tenant::count`], on behalf of `principal` (see [`Tenant::get_as`]).
    pub fn count_as(&self, collection: &str, principal: Option<&Principal>) -> Result<u64> {
        let audit = Audit { principal, ..Audit::on(Operation::Count, collection) };
        self.audited(audit, || self.count_inner(collection, principal))
    }

    fn count_inner(&self, collection: &str, principal: Option<&Principal>) -> Result<u64> {
        let principal = self.effective_principal(principal)?;
        let info = self.collection_info(collection)?;
        let Some(principal) = principal else { return Ok(self.handle.count(&info)?) };
        let entry = self.loaded_entry(&info)?;
        let guard = entry.state.read();
        let index = guard.as_ref().ok_or(StorageError::NotFound { what: "collection" })?;
        Ok(index.attrs().visible(&principal).len())
    }

    /// Starts the flush of a collection whose delta has waited, without writes, for
    /// [`collection::IDLE_FLUSH_AFTER`] (see [`CollectionState::take_jobs`]): searches and status
    /// reads check, so a collection that stops receiving writes ends up fully indexed. Never waits
    /// for the collection's lock; a failure is logged (the search goes on).
    pub(crate) fn flush_if_idle(&self, info: &CollectionInfo, entry: &Entry) {
        let threshold = self.db.graph_threshold.load(Ordering::Relaxed);
        if !entry.state.read().as_ref().is_some_and(|state| state.idle_flush_due(threshold)) {
            return;
        }
        let Some(mut guard) = entry.state.try_write() else { return };
        if let Some(state) = guard.as_mut()
            && let Err(e) = self.db.maybe_build(&self.handle, info, entry, state)
        {
            tracing::warn!(error = %e, "could not start the flush of an idle collection");
        }
    }

    /// The collection's entry with its state loaded (loading it, and evicting others over the
    /// budget, if needed).
    pub(crate) fn loaded_entry(&self, info: &CollectionInfo) -> Result<Entry> {
        let entry = self.db.entry_of(self.handle.tenant_uid(), info);
        if entry.state.read().is_none() {
            let mut loading = entry.state.write();
            if loading.is_none() {
                let mut state = CollectionState::load(&self.handle, info, self.db.clock().clone())?;
                self.db.maybe_build(&self.handle, info, &entry, &mut state)?;
                *loading = Some(state);
                entry.measure(&loading);
                drop(loading);
                self.db.enforce_budget(&entry);
            }
        }
        Ok(entry)
    }
}
