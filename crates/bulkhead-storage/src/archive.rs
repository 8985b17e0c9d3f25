//! Per-tenant backup and restore: [`Store::export_tenant`] writes one tenant, read from one RocksDB
//! snapshot, as an archive sealed under a key derived from the master key; [`Store::import_tenant`]
//! restores one, under its own name (same uid, same keys, records copied as they are) or under a new
//! name (a new uid and fresh keys, every record opened and sealed again). The layout is
//! `layout/archive.rs`; the operator's view is `docs/OPERATIONS.md`.
//!
//! An import reads the archive frame by frame (each opened before any of its entries is used) and
//! writes the records into the new tenant's column family in bounded batches; the tenant exists
//! only once the last batch, fsynced, holds its keys, its policy, its audit event and its registry
//! entry, which happens after the archive's end has been read and checked. Until then the column
//! family has no keyring entry: an import that fails drops it, and one the process did not survive
//! leaves an orphan that the next open drops (`Store::open`), or the next import of the same
//! archive under its own name.
//!
//! What an archive does not carry: API keys (their records hold an HMAC of the secret under the
//! source store's registry key, which no other store shares; new keys are issued after an import),
//! the audit trail itself (only its end, which the import's `tenant-imported` event names, so the
//! two chains link), a running key rotation (its keys come along; the rotation does not), and, in
//! an import under a new name, the index snapshots (their point references are tags under the old
//! naming key: the graphs are rebuilt from the records).

use crate::engine::{Batch, Engine, Keys};
use crate::error::{Result, StorageError};
use crate::ids::{TenantName, TenantUid};
use crate::keyring::ENCRYPTION_RESERVATION;
use crate::layout::{
    self, ARCHIVE_HEADER_LEN, ArchiveEntry, ArchiveManifest, CollectionRecord, FRAME_TARGET, Kind,
    MAX_ARCHIVE_KEYS, MAX_FRAME_PLAIN, MAX_SEALED_FRAME, Placement, PointPayloadRecord, SYS_CF, TenantKeys,
    TenantRecord,
};
use crate::registry::TenantInfo;
use crate::store::{Durability, Store, system_family};
use crate::tenant::Location;
use bulkhead_crypto::{
    ArchiveKey, DataKey, OwnerCipher, Purpose, SealContext, constant_time_eq, random_bytes,
};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// A write batch of an import is committed once its values reach this many bytes.
const IMPORT_BATCH_BYTES: usize = 4 << 20;

/// The tenants being imported into each open store (by the store's instance and the uid), so that
/// a second import of the same archive does not take the first one's column family for a leftover.
static IMPORTING: Mutex<Vec<(u64, [u8; 16])>> = Mutex::new(Vec::new());

/// How far an export or import has come, reported after each frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveProgress {
    /// Points (payload and vector) so far.
    pub points: u64,
    /// Other records so far (collections, counters, index snapshot heads and chunks).
    pub records: u64,
    /// Archive bytes written or read so far.
    pub bytes: u64,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The archive's random id, in hex (named by the `tenant-exported` audit event).
    pub archive_id: String,
    /// What it holds, and its size.
    pub progress: ArchiveProgress,
}

/// What an import restored.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The tenant as it now exists.
    pub tenant: TenantInfo,
    /// The archive's id, in hex.
    pub archive_id: String,
    /// Whether it was re-keyed (imported under a new name: new uid, fresh keys).
    pub rekeyed: bool,
    /// Index snapshot records carried (0 when re-keyed: the graphs are rebuilt from the records).
    pub index_records: u64,
    /// What was read.
    pub progress: ArchiveProgress,
}

/// Writes entries into sealed frames.
struct FrameWriter<'a> {
    out: &'a mut dyn Write,
    key: &'a ArchiveKey,
    header: [u8; ARCHIVE_HEADER_LEN],
    seq: u64,
    plain: Zeroizing<Vec<u8>>,
    entries: u64,
    progress: ArchiveProgress,
}

