//! Unit tests of the storage crate's layouts and validation.

use super::*;
use crate::engine::{Engine, Keys};
use crate::layout::{Kind, TenantKeys, decode_vector, encode_vector};

fn uid() -> TenantUid {
    TenantUid::from_bytes([7; 16])
}

#[test]
fn point_ranges_hold_exactly_their_collection() {
    let keys = TenantKeys::new(&uid());
    let tag = bulkhead_crypto::RecordTag([0xff; 32]);
    for coll in [0u32, 1, 255, 256, u32::MAX - 1, u32::MAX] {
        let (start, end) = keys.point_range(Kind::Vector, coll);
        let inside = keys.point(Kind::Vector, coll, &tag);
        assert!(start <= inside && inside < end, "collection {coll}");
        if coll < u32::MAX {
            let next = keys.point(Kind::Vector, coll + 1, &bulkhead_crypto::RecordTag([0; 32]));
            assert!(next >= end, "collection {coll} + 1 is outside");
        }
        let payload = keys.point(Kind::Payload, coll, &tag);
        assert!(payload < start || payload >= end, "payloads are outside the vector range");
        assert_eq!(TenantKeys::tag_of_point_key(&inside), Some(tag));
    }
}

#[test]
fn vectors_round_trip_bit_exactly() {
    let v = vec![0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-7];
    let back = decode_vector(&encode_vector(&v)).expect("decode");
    assert_eq!(
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert!(decode_vector(&[0, 1, 2]).is_err());
}

#[test]
fn names_are_validated_and_never_printed() {
    assert!(TenantName::new("acme-01_x").is_ok());
    for bad in ["", "Acme", "-acme", "a b", "ä", &"a".repeat(65)] {
        assert!(TenantName::new(bad).is_err(), "{bad:?}");
    }
    let id = DocId::new("secret-id").expect("id");
    assert!(!format!("{id:?}").contains("secret"));
    let name = TenantName::new("secretcorp").expect("name");
    assert!(!format!("{name:?}").contains("secret"));
}

#[test]
fn cosine_rejects_zero_vectors_but_l2_accepts_them() {
    assert!(validate_vector(&[0.0, 0.0], 2, Metric::Cosine).is_err());
    assert!(validate_vector(&[0.0, 0.0], 2, Metric::L2).is_ok());
    assert!(validate_vector(&[0.0, f32::NAN], 2, Metric::L2).is_err());
    assert!(validate_vector(&[1.0], 2, Metric::Dot).is_err());
}

#[test]
fn registry_encryptions_are_counted_and_persisted_before_use() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("k");
    MasterKey::generate().write_new_file(&key_path).expect("key");
    let open = || {
        Store::open(
            &dir.path().join("db"),
            MasterKey::from_file(&key_path).expect("key"),
            StoreOptions::default(),
        )
    };
    let persisted = |store: &Store| {
        let sys = store.sys().expect("sys");
        let key = layout::encryption_count_key(&layout::SYSTEM_OWNER, 1);
        let value = store.db.get(&sys, &key).expect("get");
        value
            .map(|v| {
                layout::be_u64(&layout::open_control(&store.system, &key, &v).expect("tag")).expect("u64")
            })
            .unwrap_or(0)
    };
    let sealed;
    {
        let store = open().expect("open");
        let name = TenantName::new("acme").expect("name");
        store.create_tenant(&name).expect("tenant");
        for _ in 0..5 {
            store.issue_api_key(&name, Role::Reader, "k", None).expect("key");
        }
        sealed = store.system.encryptions();
        // The tenant record, five keys, and the tenant record again with the first key (its
        // first-key marker, in the key's batch).
        assert_eq!(sealed, 7);
        assert!(persisted(&store) >= sealed, "the reservation is written with the first seal");
    }
    let store = open().expect("reopen");
    assert!(store.system.encryptions() >= sealed, "the count never goes backwards across a restart");
}

