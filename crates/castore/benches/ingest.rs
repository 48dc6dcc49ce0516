//! Ingest benchmarks: one 256 MiB file and 10 000 small files into a fresh
//! redb store (and, for comparison, into memory); then reading that 256 MiB
//! blob back from redb, whole and as random 4 KiB ranges.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrix_castore::backend::redb::RedbStore;
use ferrix_castore::{Node, Services, ingest};

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

    let mut g = c.benchmark_group("read");
    g.sample_size(10);
    let (_store, s) = fresh_redb(stores.path());
    let Node::File { digest, .. } = ingest(&*s.blobs, &*s.directories, &big).expect("ingest") else {
        unreachable!("a regular file ingests as a file node")
    };
    g.throughput(Throughput::Bytes(BIG as u64));
    g.bench_function("blob_256MiB_whole/redb", |b| {
        b.iter(|| {
            let mut r = s.blobs.open_read(&digest).expect("read").expect("present");
            std::io::copy(&mut r, &mut std::io::sink()).expect("copy")
        })
    });
    const READS: u64 = 1000;
    g.throughput(Throughput::Elements(READS));
    g.bench_function("blob_256MiB_1000_random_4KiB/redb", |b| {
        b.iter(|| {
            let mut r = s.blobs.open_read(&digest).expect("read").expect("present");
            let mut buf = [0u8; 4096];
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            for _ in 0..READS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.seek(SeekFrom::Start(x % (BIG as u64 - 4096))).expect("seek");
                r.read_exact(&mut buf).expect("read");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