impl FrameWriter<'_> {
    fn push(&mut self, entry: &ArchiveEntry, report: &mut dyn FnMut(ArchiveProgress)) -> Result<()> {
        let before = self.plain.len();
        layout::encode_entry(entry, &mut self.plain);
        if self.plain.len() - before > MAX_FRAME_PLAIN {
            return Err(StorageError::Codec("archive entry over the frame limit"));
        }
        if self.plain.len() > MAX_FRAME_PLAIN {
            // The entry does not fit beside the others: they go first, it starts the next frame.
            let entry_bytes = Zeroizing::new(self.plain[before..].to_vec());
            self.plain.truncate(before);
            self.flush(report)?;
            self.plain.extend_from_slice(&entry_bytes);
        }
        self.entries += 1;
        match entry {
            ArchiveEntry::Point { .. } => self.progress.points += 1,
            ArchiveEntry::Record { .. } => self.progress.records += 1,
            _ => {}
        }
        if self.plain.len() >= FRAME_TARGET {
            self.flush(report)?;
        }
        Ok(())
    }

    fn flush(&mut self, report: &mut dyn FnMut(ArchiveProgress)) -> Result<()> {
        if self.plain.is_empty() {
            return Ok(());
        }
        let sealed = self.key.seal_frame(&layout::frame_aad(&self.header, self.seq), &self.plain);
        let len = u32::try_from(sealed.len()).map_err(|_| StorageError::Codec("archive frame"))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&sealed)?;
        self.seq += 1;
        self.plain.clear();
        self.progress.bytes += 4 + sealed.len() as u64;
        report(self.progress);
        Ok(())
    }
}

/// Reads entries out of sealed frames, each frame opened before any of its entries is used.
struct FrameReader<'a> {
    input: &'a mut dyn Read,
    key: ArchiveKey,
    header: [u8; ARCHIVE_HEADER_LEN],
    seq: u64,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    entries: u64,
    progress: ArchiveProgress,
}

const TRUNCATED: StorageError = StorageError::BadArchive { reason: "the archive is cut short" };

/// Fills `buf` from `input`; `Ok(false)` if the input ended before the first byte.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(TRUNCATED),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

impl FrameReader<'_> {
    /// The next entry; the `End` entry is returned only once its count and the input's end check.
    fn next(&mut self, report: &mut dyn FnMut(ArchiveProgress)) -> Result<ArchiveEntry> {
        if self.pos == self.plain.len() {
            self.read_frame(report)?;
        }
        let (entry, rest) = layout::decode_entry(&self.plain[self.pos..])?;
        self.pos = self.plain.len() - rest.len();
        match &entry {
            ArchiveEntry::End { entries } => {
                if *entries != self.entries || self.pos != self.plain.len() {
                    return Err(StorageError::BadArchive { reason: "the archive's end does not match" });
                }
                let mut more = [0u8; 1];
                if read_full(self.input, &mut more)? {
                    return Err(StorageError::BadArchive { reason: "bytes follow the archive's end" });
                }
            }
            ArchiveEntry::Point { .. } => self.progress.points += 1,
            ArchiveEntry::Record { .. } => self.progress.records += 1,
            _ => {}
        }
        self.entries += 1;
        Ok(entry)
    }

    fn read_frame(&mut self, report: &mut dyn FnMut(ArchiveProgress)) -> Result<()> {
        let mut len = [0u8; 4];
        if !read_full(self.input, &mut len)? {
            return Err(TRUNCATED);
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_SEALED_FRAME {
            return Err(StorageError::BadArchive { reason: "a frame is over its size limit" });
        }
        let mut sealed = vec![0u8; len];
        if !read_full(self.input, &mut sealed)? && len > 0 {
            return Err(TRUNCATED);
        }
        let plain = self
            .key
            .open_frame(&layout::frame_aad(&self.header, self.seq), &sealed)
            .map_err(|_| StorageError::BadArchive { reason: "a frame failed authentication (altered)" })?;
        if plain.is_empty() {
            return Err(StorageError::BadArchive { reason: "an empty frame" });
        }
        self.plain = plain;
        self.pos = 0;
        self.seq += 1;
        self.progress.bytes += 4 + len as u64;
        report(self.progress);
        Ok(())
    }
}

/// A tenant being imported: unless the import commits (an error, or a panic unwinding through
/// the import), what it wrote is removed (`Store::clear_import`: its own column family dropped, or
/// its prefix in the shared one range-deleted, and its marker deleted), and the import's place is
/// released either way.
struct ImportGuard<'s> {
    store: &'s Store,
    uid: TenantUid,
    placement: Placement,
    committed: bool,
}

impl Drop for ImportGuard<'_> {
    fn drop(&mut self) {
        if !self.committed
            && let Err(e) = Store::clear_import(&self.store.db, self.uid.as_bytes())
        {
            // The marker stays: the next open clears what is left.
            tracing::error!(tenant = %self.uid.short(), error = %e, "a failed import's records stay");
        }
        let mut importing = IMPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        importing.retain(|entry| *entry != (self.store.instance, *self.uid.as_bytes()));
    }
}