#[test]
fn stale_collection_handles_are_refused() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(&dir.path().join("db"), MasterKey::generate(), StoreOptions::default()).expect("open");
    let name = TenantName::new("acme").expect("name");
    store.create_tenant(&name).expect("tenant");
    let scope = store.trusted_host_scope(&name, "test").expect("scope");
    let handle = store.tenant(&scope).expect("handle");
    let docs = CollectionName::new("docs").expect("name");
    let old = handle.create_collection(&docs, 2, Metric::L2).expect("create");
    handle.drop_collection(&old).expect("drop");
    let new = handle.create_collection(&docs, 3, Metric::L2).expect("recreate");
    assert_ne!(old.number(), new.number());
    let point = NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 2.0], "x");
    assert!(matches!(handle.upsert(&old, &[point]), Err(StorageError::NotFound { what: "collection" })));
    assert!(matches!(handle.drop_collection(&old), Err(StorageError::NotFound { .. })));
    // An edited copy cannot smuggle in the wrong dimension: the stored configuration decides.
    let mut edited = new.clone();
    edited.dimension = 2;
    let point = NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 2.0], "x");
    assert!(matches!(handle.upsert(&edited, &[point]), Err(StorageError::InvalidArgument { .. })));
    assert_eq!(handle.count(&new).expect("count"), 0);
    assert_eq!(handle.list_collections().expect("list").len(), 1);
    // Another handle of the tenant shares its collections: it sees the recreated one, not the copy
    // it looked up before the drop.
    let other = store.tenant(&scope).expect("handle");
    assert_eq!(other.collection(&docs).expect("lookup").number(), new.number());
    handle.drop_collection(&new).expect("drop");
    assert!(matches!(other.collection(&docs), Err(StorageError::NotFound { .. })));
    let point = NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 2.0, 3.0], "x");
    assert!(matches!(other.upsert(&new, &[point]), Err(StorageError::NotFound { .. })));
}

#[test]
fn looked_up_collections_follow_concurrent_drops_and_creations() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(&dir.path().join("db"), MasterKey::generate(), StoreOptions::default()).expect("open");
    let name = TenantName::new("acme").expect("name");
    store.create_tenant(&name).expect("tenant");
    let scope = store.trusted_host_scope(&name, "test").expect("scope");
    let docs = CollectionName::new("docs").expect("name");
    let rounds = 300;
    std::thread::scope(|s| {
        s.spawn(|| {
            let handle = store.tenant(&scope).expect("handle");
            for _ in 0..rounds {
                let info = handle.create_collection(&docs, 2, Metric::L2).expect("create");
                handle.drop_collection(&info).expect("drop");
            }
            handle.create_collection(&docs, 4, Metric::L2).expect("last");
        });
        s.spawn(|| {
            let handle = store.tenant(&scope).expect("handle");
            for _ in 0..rounds * 4 {
                match handle.collection(&docs) {
                    Ok(info) => assert!(info.dimension == 2 || info.dimension == 4),
                    Err(e) => assert!(matches!(e, StorageError::NotFound { .. }), "{e}"),
                }
            }
        });
    });
    // Whatever the interleaving, what the handles see is what is stored.
    let handle = store.tenant(&scope).expect("handle");
    let listed = handle.list_collections().expect("list");
    assert_eq!(listed.len(), 1);
    let found = handle.collection(&docs).expect("lookup");
    assert_eq!((found.number(), found.dimension), (listed[0].number(), 4));
}

#[test]
fn orphan_tenant_column_families_are_dropped_at_open() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("k");
    MasterKey::generate().write_new_file(&key_path).expect("key");
    let path = dir.path().join("db");
    let open = || Store::open(&path, MasterKey::from_file(&key_path).expect("key"), StoreOptions::default());
    let orphan = layout::tenant_cf_name(&TenantUid::from_bytes([0xab; 16]));
    let real;
    {
        let store = open().expect("open");
        let info = store.create_tenant(&TenantName::new("acme").expect("name")).expect("tenant");
        real = layout::tenant_cf_name(&info.uid);
        // What a crash between the two steps of create_tenant leaves behind.
        store.db.create_family(&orphan).expect("create cf");
    }
    drop(open().expect("reopen"));
    let names = Engine::list_families(&path).expect("list");
    assert!(!names.contains(&orphan), "{names:?}");
    assert!(names.contains(&real), "a real tenant's column family stays: {names:?}");
}

mod snapshots {
    use super::*;
    use bulkhead_crypto::{MasterKey, Purpose};
    use zeroize::Zeroizing;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        scope: TenantScope,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db"), MasterKey::generate(), StoreOptions::default())
            .expect("open");
        let name = TenantName::new("acme").expect("name");
        store.create_tenant(&name).expect("tenant");
        let scope = store.trusted_host_scope(&name, "test").expect("scope");
        Fixture { _dir: dir, store, scope }
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// The collection's snapshot when it has at most one segment (the head's error, or that
    /// segment's result).
    fn load_one(handle: &TenantHandle<'_>, info: &CollectionInfo) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let mut segments = handle.load_index_snapshots(info)?;
        assert!(segments.len() <= 1, "one segment at most");
        segments.pop().map(|(_, bytes)| bytes).transpose()
    }

    fn index_keys(store: &Store, handle: &TenantHandle<'_>, coll: u32) -> usize {
        let (start, end) = handle.state.keys.point_range(Kind::IndexChunk, coll);
        store.db.entries(&handle.cf().expect("cf"), Keys::Range(start, end)).count()
    }

