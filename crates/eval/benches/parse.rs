//! Parsing and lowering real files: the fast front end (`crate::parse`)
//! against the rnix pipeline it replaces, on all of nixpkgs lib and on
//! nixpkgs 20.09's `pkgs/top-level/all-packages.nix`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrix_eval::{Eval, decode_source};

// The allocator the ferrix binary installs.
#[global_allocator]
static A: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;

#[path = "../tests/common/shared.rs"]
mod shared;
use shared::shared;

fn nix_files(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            nix_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nix") {
            let text = decode_source(&std::fs::read(&p).expect("read"));
            out.push((p.parent().expect("parent").to_string_lossy().into_owned(), text));
        }
    }
}

fn bench(c: &mut Criterion) {
    let shared = shared();
    let mut lib = Vec::new();
    nix_files(&shared.join("nixpkgs-lib/lib"), &mut lib);
    let ap = shared.join("nixpkgs-20.09/pkgs/top-level");
    let all_packages =
        vec![(ap.to_string_lossy().into_owned(), decode_source(&std::fs::read(ap.join("all-packages.nix")).expect("read")))];
    let ev = Eval::default();
    for (name, files) in [("nixpkgs lib", &lib), ("all-packages.nix", &all_packages)] {
        let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
        let mut g = c.benchmark_group(format!("parse+lower {name}"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(bytes as u64));
        for (label, rnix_only) in [("rnix", true), ("fast", false)] {
            g.bench_function(label, |b| {
                b.iter(|| {
                    for (dir, text) in files.iter() {
                        black_box(ev.parse_discard(text, dir, rnix_only)).ok();
                    }
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