/// The keys an archive carries, unwrapped.
struct CarriedKeys {
    naming: DataKey,
    data: Vec<DataKey>,
}

impl Store {
    /// Writes the tenant `name` to `out` as an archive (see `layout/archive.rs`): every record, read
    /// from one snapshot while writes go on, still sealed under the tenant's keys; the keys wrapped
    /// under the archive's key, which only this master key derives; the policy and the audit
    /// chain's end. A `tenant-exported` event (naming the archive's id) is appended first, and is
    /// that end. `report` is called after each frame. API keys are not carried.
    pub fn export_tenant(
        &self,
        name: &TenantName,
        out: &mut dyn Write,
        report: &mut dyn FnMut(ArchiveProgress),
    ) -> Result<ExportSummary> {
        let info = self.tenant_info(name)?;
        let uid = info.uid;
        let owner = *uid.as_bytes();
        let state = self.load_tenant(uid)?;
        let archive_id: [u8; 16] = random_bytes();
        let mut event = self.admin_record("tenant-exported", None);
        event.note = Some(format!("archive {}", hex::encode(archive_id)));
        let mut batch = Batch::default();
        let pending = self.audit_record_into(&mut batch, &uid, event)?;
        self.sys_write(batch)?;
        pending.committed();
        let (audit_seq, audit_mac) = self.stored_head(&uid)?;

        // The keyring's view and the records' are taken with the tenant's writes held (no batch of
        // it half-committed between two instances, no rotation step or tier move's switch between
        // the two views, and the place read under it). The master key is held for reading until
        // the keys are unwrapped: a master-key rotation meanwhile would re-wrap the keyring the
        // snapshot still shows under the old version. (Taken in this order, the tenant's write
        // lock then the master key, as a rotation's last step takes them.)
        let write = state.write.lock();
        let master = self.master.read();
        let archive_key = master.0.archive_key(&archive_id);
        let cf = state.family(&self.db)?;
        let (snapshot, records) = (self.db.snapshot(), self.db.snapshot_of(&cf));
        drop(write);
        let sys = self.sys()?;
        let write =
            snapshot.get(&sys, layout::keyring_write_key(&owner))?.ok_or(StorageError::KeyringCorrupt)?;
        let write_generation =
            layout::be_u32(layout::split_control(&write)?.0).map_err(|_| StorageError::KeyringCorrupt)?;
        let kek = master.0.kek(&owner, master.1);
        let mut keys = Vec::new();
        let keyring_prefix = layout::keyring_prefix(&owner);
        for item in snapshot.entries(&sys, Keys::Prefix(&keyring_prefix))? {
            let (key, wrapped) = item?;
            let Some((_, generation)) = layout::wrapped_key_of(&key) else { continue };
            let data_key = kek.unwrap_key(&wrapped, generation)?;
            keys.push(ArchiveEntry::Key {
                generation,
                wrapped: archive_key.wrap(&data_key).as_bytes().to_vec(),
            });
        }
        drop(master);
        let policy_key = layout::policy_key(&owner);
        let policy = match snapshot.get(&sys, &policy_key)? {
            Some(sealed) => layout::decode_policy(&self.open_registry(&policy_key, &sealed)?)?,
            None => Default::default(),
        };

        let header = layout::archive_header(&archive_id, &archive_key.check_value());
        out.write_all(&header)?;
        let mut writer = FrameWriter {
            out,
            key: &archive_key,
            header,
            seq: 0,
            plain: Zeroizing::new(Vec::with_capacity(FRAME_TARGET + (FRAME_TARGET >> 2))),
            entries: 0,
            progress: ArchiveProgress { bytes: ARCHIVE_HEADER_LEN as u64, ..ArchiveProgress::default() },
        };
        let manifest = ArchiveManifest {
            name: name.as_str().to_owned(),
            source_uid: owner,
            created_ms: info.created_ms,
            exported_ms: self.now_ms(),
            write_generation,
            policy,
            audit_seq,
            audit_mac,
        };
        writer.push(&ArchiveEntry::Manifest(manifest), report)?;
        for key in &keys {
            writer.push(key, report)?;
        }
        for item in records.entries(&cf, Keys::Prefix(&owner))? {
            let (key, value) = item?;
            let suffix = key.get(16..).filter(|s| !s.is_empty()).ok_or(StorageError::Codec("tenant key"))?;
            if suffix[0] == Kind::Vector as u8 {
                continue; // Written with its payload.
            }
            if suffix[0] != Kind::Payload as u8 {
                writer
                    .push(&ArchiveEntry::Record { key: suffix.to_vec(), value: value.into_vec() }, report)?;
                continue;
            }
            let collection = TenantKeys::collection_of_key(&key).ok_or(StorageError::Codec("point key"))?;
            let tag = TenantKeys::tag_of_point_key(&key).ok_or(StorageError::Codec("point key"))?;
            let vector = records
                .get(&cf, state.keys.point(Kind::Vector, collection, &tag))?
                .ok_or(StorageError::Integrity)?;
            let point = ArchiveEntry::Point { collection, tag: tag.0, payload: value.into_vec(), vector };
            writer.push(&point, report)?;
        }
        let entries = writer.entries;
        writer.push(&ArchiveEntry::End { entries }, report)?;
        writer.flush(report)?;
        writer.out.flush()?;
        let progress = writer.progress;
        tracing::info!(
            tenant = %uid.short(),
            points = progress.points,
            bytes = progress.bytes,
            "tenant exported"
        );
        Ok(ExportSummary { archive_id: hex::encode(archive_id), progress })
    }