    #[test]
    fn snapshots_round_trip_and_replace_each_other() {
        let f = fixture();
        let handle = f.store.tenant(&f.scope).expect("handle");
        let info = handle
            .create_collection(&CollectionName::new("docs").expect("name"), 4, Metric::L2)
            .expect("collection");
        assert!(load_one(&handle, &info).expect("load").is_none());
        let sink = handle.index_snapshot_sink(&info).expect("sink");
        let chunk = layout::INDEX_CHUNK_BYTES;
        // Several write batches' worth of chunks, the last one partial; then an exact multiple;
        // then an empty snapshot.
        for (len, seed) in [(chunk * 9 + 17, 1u8), (chunk * 2, 2), (0, 3), (5, 4)] {
            let data = bytes(len, seed);
            assert_eq!(sink.save(&data).expect("save"), SnapshotSaved::Saved);
            let loaded = load_one(&handle, &info).expect("load").expect("present");
            assert!(loaded.as_slice() == data.as_slice(), "len {len}");
            let chunks = len.div_ceil(chunk);
            assert_eq!(index_keys(&f.store, &handle, info.number), chunks, "older chunks are deleted");
        }
    }

    #[test]
    fn damaged_moved_or_missing_chunks_are_errors_not_data() {
        let f = fixture();
        let handle = f.store.tenant(&f.scope).expect("handle");
        let info = handle
            .create_collection(&CollectionName::new("docs").expect("name"), 4, Metric::L2)
            .expect("collection");
        let sink = handle.index_snapshot_sink(&info).expect("sink");
        let len = layout::INDEX_CHUNK_BYTES * 2 + 3;
        sink.save(&bytes(len, 9)).expect("save");
        let (start, end) = handle.state.keys.point_range(Kind::IndexChunk, info.number);
        let entries: Vec<_> = f
            .store
            .db
            .entries(&handle.cf().expect("cf"), Keys::Range(start, end))
            .map(|r| r.expect("entry"))
            .collect();
        assert_eq!(entries.len(), 3);
        let put =
            |key: &[u8], value: &[u8]| f.store.db.put(&handle.cf().expect("cf"), key, value).expect("put");

        // Chunk 0's value at chunk 1's key: bound to its own key, it does not authenticate there.
        put(&entries[1].0, &entries[0].1);
        assert!(matches!(load_one(&handle, &info), Err(StorageError::Integrity)));
        put(&entries[1].0, &entries[1].1);
        assert!(load_one(&handle, &info).expect("restored").is_some());

        // One flipped ciphertext bit.
        let mut flipped = entries[2].1.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        put(&entries[2].0, &flipped);
        assert!(matches!(load_one(&handle, &info), Err(StorageError::Integrity)));

        // A missing chunk.
        f.store.db.delete(&handle.cf().expect("cf"), &entries[2].0).expect("delete");
        assert!(matches!(load_one(&handle, &info), Err(StorageError::Codec(_))));
    }

    #[test]
    fn a_dropped_collection_or_a_closed_store_gets_nothing_written() {
        let f = fixture();
        let handle = f.store.tenant(&f.scope).expect("handle");
        let name = CollectionName::new("docs").expect("name");
        let info = handle.create_collection(&name, 4, Metric::L2).expect("collection");
        let sink = handle.index_snapshot_sink(&info).expect("sink");
        sink.save(&bytes(100, 1)).expect("save");
        handle.drop_collection(&info).expect("drop");
        assert_eq!(index_keys(&f.store, &handle, info.number), 0, "drop deletes the snapshot");
        let again = handle.create_collection(&name, 4, Metric::L2).expect("recreate");
        assert_eq!(sink.save(&bytes(100, 2)).expect("save"), SnapshotSaved::Skipped);
        assert_eq!(index_keys(&f.store, &handle, info.number), 0);
        assert!(load_one(&handle, &again).expect("load").is_none());

        let sink = handle.index_snapshot_sink(&again).expect("sink");
        drop(handle);
        let Fixture { _dir, store, .. } = f;
        drop(store);
        assert_eq!(sink.save(&bytes(100, 3)).expect("save"), SnapshotSaved::Skipped);
        // The sink did not keep RocksDB open: the directory opens again (and, under another master
        // key, says so rather than reporting a held lock).
        let reopened = Store::open(&_dir.path().join("db"), MasterKey::generate(), StoreOptions::default());
        assert!(matches!(reopened, Err(StorageError::WrongMasterKey { .. })));
    }

