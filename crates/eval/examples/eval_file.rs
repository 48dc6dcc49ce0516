//! Profiling helper: evaluate a file strictly with the core builtins and
//! print the result (`cargo run --release -p ferrix-eval --example eval_file
//! -- [-I name=path] FILE`). Lighter to build than the `ferrix` binary.

#[global_allocator]
static A: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = ferrix_eval::EvalOptions::default();
    let mut file = None;
    while let Some(a) = args.next() {
        if a == "-I" {
            let v = args.next().expect("-I needs an argument");
            let (p, d) = v.split_once('=').unwrap_or(("", &v));
            opts.search_path.push((p.to_string(), d.to_string()));
        } else {
            file = Some(a);
        }
    }
    let file = std::fs::canonicalize(file.expect("usage: eval_file [-I name=path] FILE")).expect("file exists");
    let ev = ferrix_eval::Eval::new(Box::new(ferrix_eval::HostIO), opts, Default::default());
    let v = ev.eval_file(&file.to_string_lossy()).and_then(|v| ev.force_deep(&v));
    match v {
        Ok(v) => println!("{v:?}"),
        Err(e) => {
            eprintln!("error: {}", e.msg());
            std::process::exit(1);
        }
    }
}