    /// Restores a tenant from an archive [`Store::export_tenant`] wrote under this master key:
    /// under its own name and uid (its keys and sealed records as they were; a fresh key generation
    /// seals its writes from now on, so that it never shares a write key with its source), or, with
    /// `new_name`, re-keyed (a new uid, fresh keys, every record opened and sealed again, index
    /// snapshots left for the graphs to be rebuilt). It lands in the tier `tier` (`None`: the
    /// store's default, [`StoreOptions::default_placement`](crate::StoreOptions)), whichever tier
    /// it was exported from: a sealed value is bound to the tenant's namespace, not to the column
    /// family that holds it. Refused with [`StorageError::BadArchive`] when
    /// the archive is not one, is another master key's, or is cut, altered or reordered, and with
    /// `AlreadyExists` when the name is taken; in every refusal nothing of it stays. `report` is
    /// called after each frame. No API key comes with it: issue new ones.
    pub fn import_tenant(
        &self,
        input: &mut dyn Read,
        new_name: Option<&TenantName>,
        tier: Option<Placement>,
        report: &mut dyn FnMut(ArchiveProgress),
    ) -> Result<ImportSummary> {
        let mut header = [0u8; ARCHIVE_HEADER_LEN];
        if !read_full(input, &mut header)? {
            return Err(StorageError::BadArchive { reason: "the archive is empty" });
        }
        let (archive_id, check) = layout::parse_archive_header(&header)?;
        let key = self.master.read().0.archive_key(&archive_id);
        if !constant_time_eq(&key.check_value(), &check) {
            return Err(StorageError::BadArchive {
                reason: "written under another master key (or its header was altered)",
            });
        }
        let mut reader = FrameReader {
            input,
            key,
            header,
            seq: 0,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            entries: 0,
            progress: ArchiveProgress { bytes: ARCHIVE_HEADER_LEN as u64, ..ArchiveProgress::default() },
        };
        let ArchiveEntry::Manifest(manifest) = reader.next(report)? else {
            return Err(StorageError::BadArchive { reason: "the archive does not start with its manifest" });
        };
        let source_name = TenantName::new(manifest.name.clone())
            .map_err(|_| StorageError::Codec("archived tenant name"))?;
        let name = new_name.cloned().unwrap_or(source_name);
        let rekeyed = new_name.is_some();
        let mut pending = None;
        let carried = self.read_keys(&mut reader, &manifest, &mut pending, report)?;
        let uid = if rekeyed { TenantUid::random() } else { TenantUid::from_bytes(manifest.source_uid) };
        if *uid.as_bytes() == layout::SYSTEM_OWNER {
            return Err(StorageError::BadArchive { reason: "the archive names no tenant" });
        }
        let placement = tier.unwrap_or(self.default_placement);
        let guard = self.begin_import(&name, uid, placement)?;

        let source_uid = TenantUid::from_bytes(manifest.source_uid);
        let old = Sealing {
            uid: manifest.source_uid,
            cf_name: layout::tenant_cf_name(&source_uid),
            cipher: OwnerCipher::new(
                source_uid.as_bytes(),
                &carried.naming,
                &carried.data,
                manifest.write_generation,
                0,
            )
            .map_err(|_| StorageError::BadArchive { reason: "the archive's keys are incomplete" })?,
        };
        // The keys the tenant gets here: the carried ones and a fresh write generation, or, re-keyed,
        // a fresh naming key and data key.
        let newest = carried.data.iter().map(DataKey::generation).max().unwrap_or(0);
        let (naming, fresh) = if rekeyed {
            (DataKey::generate(0), DataKey::generate(1))
        } else {
            let next = newest.checked_add(1).ok_or(StorageError::Codec("archived key generation"))?;
            (carried.naming, DataKey::generate(next))
        };
        let new = Sealing {
            uid: *uid.as_bytes(),
            cf_name: layout::tenant_cf_name(&uid),
            cipher: OwnerCipher::new(
                uid.as_bytes(),
                &naming,
                std::slice::from_ref(&fresh),
                fresh.generation(),
                0,
            )?,
        };
        let keys = TenantKeys::new(&uid);
        let cf = Location::of(&uid, placement).family(&self.db)?;
        let mut batch = Batch::default();
        let mut batch_bytes = 0usize;
        let mut index_records = 0u64;
        let mut entry = pending.take().map_or_else(|| reader.next(report), Ok)?;
        loop {
            match entry {
                ArchiveEntry::End { .. } => break,
                ArchiveEntry::Record { key: suffix, value } => {
                    let kind =
                        *suffix.first().ok_or(StorageError::BadArchive { reason: "malformed entry" })?;
                    let is_index = kind == Kind::IndexHead as u8 || kind == Kind::IndexChunk as u8;
                    if is_index {
                        index_records += 1;
                    }
                    if !is_index || !rekeyed {
                        let (key, value) = if rekeyed {
                            rekey_record(&keys, &old, &new, &suffix, value)?
                        } else {
                            check_record_kind(kind)?;
                            ([uid.as_bytes().as_slice(), &suffix].concat(), value)
                        };
                        batch_bytes += key.len() + value.len();
                        batch.put(&cf, key, value);
                    }
                }
                ArchiveEntry::Point { collection, tag, payload, vector } => {
                    let tag = bulkhead_crypto::RecordTag(tag);
                    let (tag, payload, vector) = if rekeyed {
                        rekey_point(&old, &new, collection, tag, &payload, &vector)?
                    } else {
                        (tag, payload, vector)
                    };
                    batch_bytes += payload.len() + vector.len() + 2 * 53;
                    batch.put(&cf, keys.point(Kind::Payload, collection, &tag), payload);
                    batch.put(&cf, keys.point(Kind::Vector, collection, &tag), vector);
                }
                ArchiveEntry::Manifest(_) | ArchiveEntry::Key { .. } => {
                    return Err(StorageError::BadArchive { reason: "entries out of order" });
                }
            }
            if batch_bytes >= IMPORT_BATCH_BYTES {
                self.data_write(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
            entry = reader.next(report)?;
        }
        self.data_write(batch)?;
        // The records were written without an fsync; the commit is fsynced, and must not outlive
        // them (a dedicated instance's log is not the main one's).
        self.db.sync_log_of(&cf)?;
        drop(cf);
        let carried_data = if rekeyed { Vec::new() } else { carried.data };
        drop(old);
        let info = self.commit_import(
            guard,
            &name,
            uid,
            &manifest,
            &archive_id,
            (&naming, &carried_data, &fresh),
            &new.cipher,
            rekeyed,
        )?;
        let index_records = if rekeyed { 0 } else { index_records };
        tracing::info!(
            tenant = %uid.short(),
            rekeyed,
            points = reader.progress.points,
            "tenant imported"
        );
        Ok(ImportSummary {
            tenant: info,
            archive_id: hex::encode(archive_id),
            rekeyed,
            index_records,
            progress: reader.progress,
        })
    }

    /// Reads the archive's keys (the entries after the manifest), leaving in `pending` the first
    /// entry after them.
    fn read_keys(
        &self,
        reader: &mut FrameReader<'_>,
        manifest: &ArchiveManifest,
        pending: &mut Option<ArchiveEntry>,
        report: &mut dyn FnMut(ArchiveProgress),
    ) -> Result<CarriedKeys> {
        let mut naming = None;
        let mut data: BTreeMap<u32, DataKey> = BTreeMap::new();
        loop {
            match reader.next(report)? {
                ArchiveEntry::Key { generation, wrapped } => {
                    if data.len() >= MAX_ARCHIVE_KEYS {
                        return Err(StorageError::BadArchive { reason: "too many keys" });
                    }
                    let key = reader
                        .key
                        .unwrap_key(&wrapped, generation)
                        .map_err(|_| StorageError::BadArchive { reason: "a carried key does not open" })?;
                    if generation == 0 {
                        naming = Some(key);
                    } else {
                        data.insert(generation, key);
                    }
                }
                other => {
                    *pending = Some(other);
                    break;
                }
            }
        }
        let naming =
            naming.ok_or(StorageError::BadArchive { reason: "the archive's keys are incomplete" })?;
        if !data.contains_key(&manifest.write_generation) {
            return Err(StorageError::BadArchive { reason: "the archive's keys are incomplete" });
        }
        Ok(CarriedKeys { naming, data: data.into_values().collect() })
    }

    /// Checks that `name` is free (and, for an import under the archive's own uid, that the uid
    /// is), clears what a crashed import of the same uid left, writes the import's marker
    /// (fsynced, before any record) and creates the column family the records go to: the
    /// tenant's own, or the shared one if no shared tenant made it yet.
    fn begin_import(
        &self,
        name: &TenantName,
        uid: TenantUid,
        placement: Placement,
    ) -> Result<ImportGuard<'_>> {
        let _registry = self.registry_lock.lock();
        let sys = self.sys()?;
        if self.db.get(&sys, self.tenant_registry_key(name))?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tenant" });
        }
        if self.db.get(&sys, layout::keyring_write_key(uid.as_bytes()))?.is_some() {
            return Err(StorageError::InvalidArgument {
                field: "archive",
                reason: "its tenant exists here under another name; import it under a new name".into(),
            });
        }
        let place = (self.instance, *uid.as_bytes());
        {
            let mut importing = IMPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if importing.contains(&place) {
                return Err(StorageError::InvalidArgument {
                    field: "archive",
                    reason: "the same archive is being imported already".into(),
                });
            }
            importing.push(place);
        }
        // From here the guard releases the place (and clears what the import wrote) if anything fails.
        let guard = ImportGuard { store: self, uid, placement, committed: false };
        let marker = layout::import_marker_key(uid.as_bytes());
        let left = [Placement::OwnColumnFamily, Placement::Dedicated]
            .into_iter()
            .any(|own| Location::of(&uid, own).family(&self.db).is_ok());
        if self.db.get(&sys, &marker)?.is_some() || left {
            // No keyring entry, no import running: what an import the process did not survive left.
            tracing::warn!(tenant = %uid.short(), "clearing the records of an interrupted import");
            Self::clear_import(&self.db, uid.as_bytes())?;
        }
        let mut batch = Batch::default();
        batch.put(&sys, &marker, []);
        self.sys_write(batch)?;
        Location::of(&uid, placement).make(&self.db)?;
        Ok(guard)
    }