    #[test]
    fn several_segments_are_listed_in_order_and_unlisted_chunks_are_deleted() {
        let f = fixture();
        let handle = f.store.tenant(&f.scope).expect("handle");
        let info = handle
            .create_collection(&CollectionName::new("docs").expect("name"), 4, Metric::L2)
            .expect("collection");
        let sink = handle.index_snapshot_sink(&info).expect("sink");
        let chunk = layout::INDEX_CHUNK_BYTES;
        let (a, b, c) = (bytes(chunk + 5, 1), bytes(7, 2), bytes(chunk * 2, 3));
        let saved_a = sink.save_segment(&a).expect("save").expect("open");
        let saved_b = sink.save_segment(&b).expect("save").expect("open");
        // Saved but not listed yet: not part of the snapshot.
        assert!(handle.load_index_snapshots(&info).expect("load").is_empty());
        assert_eq!(sink.set_segments(&[saved_b, saved_a]).expect("set"), SnapshotSaved::Saved);
        let loaded = handle.load_index_snapshots(&info).expect("load");
        assert_eq!(loaded.iter().map(|(saved, _)| *saved).collect::<Vec<_>>(), [saved_b, saved_a]);
        let contents: Vec<Vec<u8>> = loaded.into_iter().map(|(_, r)| r.expect("opens").to_vec()).collect();
        assert_eq!(contents, [b.clone(), a.clone()]);
        assert_eq!(index_keys(&f.store, &handle, info.number), 3);

        // A segment saved and then left out (a crash before its head, or a newer list) is deleted
        // by the next list, together with the segments it no longer names.
        let saved_c = sink.save_segment(&c).expect("save").expect("open");
        let _orphan = sink.save_segment(&bytes(9, 4)).expect("save").expect("open");
        assert_eq!(index_keys(&f.store, &handle, info.number), 6);
        sink.set_segments(&[saved_c]).expect("set");
        assert_eq!(index_keys(&f.store, &handle, info.number), 2);
        let loaded = handle.load_index_snapshots(&info).expect("load");
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].1.as_ref().expect("opens").as_slice() == c.as_slice());

        // A damaged segment fails alone; the others still load.
        let saved_b = sink.save_segment(&b).expect("save").expect("open");
        sink.set_segments(&[saved_c, saved_b]).expect("set");
        let key = handle.state.keys.index_chunk(info.number, saved_c.id, 1);
        f.store.db.delete(&handle.cf().expect("cf"), &key).expect("delete");
        let loaded = handle.load_index_snapshots(&info).expect("load");
        assert!(matches!(loaded[0].1, Err(StorageError::Codec(_))));
        assert!(loaded[1].1.as_ref().expect("opens").as_slice() == b.as_slice());

        // An empty list: no head, no chunks.
        sink.set_segments(&[]).expect("set");
        assert!(handle.load_index_snapshots(&info).expect("load").is_empty());
        assert_eq!(index_keys(&f.store, &handle, info.number), 0);
    }

    #[test]
    fn a_format_1_head_naming_one_segment_still_loads() {
        let f = fixture();
        let handle = f.store.tenant(&f.scope).expect("handle");
        let info = handle
            .create_collection(&CollectionName::new("docs").expect("name"), 4, Metric::L2)
            .expect("collection");
        let sink = handle.index_snapshot_sink(&info).expect("sink");
        let data = bytes(layout::INDEX_CHUNK_BYTES + 1, 5);
        let saved = sink.save_segment(&data).expect("save").expect("open");
        // The head as format 1 wrote it: the bare record of one segment.
        let head = layout::IndexHeadRecord { segment: saved.id, chunks: saved.chunks, bytes: saved.bytes };
        let key = handle.state.keys.index_head(info.number);
        let sealed = handle.state.seal(Purpose::IndexSnapshots, &key, &layout::encode(&head)).expect("seal");
        f.store.db.put(&handle.cf().expect("cf"), &key, &sealed).expect("put");
        let loaded = handle.load_index_snapshots(&info).expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].0, saved);
        assert!(loaded[0].1.as_ref().expect("opens").as_slice() == data.as_slice());
    }
}

