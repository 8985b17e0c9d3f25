//! A tenant's data handle: collections and points, sealed under the tenant's keys, written atomically.

use crate::audit::AccessEvent;
use crate::error::{Result, StorageError};
use crate::ids::{CollectionName, DocId, TenantUid, limits};
use crate::layout::{self, CollectionRecord, Kind, PointPayloadRecord, SYS_CF, TenantKeys};
use crate::model::{CollectionInfo, Metric, NewPoint, PointPayload, PointRef, StoredPoint};
use crate::operation::Operation;
use crate::scope::{KeyBinding, Role, TenantScope};
use crate::store::{ENCRYPTION_RESERVATION, Store, now_ms};
use bulkhead_crypto::{OwnerCipher, Purpose, RecordTag, SealContext};
use parking_lot::Mutex;
use rocksdb::{BoundColumnFamily, DB, IteratorMode, ReadOptions, WriteBatch};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One raw (key, sealed value) pair read from RocksDB.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// Counters that only the tenant's writer changes, under its lock.
pub(crate) struct WriteState {
    pub(crate) sequence: u64,
    next_collection: u32,
    pub(crate) reserved_encryptions: u64,
}

/// A loaded tenant: its keys and write state. Shared by every handle of the tenant.
pub(crate) struct TenantState {
    pub(crate) uid: TenantUid,
    pub(crate) cf_name: String,
    pub(crate) keys: TenantKeys,
    /// Swapped (under the tenant's write lock) when a key rotation starts and when it finishes.
    pub(crate) cipher: parking_lot::RwLock<OwnerCipher>,
    pub(crate) write: Mutex<WriteState>,
    /// The policy in force; replaced by [`Store::set_policy`].
    pub(crate) policy: parking_lot::RwLock<Arc<crate::policy::VersionedPolicy>>,
}

impl TenantState {
    pub(crate) fn load(
        db: &DB,
        uid: TenantUid,
        cf_name: String,
        cipher: OwnerCipher,
        reserved: u64,
        policy: crate::policy::VersionedPolicy,
    ) -> Result<TenantState> {
        let keys = TenantKeys::new(&uid);
        let cf = db.cf_handle(&cf_name).ok_or(StorageError::NotFound { what: "tenant" })?;
        let sequence = match db.get_cf(&cf, keys.singleton(Kind::Sequence))? {
            Some(v) => layout::be_u64(&v)?,
            None => 0,
        };
        let next_collection = match db.get_cf(&cf, keys.singleton(Kind::NextCollection))? {
            Some(v) => layout::be_u32(&v)?,
            None => 1,
        };
        drop(cf);
        Ok(TenantState {
            uid,
            cf_name,
            keys,
            cipher: parking_lot::RwLock::new(cipher),
            write: Mutex::new(WriteState { sequence, next_collection, reserved_encryptions: reserved }),
            policy: parking_lot::RwLock::new(Arc::new(policy)),
        })
    }

    pub(crate) fn seal(&self, purpose: Purpose, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.read().seal(purpose, ctx, value)?)
    }

    pub(crate) fn open(
        &self,
        purpose: Purpose,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.read().open(purpose, ctx, sealed)?)
    }

    /// Adds the encryption-count reservation to `batch` if sealing `upcoming` more values would pass
    /// the persisted upper bound, and returns the reservation the batch leaves in force. Called under
    /// the write lock, before sealing; the caller stores the returned value in `WriteState` only once
    /// the batch has committed, so a failed write can never leave memory ahead of disk.
    pub(crate) fn reserve(
        &self,
        db: &DB,
        write: &WriteState,
        upcoming: u64,
        batch: &mut WriteBatch,
    ) -> Result<u64> {
        let needed = self.cipher.read().encryptions() + upcoming;
        if needed <= write.reserved_encryptions {
            return Ok(write.reserved_encryptions);
        }
        let reserved = needed + ENCRYPTION_RESERVATION;
        let sys = db.cf_handle(SYS_CF).ok_or(StorageError::Codec("missing system column family"))?;
        let cipher = self.cipher.read();
        let key = layout::encryption_count_key(self.uid.as_bytes(), cipher.write_generation());
        batch.put_cf(&sys, &key, layout::control_value(&cipher, &key, &reserved.to_be_bytes()));
        Ok(reserved)
    }

    pub(crate) fn collection_tag(&self, name: &CollectionName) -> RecordTag {
        self.cipher.read().tag(b"collection", name.as_str().as_bytes())
    }

    /// Reads a collection's stored record by name.
    pub(crate) fn collection_record(
        &self,
        db: &DB,
        cf: &Arc<BoundColumnFamily<'_>>,
        name: &CollectionName,
    ) -> Result<Option<CollectionRecord>> {
        let key = self.keys.collection(&self.collection_tag(name));
        let Some(sealed) = db.get_pinned_cf(cf, &key)? else { return Ok(None) };
        Ok(Some(layout::decode(&self.open(Purpose::Payloads, &key, &sealed)?, "collection")?))
    }
}