    /// Removes what an import under `uid` that did not commit wrote: its own column family
    /// dropped, its prefix in the shared column family range-deleted, then (one fsynced batch,
    /// with the range delete) its marker deleted. Called when an import fails, and by
    /// [`Store::open`] for every marker an import the process did not survive left. A marker
    /// whose uid has keys (which no import leaves: its commit deletes the marker) is not an
    /// import's: that tenant's records are left alone and only the marker goes.
    pub(crate) fn clear_import(db: &Engine, uid: &[u8; 16]) -> Result<()> {
        let sys = system_family(db)?;
        let marker = layout::import_marker_key(uid);
        let mut batch = Batch::default();
        if db.get(&sys, layout::keyring_write_key(uid))?.is_some() {
            tracing::warn!(
                tenant = %TenantUid::from_bytes(*uid).short(),
                "an import marker names a tenant that exists; only the marker is removed"
            );
        } else {
            for placement in Placement::ALL {
                Location::clear(db, &TenantUid::from_bytes(*uid), placement, &mut batch)?;
            }
        }
        batch.delete(&sys, &marker);
        db.write(batch, Durability::Fsync)
    }

    /// Clears, at open, every import the process did not survive (see [`Store::clear_import`]).
    pub(crate) fn clear_interrupted_imports(db: &Engine) -> Result<()> {
        let sys = system_family(db)?;
        let mut uids = Vec::new();
        for item in db.entries(&sys, Keys::Prefix(layout::IMPORT_MARKER_PREFIX)) {
            let (key, _) = item?;
            uids.push(layout::import_marker_uid(&key).ok_or(StorageError::Codec("import marker"))?);
        }
        drop(sys);
        for uid in uids {
            tracing::warn!(
                tenant = %TenantUid::from_bytes(uid).short(),
                "clearing the records of an interrupted import"
            );
            Self::clear_import(db, &uid)?;
        }
        Ok(())
    }

