//! The keyring: every owner's wrapped keys and authenticated control records (write generation,
//! encryption counts), the registry's own keys checked against the master key at open, owner
//! ciphers built from them, the master-key rotation (online and at open), and the migration of a
//! format-1 directory to format 2. Layouts: `layout/system.rs`.

use crate::engine::{Batch, Engine, Keys};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout::{self, SYSTEM_OWNER};
use crate::store::{Durability, Store, system_family};
use bulkhead_crypto::{DataKey, Kek, MasterKey, OwnerCipher, constant_time_eq};
use std::collections::HashMap;

/// Encryptions reserved at a time per key generation: the persisted count is always an upper bound of
/// the real one, written before the values it covers.
pub(crate) const ENCRYPTION_RESERVATION: u64 = 1 << 16;

/// What opening the keyring finds: the master key version, the registry's cipher, its reserved
/// encryption count, and the storage format the directory is in.
type OpenedKeyring = (u32, OwnerCipher, u64, u32);

impl Store {
    /// Verifies the master key (or initialises a new keyring) and opens the registry's own keys.
    /// Format 1 is migrated by the caller, once the store exists.
    pub(crate) fn open_keyring(db: &Engine, master: &MasterKey) -> Result<OpenedKeyring> {
        let sys = system_family(db)?;
        match db.get(&sys, layout::META_MASTER_VERSION)? {
            // A system column family with data but no master version is damaged: initialising it
            // would overwrite the registry's keys and lose every tenant. (The data directory's id
            // and dedicated root, which the engine writes when it first opens, are not such data.)
            None if db.entries(&sys, Keys::All).any(|entry| {
                entry.map_or(true, |(key, _)| {
                    &*key != layout::META_STORE_ID && &*key != layout::META_DEDICATED_ROOT
                })
            }) =>
            {
                Err(StorageError::KeyringCorrupt)
            }
            None => Self::init_keyring(db, master),
            Some(version) => Self::check_keyring(db, master, layout::be_u32(&version)?),
        }
    }

    /// Writes a new keyring: format, master version and check value, the registry's naming and data
    /// keys with its write generation, and the empty audit directory, in one fsynced batch.
    fn init_keyring(db: &Engine, master: &MasterKey) -> Result<OpenedKeyring> {
        let sys = system_family(db)?;
        let version = 1;
        let kek = master.kek(&SYSTEM_OWNER, version);
        let naming = DataKey::generate(0);
        let data = DataKey::generate(1);
        let mut batch = Batch::default();
        batch.put(&sys, layout::META_FORMAT, layout::STORAGE_FORMAT.to_be_bytes());
        batch.put(&sys, layout::META_MASTER_VERSION, version.to_be_bytes());
        batch.put(&sys, layout::master_check_key(version), master.check_value(version));
        batch.put(&sys, layout::keyring_key(&SYSTEM_OWNER, 0), kek.wrap(&naming).as_bytes());
        batch.put(&sys, layout::keyring_key(&SYSTEM_OWNER, 1), kek.wrap(&data).as_bytes());
        let cipher = OwnerCipher::new(&SYSTEM_OWNER, &naming, &[data], 1, 0)?;
        let write_key = layout::keyring_write_key(&SYSTEM_OWNER);
        batch.put(&sys, &write_key, layout::control_value(&cipher, &write_key, &1u32.to_be_bytes()));
        // The audit directory exists from the start, so that removing every chain shows.
        batch.put(&sys, layout::CHAINS_KEY, layout::chain_count_value(&cipher, 0));
        db.write(batch, Durability::Fsync)?;
        Ok((version, cipher, 0, layout::STORAGE_FORMAT))
    }

    /// Checks an existing keyring of master version `version` against `master` and opens the
    /// registry's keys (their control records checked from format 2 on).
    fn check_keyring(db: &Engine, master: &MasterKey, version: u32) -> Result<OpenedKeyring> {
        let sys = system_family(db)?;
        let format = db.get(&sys, layout::META_FORMAT)?.ok_or(StorageError::Codec("format"))?;
        let format = layout::be_u32(&format)?;
        if format != layout::STORAGE_FORMAT && format != layout::STORAGE_FORMAT_1 {
            return Err(StorageError::Codec("unsupported storage format version"));
        }
        let check = db.get(&sys, layout::master_check_key(version))?;
        if !check.is_some_and(|c| constant_time_eq(&c, &master.check_value(version))) {
            return Err(StorageError::WrongMasterKey { master_version: version });
        }
        let tagged = format != layout::STORAGE_FORMAT_1;
        let count_key = layout::encryption_count_key(&SYSTEM_OWNER, 1);
        let stored_count = db.get(&sys, &count_key)?;
        let unchecked = match &stored_count {
            Some(v) if tagged => Some(layout::be_u64(layout::split_control(v)?.0)?),
            Some(v) => Some(layout::be_u64(v)?),
            None => None,
        };
        let reserved = unchecked.unwrap_or(0);
        let cipher = Self::load_owner_cipher(db, master, version, &SYSTEM_OWNER, reserved, tagged)?;
        if tagged && let Some(v) = &stored_count {
            layout::open_control(&cipher, &count_key, v)?;
        }
        Ok((version, cipher, reserved, format))
    }