/// The data of one tenant, reached through a scope: every method stays inside this tenant.
pub struct TenantHandle<'s> {
    pub(crate) store: &'s Store,
    pub(crate) state: Arc<TenantState>,
    pub(crate) cf: Arc<BoundColumnFamily<'s>>,
    role: Role,
    binding: KeyBinding,
    key_id: Option<[u8; 16]>,
    /// The access event of the operation under way ([`TenantHandle::stage_audit`]), until a write
    /// commits it in its own batch or [`TenantHandle::finish_audit`] writes it.
    staged: std::cell::RefCell<Option<crate::audit::RecordV2>>,
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
        let cf = store.db.cf_handle(&state.cf_name).ok_or(StorageError::NotFound { what: "tenant" })?;
        Ok(TenantHandle {
            store,
            state,
            cf,
            role: scope.role,
            binding: scope.binding.clone(),
            key_id: scope.key_id,
            staged: std::cell::RefCell::new(None),
        })
    }

    /// Stages the access event of the operation about to run, with this handle's API key id, the
    /// key generation and the policy version in force filled in (and its values hashed now). If the
    /// operation commits a write through this handle, the event is written in the same atomic batch
    /// as the write, with the outcome `ok`: no committed change lacks its event, and no event claims
    /// a change that did not commit. Otherwise [`TenantHandle::finish_audit`] writes it with the
    /// operation's outcome.
    pub fn stage_audit(&self, event: AccessEvent<'_>) {
        let key_id = self.key_id.map(hex::encode);
        let event = AccessEvent {
            key_id: key_id.as_deref(),
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
    pub fn policy(&self) -> Arc<crate::policy::VersionedPolicy> {
        Arc::clone(&self.state.policy.read())
    }

    /// The tenant's opaque uid.
    pub fn tenant_uid(&self) -> TenantUid {
        self.state.uid
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
        let mut value = collection.to_be_bytes().to_vec();
        value.extend_from_slice(id.as_str().as_bytes());
        self.state.cipher.read().tag(b"doc", &value)
    }

    pub(crate) fn check_owner(&self, collection: &CollectionInfo) -> Result<()> {
        if collection.tenant != self.state.uid {
            return Err(StorageError::NotFound { what: "collection" });
        }
        Ok(())
    }

    fn reserve(&self, write: &WriteState, upcoming: u64, batch: &mut WriteBatch) -> Result<u64> {
        self.state.reserve(&self.store.db, write, upcoming, batch)
    }

    /// Re-reads a collection's record under the write lock and checks that the caller's
    /// `CollectionInfo` still names it: a stale copy (dropped, or dropped and recreated) or an edited
    /// one is refused, and writes are validated against the stored configuration, not the copy.
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
    fn commit(&self, mut batch: WriteBatch) -> Result<()> {
        let staged = self.staged.borrow_mut().take();
        let slot = match staged {
            Some(record) => Some(self.store.audit_record_into(&mut batch, &self.state.uid, record)?),
            None => None,
        };
        self.store.db.write_opt(batch, &self.store.data_write)?;
        if let Some(slot) = slot {
            slot.committed();
        }
        Ok(())
    }

    // ---- Collections ----

    /// Creates a collection. Needs the tenant-admin role.
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
        if self.store.db.get_cf(&self.cf, &key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "collection" });
        }
        if self.list_collections()?.len() >= limits::MAX_COLLECTIONS_PER_TENANT {
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
            created_ms: now_ms(),
        };
        let mut batch = WriteBatch::default();
        let reserved = self.reserve(&write, 1, &mut batch)?;
        batch.put_cf(&self.cf, &key, self.seal(Purpose::Payloads, &key, &layout::encode(&record))?);
        batch.put_cf(&self.cf, self.state.keys.singleton(Kind::NextCollection), next.to_be_bytes());
        self.commit(batch)?;
        write.next_collection = next;
        write.reserved_encryptions = reserved;
        self.collection_info(record)
    }

    fn collection_info(&self, record: CollectionRecord) -> Result<CollectionInfo> {
        Ok(CollectionInfo {
            tenant: self.state.uid,
            number: record.number,
            // Names were validated when the collection was created; a stored name that no longer
            // passes (rules tightened since) is reported, not a panic.
            name: CollectionName::new(record.name).map_err(|_| StorageError::Codec("collection name"))?,
            dimension: record.dimension as usize,
            metric: record.metric,
            created_ms: record.created_ms,
        })
    }

    /// Looks a collection up by name.
    pub fn collection(&self, name: &CollectionName) -> Result<CollectionInfo> {
        let record = self
            .state
            .collection_record(&self.store.db, &self.cf, name)?
            .ok_or(StorageError::NotFound { what: "collection" })?;
        self.collection_info(record)
    }

    /// Lists the tenant's collections.
    pub fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let (start, end) = self.state.keys.kind_range(Kind::Collection);
        let mut out = Vec::new();
        for item in self.range(start, end) {
            let (key, sealed) = item?;
            let record: CollectionRecord =
                layout::decode(&self.open(Purpose::Payloads, &key, &sealed)?, "collection")?;
            out.push(self.collection_info(record)?);
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    /// Drops a collection and every point in it. Needs the tenant-admin role.
    pub fn drop_collection(&self, collection: &CollectionInfo) -> Result<()> {
        self.require(Operation::DropCollection)?;
        let _write = self.state.write.lock();
        let collection = &self.current_collection(collection)?;
        let key = self.state.keys.collection(&self.collection_tag(&collection.name));
        let mut batch = WriteBatch::default();
        batch.delete_cf(&self.cf, &key);
        for kind in [Kind::Payload, Kind::Vector, Kind::IndexChunk, Kind::IndexHead] {
            let (start, end) = self.state.keys.point_range(kind, collection.number);
            batch.delete_range_cf(&self.cf, start, end);
        }
        batch.delete_cf(&self.cf, self.state.keys.count(collection.number));
        self.commit(batch)
    }

    fn range(&self, start: Vec<u8>, end: Vec<u8>) -> impl Iterator<Item = Result<RawEntry>> + '_ {
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(start..end);
        self.store
            .db
            .iterator_cf_opt(&self.cf, ro, IteratorMode::Start)
            .map(|r| r.map_err(StorageError::from))
    }

    // ---- Points ----

    /// Inserts or replaces points. All or nothing: the points, the collection's count, the tenant's
    /// write sequence and the encryption-count reservation go in one atomic write batch. Returns the
    /// reference and version (write sequence) of each point, in input order. Needs the writer role.
    pub fn upsert(&self, collection: &CollectionInfo, points: &[NewPoint]) -> Result<Vec<(PointRef, u64)>> {
        self.require(Operation::Upsert)?;
        self.check_owner(collection)?;
        if points.is_empty() || points.len() > limits::MAX_BATCH_POINTS {
            return Err(StorageError::InvalidArgument {
                field: "points",
                reason: format!("a batch holds 1 to {} points", limits::MAX_BATCH_POINTS),
            });
        }
        let mut write = self.state.write.lock();
        let collection = &self.current_collection(collection)?;
        let mut batch_bytes = 0usize;
        for point in points {
            batch_bytes += point.validate(collection)?;
        }
        if batch_bytes > limits::MAX_BATCH_BYTES {
            return Err(StorageError::InvalidArgument {
                field: "points",
                reason: format!("a batch carries at most {} bytes", limits::MAX_BATCH_BYTES),
            });
        }
        let mut batch = WriteBatch::default();
        let reserved = self.reserve(&write, 2 * points.len() as u64, &mut batch)?;
        let mut count = self.count_locked(collection)?;
        let mut seen: HashMap<RecordTag, ()> = HashMap::new();
        let mut versions = Vec::with_capacity(points.len());
        let mut sequence = write.sequence;
        for point in points {
            let tag = self.doc_tag(collection.number, &point.id);
            let vkey = self.state.keys.point(Kind::Vector, collection.number, &tag);
            let pkey = self.state.keys.point(Kind::Payload, collection.number, &tag);
            let new_in_batch = seen.insert(tag, ()).is_none();
            if new_in_batch && self.store.db.get_pinned_cf(&self.cf, &vkey)?.is_none() {
                count += 1;
            }
            sequence += 1;
            let payload = PointPayloadRecord {
                id: point.id.as_str().to_owned(),
                text: point.text.clone(),
                metadata: point.metadata.clone(),
                source_uri: point.source_uri.clone(),
                acl: point.acl.clone(),
                version: sequence,
            };
            let encoded = zeroize::Zeroizing::new(layout::encode(&payload));
            batch.put_cf(&self.cf, &pkey, self.seal(Purpose::Payloads, &pkey, &encoded)?);
            let vector = zeroize::Zeroizing::new(layout::encode_vector(&point.vector));
            batch.put_cf(&self.cf, &vkey, self.seal(Purpose::Vectors, &vkey, &vector)?);
            versions.push((PointRef(tag), sequence));
        }
        batch.put_cf(&self.cf, self.state.keys.count(collection.number), count.to_be_bytes());
        batch.put_cf(&self.cf, self.state.keys.singleton(Kind::Sequence), sequence.to_be_bytes());
        self.commit(batch)?;
        write.sequence = sequence;
        write.reserved_encryptions = reserved;
        Ok(versions)
    }

    /// Deletes points by id; ids that do not exist are ignored. Returns the references of the points
    /// that existed. Needs the writer role.
    pub fn delete(&self, collection: &CollectionInfo, ids: &[DocId]) -> Result<Vec<PointRef>> {
        self.require(Operation::Delete)?;
        if ids.is_empty() || ids.len() > limits::MAX_BATCH_POINTS {
            return Err(StorageError::InvalidArgument {
                field: "ids",
                reason: format!("a batch holds 1 to {} ids", limits::MAX_BATCH_POINTS),
            });
        }
        let mut write = self.state.write.lock();
        let collection = &self.current_collection(collection)?;
        let mut batch = WriteBatch::default();
        let mut count = self.count_locked(collection)?;
        let mut removed = Vec::new();
        let mut seen: HashMap<RecordTag, ()> = HashMap::new();
        for id in ids {
            let tag = self.doc_tag(collection.number, id);
            if seen.insert(tag, ()).is_some() {
                continue;
            }
            let vkey = self.state.keys.point(Kind::Vector, collection.number, &tag);
            if self.store.db.get_pinned_cf(&self.cf, &vkey)?.is_some() {
                removed.push(PointRef(tag));
                count = count.saturating_sub(1);
                batch.delete_cf(&self.cf, &vkey);
                batch.delete_cf(&self.cf, self.state.keys.point(Kind::Payload, collection.number, &tag));
            }
        }
        if !removed.is_empty() {
            let sequence = write.sequence + 1;
            batch.put_cf(&self.cf, self.state.keys.count(collection.number), count.to_be_bytes());
            batch.put_cf(&self.cf, self.state.keys.singleton(Kind::Sequence), sequence.to_be_bytes());
            self.commit(batch)?;
            write.sequence = sequence;
        }
        Ok(removed)
    }

    fn count_locked(&self, collection: &CollectionInfo) -> Result<u64> {
        match self.store.db.get_cf(&self.cf, self.state.keys.count(collection.number))? {
            Some(v) => layout::be_u64(&v),
            None => Ok(0),
        }
    }

    /// The number of points in a collection.
    pub fn count(&self, collection: &CollectionInfo) -> Result<u64> {
        self.check_owner(collection)?;
        self.count_locked(collection)
    }

    /// The tenant's last write sequence number: it moves on every write.
    pub fn write_sequence(&self) -> u64 {
        self.state.write.lock().sequence
    }

    /// Reads one point by id.
    pub fn get(&self, collection: &CollectionInfo, id: &DocId) -> Result<Option<StoredPoint>> {
        self.check_owner(collection)?;
        self.get_by_ref(collection, &PointRef(self.doc_tag(collection.number, id)))
    }

    /// A fingerprint of an ACL under the tenant's naming key: the same for equal ACLs (users and
    /// groups compared as sets) of this tenant, unrelated across tenants.
    pub fn acl_fingerprint(&self, acl: &crate::Acl) -> [u8; 16] {
        let canonical = match acl {
            crate::Acl::TenantWide => Vec::new(),
            crate::Acl::Restricted { users, groups } => {
                let mut users: Vec<&String> = users.iter().collect();
                let mut groups: Vec<&String> = groups.iter().collect();
                users.sort_unstable();
                users.dedup();
                groups.sort_unstable();
                groups.dedup();
                layout::encode(&(true, users, groups))
            }
        };
        let tag = self.state.cipher.read().tag(b"acl", &canonical);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.0[..16]);
        out
    }

    /// The reference of a document id in a collection (whether or not the point exists).
    pub fn point_ref(&self, collection: &CollectionInfo, id: &DocId) -> Result<PointRef> {
        self.check_owner(collection)?;
        Ok(PointRef(self.doc_tag(collection.number, id)))
    }

    /// Reads one point by the reference a scan returned.
    pub fn get_by_ref(&self, collection: &CollectionInfo, point: &PointRef) -> Result<Option<StoredPoint>> {
        let Some(payload) = self.get_payload_by_ref(collection, point)? else { return Ok(None) };
        let vkey = self.state.keys.point(Kind::Vector, collection.number, &point.0);
        let Some(sealed_vector) = self.store.db.get_pinned_cf(&self.cf, &vkey)? else { return Ok(None) };
        let vector = layout::decode_vector(&self.open(Purpose::Vectors, &vkey, &sealed_vector)?)?;
        Ok(Some(StoredPoint { payload, vector }))
    }

    /// Reads everything about a point but its vector: what a search hit returns, at one read and one
    /// decryption instead of two.
    pub fn get_payload_by_ref(
        &self,
        collection: &CollectionInfo,
        point: &PointRef,
    ) -> Result<Option<PointPayload>> {
        self.check_owner(collection)?;
        let pkey = self.state.keys.point(Kind::Payload, collection.number, &point.0);
        let Some(sealed_payload) = self.store.db.get_pinned_cf(&self.cf, &pkey)? else { return Ok(None) };
        Ok(Some(self.open_payload(&pkey, &sealed_payload)?))
    }

    fn open_payload(&self, key: &[u8], sealed: &[u8]) -> Result<PointPayload> {
        let payload: PointPayloadRecord =
            layout::decode(&self.open(Purpose::Payloads, key, sealed)?, "point")?;
        let key_generation = OwnerCipher::sealed_generation(sealed).ok_or(StorageError::Integrity)?;
        Ok(PointPayload {
            id: DocId::new(payload.id)?,
            text: payload.text,
            metadata: payload.metadata,
            source_uri: payload.source_uri,
            acl: payload.acl,
            version: payload.version,
            key_generation,
        })
    }

    /// Visits every point's payload with its reference (what the attribute index is rebuilt from).
    /// Fails on the first value that does not authenticate.
    pub fn scan_payloads(
        &self,
        collection: &CollectionInfo,
        mut visit: impl FnMut(PointRef, PointPayload),
    ) -> Result<()> {
        self.check_owner(collection)?;
        let (start, end) = self.state.keys.point_range(Kind::Payload, collection.number);
        for item in self.range(start, end) {
            let (key, sealed) = item?;
            let tag = TenantKeys::tag_of_point_key(&key).ok_or(StorageError::Codec("point key"))?;
            visit(PointRef(tag), self.open_payload(&key, &sealed)?);
        }
        Ok(())
    }

    /// Visits every vector of a collection with its point reference (the exact scan's and the index
    /// builder's input). Fails on the first value that does not authenticate.
    pub fn scan_vectors(
        &self,
        collection: &CollectionInfo,
        mut visit: impl FnMut(PointRef, &[f32]),
    ) -> Result<()> {
        self.check_owner(collection)?;
        let (start, end) = self.state.keys.point_range(Kind::Vector, collection.number);
        for item in self.range(start, end) {
            let (key, sealed) = item?;
            let tag = TenantKeys::tag_of_point_key(&key).ok_or(StorageError::Codec("point key"))?;
            let vector = layout::decode_vector(&self.open(Purpose::Vectors, &key, &sealed)?)?;
            visit(PointRef(tag), &vector);
        }
        Ok(())
    }
}