    /// Makes the imported tenant exist: its wrapped keys, write generation (and, re-keyed, the
    /// encryption count of its records), policy, audit event and registry entry in one fsynced
    /// batch, after the name is checked once more under the registry lock.
    #[expect(clippy::too_many_arguments, reason = "the import's parts, each needed once")]
    fn commit_import(
        &self,
        mut guard: ImportGuard<'_>,
        name: &TenantName,
        uid: TenantUid,
        manifest: &ArchiveManifest,
        archive_id: &[u8; 16],
        (naming, carried, fresh): (&DataKey, &[DataKey], &DataKey),
        cipher: &OwnerCipher,
        rekeyed: bool,
    ) -> Result<TenantInfo> {
        let owner = *uid.as_bytes();
        let mut reserved = self.registry_lock.lock();
        let sys = self.sys()?;
        let registry_key = self.tenant_registry_key(name);
        if self.db.get(&sys, &registry_key)?.is_some() {
            return Err(StorageError::AlreadyExists { what: "tenant" });
        }
        let kek = self.kek(&owner);
        let placement = guard.placement;
        let mut batch = Batch::default();
        for key in [naming].into_iter().chain(carried).chain([fresh]) {
            batch.put(&sys, layout::keyring_key(&owner, key.generation()), kek.wrap(key).as_bytes());
        }
        let write_key = layout::keyring_write_key(&owner);
        let generation = fresh.generation().to_be_bytes();
        batch.put(&sys, &write_key, layout::control_value(cipher, &write_key, &generation));
        if rekeyed {
            let count_key = layout::encryption_count_key(&owner, fresh.generation());
            let count = (cipher.encryptions() + ENCRYPTION_RESERVATION).to_be_bytes();
            batch.put(&sys, &count_key, layout::control_value(cipher, &count_key, &count));
        }
        let place_key = layout::placement_key(&owner);
        batch.put(&sys, &place_key, layout::control_value(cipher, &place_key, &[placement.to_byte()]));
        batch.delete(&sys, layout::import_marker_key(&owner));
        if manifest.policy != Default::default() {
            let policy_key = layout::policy_key(&owner);
            let ctx = SealContext { column_family: SYS_CF.as_bytes(), record_key: &policy_key };
            let sealed = self.system.seal(Purpose::Registry, ctx, &layout::encode(&manifest.policy))?;
            batch.put(&sys, &policy_key, sealed);
        }
        // A copy under a new name is also an event in the source's own trail, when its chain is
        // here (a tenant of this server, or one deleted from it): the tenant whose data it is can
        // see, in the trail it exports, that a copy was made and under which uid. Written first:
        // the copy's chain is new, and a new chain takes the chain count's lock.
        let source = TenantUid::from_bytes(manifest.source_uid);
        let copied = match rekeyed
            && source != uid
            && self.db.get(&sys, layout::audit_registration_key(&source))?.is_some()
        {
            true => {
                let mut event = self.admin_record("tenant-copied", None);
                event.note = Some(format!("archive {}; copy {}", hex::encode(archive_id), uid.to_hex()));
                Some(self.audit_record_into(&mut batch, &source, event)?)
            }
            false => None,
        };
        let mut event = self.admin_record("tenant-imported", None);
        event.note = Some(format!(
            "archive {}; source chain {} ends at seq {} mac {}",
            hex::encode(archive_id),
            hex::encode(manifest.source_uid),
            manifest.audit_seq,
            hex::encode(manifest.audit_mac)
        ));
        event.policy_version = Some(manifest.policy.version);
        let pending = self.audit_record_into(&mut batch, &uid, event)?;
        let created_ms = if rekeyed { self.now_ms() } else { manifest.created_ms };
        // An imported tenant counts as one that has had keys (its source had, or could have): the
        // operator cannot issue it a first key; a break-glass grant of role tenant-admin gives it one.
        let name_owned = name.as_str().to_owned();
        let record = TenantRecord {
            name: name_owned,
            uid: owner,
            created_ms,
            placement,
            keys_issued: true,
            // A copy or a restore: either way its data came through the operator's hands and it
            // has no keys; the approver of a tenant-admin grant for it sees when. (A restore keeps
            // its creation time, so this is the import's own.)
            imported_ms: Some(self.now_ms()),
            operator_revoked_ms: None,
        };
        self.commit_registry(&mut reserved, batch, &registry_key, &layout::encode(&record))?;
        pending.committed();
        if let Some(copied) = copied {
            copied.committed();
        }
        guard.committed = true;
        // A tenant restored under the uid of one that was unavailable (and deleted) is served.
        self.unavailable.write().remove(&uid);
        Ok(TenantInfo::of(name.clone(), &record))
    }
}