#[test]
fn policies_written_before_quotas_read_with_default_quotas() {
    use crate::layout::{TenantQuotas, decode_policy, encode};
    // The layout before quotas, field by field: version, changed_ms, then the policy without them.
    let denied = vec![(Role::Reader, "search".to_owned())];
    let old =
        (7u64, 1_700u64, (denied.clone(), Some(5u32), None::<u32>, Some(3u32), vec!["s3://a/".to_owned()]));
    let read = decode_policy(&encode(&old)).expect("old layout");
    assert_eq!((read.version, read.changed_ms), (7, 1_700));
    assert_eq!(read.policy.denied, denied);
    assert_eq!(
        (read.policy.max_k, read.policy.max_ef, read.policy.max_filter_conditions),
        (Some(5), None, Some(3))
    );
    assert_eq!(read.policy.source_uri_prefixes, ["s3://a/"]);
    assert_eq!(read.policy.quotas, TenantQuotas::default());
    // The current layout round-trips, quotas included.
    let mut current = read.clone();
    current.policy.quotas = TenantQuotas {
        max_vectors: Some(10),
        max_stored_bytes: Some(1 << 20),
        requests_per_second: Some(50),
        max_denials: Some(0),
        ..TenantQuotas::default()
    };
    assert_eq!(decode_policy(&encode(&current)).expect("current layout"), current);
    // A cut record is an error under either reading, and so are quotas that do not decode.
    let bytes = encode(&old);
    assert!(decode_policy(&bytes[..bytes.len() - 2]).is_err());
    let mut bytes = encode(&current);
    let tag = bytes.len() - 2; // max_denials is Some(0): its tag, then its value
    assert_eq!(bytes[tag..], [1, 0]);
    bytes[tag] = 2; // an option tag that is neither 0 nor 1
    assert!(decode_policy(&bytes).is_err());
}

#[test]
fn a_locked_key_stays_locked_across_a_restart_until_unlocked() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("k");
    MasterKey::generate().write_new_file(&key_path).expect("key");
    let path = dir.path().join("db");
    let open = || Store::open(&path, MasterKey::from_file(&key_path).expect("key"), StoreOptions::default());
    let name = TenantName::new("acme").expect("name");
    let (token, key_id, other_token) = {
        let store = open().expect("open");
        let uid = store.create_tenant(&name).expect("tenant").uid;
        let issued = store.issue_api_key(&name, Role::Reader, "", None).expect("key");
        let other = store.issue_api_key(&name, Role::Reader, "", None).expect("key");
        let scope = store.authenticate(&issued.token).expect("valid");
        assert!(store.lock_api_key(uid, &issued.key_id, "denials").expect("lock"));
        assert!(!store.lock_api_key(uid, &issued.key_id, "denials").expect("again"), "already locked");
        assert!(matches!(store.tenant(&scope), Err(StorageError::KeyLocked)), "a scope minted before");
        // Another tenant's key id, or a malformed one, is not found.
        let globex = store.create_tenant(&TenantName::new("globex").expect("name")).expect("tenant").uid;
        assert!(matches!(
            store.lock_api_key(globex, &other.key_id, "denials"),
            Err(StorageError::NotFound { .. })
        ));
        assert!(store.lock_api_key(uid, &other.key_id, "bad\nreason").is_err());
        (issued.token, issued.key_id, other.token)
    };
    let store = open().expect("reopen");
    assert!(matches!(store.authenticate(&token), Err(StorageError::KeyLocked)));
    assert!(store.authenticate(&other_token).is_ok(), "only that key");
    let keys = store.list_api_keys(&name).expect("keys");
    assert_eq!(keys.iter().filter(|k| k.locked).map(|k| k.key_id.as_str()).collect::<Vec<_>>(), [&key_id]);
    assert!(store.unlock_api_key(&name, &key_id).expect("unlock"));
    assert!(!store.unlock_api_key(&name, &key_id).expect("again"));
    assert!(store.authenticate(&token).is_ok());
}

mod dedicated {
    use super::*;
    use crate::audit::AccessEvent;
    use crate::engine::STOP_AFTER_INTENT;
    use bulkhead_crypto::MasterKey;

    struct Fixture {
        dir: tempfile::TempDir,
        key: std::path::PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = dir.path().join("k");
            MasterKey::generate().write_new_file(&key).expect("key");
            Fixture { dir, key }
        }

        fn open(&self) -> Store {
            let options = StoreOptions { default_placement: Placement::Dedicated, ..StoreOptions::default() };
            Store::open(&self.dir.path().join("db"), MasterKey::from_file(&self.key).expect("key"), options)
                .expect("open")
        }

