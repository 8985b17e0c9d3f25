//! The administrative audit trail: an append-only chain of events per tenant (creation, API keys
//! issued and revoked, key rotations, deletion), in the system column family so that it outlives the
//! tenant. Each event carries a keyed MAC (under the registry's naming key) over its content and its
//! predecessor's MAC, so that an altered, removed or reordered event breaks the chain at that point.
//! Events hold no tenant data: an opaque uid, a time, an operation name, a public key id, an outcome.
//!
//! Layout: `"audit/" uid(16) seq u64 BE` → postcard `AuditRecord` (plain, MAC-chained).

use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout;
use crate::store::{Store, now_ms};
use bulkhead_crypto::constant_time_eq;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};

const AUDIT_PREFIX: &[u8] = b"audit/";

fn audit_key(uid: &TenantUid, seq: u64) -> Vec<u8> {
    [AUDIT_PREFIX, uid.as_bytes(), &seq.to_be_bytes()].concat()
}

fn tenant_prefix(uid: &TenantUid) -> Vec<u8> {
    [AUDIT_PREFIX, uid.as_bytes()].concat()
}

#[derive(Serialize, Deserialize)]
struct AuditRecord {
    time_ms: u64,
    operation: String,
    key_id: Option<String>,
    outcome: String,
    mac: [u8; 32],
}

/// One audit event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the tenant's chain, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened (`tenant-created`, `api-key-issued`, `tenant-deleted`, ...).
    pub operation: String,
    /// The public id of the API key concerned, if any.
    pub key_id: Option<String>,
    /// `ok`, or a reason code.
    pub outcome: String,
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCheck {
    /// Events in the chain.
    pub events: u64,
    /// The sequence number of the first event whose MAC or position does not hold, if any.
    pub first_broken: Option<u64>,
}

impl Store {
    fn audit_mac(&self, uid: &TenantUid, seq: u64, prev: &[u8; 32], record: &AuditRecord) -> [u8; 32] {
        let content = layout::encode(&(
            uid.as_bytes(),
            seq,
            prev,
            record.time_ms,
            &record.operation,
            &record.key_id,
            &record.outcome,
        ));
        self.system.tag(b"audit", &content).0
    }

    /// The next sequence number of the tenant's chain and the MAC of its last event.
    fn audit_head(&self, uid: &TenantUid) -> Result<(u64, [u8; 32])> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(tenant_prefix(uid)));
        match self.db.iterator_cf_opt(&sys, ro, IteratorMode::End).next() {
            None => Ok((0, [0; 32])),
            Some(item) => {
                let (key, value) = item?;
                let seq = layout::be_u64(&key[AUDIT_PREFIX.len() + 16..])?;
                let record: AuditRecord = layout::decode(&value, "audit event")?;
                Ok((seq + 1, record.mac))
            }
        }
    }

    /// Adds the next event of the tenant's chain to `batch`. The caller holds the registry lock, so
    /// that two events never take the same place, and commits the batch.
    pub(crate) fn audit_into(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        operation: &str,
        key_id: Option<&str>,
    ) -> Result<()> {
        let (seq, prev) = self.audit_head(uid)?;
        let mut record = AuditRecord {
            time_ms: now_ms(),
            operation: operation.to_owned(),
            key_id: key_id.map(str::to_owned),
            outcome: "ok".to_owned(),
            mac: [0; 32],
        };
        record.mac = self.audit_mac(uid, seq, &prev, &record);
        batch.put_cf(&self.sys()?, audit_key(uid, seq), layout::encode(&record));
        Ok(())
    }

    /// Appends one event on its own (fsynced).
    pub(crate) fn audit(&self, uid: &TenantUid, operation: &str, key_id: Option<&str>) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.audit_into(&mut batch, uid, operation, key_id)?;
        self.sys_write(batch)
    }

    fn audit_records(&self, uid: &TenantUid) -> Result<Vec<(u64, AuditRecord)>> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(tenant_prefix(uid)));
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, value) = item?;
            let seq =
                layout::be_u64(key.get(AUDIT_PREFIX.len() + 16..).ok_or(StorageError::Codec("audit key"))?)?;
            out.push((seq, layout::decode(&value, "audit event")?));
        }
        Ok(out)
    }

    /// A tenant's audit events, oldest first (also after the tenant was deleted).
    pub fn audit_events(&self, uid: TenantUid) -> Result<Vec<AuditEvent>> {
        Ok(self
            .audit_records(&uid)?
            .into_iter()
            .map(|(seq, r)| AuditEvent {
                seq,
                time_ms: r.time_ms,
                operation: r.operation,
                key_id: r.key_id,
                outcome: r.outcome,
            })
            .collect())
    }

    /// Recomputes the tenant's chain and reports the first event that does not hold: a MAC that does
    /// not match its content and predecessor, or a gap in the sequence.
    pub fn audit_verify(&self, uid: TenantUid) -> Result<AuditCheck> {
        let records = self.audit_records(&uid)?;
        let mut prev = [0u8; 32];
        for (expected, (seq, record)) in (0u64..).zip(&records) {
            if *seq != expected || !constant_time_eq(&self.audit_mac(&uid, *seq, &prev, record), &record.mac)
            {
                return Ok(AuditCheck { events: records.len() as u64, first_broken: Some(expected) });
            }
            prev = record.mac;
        }
        Ok(AuditCheck { events: records.len() as u64, first_broken: None })
    }
}
