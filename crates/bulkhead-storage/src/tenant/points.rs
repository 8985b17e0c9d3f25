//! The points of a tenant's collections: upserts and deletes (each one atomic batch), reads by id
//! or reference, and the scans the search state is built from.

use super::TenantHandle;
use crate::engine::{Batch, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{DocId, limits};
use crate::layout::{self, Kind, PointPayloadRecord, TenantKeys, UsageRecord};
use crate::model::{Acl, CollectionInfo, NewPoint, PointPayload, PointRef, StoredPoint};
use crate::operation::Operation;
use crate::quota;
use bulkhead_crypto::{OwnerCipher, Purpose, RecordTag};
use std::collections::HashMap;

impl TenantHandle<'_> {
    /// Inserts or replaces points. All or nothing: the points, the collection's count, the tenant's
    /// usage counters, its write sequence and the encryption-count reservation go in one atomic
    /// write batch. A batch that would take the tenant past its `max_vectors` or `max_stored_bytes`
    /// quota ([`TenantHandle::quotas`]) is refused with [`StorageError::QuotaExceeded`] before
    /// anything is sealed or written; a replacement is charged the difference between the new
    /// point's stored bytes and the old one's. Returns the reference and version (write sequence) of
    /// each point, in input order. Needs the writer role.
    pub fn upsert(&self, collection: &CollectionInfo, points: &[NewPoint]) -> Result<Vec<(PointRef, u64)>> {
        self.require(Operation::Upsert)?;
        self.check_owner(collection)?;
        check_batch_len("points", points.len())?;
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
        // What each point's records hold as the batch leaves them (from the stored records at its
        // first occurrence), so that an id repeated in the batch is counted once and charged for
        // its last version only.
        let mut stored: HashMap<RecordTag, StoredSize> = HashMap::new();
        let (mut added, mut charged, mut released) = (0u64, 0u64, 0u64);
        let mut staged = Vec::with_capacity(points.len());
        let mut sequence = write.sequence;
        for point in points {
            let tag = self.doc_tag(collection.number, &point.id);
            let vkey = self.state.keys.point(Kind::Vector, collection.number, &tag);
            let pkey = self.state.keys.point(Kind::Payload, collection.number, &tag);
            let before = match stored.get(&tag) {
                Some(size) => *size,
                None => self.stored_size(&pkey, &vkey)?,
            };
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
            let vector = zeroize::Zeroizing::new(layout::encode_vector(&point.vector));
            // What the recount reads back from the sealed records' lengths (`layout::stored_bytes`).
            let bytes = (encoded.len() + vector.len()) as u64;
            added += u64::from(!before.exists);
            released += before.bytes;
            charged += bytes;
            stored.insert(tag, StoredSize { exists: true, bytes });
            staged.push((tag, sequence, pkey, encoded, vkey, vector));
        }
        let usage = self.usage_locked(&write)?;
        let before = usage.total;
        let after = UsageRecord {
            points: before.points + added,
            bytes: before.bytes.saturating_add(charged).saturating_sub(released),
        };
        let quotas = self.quotas();
        quota::check("max_vectors", before.points, after.points, quotas.max_vectors)?;
        quota::check("max_stored_bytes", before.bytes, after.bytes, quotas.max_stored_bytes)?;
        let collection_bytes = self
            .collection_usage_locked(&usage, collection.number)?
            .bytes
            .saturating_add(charged)
            .saturating_sub(released);
        let count = self.count_locked(collection)? + added;

        let mut batch = Batch::default();
        let reserved = self.reserve(&write, 2 * points.len() as u64, &mut batch)?;
        let mut versions = Vec::with_capacity(points.len());
        for (tag, version, pkey, encoded, vkey, vector) in staged {
            batch.put(&self.cf()?, &pkey, self.seal(Purpose::Payloads, &pkey, &encoded)?);
            batch.put(&self.cf()?, &vkey, self.seal(Purpose::Vectors, &vkey, &vector)?);
            versions.push((PointRef(tag), version));
        }
        batch.put(&self.cf()?, self.state.keys.count(collection.number), count.to_be_bytes());
        batch.put(&self.cf()?, self.state.keys.singleton(Kind::Sequence), sequence.to_be_bytes());
        let usage = usage.stage(self, &mut batch, after, collection.number, Some(collection_bytes))?;
        self.commit(batch)?;
        write.sequence = sequence;
        write.reserved_encryptions = reserved;
        write.usage = Some(usage);
        Ok(versions)
    }

    /// Deletes points by id; ids that do not exist are ignored. Returns the references of the points
    /// that existed. Their points and stored bytes are released from the tenant's usage in the same
    /// batch; a delete is never refused for a quota. Needs the writer role.
    pub fn delete(&self, collection: &CollectionInfo, ids: &[DocId]) -> Result<Vec<PointRef>> {
        self.require(Operation::Delete)?;
        check_batch_len("ids", ids.len())?;
        let mut write = self.state.write.lock();
        let collection = &self.current_collection(collection)?;
        let mut batch = Batch::default();
        let mut removed = Vec::new();
        let mut released = 0u64;
        let mut seen: HashMap<RecordTag, ()> = HashMap::new();
        for id in ids {
            let tag = self.doc_tag(collection.number, id);
            if seen.insert(tag, ()).is_some() {
                continue;
            }
            let vkey = self.state.keys.point(Kind::Vector, collection.number, &tag);
            let pkey = self.state.keys.point(Kind::Payload, collection.number, &tag);
            let size = self.stored_size(&pkey, &vkey)?;
            if size.exists {
                removed.push(PointRef(tag));
                released += size.bytes;
                batch.delete(&self.cf()?, &vkey);
                batch.delete(&self.cf()?, &pkey);
            }
        }
        if !removed.is_empty() {
            let gone = removed.len() as u64;
            let count = self.count_locked(collection)?.saturating_sub(gone);
            let usage = self.usage_locked(&write)?;
            let after = UsageRecord {
                points: usage.total.points.saturating_sub(gone),
                bytes: usage.total.bytes.saturating_sub(released),
            };
            let collection_bytes =
                self.collection_usage_locked(&usage, collection.number)?.bytes.saturating_sub(released);
            let sequence = write.sequence + 1;
            batch.put(&self.cf()?, self.state.keys.count(collection.number), count.to_be_bytes());
            batch.put(&self.cf()?, self.state.keys.singleton(Kind::Sequence), sequence.to_be_bytes());
            let usage = usage.stage(self, &mut batch, after, collection.number, Some(collection_bytes))?;
            self.commit(batch)?;
            write.sequence = sequence;
            write.usage = Some(usage);
        }
        Ok(removed)
    }

    /// Whether a point exists (its vector record does) and the stored bytes of its records
    /// ([`layout::stored_bytes`]), from their lengths; nothing is opened.
    fn stored_size(&self, pkey: &[u8], vkey: &[u8]) -> Result<StoredSize> {
        let mut size = StoredSize { exists: false, bytes: 0 };
        if let Some(sealed) = self.store.db.get_pinned(&self.cf()?, vkey)? {
            size.exists = true;
            size.bytes += layout::stored_bytes(&sealed)?;
        }
        if let Some(sealed) = self.store.db.get_pinned(&self.cf()?, pkey)? {
            size.bytes += layout::stored_bytes(&sealed)?;
        }
        Ok(size)
    }

    fn count_locked(&self, collection: &CollectionInfo) -> Result<u64> {
        match self.store.db.get(&self.cf()?, self.state.keys.count(collection.number))? {
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
    pub fn acl_fingerprint(&self, acl: &Acl) -> [u8; 16] {
        let canonical = match acl {
            Acl::TenantWide => Vec::new(),
            Acl::Restricted { users, groups } => {
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
        let cf = self.cf()?;
        let Some(sealed_vector) = self.store.db.get_pinned(&cf, &vkey)? else { return Ok(None) };
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
        let cf = self.cf()?;
        let Some(sealed_payload) = self.store.db.get_pinned(&cf, &pkey)? else { return Ok(None) };
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
        self.scan_records(collection, Kind::Payload, |point, key, sealed| {
            visit(point, self.open_payload(key, sealed)?);
            Ok(())
        })
    }

    /// Visits every vector of a collection with its point reference (the exact scan's and the index
    /// builder's input). Fails on the first value that does not authenticate.
    pub fn scan_vectors(
        &self,
        collection: &CollectionInfo,
        mut visit: impl FnMut(PointRef, &[f32]),
    ) -> Result<()> {
        self.scan_records(collection, Kind::Vector, |point, key, sealed| {
            let vector = layout::decode_vector(&self.open(Purpose::Vectors, key, sealed)?)?;
            visit(point, &vector);
            Ok(())
        })
    }

    /// Calls `visit` with the reference, key and sealed value of every record of `kind` in the
    /// collection, in key order, until it fails.
    fn scan_records(
        &self,
        collection: &CollectionInfo,
        kind: Kind,
        mut visit: impl FnMut(PointRef, &[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_owner(collection)?;
        let (start, end) = self.state.keys.point_range(kind, collection.number);
        let cf = self.cf()?;
        for item in self.store.db.scan(&cf, Keys::Range(start, end)) {
            let (key, sealed) = item?;
            let tag = TenantKeys::tag_of_point_key(&key).ok_or(StorageError::Codec("point key"))?;
            visit(PointRef(tag), &key, &sealed)?;
        }
        Ok(())
    }
}

/// What a point's records hold: whether it exists (its vector record does) and their stored bytes.
#[derive(Clone, Copy)]
struct StoredSize {
    exists: bool,
    bytes: u64,
}

/// Refuses a batch of `len` points or ids (named by `field`) outside 1 to `MAX_BATCH_POINTS`.
fn check_batch_len(field: &'static str, len: usize) -> Result<()> {
    if len == 0 || len > limits::MAX_BATCH_POINTS {
        return Err(StorageError::InvalidArgument {
            field,
            reason: format!("a batch holds 1 to {} {field}", limits::MAX_BATCH_POINTS),
        });
    }
    Ok(())
}