        /// Its dedicated instance's directory (in the data directory's one folder under the root).
        fn instance_dir(&self, uid: &TenantUid) -> std::path::PathBuf {
            let root = self.dir.path().join("db").join("dedicated");
            let folder = std::fs::read_dir(&root).expect("root").next().expect("a folder").expect("entry");
            folder.path().join(layout::tenant_cf_name(uid))
        }
    }

    fn point(id: &str) -> NewPoint {
        NewPoint::new(DocId::new(id).expect("id"), vec![1.0, 2.0], id)
    }

    fn name() -> TenantName {
        TenantName::new("acme").expect("name")
    }

    /// A write whose dedicated part committed but whose main part (here its access event) did not,
    /// as a crash between the two would leave it: the instance refuses writes, and the next open
    /// commits the main part, so the write has its event and the chain verifies.
    #[test]
    fn a_write_stopped_between_the_two_instances_is_finished_at_the_next_open() {
        let f = Fixture::new();
        let uid = {
            let store = f.open();
            let info = store.create_tenant(&name()).expect("tenant");
            assert_eq!(info.placement, Placement::Dedicated);
            assert!(f.instance_dir(&info.uid).join("CURRENT").exists(), "its own instance");
            let scope = store.trusted_host_scope(&name(), "test").expect("scope");
            let t = store.tenant(&scope).expect("handle");
            let docs =
                t.create_collection(&CollectionName::new("docs").expect("n"), 2, Metric::L2).expect("c");
            t.upsert(&docs, &[point("first")]).expect("upsert");
            let before = store.audit_events(info.uid).expect("events").len();
            t.stage_audit(AccessEvent { operation: "upsert", ..AccessEvent::default() });
            STOP_AFTER_INTENT.with(|stop| stop.set(true));
            let big: Vec<NewPoint> = (0..300).map(|i| point(&format!("p{i}"))).collect();
            let stopped = t.upsert(&docs, &big);
            assert!(matches!(stopped, Err(StorageError::Engine(_))), "{stopped:?}");
            let refused = t.upsert(&docs, &[point("later")]);
            assert!(
                matches!(refused, Err(StorageError::Engine(_))),
                "writes wait for the next open: {refused:?}"
            );
            // Every write does: an event appended meanwhile would take the place the intent's holds.
            let other = store.create_tenant_in(&TenantName::new("other").expect("n"), Placement::Shared);
            assert!(matches!(other, Err(StorageError::Engine(_))), "{other:?}");
            assert_eq!(
                store.audit_events(info.uid).expect("events").len(),
                before,
                "not in the main one yet"
            );
            info.uid
        };
        let store = f.open();
        let scope = store.trusted_host_scope(&name(), "test").expect("scope");
        let t = store.tenant(&scope).expect("handle");
        let docs = t.collection(&CollectionName::new("docs").expect("n")).expect("collection");
        assert_eq!(t.count(&docs).expect("count"), 301, "the write stands");
        let events = store.audit_events(uid).expect("events");
        assert_eq!(events.iter().filter(|e| e.operation == "upsert").count(), 1, "with its event");
        let check = store.audit_verify(uid).expect("verify");
        assert_eq!(check.first_broken, None, "{check:?}");
        t.upsert(&docs, &[point("after")]).expect("writes go on");
        assert_eq!(t.count(&docs).expect("count"), 302);
    }

    #[test]
    fn a_deleted_dedicated_tenants_directory_goes_and_orphans_are_removed_at_open() {
        let f = Fixture::new();
        let orphan = TenantUid::from_bytes([0xab; 16]);
        let (gone, kept) = {
            let store = f.open();
            let gone = store.create_tenant(&name()).expect("tenant").uid;
            let kept = store.create_tenant(&TenantName::new("kept").expect("n")).expect("tenant").uid;
            let scope = store.trusted_host_scope(&name(), "test").expect("scope");
            let held = store.tenant(&scope).expect("handle");
            let docs =
                held.create_collection(&CollectionName::new("d").expect("n"), 2, Metric::L2).expect("c");
            held.upsert(&docs, &[point("x")]).expect("upsert");
            store.delete_tenant(&name()).expect("delete");
            assert!(held.upsert(&docs, &[point("y")]).is_err(), "a held handle cannot write after");
            drop(held);
            assert!(!f.instance_dir(&gone).exists(), "its directory went with its last handle");
            // What a crash between making a tenant's instance and writing its keys leaves.
            store.db.create_dedicated(&layout::tenant_cf_name(&orphan)).expect("orphan");
            (gone, kept)
        };
        assert!(f.instance_dir(&orphan).exists());
        let store = f.open();
        assert!(!f.instance_dir(&orphan).exists(), "an instance without keys is removed at open");
        assert!(!f.instance_dir(&gone).exists());
        assert!(f.instance_dir(&kept).exists(), "a real tenant's instance stays");
        assert_eq!(store.list_tenants().expect("list").len(), 1);
    }

    /// Two data directories given one dedicated root each keep their instances in a folder of
    /// their own: neither opens the other's, nor removes them as orphans.
    #[test]
    fn two_data_directories_share_a_dedicated_root_without_taking_each_others_instances() {
        let (a, b) = (Fixture::new(), Fixture::new());
        let root = a.dir.path().join("disk2");
        let open = |f: &Fixture| {
            let options = StoreOptions {
                default_placement: Placement::Dedicated,
                dedicated_root: Some(root.clone()),
                ..StoreOptions::default()
            };
            Store::open(&f.dir.path().join("db"), MasterKey::from_file(&f.key).expect("key"), options)
                .expect("open")
        };
        for round in 0..2 {
            for f in [&a, &b] {
                let store = open(f);
                if round == 0 {
                    store.create_tenant(&name()).expect("tenant");
                    let scope = store.trusted_host_scope(&name(), "test").expect("scope");
                    let t = store.tenant(&scope).expect("handle");
                    let docs = t.create_collection(&CollectionName::new("d").expect("n"), 2, Metric::L2);
                    t.upsert(&docs.expect("c"), &[point("x")]).expect("upsert");
                }
                let scope = store.trusted_host_scope(&name(), "test").expect("scope");
                let t = store.tenant(&scope).expect("handle");
                let docs = t.collection(&CollectionName::new("d").expect("n")).expect("collection");
                assert_eq!(t.count(&docs).expect("count"), 1, "round {round}");
            }
        }
        assert_eq!(std::fs::read_dir(&root).expect("root").count(), 2, "a folder each");
    }

    /// A tenant moved out of the dedicated tier and back starts from an empty instance, whatever a
    /// leftover of its old one holds; a leftover is removed at open.
    #[test]
    fn a_leftover_instance_is_never_reused_and_goes_at_open() {
        let f = Fixture::new();
        let docs_name = CollectionName::new("d").expect("n");
        let (uid, junk) = {
            let store = f.open();
            let uid = store.create_tenant(&name()).expect("tenant").uid;
            let scope = store.trusted_host_scope(&name(), "test").expect("scope");
            // A handle per step: a move waits for the handles made before its switch.
            let handle = || store.tenant(&scope).expect("handle");
            let docs = handle().create_collection(&docs_name, 2, Metric::L2).expect("c");
            handle().upsert(&docs, &[point("a"), point("b")]).expect("upsert");
            store.move_tenant(&name(), Placement::OwnColumnFamily, |_| {}).expect("move out");
            let t = handle();
            t.delete(&docs, &[DocId::new("b").expect("id")]).expect("delete");
            // What a crash during the old copy's removal leaves: the instance, with "b" in it.
            let cf_name = layout::tenant_cf_name(&uid);
            store.db.create_dedicated(&cf_name).expect("leftover");
            let leftover = store.db.dedicated(&cf_name).expect("open");
            let junk = t.state.keys.point(Kind::Payload, docs.number, &bulkhead_crypto::RecordTag([9; 32]));
            store.db.put(&leftover, &junk, b"stale").expect("put");
            drop((leftover, t));
            store.move_tenant(&name(), Placement::Dedicated, |_| {}).expect("move back");
            let t = handle();
            assert_eq!(t.count(&docs).expect("count"), 1, "the deleted point stays deleted");
            let cf = t.cf().expect("cf");
            assert_eq!(store.db.get(&cf, &junk).expect("get"), None, "a fresh instance");
            drop((cf, t));
            store.move_tenant(&name(), Placement::OwnColumnFamily, |_| {}).expect("move out again");
            store.db.create_dedicated(&cf_name).expect("leftover again");
            (uid, junk)
        };
        assert!(f.instance_dir(&uid).exists(), "left over");
        let store = f.open();
        assert!(!f.instance_dir(&uid).exists(), "a stale instance goes at open");
        let scope = store.trusted_host_scope(&name(), "test").expect("scope");
        let t = store.tenant(&scope).expect("handle");
        let docs = t.collection(&docs_name).expect("collection");
        assert_eq!(t.count(&docs).expect("count"), 1);
        assert_eq!(store.db.get(&t.cf().expect("cf"), &junk).expect("get"), None);
    }

    /// An instance that does not open (its files damaged), or whose intent the store did not
    /// write, makes its own tenant unavailable; the store opens and its other tenants serve.
    #[test]
    fn a_damaged_instance_or_a_forged_intent_sinks_only_its_own_tenant() {
        let f = Fixture::new();
        let names = ["broken", "forged", "fine"].map(|n| TenantName::new(n).expect("n"));
        let uids = {
            let store = f.open();
            let uids = names.clone().map(|n| store.create_tenant(&n).expect("tenant").uid);
            for n in &names {
                let t = store.tenant(&store.trusted_host_scope(n, "test").expect("scope")).expect("h");
                let docs = t.create_collection(&CollectionName::new("d").expect("n"), 2, Metric::L2);
                t.upsert(&docs.expect("c"), &[point("a")]).expect("upsert");
            }
            // An intent that deletes the registry's write generation, above the done record.
            let forged = layout::tenant_cf_name(&uids[1]);
            store.db.forge_intent(&forged, &layout::keyring_write_key(&[0; 16])).expect("forge");
            uids
        };
        std::fs::remove_file(f.instance_dir(&uids[0]).join("CURRENT")).expect("damage");
        let store = f.open();
        for (n, cause) in
            names.iter().zip([Some("dedicated-instance-missing"), Some("dedicated-instance-missing"), None])
        {
            match (store.trusted_host_scope(n, "test"), cause) {
                (Err(StorageError::TenantUnavailable { cause: got }), Some(cause)) => assert_eq!(got, cause),
                (Ok(scope), None) => {
                    let t = store.tenant(&scope).expect("handle");
                    let docs = t.collection(&CollectionName::new("d").expect("n")).expect("c");
                    assert_eq!(t.count(&docs).expect("count"), 1);
                }
                (other, _) => panic!("{other:?}"),
            }
        }
        assert!(store.list_tenants().expect("the registry's keys are intact").len() == 3);
    }

    /// A root given once is recorded: an open that gives none (an embedded command) finds it.
    #[test]
    fn the_dedicated_root_given_once_is_used_by_an_open_that_gives_none() {
        let f = Fixture::new();
        let root = f.dir.path().join("disk2");
        let key = || MasterKey::from_file(&f.key).expect("key");
        let path = f.dir.path().join("db");
        {
            let options = StoreOptions { dedicated_root: Some(root.clone()), ..StoreOptions::default() };
            let store = Store::open(&path, key(), options).expect("open");
            store.create_tenant_in(&name(), Placement::Dedicated).expect("tenant");
        }
        let store = Store::open(&path, key(), StoreOptions::default()).expect("open");
        assert!(store.trusted_host_scope(&name(), "test").is_ok(), "found under the recorded root");
        assert!(!path.join("dedicated").exists(), "not under the default one");
    }

    /// An instance's directory may be a symbolic link to another disk: it opens through the link,
    /// and deleting the tenant deletes the directory it points to as well as the link.
    #[test]
    fn an_instance_behind_a_symbolic_link_opens_and_is_deleted_whole() {
        let f = Fixture::new();
        let elsewhere = f.dir.path().join("disk3");
        let uid = {
            let store = f.open();
            let uid = store.create_tenant(&name()).expect("tenant").uid;
            let t = store.tenant(&store.trusted_host_scope(&name(), "test").expect("scope")).expect("h");
            let docs = t.create_collection(&CollectionName::new("d").expect("n"), 2, Metric::L2);
            t.upsert(&docs.expect("c"), &[point("a")]).expect("upsert");
            uid
        };
        let dir = f.instance_dir(&uid);
        std::fs::rename(&dir, &elsewhere).expect("move to the other disk");
        std::os::unix::fs::symlink(&elsewhere, &dir).expect("link");
        let store = f.open();
        let t = store.tenant(&store.trusted_host_scope(&name(), "test").expect("scope")).expect("h");
        let docs = t.collection(&CollectionName::new("d").expect("n")).expect("collection");
        assert_eq!(t.count(&docs).expect("count"), 1, "served through the link");
        drop(t);
        store.delete_tenant(&name()).expect("delete");
        assert!(std::fs::symlink_metadata(&dir).is_err(), "the link is gone at once");
        // The directory it pointed to goes in the background.
        for _ in 0..1_000 {
            if !elsewhere.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the linked directory was not deleted");
    }
}