/// Where and under which keys records are sealed: the source's (from the archive) or the import's.
struct Sealing {
    uid: [u8; 16],
    cf_name: String,
    cipher: OwnerCipher,
}

impl Sealing {
    fn open(&self, purpose: Purpose, key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.open(purpose, ctx, sealed)?)
    }

    fn seal(&self, purpose: Purpose, key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let ctx = SealContext { column_family: self.cf_name.as_bytes(), record_key: key };
        Ok(self.cipher.seal(purpose, ctx, plain)?)
    }
}

/// Refuses a record kind an archive never carries as a plain record (points come as `Point`).
fn check_record_kind(kind: u8) -> Result<()> {
    const CARRIED: [Kind; 8] = [
        Kind::Collection,
        Kind::NextCollection,
        Kind::Sequence,
        Kind::Count,
        Kind::CollectionBytes,
        Kind::Usage,
        Kind::IndexHead,
        Kind::IndexChunk,
    ];
    if CARRIED.iter().any(|k| *k as u8 == kind) {
        Ok(())
    } else {
        Err(StorageError::BadArchive { reason: "a record of an unknown kind" })
    }
}

/// A record (not a point, not an index snapshot) under the new uid: a collection's record opened
/// and sealed again under a key with its name's new tag; the plain counters as they are.
fn rekey_record(
    keys: &TenantKeys,
    old: &Sealing,
    new: &Sealing,
    suffix: &[u8],
    value: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let kind = suffix[0];
    check_record_kind(kind)?;
    if kind != Kind::Collection as u8 {
        return Ok(([new.uid.as_slice(), suffix].concat(), value));
    }
    let old_key = [old.uid.as_slice(), suffix].concat();
    let plain = old.open(Purpose::Payloads, &old_key, &value)?;
    let record: CollectionRecord = layout::decode(&plain, "collection")?;
    let name = crate::ids::CollectionName::new(record.name.clone())
        .map_err(|_| StorageError::Codec("collection name"))?;
    let key = keys.collection(&layout::collection_tag(&new.cipher, &name));
    let sealed = new.seal(Purpose::Payloads, &key, &plain)?;
    Ok((key, sealed))
}

