//! A tenant's data handle: collections and points, sealed under the tenant's keys, written
//! atomically (each write one batch with its bookkeeping, encryption-count reservation and access
//! event). The points are in `tenant/points.rs`; the loaded tenant the handles share is in
//! `tenant/state.rs`; the usage counters the storage quotas are checked against in
//! `tenant/usage.rs`. Layouts: `layout/tenant.rs`.

mod points;
mod state;
mod usage;

pub(crate) use state::{Location, TenantState, WriteState};

use crate::audit::AccessEvent;
use crate::engine::{Batch, Family, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{CollectionName, DocId, TenantUid, limits};
use crate::layout::{self, CollectionRecord, Kind, RecordV2, UsageRecord};
use crate::model::{CollectionInfo, Metric};
use crate::operation::Operation;
use crate::policy::VersionedPolicy;
use crate::quota;
use crate::scope::{KeyBinding, Role, TenantScope};
use crate::store::Store;
use bulkhead_crypto::{Purpose, RecordTag};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// The data of one tenant, reached through a scope: every method stays inside this tenant.
pub struct TenantHandle<'s> {
    pub(crate) store: &'s Store,
    pub(crate) state: Arc<TenantState>,
    /// Where the tenant's records were when the handle was made: a tier move keeps that copy until
    /// no handle made before its switch is left (an operation may have read from it just before).
    _location: Arc<Location>,
    role: Role,
    binding: KeyBinding,
    key_id: Option<[u8; 16]>,
    /// The break-glass access grant of the scope's key, if any.
    grant: Option<[u8; 16]>,
    /// The access event of the operation under way ([`TenantHandle::stage_audit`]), until a write
    /// commits it in its own batch or [`TenantHandle::finish_audit`] writes it.
    staged: RefCell<Option<RecordV2>>,
}

impl fmt::Debug for TenantHandle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantHandle").field("tenant", &self.state.uid).field("role", &self.role).finish()
    }
}