#[test]
fn a_collection_scan_leaves_the_block_cache_as_it_found_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = crate::engine::EngineMemory { cache_bytes: 64 << 20, write_buffer_bytes: 8 << 20 };
    let (engine, _) = Engine::open(dir.path(), &["data", layout::SYS_CF], memory, None).expect("open");
    let family = engine.family("data").expect("family");
    let (chunks, per_chunk) = (16, 1024);
    for chunk in 0..chunks {
        let mut batch = crate::engine::Batch::default();
        for i in 0..per_chunk {
            let value: Vec<u8> = (0..1024u32).map(|j| (j * 31 + i * 7 + chunk * 3) as u8).collect();
            batch.put(&family, format!("k{chunk:02}{i:05}"), value);
        }
        engine.write(batch, Durability::Process).expect("write");
    }
    engine.flush(&family).expect("flush");
    let before = engine.cache_usage();
    let records = (chunks * per_chunk) as usize;
    assert_eq!(engine.scan(&family, Keys::All).count(), records);
    let after_scan = engine.cache_usage();
    assert_eq!(engine.entries(&family, Keys::All).count(), records);
    let after_entries = engine.cache_usage();
    assert!(after_scan < before + (1 << 20), "a scan keeps none of its blocks: {before} -> {after_scan}");
    assert!(
        after_entries > after_scan + (8 << 20),
        "an iteration keeps its: {after_scan} -> {after_entries}"
    );
}