/// A point under the new uid: its payload opened, its id tagged under the new naming key, both
/// records sealed again under their new keys.
fn rekey_point(
    old: &Sealing,
    new: &Sealing,
    collection: u32,
    tag: bulkhead_crypto::RecordTag,
    payload: &[u8],
    vector: &[u8],
) -> Result<(bulkhead_crypto::RecordTag, Vec<u8>, Vec<u8>)> {
    let old_keys = TenantKeys::new(&TenantUid::from_bytes(old.uid));
    let payload_key = old_keys.point(Kind::Payload, collection, &tag);
    let plain = old.open(Purpose::Payloads, &payload_key, payload)?;
    let record: PointPayloadRecord = layout::decode(&plain, "point")?;
    let id = crate::ids::DocId::new(record.id.clone()).map_err(|_| StorageError::Codec("document id"))?;
    let vector_plain = old.open(Purpose::Vectors, &old_keys.point(Kind::Vector, collection, &tag), vector)?;
    let new_tag = layout::doc_tag(&new.cipher, collection, &id);
    let new_keys = TenantKeys::new(&TenantUid::from_bytes(new.uid));
    let payload =
        new.seal(Purpose::Payloads, &new_keys.point(Kind::Payload, collection, &new_tag), &plain)?;
    let vector =
        new.seal(Purpose::Vectors, &new_keys.point(Kind::Vector, collection, &new_tag), &vector_plain)?;
    Ok((new_tag, payload, vector))
}
