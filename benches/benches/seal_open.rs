//! Sealing and opening values: the AES-256-GCM cost every write and read of a record pays, per value
//! size, and the HMAC record tag that names each document.

use bulkhead_crypto::{DataKey, OwnerCipher, Purpose, SealContext};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn cipher() -> OwnerCipher {
    OwnerCipher::new(b"bench-owner", &DataKey::generate(0), &[DataKey::generate(1)], 1, 0).expect("cipher")
}

fn seal_open(c: &mut Criterion) {
    let cipher = cipher();
    let ctx =
        SealContext { column_family: b"t-0123456789abcdef", record_key: b"0123456789abcdef-P-0001-tag" };
    let mut group = c.benchmark_group("seal_open");
    // A 384-d vector is 1,536 bytes; a typical RAG chunk with metadata is a few kilobytes.
    for size in [64usize, 1536, 4096, 65536] {
        let plaintext = vec![7u8; size];
        let sealed = cipher.seal(Purpose::Payloads, ctx, &plaintext).expect("seal");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, p| {
            b.iter(|| cipher.seal(Purpose::Payloads, ctx, black_box(p)))
        });
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| cipher.open(Purpose::Payloads, ctx, black_box(s)).expect("opens"))
        });
    }
    group.finish();
    c.bench_function("record_tag", |b| {
        b.iter(|| cipher.tag(b"doc", black_box(b"\x00\x00\x00\x01document-id-42")))
    });
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
