//! Ingest benchmarks: one 256 MiB file and 10 000 small files into a fresh
//! redb store (and, for comparison, into memory).

use std::fs;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrix_castore::backend::redb::RedbStore;
use ferrix_castore::{Services, ingest};

const BIG: usize = 256 << 20;
const SMALL_FILES: usize = 10_000;

/// Deterministic, incompressible-looking bytes.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

fn make_small_tree(root: &Path) -> u64 {
    let mut total = 0;
    let mut buf = vec![0u8; 8192];
    for i in 0..SMALL_FILES {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir).expect("create dir");
        }
        let len = (i * 7919) % 8192; // 0..8 KiB, mean 4 KiB
        fill(&mut buf[..len], i as u64 + 1);
        fs::write(dir.join(format!("f{i}")), &buf[..len]).expect("write file");
        total += len as u64;
    }
    total
}

fn fresh_redb(dir: &Path) -> (RedbStore, Services) {
    let path = dir.join(format!("store-{}.redb", std::process::id()));
    let _ = fs::remove_file(&path);
    let store = RedbStore::open(&path).expect("open redb");
    let services = store.services();
    (store, services)
}

fn bench(c: &mut Criterion) {
    let src = tempfile::tempdir().expect("temp dir");
    let big = src.path().join("big");
    let mut data = vec![0u8; BIG];
    fill(&mut data, 42);
    fs::write(&big, &data).expect("write big file");
    drop(data);
    let small = src.path().join("small");
    let small_bytes = make_small_tree(&small);
    let stores = tempfile::tempdir().expect("temp dir");

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);

    g.throughput(Throughput::Bytes(BIG as u64));
    g.bench_function("file_256MiB/redb", |b| {
        b.iter_batched(
            || fresh_redb(stores.path()),
            |(_store, s)| ingest(&*s.blobs, &*s.directories, &big).expect("ingest"),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("file_256MiB/memory", |b| {
        b.iter_batched(
            ferrix_castore::backend::memory::services,
            |s| ingest(&*s.blobs, &*s.directories, &big).expect("ingest"),
            BatchSize::PerIteration,
        )
    });

    g.throughput(Throughput::Bytes(small_bytes));
    g.bench_function("small_files_10000/redb", |b| {
        b.iter_batched(
            || fresh_redb(stores.path()),
            |(_store, s)| ingest(&*s.blobs, &*s.directories, &small).expect("ingest"),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("small_files_10000/memory", |b| {
        b.iter_batched(
            ferrix_castore::backend::memory::services,
            |s| ingest(&*s.blobs, &*s.directories, &small).expect("ingest"),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