    /// The stored check value of master version `version` (empty if there is none).
    pub(crate) fn stored_check(db: &Engine, version: u32) -> Result<Vec<u8>> {
        Ok(db.get(&system_family(db)?, layout::master_check_key(version))?.unwrap_or_default())
    }

    /// Re-wraps every wrapped key of every owner from `old` (at `old_version`) to `new` (at the next
    /// version), and switches the master version and check value, in one fsynced batch: a crash
    /// leaves the keyring entirely under one key or the other. Returns the new version.
    pub(crate) fn rewrap_keyring(
        db: &Engine,
        old: &MasterKey,
        old_version: u32,
        new: &MasterKey,
    ) -> Result<u32> {
        let sys = system_family(db)?;
        let new_version = old_version + 1;
        let mut batch = Batch::default();
        for item in db.entries(&sys, Keys::Prefix(layout::KEYRING_PREFIX)) {
            let (key, wrapped) = item?;
            // The write generations hold no key.
            let Some((owner, generation)) = layout::wrapped_key_of(&key) else { continue };
            let data_key = old
                .kek(&owner, old_version)
                .unwrap_key(&wrapped, generation)
                .map_err(|_| StorageError::KeyringCorrupt)?;
            batch.put(&sys, &key, new.kek(&owner, new_version).wrap(&data_key).as_bytes());
        }
        batch.put(&sys, layout::META_MASTER_VERSION, new_version.to_be_bytes());
        batch.put(&sys, layout::master_check_key(new_version), new.check_value(new_version));
        batch.delete(&sys, layout::master_check_key(old_version));
        db.write(batch, Durability::Fsync)?;
        Ok(new_version)
    }