impl<'s> TenantHandle<'s> {
    pub(crate) fn new(
        store: &'s Store,
        state: Arc<TenantState>,
        scope: &TenantScope,
    ) -> Result<TenantHandle<'s>> {
        let location = state.location();
        location.family(&store.db)?;
        Ok(TenantHandle {
            store,
            state,
            _location: location,
            role: scope.role,
            binding: scope.binding.clone(),
            key_id: scope.key_id,
            grant: scope.grant,
            staged: RefCell::new(None),
        })
    }

    /// The column family that holds the tenant's records now. Read at each use, so that after a
    /// tier move's switch a handle reads the new copy, which is the old one and every write since;
    /// a write reads it under the tenant's write lock, which the switch holds.
    pub(crate) fn cf(&self) -> Result<Family<'s>> {
        self.state.family(&self.store.db)
    }

    /// Stages the access event of the operation about to run, with this handle's API key id, the
    /// key generation and the policy version in force filled in (and its values hashed now). If the
    /// operation commits a write through this handle, the event is written in the same atomic batch
    /// as the write, with the outcome `ok`: no committed change lacks its event, and no event claims
    /// a change that did not commit. Otherwise [`TenantHandle::finish_audit`] writes it with the
    /// operation's outcome.
    pub fn stage_audit(&self, event: AccessEvent<'_>) {
        let key_id = self.key_id.map(hex::encode);
        // A break-glass key's every event names its grant, so that the tenant's export shows who
        // read what under which grant.
        let note = self.grant.as_ref().map(crate::grant::break_glass_note);
        let event = AccessEvent {
            key_id: key_id.as_deref(),
            note: note.as_deref().or(event.note),
            key_generation: Some(self.write_generation()),
            policy_version: Some(self.state.policy.read().version),
            outcome: "ok",
            ..event
        };
        *self.staged.borrow_mut() = Some(self.store.access_record(self.state.uid, &event));
    }

    /// Writes the staged event with `outcome`, unless a committed write already carried it (then
    /// nothing is left to write). A no-op without a staged event.
    pub fn finish_audit(&self, outcome: &str) -> Result<()> {
        let Some(mut record) = self.staged.borrow_mut().take() else { return Ok(()) };
        record.outcome = outcome.to_owned();
        self.store.audit_access_record(self.state.uid, record)
    }

    /// Whom this handle's searches run for (from the scope's credential).
    pub fn binding(&self) -> &KeyBinding {
        &self.binding
    }

    /// The tenant's policy in force.
    pub fn policy(&self) -> Arc<VersionedPolicy> {
        Arc::clone(&self.state.policy.read())
    }

    /// The tenant's opaque uid.
    pub fn tenant_uid(&self) -> TenantUid {
        self.state.uid
    }

    /// Whether the scope's key is a break-glass key (`grant.rs`): its every access is audited,
    /// whatever the database's access-audit setting.
    pub fn is_break_glass(&self) -> bool {
        self.grant.is_some()
    }

    /// The scope's API key id in hex (`None`: a trusted host's scope).
    pub(crate) fn key_id_hex(&self) -> Option<String> {
        self.key_id.map(hex::encode)
    }

    /// The scope's break-glass grant id in hex, if its key has one.
    pub(crate) fn grant_hex(&self) -> Option<String> {
        self.grant.map(hex::encode)
    }

    /// The role of the scope this handle was opened with.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The data-key generation new writes are sealed with.
    pub fn write_generation(&self) -> u32 {
        self.state.cipher.read().write_generation()
    }

    /// Values sealed so far under the write generation (a persisted upper bound after a restart).
    pub fn encryptions(&self) -> u64 {
        self.state.cipher.read().encryptions()
    }

    /// Refuses an operation above the scope's role (by the one table, [`Operation::required_role`]).
    fn require(&self, operation: Operation) -> Result<()> {
        if self.role < operation.required_role() {
            return Err(StorageError::PermissionDenied { operation: operation.verb() });
        }
        Ok(())
    }

    fn seal(&self, purpose: Purpose, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
        self.state.seal(purpose, key, value)
    }

    fn open(&self, purpose: Purpose, key: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.state.open(purpose, key, sealed)
    }

    fn collection_tag(&self, name: &CollectionName) -> RecordTag {
        self.state.collection_tag(name)
    }

    fn doc_tag(&self, collection: u32, id: &DocId) -> RecordTag {
        layout::doc_tag(&self.state.cipher.read(), collection, id)
    }

    pub(crate) fn check_owner(&self, collection: &CollectionInfo) -> Result<()> {
        if collection.tenant != self.state.uid {
            return Err(StorageError::NotFound { what: "collection" });
        }
        Ok(())
    }

    fn reserve(&self, write: &WriteState, upcoming: u64, batch: &mut Batch) -> Result<u64> {
        self.state.reserve(&self.store.db, write, upcoming, batch)
    }

    /// Looks a collection up again under the write lock (in the tenant's map of collections, see
    /// [`TenantState::collections`]) and checks that the caller's `CollectionInfo` still names it: a
    /// stale copy (dropped, or dropped and recreated) or an edited one is refused, and writes are
    /// validated against the stored configuration, not the copy.
    fn current_collection(&self, collection: &CollectionInfo) -> Result<CollectionInfo> {
        self.check_owner(collection)?;
        let current = self.collection(&collection.name)?;
        if current.number != collection.number {
            return Err(StorageError::NotFound { what: "collection" });
        }
        Ok(current)
    }

    /// Commits a write batch, with the staged access event in it if there is one (see
    /// [`TenantHandle::stage_audit`]).
    fn commit(&self, mut batch: Batch) -> Result<()> {
        // The caller holds the tenant's write lock, under which a deletion sets this.
        if self.state.deleted.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StorageError::NotFound { what: "tenant" });
        }
        let staged = self.staged.borrow_mut().take();
        let pending = match staged {
            Some(record) => Some(self.store.audit_record_into(&mut batch, &self.state.uid, record)?),
            None => None,
        };
        self.store.data_write(batch)?;
        if let Some(pending) = pending {
            pending.committed();
        }
        Ok(())
    }

    /// Creates a collection. Refused with [`StorageError::QuotaExceeded`] when the tenant has its
    /// `max_collections` already ([`TenantHandle::quotas`]). Needs the tenant-admin role.
    pub fn create_collection(
        &self,
        name: &CollectionName,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo> {
        self.require(Operation::CreateCollection)?;
        if dimension == 0 || dimension > limits::MAX_DIMENSION {
            return Err(StorageError::InvalidArgument {
                field: "dimension",
                reason: format!("must be 1 to {}", limits::MAX_DIMENSION),
            });
        }
        let mut write = self.state.write.lock();
        let key = self.state.keys.collection(&self.collection_tag(name));
        if self.store.db.get(&self.cf()?, &key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "collection" });
        }
        let existing = self.list_collections()?.len();
        let limit = u64::from(self.quotas().max_collections);
        quota::check("max_collections", existing as u64, existing as u64 + 1, limit)?;
        // The tenant's quota is at most this (policies and defaults are checked against it when
        // set); kept as the last word.
        if existing >= limits::MAX_COLLECTIONS_PER_TENANT {
            return Err(StorageError::InvalidArgument {
                field: "collection",
                reason: format!(
                    "a tenant may have at most {} collections",
                    limits::MAX_COLLECTIONS_PER_TENANT
                ),
            });
        }
        let number = write.next_collection;
        // Numbers are never reused (a dropped collection's records could otherwise meet a new one's
        // key range): past the last, creation is refused rather than wrapping to 0.
        let next = number.checked_add(1).ok_or_else(|| StorageError::InvalidArgument {
            field: "collection",
            reason: "this tenant has used every collection number; create a new tenant".into(),
        })?;
        let record = CollectionRecord {
            name: name.as_str().to_owned(),
            number,
            dimension: dimension as u32,
            metric,
            created_ms: self.store.now_ms(),
        };
        let mut batch = Batch::default();
        let reserved = self.reserve(&write, 1, &mut batch)?;
        batch.put(&self.cf()?, &key, self.seal(Purpose::Payloads, &key, &layout::encode(&record))?);
        batch.put(&self.cf()?, self.state.keys.singleton(Kind::NextCollection), next.to_be_bytes());
        self.commit(batch)?;
        write.next_collection = next;
        write.reserved_encryptions = reserved;
        let info = self.state.collection_info(record)?;
        self.state.collections.write().insert(name.clone(), info.clone());
        Ok(info)
    }

    /// Looks a collection up by name.
    pub fn collection(&self, name: &CollectionName) -> Result<CollectionInfo> {
        self.state
            .collection(&self.store.db, &self.cf()?, name)?
            .ok_or(StorageError::NotFound { what: "collection" })
    }

    /// Lists the tenant's collections.
    pub fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let (start, end) = self.state.keys.kind_range(Kind::Collection);
        let mut out = Vec::new();
        let cf = self.cf()?;
        for item in self.store.db.entries(&cf, Keys::Range(start, end)) {
            let (key, sealed) = item?;
            let record: CollectionRecord =
                layout::decode(&self.open(Purpose::Payloads, &key, &sealed)?, "collection")?;
            out.push(self.state.collection_info(record)?);
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    /// Drops a collection and every point in it; its points and stored bytes are released from the
    /// tenant's usage in the same batch. Needs the tenant-admin role.
    pub fn drop_collection(&self, collection: &CollectionInfo) -> Result<()> {
        self.require(Operation::DropCollection)?;
        let mut write = self.state.write.lock();
        let collection = &self.current_collection(collection)?;
        let usage = self.usage_locked(&write)?;
        let dropped = self.collection_usage_locked(&usage, collection.number)?;
        let after = UsageRecord {
            points: usage.total.points.saturating_sub(dropped.points),
            bytes: usage.total.bytes.saturating_sub(dropped.bytes),
        };
        let key = self.state.keys.collection(&self.collection_tag(&collection.name));
        let mut batch = Batch::default();
        batch.delete(&self.cf()?, &key);
        for kind in [Kind::Payload, Kind::Vector, Kind::IndexChunk, Kind::IndexHead] {
            let (start, end) = self.state.keys.point_range(kind, collection.number);
            batch.delete_range(&self.cf()?, start, end);
        }
        batch.delete(&self.cf()?, self.state.keys.count(collection.number));
        let usage = usage.stage(self, &mut batch, after, collection.number, None)?;
        self.commit(batch)?;
        write.usage = Some(usage);
        self.state.collections.write().remove(&collection.name);
        Ok(())
    }
}
