//! Criterion benchmarks: NAR rendering and sha256 over a large file, and the streaming reader.

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrix_formats::HashAlgo;
use ferrix_formats::nar;

const SIZE: usize = 64 << 20;

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("big");
    {
        let mut f = std::fs::File::create(&file).expect("create");
        let chunk: Vec<u8> = (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for _ in 0..SIZE >> 20 {
            f.write_all(&chunk).expect("write");
        }
    }
    let mut g = c.benchmark_group("nar");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.bench_function("dump+sha256 64MiB file", |b| {
        b.iter(|| black_box(nar::dump_path_hashed(&file, HashAlgo::Sha256).expect("dump")))
    });
    g.bench_function("dump to memory 64MiB file", |b| {
        b.iter(|| {
            black_box(
                nar::dump_path(&file, Vec::with_capacity(SIZE + 256))
                    .expect("dump")
                    .len(),
            )
        })
    });
    let bytes = nar::dump_path(&file, Vec::new()).expect("dump");
    g.bench_function("read+validate 64MiB NAR", |b| {
        b.iter(|| {
            let mut r = nar::NarReader::new(&bytes[..]);
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0;
            while let Some(_ev) = r.next().expect("valid") {
                loop {
                    let n = r.read_contents(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    black_box(&buf[..n]);
                    total += n;
                }
            }
            black_box(total)
        })
    });
    g.bench_function("sha256 64MiB in memory", |b| {
        b.iter(|| black_box(HashAlgo::Sha256.digest(&bytes)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