    /// Rotates the master key online: every wrapped key is re-wrapped under `new` in one fsynced
    /// batch, then `new` replaces the old key in memory. No tenant data is re-encrypted. Returns the
    /// new master version. The old key can be discarded once this returns.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<u32> {
        let _registry = self.registry_lock.lock();
        let mut master = self.master.write();
        let version = Self::rewrap_keyring(&self.db, &master.0, master.1, &new)?;
        *master = (new, version);
        drop(master);
        // API keys do not depend on the master key, but a rotation is an operator's moment to
        // start afresh: every key's next call reads its record again.
        self.key_cache.clear();
        // The keys wrapped under the old master key are now only tombstoned versions: rewrite them
        // away, so that the old master key with today's files opens nothing.
        self.purge_destroyed(&[layout::KEYRING_PREFIX.to_vec()])?;
        // The system's own chain (the all-zero uid) records master-key events.
        self.audit(&TenantUid::from_bytes(SYSTEM_OWNER), "master-key-rotated", None)?;
        tracing::warn!(version, "master key rotated");
        Ok(version)
    }

    /// The key-encryption key of `owner` under the current master key.
    pub(crate) fn kek(&self, owner: &[u8; 16]) -> Kek {
        let master = self.master.read();
        master.0.kek(owner, master.1)
    }

    /// `owner`'s cipher from the keyring, under the current master key.
    pub(crate) fn owner_cipher(&self, owner: &[u8; 16], encryptions: u64) -> Result<OwnerCipher> {
        let master = self.master.read();
        Self::load_owner_cipher(&self.db, &master.0, master.1, owner, encryptions, true)
    }

    /// Unwraps an owner's naming key and data keys and builds its cipher. With `tagged` (storage
    /// format 2), the write-generation record's tag is checked under the naming key it unwraps.
    pub(crate) fn load_owner_cipher(
        db: &Engine,
        master: &MasterKey,
        master_version: u32,
        owner: &[u8; 16],
        encryptions: u64,
        tagged: bool,
    ) -> Result<OwnerCipher> {
        let sys = system_family(db)?;
        let kek = master.kek(owner, master_version);
        let write_key = layout::keyring_write_key(owner);
        let write = db.get(&sys, &write_key)?.ok_or(StorageError::KeyringCorrupt)?;
        let payload = if tagged { layout::split_control(&write)?.0 } else { &write[..] };
        let write_generation = layout::be_u32(payload).map_err(|_| StorageError::KeyringCorrupt)?;
        let naming_bytes =
            db.get(&sys, layout::keyring_key(owner, 0))?.ok_or(StorageError::KeyringCorrupt)?;
        let naming = kek.unwrap_key(&naming_bytes, 0)?;
        let mut data_keys = Vec::new();
        for generation in 1..=write_generation {
            if let Some(wrapped) = db.get(&sys, layout::keyring_key(owner, generation))? {
                data_keys.push(kek.unwrap_key(&wrapped, generation)?);
            }
        }
        let cipher = OwnerCipher::new(owner, &naming, &data_keys, write_generation, encryptions)
            .map_err(|_| StorageError::KeyringCorrupt)?;
        if tagged {
            layout::open_control(&cipher, &write_key, &write)?;
        }
        Ok(cipher)
    }

    /// Moves a format-1 directory to format 2 in one fsynced batch: every owner's control records
    /// (write generation, encryption counts, rotation cursor) get their tag, and every audit chain
    /// gets its anchor and registration, taken as they are now (there is nothing older to check
    /// them against), with the count of chains. An owner whose keys do not open (a keyring already
    /// corrupt) is left as it is: it fails on its own when loaded, and the rest migrate.
    pub(crate) fn migrate_to_format_2(&self) -> Result<()> {
        let sys = self.sys()?;
        let mut batch = Batch::default();
        self.tag_control_records(&mut batch)?;
        let chains = self.audit_tenants()?;
        for uid in &chains {
            if let Some(head) = self.unanchored_head(uid)? {
                for (key, value) in self.anchor_records(uid, head) {
                    batch.put(&sys, key, value);
                }
            }
        }
        batch.put(&sys, layout::CHAINS_KEY, layout::chain_count_value(&self.system, chains.len() as u64));
        batch.put(&sys, layout::META_FORMAT, layout::STORAGE_FORMAT.to_be_bytes());
        self.sys_write(batch)?;
        tracing::warn!(
            chains = chains.len(),
            "data directory migrated to storage format 2 \
             (authenticated control records, anchored audit chains)"
        );
        Ok(())
    }

    /// Puts every owner's control records, tagged under its naming key, into `batch` (the format-2
    /// migration). An owner whose keys do not open keeps its records untagged.
    fn tag_control_records(&self, batch: &mut Batch) -> Result<()> {
        let sys = self.sys()?;
        let mut owners: Vec<[u8; 16]> = Vec::new();
        for item in self.db.entries(&sys, Keys::Prefix(layout::KEYRING_PREFIX)) {
            let (key, _) = item?;
            if let Some(owner) = layout::keyring_owner(&key)
                && owners.last() != Some(&owner)
            {
                owners.push(owner);
            }
        }
        let mut controls: Vec<(Vec<u8>, [u8; 16])> = Vec::new();
        for owner in &owners {
            controls.push((layout::keyring_write_key(owner), *owner));
            controls.push((layout::rotation_key(owner), *owner));
        }
        for item in self.db.entries(&sys, Keys::Prefix(layout::ENCRYPTION_COUNT_PREFIX)) {
            let (key, _) = item?;
            if let Some(owner) = layout::encryption_count_owner(&key) {
                controls.push((key.to_vec(), owner));
            }
        }
        let master = self.master.read();
        let mut ciphers: HashMap<[u8; 16], Option<OwnerCipher>> = HashMap::new();
        for (key, owner) in controls {
            let Some(value) = self.db.get(&sys, &key)? else { continue };
            let cipher = ciphers.entry(owner).or_insert_with(|| {
                Self::load_owner_cipher(&self.db, &master.0, master.1, &owner, 0, false)
                    .inspect_err(|e| {
                        tracing::error!(
                            owner = %TenantUid::from_bytes(owner).short(),
                            error = %e,
                            "an owner's keys do not open; its control records stay untagged"
                        );
                    })
                    .ok()
            });
            if let Some(cipher) = cipher {
                batch.put(&sys, &key, layout::control_value(cipher, &key, &value));
            }
        }
        Ok(())
    }
}
